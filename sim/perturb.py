"""Perturbations of a lab recording, for robustness checks of detectors and models.

``perturb_tips``: the attackers' pending legs get tips just around their victims' instead of the
lab bots' constants (front-run / JIT add = the highest victim tip + 0.05-0.95 gwei, back-run /
JIT remove = the lowest victim tip - 0.05-0.95 gwei, drawn per leg from ``seed``). Still valid
attacks: the front-run outbids every victim, the back-run underbids them. Only the pending
transactions change (what mempool rules and mempool graphs read); the recorded blocks stay as
mined. The max fee keeps its headroom over the tip.
"""

from __future__ import annotations

import dataclasses
import random

from mevwatch.monitor.types import PendingTx

GWEI = 10**9
FRONT_ROLES = ("frontrun", "liquidity_add")
BACK_ROLES = ("backrun", "liquidity_remove")


def _tip(p: PendingTx) -> int:
    return p.max_priority_fee_per_gas if p.max_priority_fee_per_gas is not None else (p.gas_price or 0)


def _with_tip(p: PendingTx, tip: int) -> PendingTx:
    if p.max_priority_fee_per_gas is None:  # a legacy transaction: the gas price is its bid
        base = (p.gas_price or 0) - _tip(p)
        return dataclasses.replace(p, gas_price=base + tip)
    fee = p.max_fee_per_gas if p.max_fee_per_gas is not None else p.max_priority_fee_per_gas
    return dataclasses.replace(p, max_priority_fee_per_gas=tip, max_fee_per_gas=fee - p.max_priority_fee_per_gas + tip)


def perturb_tips(messages: list, labels: list[dict], seed: int = 0, lo: float = 0.05, hi: float = 0.95) -> tuple[list, int]:
    """The recording with every labelled sandwich's and JIT fill's pending legs re-tipped (see the
    module doc); returns the new messages and how many pending transactions changed."""
    rng = random.Random(seed)
    pending = {m.hash: m for m in messages if isinstance(m, PendingTx)}
    new_tip: dict[str, int] = {}
    for lab in labels:
        if lab["kind"] not in ("sandwich", "jit"):
            continue
        victims = [_tip(pending[t["hash"]]) for t in lab["txs"] if t["role"] == "victim" and t["hash"] in pending]
        if not victims:
            continue
        for t in lab["txs"]:
            if t["hash"] not in pending:
                continue
            delta = int(rng.uniform(lo, hi) * GWEI)
            if t["role"] in FRONT_ROLES:
                new_tip[t["hash"]] = max(victims) + delta
            elif t["role"] in BACK_ROLES:
                new_tip[t["hash"]] = max(1, min(victims) - delta)
    out = [(_with_tip(m, new_tip[m.hash]) if isinstance(m, PendingTx) and m.hash in new_tip else m) for m in messages]
    return out, len(new_tip)


def perturb_gas(messages: list, labels: list[dict], seed: int = 0, lo: int = 150_000, hi: int = 500_000) -> tuple[list, int]:
    """The recording with every labelled sandwich's and JIT fill's pending attacker legs given a gas
    limit drawn from ``lo``-``hi`` (lab v2's honest traders' range) instead of their bot's; only the
    pending transactions change. Returns the new messages and how many changed."""
    rng = random.Random(seed)
    legs = {t["hash"] for lab in labels if lab["kind"] in ("sandwich", "jit") for t in lab["txs"] if t["role"] in FRONT_ROLES + BACK_ROLES}
    out, n = [], 0
    for m in messages:
        if isinstance(m, PendingTx) and m.hash in legs:
            m = dataclasses.replace(m, gas=rng.randint(lo, hi))
            n += 1
        out.append(m)
    return out, n
