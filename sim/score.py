"""Precision and recall of alerts against the lab's ground truth.

Only attacks that landed (``outcome == "landed"``: all legs and the victim succeeded, in
order, in one block) are expected to be found; failed ones are counted apart. An attack counts as found when an alert of a matching kind names its front-run and
back-run transactions in those roles (``sandwich`` when included, ``sandwich_attempt``
while pending; a JIT fill by ``jit_sandwich``). An alert that names the attacker legs of a real
attack of another kind is not a false positive either: in the mempool a JIT fill looks like any
sandwich attempt (liquidity in before the victim, out after it), and an attempt naming its add and
remove as front- and back-run reports it. A sandwich alert that matches no attack is a false positive.

Two figures are kept apart rather than folded into the false positives: ``other_kind``, the alerts
that match no attack of the scored kinds but name the legs of a real attack of another kind (a JIT
fill reported as a sandwich attempt), and ``victims_named``, the found attacks whose victims are all named
as victims by the alerts that match it."""

from __future__ import annotations

from dataclasses import dataclass

from mevwatch.monitor.kinds import ATTACKER_ROLES, Kind, TxRole


@dataclass
class Score:
    attacks: int
    found: int
    alerts: int
    false_positives: int
    missed: list[str]
    failed_attacks: int = 0
    other_kind: int = 0  # alerts matching only a real attack of another kind (not counted as false positives)
    victims_named: int = 0  # found attacks whose matching alerts name every victim

    @property
    def recall(self) -> float:
        return self.found / self.attacks if self.attacks else 1.0

    @property
    def precision(self) -> float:
        true = self.alerts - self.false_positives
        return true / self.alerts if self.alerts else 1.0


# which alert kinds can report an attack of each ground-truth kind (the lab's kinds: sim/actors.py)
ALERT_KINDS = {"sandwich": (Kind.SANDWICH, Kind.SANDWICH_ATTEMPT), "arbitrage": (Kind.ARBITRAGE, Kind.BACKRUN),
               "frontrun_displacement": (Kind.FRONTRUN_DISPLACEMENT,), "jit": (Kind.JIT_SANDWICH,)}


def _legs(alert: dict) -> set[tuple[str, str]]:
    """(hash, role) of an alert's attacker transactions; an arbitrage reported as a back-run
    names its transaction ``backrun``, which counts as the ``arbitrage`` role."""
    out = set()
    for t in alert["txs"]:
        if t["role"] in ATTACKER_ROLES:
            out.add((t["hash"], t["role"]))
            if alert["kind"] == Kind.BACKRUN and t["role"] == TxRole.BACKRUN:
                out.add((t["hash"], "arbitrage"))
            # in the mempool a JIT fill looks like any sandwich attempt (liquidity in before the victim,
            # out after it): an attempt naming its two legs reports that JIT sandwich
            if alert["kind"] == Kind.SANDWICH_ATTEMPT and t["role"] in (TxRole.FRONTRUN, TxRole.BACKRUN):
                out.add((t["hash"], TxRole.LIQUIDITY_ADD if t["role"] == TxRole.FRONTRUN else TxRole.LIQUIDITY_REMOVE))
    return out


def _want(label: dict) -> set[tuple[str, str]]:
    return {(t["hash"], t["role"]) for t in label["txs"] if t["role"] in ATTACKER_ROLES}


def _victims(label_or_alert: dict) -> set[str]:
    return {t["hash"] for t in label_or_alert["txs"] if t["role"] in (TxRole.VICTIM, TxRole.DISPLACED)}


def score(alerts: list[dict], labels: list[dict], kinds: tuple[str, ...] = (Kind.SANDWICH, Kind.SANDWICH_ATTEMPT)) -> Score:
    """Score the alerts of ``kinds`` against the labels those kinds can report."""
    every_label = labels
    relevant = [a for a in alerts if a["kind"] in kinds]
    labels = [lab for lab in labels if set(ALERT_KINDS.get(lab["kind"], ())) & set(kinds)]
    failed = [lab for lab in labels if lab.get("outcome") == "failed"]
    labels = [lab for lab in labels if lab.get("outcome") != "failed"]
    found, missed, named = 0, [], 0
    matched_alerts: set[int] = set()
    for lab in labels:
        want = _want(lab)
        hits = [i for i, a in enumerate(relevant) if want <= _legs(a)]
        if hits:
            found += 1
            named += _victims(lab) <= set().union(*(_victims(relevant[i]) for i in hits))
            matched_alerts.update(hits)
        else:
            missed.append(lab["attack_id"])
    # an alert on a failed attack is not a false positive: the attack was real
    for lab in failed:
        want = _want(lab)
        matched_alerts.update(i for i, a in enumerate(relevant) if want <= _legs(a))
    other: set[int] = set()
    for lab in every_label:  # a real attack of another kind, named leg by leg
        want = _want(lab)
        if want:
            other.update(i for i, a in enumerate(relevant) if want <= _legs(a) and i not in matched_alerts)
    matched_alerts |= other
    fps = sum(1 for i, a in enumerate(relevant) if i not in matched_alerts)
    return Score(len(labels), found, len(relevant), fps, missed, len(failed), len(other), named)
