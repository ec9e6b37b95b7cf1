"""Liquidations: a liquidator repays part of an under-collateralised borrower's debt on a lending
protocol and receives the borrower's collateral at a discount (mev-inspect-py and brontes report
them as their own kind; so does mevwatch).

Found from the protocol's own call in the call traces, or from its event in the logs:

- Aave V1, V2 and V3: ``liquidationCall(collateral, debt, user, debtToCover, receiveAToken)``
  (selector ``0x00a718a9``) on the lending pool, or its ``LiquidationCall`` event (V1's and
  V2/V3's layouts).
- Compound (and its forks): ``liquidateBorrow(borrower, repayAmount, cTokenCollateral)``
  (``0xf5e3c462``) on the debt's cToken, ``liquidateBorrow(borrower, cTokenCollateral)``
  (``0xaae40a2a``, cETH: the debt is repaid in ether) or the ``LiquidateBorrow`` event.

The outermost frame counts (a proxy's delegatecall to its implementation repeats the call). With
traces, the amounts are what really moved inside that frame: the tokens the liquidator (the
frame's caller) sent (the debt repaid, ether included) and received (the collateral: the
underlying, or the aTokens ``transferOnLiquidation`` moved when it asked for them); Compound's
collateral is the cTokens its ``seize`` call moved, counted in cToken units (since Compound's
``protocolSeizeShare`` upgrade the liquidator keeps 97.2% of them and the protocol the rest: a call
trace does not show that split, the ``Transfer`` log does, and the log path uses it). A token
proxy that forwards a transfer to its implementation (sUSD) is counted once. The call path takes
the selector on any contract, but its amounts are the real token movements; the event path needs
the transaction's transfers to back the event (an event alone is cheap to forge). From the event, the event's amounts. ``profit`` is an amount
(docs/alerts.md, "Amounts"): received minus repaid per token, valued in ETH when every token has a
price in the block (a cToken rarely has one: then ``eth`` is null and the breakdown stands). The
liquidated borrower is the alert's victim account (it has no transaction of its own in the block).
"""

from __future__ import annotations

from collections import defaultdict

from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.decode.hexabi import arg, arg_addr, out, topic_addr
from mevwatch.monitor.decode.lending import (
    SEL_AAVE,
    SEL_COMPOUND,
    SEL_COMPOUND_ETH,
    TOPIC_AAVE_V1,
    TOPIC_AAVE_V2,
    TOPIC_COMPOUND,
)
from mevwatch.monitor.detect.common import BlockView
from mevwatch.monitor.money import gas_cost
from mevwatch.monitor.types import ETH_ADDRESS, Trace, Transaction

SEL_SEIZE = "0xb2a02ff1"  # seize(address liquidator, address borrower, uint256 seizeTokens)
SEL_ATOKEN_ON_LIQUIDATION = "0xf866c319"  # Aave aToken transferOnLiquidation(address from, address to, uint256 value)
SELECTORS = frozenset({SEL_AAVE, SEL_COMPOUND, SEL_COMPOUND_ETH})


class Liquidation:
    """One liquidation inside a transaction."""

    def __init__(self, protocol: str, market: str, liquidator: str, borrower: str, sent: dict[str, int],
                 received: dict[str, int], source: str) -> None:
        self.protocol = protocol  # aave | compound
        self.market = market  # the lending pool (Aave) or the debt's cToken (Compound)
        self.liquidator = liquidator
        self.borrower = borrower
        self.sent = sent  # token -> amount the liquidator paid (the debt repaid)
        self.received = received  # token -> amount it received (the collateral)
        self.source = source  # traces | logs


def _under(t: Trace, frame: tuple[int, ...]) -> bool:
    return t.trace_address[: len(frame)] == frame


def _kept(traces: list[Trace]) -> list[int]:
    """Indexes (in ``traces``) of the calls the decoder keeps, in its order: what a trace-decoded
    ``Transfer.trace_index`` counts (reverted subtrees and traces other than calls and creates are
    skipped, as monitor/decode/block.py does)."""
    out: list[int] = []
    skip: tuple[int, ...] | None = None
    for k, t in enumerate(traces):
        ta = t.trace_address
        if skip is not None:
            if ta[: len(skip)] == skip:
                continue
            skip = None
        if t.error:
            skip = ta
            continue
        if t.type == "call" or t.type == "create":
            out.append(k)
    return out


def _hex(data: str) -> bool:
    """Calldata made of hex digits (a hostile node or a broken recording may send other text)."""
    try:
        bytes.fromhex(data[2:])
    except ValueError:
        return False
    return data.startswith("0x")


def _data_addr(data: str, i: int) -> str:
    """Address word ``i`` of log data."""
    return "0x" + f"{out(data, i):064x}"[-40:]


def from_traces(view: BlockView, tx: Transaction) -> list[Liquidation]:
    found: list[Liquidation] = []
    frames: list[tuple[int, Trace]] = []
    for i, t in enumerate(tx.traces):
        if t.error is not None or t.input[:10] not in SELECTORS or t.type != "call" or not _hex(t.input):
            continue
        if any(_under(t, f.trace_address) for _, f in frames):
            continue  # a proxy's delegatecall repeating the outer call
        frames.append((i, t))
    if not frames:
        return found
    traces = tx.traces
    kept = _kept(traces)
    # each trace-decoded transfer with the address of its call (Transfer.trace_index counts the calls
    # the decoder kept, not every trace)
    located = [(tr, traces[kept[tr.trace_index]].trace_address) for tr in view.transfers_by_tx.get(tx.hash, [])
               if 0 <= tr.trace_index < len(kept)]
    for i, t in frames:
        who = t.from_address
        frame = t.trace_address
        sent: dict[str, int] = defaultdict(int)
        received: dict[str, int] = defaultdict(int)
        seen: dict[tuple[str, str, int], list[tuple[int, ...]]] = {}
        for tr, at in sorted(((tr, at) for tr, at in located if at[: len(frame)] == frame), key=lambda x: len(x[1])):
            key = (tr.from_address, tr.to_address, tr.amount)
            outer = seen.setdefault(key, [])
            if any(at[: len(o)] == o for o in outer):
                continue  # a token proxy forwarding the same transfer to its implementation (sUSD): counted once
            outer.append(at)
            if tr.from_address == who and tr.to_address != who:
                sent[tr.token] += tr.amount
            elif tr.to_address == who and tr.from_address != who:
                received[tr.token] += tr.amount
        if t.value:
            sent[ETH_ADDRESS] += t.value  # ether sent with the call (cETH, Aave V1's ETH reserve)
        for j in range(i + 1, len(traces)):
            sub = traces[j]
            if not _under(sub, frame):
                break
            if sub.error is not None:
                continue
            if sub.value and sub.to_address == who and sub.type == "call" and sub.call_type == "call":
                received[ETH_ADDRESS] += sub.value  # ether collateral paid out (Aave V1)
            sel = sub.input[:10]
            if (sel in (SEL_SEIZE, SEL_ATOKEN_ON_LIQUIDATION) and sub.type == "call" and sub.call_type == "call"
                    and _hex(sub.input)):
                try:  # Compound's cTokens seized; Aave's aTokens when the liquidator asked for them
                    if arg_addr(sub.input, 0 if sel == SEL_SEIZE else 1) == who:
                        received[sub.to_address] += arg(sub.input, 2)
                except ValueError:  # short or non-hex calldata: that call is not read
                    pass
        try:
            aave = t.input[:10] == SEL_AAVE
            protocol, borrower = ("aave", arg_addr(t.input, 2)) if aave else ("compound", arg_addr(t.input, 0))
        except ValueError:
            continue  # calldata too short (or not hex) for the call it names: not a liquidation we can read
        found.append(Liquidation(protocol, t.to_address, who, borrower, dict(sent), dict(received), "traces"))
    return found


def from_logs(view: BlockView, tx: Transaction) -> list[Liquidation]:
    """Liquidations from the protocols' events, each backed by the token transfers of the same
    transaction (an event alone is cheap to emit from any contract): the liquidator received a token
    and, unless it repaid in ether, sent the debt token."""
    found: list[Liquidation] = []
    transfers = view.transfers_by_tx.get(tx.hash, [])
    for log in tx.logs:
        if not log.topics or not isinstance(log.data, str) or any(len(t) != 66 for t in log.topics):
            continue
        t0 = log.topics[0]
        try:
            if t0 == TOPIC_AAVE_V2 and len(log.topics) == 4:
                received_token, debt, user = (topic_addr(x) for x in log.topics[1:4])
                repaid, seized, who = out(log.data, 0), out(log.data, 1), _data_addr(log.data, 2)
            elif t0 == TOPIC_AAVE_V1 and len(log.topics) == 4:
                received_token, debt, user = (topic_addr(x) for x in log.topics[1:4])
                repaid, seized, who = out(log.data, 0), out(log.data, 1), _data_addr(log.data, 3)
            elif t0 == TOPIC_COMPOUND:
                who, user = _data_addr(log.data, 0), _data_addr(log.data, 1)
                repaid, received_token, seized = out(log.data, 2), _data_addr(log.data, 3), out(log.data, 4)
                # the debt's underlying: what the liquidator sent the cToken in this transaction (else ether)
                debt = next((tr.token for tr in view.transfers_by_tx.get(tx.hash, ())
                             if tr.from_address == who and tr.to_address == log.address), ETH_ADDRESS)
            else:
                continue
        except (ValueError, IndexError, TypeError):
            continue  # a malformed event of that name: not a liquidation we can read
        if not any(tr.to_address == who for tr in transfers):
            continue  # nothing reached the liquidator: not backed by the transaction
        if debt != ETH_ADDRESS and not any(tr.from_address == who and tr.token == debt for tr in transfers):
            continue  # the debt was not repaid by the liquidator in this transaction
        protocol = "compound" if t0 == TOPIC_COMPOUND else "aave"
        if protocol == "compound":  # the liquidator's own share of the seized cTokens (after the protocol's cut)
            share = sum(tr.amount for tr in transfers
                        if tr.token == received_token and tr.from_address == user and tr.to_address == who)
            seized = share or seized
        found.append(Liquidation(protocol, log.address, who, user, {debt: repaid}, {received_token: seized}, "logs"))
    return found


def detect(view: BlockView) -> list[Alert]:
    """The transactions the decoder marked (``DecodedBlock.lending_txs``: a liquidation selector in a
    call, or a liquidation event), in block order."""
    alerts: list[Alert] = []
    for h in view.db.lending_txs:
        tx = view.tx_by_hash.get(h)
        if tx is None or not tx.success:
            continue
        found = from_traces(view, tx) if tx.traces else []
        if not found and tx.logs:
            found = from_logs(view, tx)
        if found:
            alerts.append(_alert(view, tx, found))
    return alerts


def _alert(view: BlockView, tx: Transaction, found: list[Liquidation]) -> Alert:
    net: dict[str, int] = defaultdict(int)
    for liq in found:
        for tok, amt in liq.received.items():
            net[tok] += amt
        for tok, amt in liq.sent.items():
            net[tok] -= amt
    received = [t for liq in found for t in liq.received]
    profit = view.prices.amount(dict(net))
    attackers = [a for a in dict.fromkeys([tx.from_address] + [liq.liquidator for liq in found])
                 if not view.is_infrastructure(a)]
    borrowers = list(dict.fromkeys(liq.borrower for liq in found))
    tokens = list(dict.fromkeys([t for liq in found for t in liq.sent] + received))
    return Alert(
        kind="liquidation", stage="included", chain_id=view.block.chain_id, block_number=view.block.number,
        block_hash=view.block.hash, txs=[AlertTx(tx.hash, tx.position, "liquidator")], attackers=attackers,
        victims=borrowers, pools=list(dict.fromkeys(liq.market for liq in found)), tokens=tokens,
        profit=profit, victim_loss=None, gas_cost_wei=gas_cost(view.db, [tx.hash]),
        evidence={
            "liquidations": [{"protocol": liq.protocol, "market": liq.market, "liquidator": liq.liquidator,
                              "borrower": liq.borrower, "repaid": {t: f"{a}" for t, a in sorted(liq.sent.items())},
                              "received": {t: f"{a}" for t, a in sorted(liq.received.items())}, "source": liq.source}
                             for liq in found],
            "valuation": view.prices.valuation(),
            "miner_payments_wei": f"{view.db.miner_payments.get(tx.hash, 0)}",
        },
    )
