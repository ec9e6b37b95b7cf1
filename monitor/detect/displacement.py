"""Front-running by displacement (after Torres et al., USENIX Security 2021).

An attacker copies a pending transaction's call and gets it in first: transaction A
before V in the same block, different senders, A pays a higher priority fee, and
A's calldata contains V's call arguments (at least two words, so that a bare
``approve`` or ``withdraw(amount)`` does not match), with A sent to the same contract
as V or reaching it in its call trace, and V failed: the copied call took its effect
first. The last condition is stricter than Torres et al. (who keep successful V);
on the recorded mainnet blocks, dropping it flags dozens of identical router calls
(users buying the same token with the same arguments) as displacements.

When several senders made the same call ahead of V it is a crowd racing a public
call (a mint, a claim), not a copier, and nothing is reported; so are races between
the authorised reporters of an oracle (Chainlink OCR ``transmit``), which are
expected to collide.

Without traces (receipts and logs only) a copier that calls its own bot contract is found by
its calldata: it embeds V's arguments and names V's contract (the target address the bot
forwards to). V's failure is its receipt's status, with or without traces.

Gas wars are no displacement: when A calls the same function of the same contract itself (no
bot in between) and either at least three senders call that function in the block or A outbid
V by at most 0.1% of its fee (or a wei), the pair is a bidding race for a public call.

Only failed transactions can be displaced, so each block has few candidates V; each
is checked, with one substring search, against the earlier transactions that call
V's contract (directly or inside their trace), found through a per-block index.
"""

from __future__ import annotations

from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.detect.common import BlockView
from mevwatch.monitor.money import gas_cost
from mevwatch.monitor.types import Transaction

MIN_ARG_HEX = 128  # two words
GAS_WAR_BUMP_DIVISOR = 1000  # outbidding by at most 0.1% of the fee (or a wei) is a bidding war
BENIGN_RACES = frozenset({"0xc9807539"})  # Chainlink OCR transmit(bytes,bytes32[],bytes32[],bytes32)


def detect(view: BlockView) -> list[Alert]:
    txs = view.block.transactions
    displaced = [v for v in txs if not v.success and len(v.input) >= 10 + MIN_ARG_HEX
                 and v.to_address is not None and v.input[:10] not in BENIGN_RACES]
    if not displaced:
        return []
    base = view.block.base_fee_per_gas
    targets: set[str] = {v.to_address for v in displaced if v.to_address is not None}
    callers: dict[str, list[int]] = {}  # displaced contract -> indexes of transactions calling it
    traced = view.block.has_traces
    for k, tx in enumerate(txs):
        if tx.traces:
            hit = {t.to_address for t in tx.traces if t.to_address in targets}
        elif tx.to_address is not None and tx.to_address in targets:
            hit = {tx.to_address}
        elif not traced:
            # no trace: a bot contract forwarding the copied call names its target in its calldata
            hit = {c for c in targets if c[2:] in tx.input}
        else:
            continue
        for c in hit:
            callers.setdefault(c, []).append(k)
    racers: dict[tuple[str, str], set[str]] = {}  # (contract, selector) -> senders calling it directly
    for tx in txs:
        if tx.to_address is not None and tx.to_address in targets:
            racers.setdefault((tx.to_address, tx.input[:10]), set()).add(tx.from_address)
    alerts = []
    for v in displaced:
        fv = v.priority_fee(base)
        if fv is None:
            continue
        payload = v.input[10:]
        found = []
        for k in callers.get(v.to_address or "", ()):
            a = txs[k]
            if a.position >= v.position:
                break
            if a.from_address == v.from_address or payload not in a.input:
                continue
            fa = a.priority_fee(base)
            if fa is None or fa <= fv:
                continue
            if _gas_war(a, v, fa, fv, racers):
                continue
            found.append((a, fa))
        if len(found) == 1:
            alerts.append(_alert(view, found[0][0], v, found[0][1], fv))
    return alerts


def _gas_war(a: Transaction, v: Transaction, fa: int, fv: int, racers: dict[tuple[str, str], set[str]]) -> bool:
    """A race, not a copy: A calls the same function of the same contract itself (no bot contract
    in between) and either several senders call it in the block or A outbid V by a hair."""
    if a.to_address != v.to_address or a.input[:10] != v.input[:10]:
        return False
    senders = racers.get((v.to_address or "", v.input[:10]), set())
    return len(senders) >= 3 or fa - fv <= max(1, fv // GAS_WAR_BUMP_DIVISOR)


def _alert(view: BlockView, a, v, fa: int, fv: int) -> Alert:
    return Alert(
        kind="frontrun_displacement", stage="included", chain_id=view.block.chain_id,
        block_number=view.block.number, block_hash=view.block.hash,
        txs=[AlertTx(a.hash, a.position, "displacer"), AlertTx(v.hash, v.position, "displaced")],
        attackers=[a.from_address], victims=[v.from_address], pools=[], tokens=[], profit=None,
        victim_loss=None, gas_cost_wei=gas_cost(view.db, [a.hash]),
        evidence={
            "displacer_priority_fee": f"{fa}", "displaced_priority_fee": f"{fv}",
            "displaced_succeeded": v.success, "contract": v.to_address,
            "copied_selector": v.input[:10],
        },
    )
