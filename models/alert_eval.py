"""(Superseded by ``mevwatch eval``, models/lab_eval.py, for lab v2; kept for the classic lab's
variant table of docs/model-eval/alert-path.md.) Pending sandwich attempts through the alert path (the engine, as replays and the daemon run
it), scored with ``sim/score.py``'s criteria: the rules alone, the model alone and both, on the
same recording in the same run.

- ``rules (mempool)``: the decoding mempool rule only (``opaque_calls`` unregistered);
- ``rules``: every registered mempool rule (the upgraded baseline);
- ``model``: the attempts the model raised itself (``detector = gnn``) or confirmed (``both``),
  from a run with the scorer on;
- ``shipped``: every attempt of that run (rules and model fused, as the daemon raises them).

Per lab variant: landed attacks, found (legs paired, sim/score), victims named; per detector:
alerts, false positives (matching no attack), alerts naming another kind's attack (JIT fills)
kept apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DETECTORS = ("rules (mempool)", "rules", "model", "shipped")
VARIANTS = ("classic", "split_accounts", "multi_victim", "two_pool")


def read_lab(folder: Path) -> tuple[list, list[dict]]:
    from mevwatch.streams import envelope

    folder = Path(folder)
    msgs = [envelope.decode(line, source=str(folder)) for line in (folder / "recording.jsonl").read_bytes().splitlines() if line.strip()]
    labels = [json.loads(x) for x in (folder / "labels.jsonl").read_text().splitlines() if x.strip()]
    return msgs, labels


def pending_attempts(messages: list, *, scorer: Any = None, registry: Any = None, chain_id: int = 31337) -> list[dict]:
    """Every pending ``sandwich_attempt`` the engine raises over ``messages`` (first version of each)."""
    from mevwatch.models.lab_eval import run_alerts, stage

    return stage(run_alerts(messages, scorer=scorer, registry=registry, chain_id=chain_id), "pending")


@dataclass
class Row:
    detector: str
    per_variant: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # variant -> landed, found, victims named
    alerts: int = 0
    false_positives: int = 0
    other_kind: int = 0

    def to_json(self) -> dict:
        return {"detector": self.detector, "alerts": self.alerts, "false_positives": self.false_positives,
                "other_kind": self.other_kind, "per_variant": {k: list(v) for k, v in self.per_variant.items()}}


def score_attempts(detector: str, alerts: list[dict], labels: list[dict]) -> Row:
    from mevwatch.sim.score import score

    row = Row(detector)
    whole = score(alerts, labels, kinds=("sandwich_attempt",))
    row.alerts, row.false_positives, row.other_kind = whole.alerts, whole.false_positives, whole.other_kind
    for v in VARIANTS:
        sub = [lab for lab in labels if lab["kind"] == "sandwich" and lab["variant"] == v]
        sc = score(alerts, sub, kinds=("sandwich_attempt",))
        row.per_variant[v] = (sc.attacks, sc.found, sc.victims_named)
    return row


def compare(messages: list, labels: list[dict], scorer_factory: Callable[[], Any] | None) -> list[Row]:
    """The four detectors of the module doc on one recording (``scorer_factory`` None: rules only)."""
    from mevwatch.monitor.detect.registry import REGISTRY

    legacy = REGISTRY.copy()
    legacy.unregister("opaque_calls")
    rows = [score_attempts("rules (mempool)", pending_attempts(messages, registry=legacy), labels),
            score_attempts("rules", pending_attempts(messages), labels)]
    if scorer_factory is not None:
        both = pending_attempts(messages, scorer=scorer_factory())
        rows.append(score_attempts("model", [a for a in both if a.get("detector") in ("gnn", "both")], labels))
        rows.append(score_attempts("shipped", both, labels))
    return rows


def add(rows: list[Row], more: list[Row]) -> list[Row]:
    """Sum the rows of several recordings (same detectors, same order)."""
    if not rows:
        return more
    for r, m in zip(rows, more):
        r.alerts += m.alerts
        r.false_positives += m.false_positives
        r.other_kind += m.other_kind
        for v, (a, f, n) in m.per_variant.items():
            a0, f0, n0 = r.per_variant.get(v, (0, 0, 0))
            r.per_variant[v] = (a0 + a, f0 + f, n0 + n)
    return rows


def markdown(rows: list[Row]) -> str:
    head = "| detector | " + " | ".join(f"{v} found / landed (victims named)" for v in VARIANTS) + " | alerts | false positives | JIT fills as attempts |"
    lines = [head, "|" + "---|" * (len(VARIANTS) + 4)]
    for r in rows:
        cells = [f"{f}/{a} ({n})" for a, f, n in (r.per_variant.get(v, (0, 0, 0)) for v in VARIANTS)]
        lines.append(f"| {r.detector} | " + " | ".join(cells) + f" | {r.alerts} | {r.false_positives} | {r.other_kind} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m mevwatch.models.alert_eval [--model] [--json OUT] DIR...``: the table of the module
    doc over lab exports, as recorded and with the bots' tips perturbed (sim/perturb.py, seeded by
    each export's seed), summed over the exports."""
    import argparse

    from mevwatch.sim.perturb import perturb_tips

    ap = argparse.ArgumentParser(prog="python -m mevwatch.models.alert_eval")
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--model", action="store_true", help="also the shipped model (the gnn extra)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)

    def factory() -> Any:
        from mevwatch.models.scorer import Scorer

        return Scorer(device="cpu", chain_id=31337)

    recorded: list[Row] = []
    perturbed: list[Row] = []
    for d in args.dirs:
        messages, labels = read_lab(d)
        seed = json.loads((d / "manifest.json").read_text())["seed"]
        recorded = add(recorded, compare(messages, labels, factory if args.model else None))
        changed, _n = perturb_tips(messages, labels, seed=seed)
        perturbed = add(perturbed, compare(changed, labels, factory if args.model else None))
    print("as recorded\n\n" + markdown(recorded) + "\n\ntips perturbed\n\n" + markdown(perturbed))
    if args.json is not None:
        args.json.write_text(json.dumps({"data": [str(d) for d in args.dirs], "recorded": [r.to_json() for r in recorded],
                                         "perturbed": [r.to_json() for r in perturbed]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
