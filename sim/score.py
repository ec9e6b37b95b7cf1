"""Precision and recall of alerts against the lab's ground truth.

Only attacks that landed (``outcome == "landed"``: all legs and the victim succeeded, in
order, in one block) are expected to be found; failed ones are counted apart. An attack counts as found when an alert of a matching kind names its front-run and
back-run transactions in those roles (``sandwich`` when included, ``sandwich_attempt``
while pending). A sandwich alert that matches no attack is a false positive."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Score:
    attacks: int
    found: int
    alerts: int
    false_positives: int
    missed: list[str]
    failed_attacks: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.attacks if self.attacks else 1.0

    @property
    def precision(self) -> float:
        true = self.alerts - self.false_positives
        return true / self.alerts if self.alerts else 1.0


def _legs(alert: dict) -> set[tuple[str, str]]:
    return {(t["hash"], t["role"]) for t in alert["txs"] if t["role"] in ("frontrun", "backrun")}


def score(alerts: list[dict], labels: list[dict], kinds: tuple[str, ...] = ("sandwich", "sandwich_attempt")) -> Score:
    relevant = [a for a in alerts if a["kind"] in kinds]
    failed = [lab for lab in labels if lab.get("outcome") == "failed"]
    labels = [lab for lab in labels if lab.get("outcome") != "failed"]
    found, missed = 0, []
    matched_alerts: set[int] = set()
    for lab in labels:
        want = {(t["hash"], t["role"]) for t in lab["txs"] if t["role"] in ("frontrun", "backrun")}
        hits = [i for i, a in enumerate(relevant) if want <= _legs(a)]
        if hits:
            found += 1
            matched_alerts.update(hits)
        else:
            missed.append(lab["attack_id"])
    # an alert on a failed attack is not a false positive: the attack was real
    for lab in failed:
        want = {(t["hash"], t["role"]) for t in lab["txs"] if t["role"] in ("frontrun", "backrun")}
        matched_alerts.update(i for i, a in enumerate(relevant) if want <= _legs(a))
    fps = sum(1 for i, a in enumerate(relevant) if i not in matched_alerts)
    return Score(len(labels), found, len(relevant), fps, missed, len(failed))
