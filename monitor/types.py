"""Normalised chain data and decoded objects shared by every stage.

Field names follow Ethereum JSON-RPC / cryo (``transaction_hash``, ``from_address``,
``log_index``...). Addresses are lower-case ``0x`` hex; amounts are Python ints.
``order`` is a total order inside a block: ``position * 1_000_000 + index`` where
index is the trace index (trace-decoded) or log index (log-decoded), so objects from
either source sort the way they executed.

The classes the hot path makes by the thousand per block (traces, transactions, transfers, swaps)
spell out ``__init__``: under mypyc, a dataclass's generated ``__init__`` stays an interpreted Python
function (~0.75 us a call, about 1 ms of a block's parse), an explicit one is compiled (~0.05 us).
The dataclass still provides ``__eq__``/``__repr__``; ``dataclasses.replace`` works as before.
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

    def __init__(
        self,
        trace_address: tuple[int, ...],
        type: str,
        call_type: str,
        from_address: str,
        to_address: str,
        input: str,
        output: str,
        value: int,
        error: str | None,
        subtraces: int,
    ) -> None:
        self.trace_address = trace_address
        self.type = type
        self.call_type = call_type
        self.from_address = from_address
        self.to_address = to_address
        self.input = input
        self.output = output
        self.value = value
        self.error = error
        self.subtraces = subtraces

    def __reduce__(self) -> tuple:  # pickling (worker processes) by the compiled constructor
        return (
            Trace,
            (
                self.trace_address,
                self.type,
                self.call_type,
                self.from_address,
                self.to_address,
                self.input,
                self.output,
                self.value,
                self.error,
                self.subtraces,
            ),
        )


@dataclass(slots=True)
class Log:
    address: str
    topics: tuple[str, ...]
    data: str
    log_index: int

    def __init__(self, address: str, topics: tuple[str, ...], data: str, log_index: int) -> None:
        self.address = address
        self.topics = topics
        self.data = data
        self.log_index = log_index

    def __reduce__(self) -> tuple:  # pickling (worker processes) by the compiled constructor
        return (Log, (self.address, self.topics, self.data, self.log_index))


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

    def __init__(
        self,
        hash: str,
        position: int,
        from_address: str,
        to_address: str | None,
        input: str,
        value: int = 0,
        nonce: int | None = None,
        gas_used: int | None = None,
        effective_gas_price: int | None = None,
        max_priority_fee_per_gas: int | None = None,
        success: bool = True,
        traces: list[Trace] | None = None,
        logs: list[Log] | None = None,
    ) -> None:
        self.hash = hash
        self.position = position
        self.from_address = from_address
        self.to_address = to_address
        self.input = input
        self.value = value
        self.nonce = nonce
        self.gas_used = gas_used
        self.effective_gas_price = effective_gas_price
        self.max_priority_fee_per_gas = max_priority_fee_per_gas
        self.success = success
        self.traces = [] if traces is None else traces
        self.logs = [] if logs is None else logs

    def __reduce__(self) -> tuple:  # pickling (worker processes) by the compiled constructor
        return (
            Transaction,
            (
                self.hash,
                self.position,
                self.from_address,
                self.to_address,
                self.input,
                self.value,
                self.nonce,
                self.gas_used,
                self.effective_gas_price,
                self.max_priority_fee_per_gas,
                self.success,
                self.traces,
                self.logs,
            ),
        )

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

    def __init__(
        self,
        number: int,
        hash: str | None,
        parent_hash: str | None,
        timestamp: int,
        miner: str | None,
        base_fee_per_gas: int | None,
        transactions: list[Transaction],
        chain_id: int = 1,
        has_traces: bool = False,
        has_logs: bool = False,
    ) -> None:
        self.number = number
        self.hash = hash
        self.parent_hash = parent_hash
        self.timestamp = timestamp
        self.miner = miner
        self.base_fee_per_gas = base_fee_per_gas
        self.transactions = transactions
        self.chain_id = chain_id
        self.has_traces = has_traces
        self.has_logs = has_logs

    def __reduce__(self) -> tuple:  # pickling (worker processes) by the compiled constructor
        return (
            Block,
            (
                self.number,
                self.hash,
                self.parent_hash,
                self.timestamp,
                self.miner,
                self.base_fee_per_gas,
                self.transactions,
                self.chain_id,
                self.has_traces,
                self.has_logs,
            ),
        )


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

    def __init__(
        self,
        token: str,
        from_address: str,
        to_address: str,
        amount: int,
        transaction_hash: str,
        transaction_position: int,
        order: int,
        trace_index: int = -1,
        made_by: str = "",
    ) -> None:
        self.token = token
        self.from_address = from_address
        self.to_address = to_address
        self.amount = amount
        self.transaction_hash = transaction_hash
        self.transaction_position = transaction_position
        self.order = order
        self.trace_index = trace_index
        self.made_by = made_by

    def __reduce__(self) -> tuple:  # pickling (worker processes) by the compiled constructor
        return (
            Transfer,
            (
                self.token,
                self.from_address,
                self.to_address,
                self.amount,
                self.transaction_hash,
                self.transaction_position,
                self.order,
                self.trace_index,
                self.made_by,
            ),
        )


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

    def __init__(
        self,
        protocol: str,
        pool: str,
        transaction_hash: str,
        transaction_position: int,
        order: int,
        sender: str,
        recipient: str,
        token_in: str,
        token_out: str,
        amount_in: int,
        amount_out: int,
        tx_from: str,
        tx_to: str | None,
        trace_address: tuple[int, ...] | None = None,
        log_index: int | None = None,
        payer: str | None = None,
        reserves_after: tuple[int, int] | None = None,
        sqrt_price_x96: int | None = None,
        liquidity: int | None = None,
        actor: str = "",
    ) -> None:
        self.protocol = protocol
        self.pool = pool
        self.transaction_hash = transaction_hash
        self.transaction_position = transaction_position
        self.order = order
        self.sender = sender
        self.recipient = recipient
        self.token_in = token_in
        self.token_out = token_out
        self.amount_in = amount_in
        self.amount_out = amount_out
        self.tx_from = tx_from
        self.tx_to = tx_to
        self.trace_address = trace_address
        self.log_index = log_index
        self.payer = payer
        self.reserves_after = reserves_after
        self.sqrt_price_x96 = sqrt_price_x96
        self.liquidity = liquidity
        self.actor = actor

    def __reduce__(self) -> tuple:  # pickling (worker processes) by the compiled constructor
        return (
            Swap,
            (
                self.protocol,
                self.pool,
                self.transaction_hash,
                self.transaction_position,
                self.order,
                self.sender,
                self.recipient,
                self.token_in,
                self.token_out,
                self.amount_in,
                self.amount_out,
                self.tx_from,
                self.tx_to,
                self.trace_address,
                self.log_index,
                self.payer,
                self.reserves_after,
                self.sqrt_price_x96,
                self.liquidity,
                self.actor,
            ),
        )

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

    def __init__(
        self,
        protocol: str,
        kind: str,
        pool: str,
        owner: str,
        sender: str,
        transaction_hash: str,
        transaction_position: int,
        order: int,
        tx_from: str,
        tick_lower: int | None = None,
        tick_upper: int | None = None,
        liquidity: int | None = None,
        amount0: int | None = None,
        amount1: int | None = None,
        trace_address: tuple[int, ...] | None = None,
        log_index: int | None = None,
    ) -> None:
        self.protocol = protocol
        self.kind = kind
        self.pool = pool
        self.owner = owner
        self.sender = sender
        self.transaction_hash = transaction_hash
        self.transaction_position = transaction_position
        self.order = order
        self.tx_from = tx_from
        self.tick_lower = tick_lower
        self.tick_upper = tick_upper
        self.liquidity = liquidity
        self.amount0 = amount0
        self.amount1 = amount1
        self.trace_address = trace_address
        self.log_index = log_index

    def __reduce__(self) -> tuple:  # pickling (worker processes) by the compiled constructor
        return (
            LiquidityChange,
            (
                self.protocol,
                self.kind,
                self.pool,
                self.owner,
                self.sender,
                self.transaction_hash,
                self.transaction_position,
                self.order,
                self.tx_from,
                self.tick_lower,
                self.tick_upper,
                self.liquidity,
                self.amount0,
                self.amount1,
                self.trace_address,
                self.log_index,
            ),
        )


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
    lending_txs: list[str] = field(default_factory=list)  # transactions with a liquidation call or event (decode/lending.py)
    native_wrapper: str = WETH_ADDRESS  # the chain's wrapped native token (monitor/chains.py): ETH-like in prices


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
