"""Normalised chain data and decoded objects shared by every stage.

Field names follow Ethereum JSON-RPC / cryo (``transaction_hash``, ``from_address``,
``log_index``...). Addresses are lower-case ``0x`` hex; amounts are Python ints.
``order`` is a total order inside a block: ``position * 1_000_000 + index`` where
index is the trace index (trace-decoded) or log index (log-decoded), so objects from
either source sort the way they executed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

ETH_ADDRESS = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"  # native ether, as Curve/Bancor name it
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
WETH_ADDRESS = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"  # mainnet wrapped ether
ORDER_STRIDE = 1_000_000


@dataclass(slots=True)
class Trace:
    trace_address: tuple[int, ...]
    type: str  # call | create | suicide | reward
    call_type: str  # call | delegatecall | staticcall | callcode | "" for non-calls
    from_address: str
    to_address: str
    input: str
    output: str
    value: int
    error: str | None
    subtraces: int


@dataclass(slots=True)
class Log:
    address: str
    topics: tuple[str, ...]
    data: str
    log_index: int


@dataclass(slots=True)
class Transaction:
    hash: str
    position: int
    from_address: str
    to_address: str | None
    input: str
    value: int = 0
    nonce: int | None = None
    gas_used: int | None = None
    effective_gas_price: int | None = None
    max_priority_fee_per_gas: int | None = None
    success: bool = True
    traces: list[Trace] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)

    def priority_fee(self, base_fee: int | None) -> int | None:
        """Tip per gas actually paid (effective price minus base fee)."""
        if self.effective_gas_price is None:
            return self.max_priority_fee_per_gas
        if base_fee is None:
            return self.effective_gas_price
        return self.effective_gas_price - base_fee


@dataclass(slots=True)
class Block:
    number: int
    hash: str | None
    parent_hash: str | None
    timestamp: int
    miner: str | None
    base_fee_per_gas: int | None
    transactions: list[Transaction]
    chain_id: int = 1
    has_traces: bool = False
    has_logs: bool = False


@dataclass(slots=True)
class Transfer:
    token: str
    from_address: str
    to_address: str
    amount: int
    transaction_hash: str
    transaction_position: int
    order: int
    trace_index: int = -1  # index in the tx's trace list (trace-decoded) else -1
    made_by: str = ""  # msg.sender of the transfer call (trace-decoded)


@dataclass(slots=True)
class Swap:
    protocol: str
    pool: str
    transaction_hash: str
    transaction_position: int
    order: int
    sender: str  # msg.sender of the pool call (router, bot or user)
    recipient: str
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int
    tx_from: str
    tx_to: str | None
    trace_address: tuple[int, ...] | None = None
    log_index: int | None = None
    payer: str | None = None  # account the input tokens came from, when seen
    reserves_after: tuple[int, int] | None = None  # (reserve of token_in, of token_out) after the swap
    sqrt_price_x96: int | None = None  # V3/V4 price after the swap (log-decoded)
    liquidity: int | None = None  # V3/V4 in-range liquidity (log-decoded)
    # the account the swap was made for when it is not the tx sender: a token contract that
    # sells its collected fees inside its own transfer (the call that performs the swap is its own)
    actor: str = ""

    def as_evidence(self) -> dict:
        ev = {
            "protocol": self.protocol,
            "pool": self.pool,
            "transaction_hash": self.transaction_hash,
            "transaction_position": self.transaction_position,
            "trace_address": list(self.trace_address) if self.trace_address is not None else None,
            "log_index": self.log_index,
            "sender": self.sender,
            "recipient": self.recipient,
            "token_in": self.token_in,
            "token_out": self.token_out,
            "amount_in": f"{self.amount_in}",
            "amount_out": f"{self.amount_out}",
        }
        if self.actor:
            ev["actor"] = self.actor
        return ev


@dataclass(slots=True)
class LiquidityChange:
    protocol: str
    kind: str  # add | remove | collect
    pool: str
    owner: str
    sender: str
    transaction_hash: str
    transaction_position: int
    order: int
    tx_from: str
    tick_lower: int | None = None
    tick_upper: int | None = None
    liquidity: int | None = None
    amount0: int | None = None
    amount1: int | None = None
    trace_address: tuple[int, ...] | None = None
    log_index: int | None = None


@dataclass(slots=True)
class DecodeStats:
    """What the decoders saw that did not become a decoded object, for the replay summary."""

    transactions: int = 0
    reverted_calls: int = 0
    swaps_by_protocol: Counter = field(default_factory=Counter)
    undecoded_by_selector: Counter = field(default_factory=Counter)  # swap-like calls not decoded
    malformed_by_selector: Counter = field(default_factory=Counter)  # known selector, bad fields

    def swap_calls(self) -> tuple[int, int]:
        """(decoded swaps, swap-like calls no decoder explained): the coverage counts."""
        return sum(self.swaps_by_protocol.values()), sum(self.undecoded_by_selector.values())

    def coverage(self) -> float | None:
        """Share of swap-like calls the decoders explained (decoded / (decoded + undecoded));
        None when there was no swap-like call at all."""
        decoded, undecoded = self.swap_calls()
        total = decoded + undecoded
        return decoded / total if total else None

    def merge(self, other: DecodeStats) -> None:
        self.transactions += other.transactions
        self.reverted_calls += other.reverted_calls
        self.swaps_by_protocol.update(other.swaps_by_protocol)
        self.undecoded_by_selector.update(other.undecoded_by_selector)
        self.malformed_by_selector.update(other.malformed_by_selector)


@dataclass(slots=True)
class DecodedBlock:
    block: Block
    swaps: list[Swap]
    transfers: list[Transfer]
    liquidity: list[LiquidityChange]
    miner_payments: dict[str, int]  # tx hash -> wei sent straight to the block's miner
    stats: DecodeStats
    source: str = "traces"  # traces | logs


# --- the mempool and the chain's reorganisations (streams/ carries them as envelopes) ------------------
@dataclass(slots=True)
class PendingTx:
    chain_id: int
    hash: str
    from_address: str
    to_address: str | None
    nonce: int
    input: str
    value: int
    gas: int
    gas_price: int | None
    max_fee_per_gas: int | None
    max_priority_fee_per_gas: int | None
    type: int
    first_seen_ns: int
    source_node: str
    replaces: str | None = None  # hash of an earlier pending tx with the same (sender, nonce)


@dataclass(slots=True)
class RevertEvent:
    """A block that left the canonical chain (reorg): everything derived from it is void."""

    chain_id: int
    block_number: int
    block_hash: str
    replaced_by: str | None  # hash of the new canonical block at that height, when known
    depth: int



@dataclass(slots=True)
class Fate:
    hash: str
    fate: str  # included | replaced | dropped
    block_number: int | None
    latency_ns: int | None  # first seen -> block timestamp, for included
    by: str | None = None  # the hash that took its nonce


Message = PendingTx | Block | RevertEvent  # what a source emits and the engine consumes
