"""Token-flow decoding: swaps inferred from ERC-20 transfers alone, as for a protocol no decoder
knows (``decoders: transfers``, ``mevwatch replay --decoders transfers``; docs/detection.md).

The block is decoded as usual, then every protocol decoder's result is set aside: only the
transfers stay, and swaps are inferred from them, one transaction at a time. An account is read
as a pool when, inside one transaction, it receives exactly one token and sends exactly one other
token, is neither the transaction's sender nor the contract it calls (those are the trader, its
router or its bot), and neither side is a mint or burn (the zero address: liquidity, not a trade).
The inferred swap trades the received amount for the sent amount; its ``sender`` is the account
that paid the pool (a router or bot, as ``msg.sender`` of a decoded swap), its ``recipient`` the
account the pool paid, its order the pool's first transfer. Multi-hop routes give one swap per
hop, so the sandwich and arbitrage rules run on them unchanged. What this cannot see: swaps whose
in- and out-transfers are split across transactions, pools that pay in the native coin, and
pools that hold several tokens where one trade moves more than two (those are left out, not
guessed). An account that pays or takes its own token (a Compound cToken minting or redeeming)
is not a pool. What it cannot tell apart: a market maker's account (an RFQ or limit-order fill)
trades like a pool and is read as one. The mempool rules learn pool reserves from decoded
Uniswap V2 swaps only, so in this mode they raise no exposure alerts. Figures against the full decoders: docs/detection.md, "Transfers only".
"""

from __future__ import annotations

from mevwatch.monitor.decode.block import BlockDecoder
from mevwatch.monitor.decode.context import PoolRegistry
from mevwatch.monitor.types import WETH_ADDRESS, ZERO_ADDRESS, Block, DecodedBlock, DecodeStats, Swap, Transaction, Transfer

PROTOCOL = "transfers"
DECODER_MODES = ("full", "transfers")


def infer_swaps(tx: Transaction, transfers: list[Transfer]) -> list[Swap]:
    """The swaps the transfers of one transaction imply (see the module's description)."""
    sender, called = tx.from_address, tx.to_address
    inflow: dict[str, dict[str, list[Transfer]]] = {}  # account -> token -> transfers received
    outflow: dict[str, dict[str, list[Transfer]]] = {}
    for t in transfers:
        if t.amount <= 0 or t.from_address == t.to_address:
            continue
        inflow.setdefault(t.to_address, {}).setdefault(t.token, []).append(t)
        outflow.setdefault(t.from_address, {}).setdefault(t.token, []).append(t)
    swaps = []
    for pool, received in inflow.items():
        sent = outflow.get(pool)
        if not sent or pool in (sender, called, ZERO_ADDRESS) or len(received) != 1 or len(sent) != 1:
            continue
        (token_in, ins), = received.items()
        (token_out, outs), = sent.items()
        if token_in == token_out:
            continue  # a forwarder (router, splitter), not a trade
        if pool in (token_in, token_out):
            continue  # it pays or takes its own token: shares minted or redeemed (a Compound cToken), not a trade
        if any(t.from_address == ZERO_ADDRESS for t in ins) or any(t.to_address == ZERO_ADDRESS for t in outs):
            continue  # minted to or burnt by it: liquidity
        first = min(ins + outs, key=lambda t: t.order)
        swaps.append(Swap(protocol=PROTOCOL, pool=pool, transaction_hash=tx.hash, transaction_position=tx.position,
                          order=first.order, sender=ins[0].from_address, recipient=outs[-1].to_address,
                          token_in=token_in, token_out=token_out, amount_in=sum(t.amount for t in ins),
                          amount_out=sum(t.amount for t in outs), tx_from=sender, tx_to=called,
                          payer=ins[0].from_address))
    swaps.sort(key=lambda s: s.order)
    return swaps


class TransfersOnlyDecoder:
    """A :class:`BlockDecoder` that keeps only the transfers and infers the swaps from them."""

    def __init__(self, pools: PoolRegistry | None = None, native_wrapper: str = WETH_ADDRESS):
        self.inner = BlockDecoder(pools, native_wrapper)
        self.pools = self.inner.pools

    def decode(self, block: Block) -> DecodedBlock:
        full = self.inner.decode(block)
        by_tx: dict[str, list[Transfer]] = {}
        for t in full.transfers:
            by_tx.setdefault(t.transaction_hash, []).append(t)
        swaps: list[Swap] = []
        stats = DecodeStats(transactions=full.stats.transactions, reverted_calls=full.stats.reverted_calls)
        for tx in block.transactions:
            found = infer_swaps(tx, by_tx.get(tx.hash, []))
            swaps.extend(found)
            if found:
                stats.swaps_by_protocol[PROTOCOL] += len(found)
        return DecodedBlock(block, swaps, full.transfers, [], full.miner_payments, stats, full.source, full.lending_txs,
                            full.native_wrapper)


AnyDecoder = BlockDecoder | TransfersOnlyDecoder


def make_decoder(mode: str = "full", pools: PoolRegistry | None = None, native_wrapper: str = WETH_ADDRESS) -> AnyDecoder:
    """The block decoder of a ``decoders`` mode: ``full`` (every protocol decoder) or ``transfers``;
    ``native_wrapper``: the chain's wrapped native token (monitor/chains.py)."""
    if mode == "full":
        return BlockDecoder(pools, native_wrapper)
    if mode == "transfers":
        return TransfersOnlyDecoder(pools, native_wrapper)
    raise ValueError(f"decoders must be one of {', '.join(DECODER_MODES)}, got {mode!r}")
