"""What every detector needs to know about a decoded block."""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from mevwatch.monitor.money import PriceBook
from mevwatch.monitor.types import ZERO_ADDRESS, Block, DecodedBlock, Swap, Transaction, Transfer


class LossOracle(Protocol):
    """Counterfactual re-execution of a victim (streams/simulate.py's ``NodeSimulator`` on a node):
    what ``pool`` would have paid the victim in ``token_out`` without the transactions in ``drop``."""

    method: str  # the evidence's victim_loss_method for numbers it gives
    every_pool: bool  # re-execute where an exact model exists too (its number kept beside, to cross-check)

    def victim_output(self, block: Block, drop: frozenset[str], victim_hash: str, pool: str,
                      token_out: str) -> tuple[int | None, str]: ...

# Routers and aggregators (mainnet): they move tokens for others and are never the
# attacker, even when they sit between a pool and the user.
ROUTERS = frozenset({
    "0x7a250d5630b4cf539739df2c5dacb4c659f2488d",  # Uniswap V2 Router02
    "0xf164fc0ec4e93095b804a4795bbe1e041497b92a",  # Uniswap V2 Router01
    "0xe592427a0aece92de3edee1f18e0157c05861564",  # Uniswap V3 SwapRouter
    "0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45",  # Uniswap SwapRouter02
    "0xef1c6e67703c7bd7107eed8303fbe6ec2554bf6b",  # Universal Router (2022)
    "0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad",  # Universal Router
    "0x66a9893cc07d91d95644aedd05d03f95e1dba8af",  # Universal Router (V4)
    "0xd9e1ce17f2641f24ae83637ab66a2cca9c378b9f",  # Sushiswap router
    "0x03f7724180aa6b939894b5ca4314783b0b36b329",  # Shibaswap router
    "0x11111112542d85b3ef69ae05771c2dccff4faa26",  # 1inch v3
    "0x1111111254fb6c44bac0bed2854e76f90643097d",  # 1inch v4
    "0x1111111254eeb25477b68fb85ed929f73a960582",  # 1inch v5
    "0x111111125421ca6dc452d289314280a0f8842a65",  # 1inch v6
    "0xdef1c0ded9bec7f1a1670819833240f027b25eff",  # 0x Exchange Proxy
    "0xdef171fe48cf0115b1d80b88dc8eab59176fee57",  # Paraswap v5
    "0x881d40237659c251811cec9c364ef91dc08d300c",  # MetaMask swap router
    "0x9008d19f58aabd9ed0d60971565aa8510560ab41",  # CoW settlement
    "0xba12222222228d8ba445958a75a0704d566bf2c8",  # Balancer V2 Vault
    "0x2f9ec37d6ccfff1cab21733bdadede11c823ccb0",  # Bancor network
    "0x9aab3f75489902f3a48495025729a0af77d4b11e",  # Kyber proxy
    "0x1111111254760f7ab3f16433eea9304126dcd199",  # 1inch (2021)
})


class BlockView:
    """Indexes of a decoded block that several detectors share."""

    def __init__(self, db: DecodedBlock, extra_routers: frozenset[str] = frozenset(), oracle: LossOracle | None = None):
        self.db = db
        self.oracle = oracle  # a node to re-execute victims on, where no exact model of the pool exists
        self.block = db.block
        self.swaps = sorted(db.swaps, key=lambda s: s.order)
        self.tx_by_hash: dict[str, Transaction] = {tx.hash: tx for tx in db.block.transactions}
        self.transfers_by_tx: dict[str, list[Transfer]] = defaultdict(list)
        for tr in db.transfers:
            self.transfers_by_tx[tr.transaction_hash].append(tr)
        self.pools = {s.pool for s in self.swaps} | {lc.pool for lc in db.liquidity}
        self.routers = ROUTERS | extra_routers
        self.prices = PriceBook(self.swaps, db.native_wrapper)
        self.swaps_by_pool: dict[str, list[Swap]] = defaultdict(list)
        for s in self.swaps:
            self.swaps_by_pool[s.pool].append(s)
        self.swaps_by_tx: dict[str, list[Swap]] = defaultdict(list)
        for s in self.swaps:
            self.swaps_by_tx[s.transaction_hash].append(s)

    def is_infrastructure(self, addr: str | None) -> bool:
        return addr is None or addr in self.routers or addr in self.pools or addr == ZERO_ADDRESS

    def holder(self, s: Swap) -> str:
        """Who ended up with the swap's output in its transaction (following onward transfers)."""
        addr = s.recipient
        for tr in self.transfers_by_tx.get(s.transaction_hash, ()):
            if tr.order > s.order and tr.token == s.token_out and tr.from_address == addr and tr.to_address not in self.pools:
                addr = tr.to_address
        return addr

    def source(self, s: Swap) -> str:
        """Whose tokens paid for the swap (following transfers back inside its transaction)."""
        addr = s.payer or s.sender
        for tr in reversed(self.transfers_by_tx.get(s.transaction_hash, ())):
            if tr.order < s.order and tr.token == s.token_in and tr.to_address == addr and tr.from_address not in self.pools and tr.from_address != ZERO_ADDRESS:
                addr = tr.from_address
                break
        return addr

    def priority_fee(self, tx_hash: str) -> int | None:
        tx = self.tx_by_hash.get(tx_hash)
        return tx.priority_fee(self.block.base_fee_per_gas) if tx else None
