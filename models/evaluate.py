"""Evaluation: the model and the exact rules side by side on held-out data.

- Per role (transaction level): precision, recall, F1, a confusion matrix, precision-recall
  curves from the role probabilities.
- Per attack type (lab ground truth, landed attacks): an attack is found by the model at a stage
  (block or pending window) when each of its attacker legs gets its role as the most likely
  class in that stage's graph; found by the rules when an alert of its kind names those legs
  (``sim/score.py``). Attack-level precision of the model: the share of transactions it marks
  as attacker legs that belong to a labelled attack.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mevwatch.models.dataset import ROLE_OF, ROLES, Sample

ATTACKER = (1, 2, 4)  # frontrun, backrun, arbitrage


@dataclass
class Report:
    confusion: np.ndarray
    per_role: dict[str, tuple[float, float, float, int]]
    per_variant: list[tuple[str, str, int, int, int]]  # variant, stage, landed, model found, rules found
    attacker_precision: dict[str, float]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def predict(model, samples: list[Sample], device: str = "cpu") -> list[np.ndarray]:
    import torch

    from mevwatch.models.model import to_data

    out = []
    with torch.no_grad():
        for s in samples:
            out.append(torch.softmax(model(*to_data(s.graph, device)), dim=1).cpu().numpy())
    return out


def _pr_curve(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    t = truth[order].astype(np.float64)
    tp = np.cumsum(t)
    precision = tp / np.arange(1, len(t) + 1)
    recall = tp / max(1.0, t.sum())
    return recall, precision


def evaluate(samples: list[Sample], probs: list[np.ndarray], lab_dirs: list[Path], rules_alerts: dict[str, list[dict]]) -> Report:
    y = np.concatenate([s.y for s in samples]) if samples else np.zeros(0, dtype=np.int64)
    p = np.concatenate(probs) if probs else np.zeros((0, len(ROLES)))
    pred = p.argmax(1) if len(p) else np.zeros(0, dtype=np.int64)
    cm = np.zeros((len(ROLES), len(ROLES)), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    per_role = {}
    for i, r in enumerate(ROLES):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 1.0
        rec = tp / cm[i, :].sum() if cm[i, :].sum() else 1.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_role[r] = (float(prec), float(rec), float(f1), int(cm[i, :].sum()))
    curves = {r: _pr_curve(p[:, i], y == i) for i, r in enumerate(ROLES) if i and (y == i).any()}

    # attack level, per stage
    predicted: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)  # (dataset, stage) -> tx -> predicted role
    for s, pr in zip(samples, probs):
        ds, stage = s.source.split(":")[0], s.source.split(":")[1]
        for h, c in zip(s.graph.tx_hashes, pr.argmax(1)):
            predicted[(ds, stage)][h] = int(c)
    import json

    from mevwatch.sim.score import score

    rows: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    attack_txs: dict[str, set[str]] = defaultdict(set)
    for d in lab_dirs:
        labels = [json.loads(x) for x in (Path(d) / "labels.jsonl").read_text().splitlines() if x.strip()]
        alerts = rules_alerts.get(Path(d).name, [])
        for lab in labels:
            for t in lab["txs"]:
                attack_txs[Path(d).name].add(t["hash"])
            if lab.get("outcome") != "landed":
                continue
            legs = [(t["hash"], ROLE_OF[t["role"]]) for t in lab["txs"] if ROLE_OF.get(t["role"]) in ATTACKER]
            for stage, kinds in (("block", _block_kinds(lab["kind"])), ("pending", _pending_kinds(lab["kind"]))):
                if stage == "pending" and not kinds:
                    continue
                got = predicted.get((Path(d).name, stage), {})
                row = rows[(lab["variant"], stage)]
                row[0] += 1
                row[1] += all(got.get(h) == r for h, r in legs)
                row[2] += score(alerts, [lab], kinds=kinds).found
    per_variant = [(v, st, n, m, r) for (v, st), (n, m, r) in sorted(rows.items())]
    # attacker-leg precision of the model per stage (lab data only)
    leg_prec: dict[str, float] = {}
    for stage in ("block", "pending"):
        marked = hit = 0
        for (ds, st), got in predicted.items():
            if st != stage or ds not in attack_txs:
                continue
            for h, c in got.items():
                if c in ATTACKER:
                    marked += 1
                    hit += h in attack_txs[ds]
        leg_prec[stage] = hit / marked if marked else 1.0
    return Report(cm, per_role, per_variant, leg_prec, curves)


def _block_kinds(kind: str) -> tuple[str, ...]:
    """The included-stage alert kinds that report a ground-truth attack of the lab's ``kind``."""
    from mevwatch.monitor.kinds import BLOCK_KINDS
    from mevwatch.sim.score import ALERT_KINDS

    return tuple(k for k in ALERT_KINDS.get(kind, ()) if k in BLOCK_KINDS)


def _pending_kinds(kind: str) -> tuple[str, ...]:
    from mevwatch.monitor.kinds import PENDING_KINDS
    from mevwatch.sim.score import ALERT_KINDS

    return tuple(k for k in ALERT_KINDS.get(kind, ()) if k in PENDING_KINDS)


def write_report(rep: Report, out: Path, title: str = "mevwatch model evaluation") -> Path:
    """report.md plus pr_curves.png and confusion.png in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for role_name, (rec, prec) in rep.curves.items():
        ax.plot(rec, prec, label=role_name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("precision-recall per role (held-out)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(np.log1p(rep.confusion), cmap="Blues")
    ax.set_xticks(range(len(ROLES)), ROLES, rotation=45)
    ax.set_yticks(range(len(ROLES)), ROLES)
    for i in range(len(ROLES)):
        for j in range(len(ROLES)):
            ax.text(j, i, str(rep.confusion[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=110)
    plt.close(fig)
    buf = io.StringIO()
    buf.write(f"# {title}\n\n")
    for k, v in rep.meta.items():
        buf.write(f"- {k}: {v}\n")
    buf.write("\n## Roles (transaction level)\n\n| role | precision | recall | F1 | transactions |\n|---|---|---|---|---|\n")
    for role, (pr, rc, f1, count) in rep.per_role.items():
        buf.write(f"| {role} | {pr:.3f} | {rc:.3f} | {f1:.3f} | {count} |\n")
    buf.write("\n## Attacks (lab ground truth, landed)\n\n| variant | stage | landed | model found | model recall | rules found | rules recall |\n"
              "|---|---|---|---|---|---|---|\n")
    for variant, stage, landed, m, r in rep.per_variant:
        buf.write(f"| {variant} | {stage} | {landed} | {m} | {m / landed if landed else 1:.3f} | {r} | {r / landed if landed else 1:.3f} |\n")
    buf.write("\nModel precision on attacker legs (share of transactions it marks frontrun, backrun or arbitrage "
              "that belong to a labelled attack): "
              + ", ".join(f"{st} {p:.3f}" for st, p in rep.attacker_precision.items()) + "\n")
    buf.write("\n![precision-recall](pr_curves.png)\n\n![confusion](confusion.png)\n")
    (out / "report.md").write_text(buf.getvalue())
    return out / "report.md"


def evaluate_model(model: Path | None, data: list[Path], device: str = "cpu") -> Report:
    """Evaluate a model file (default: the shipped one) on held-out data, the exact rules beside it.

    ``data``: lab exports (with labels.jsonl, whose recordings the rules replay) and/or recorded
    blocks. ``device``: a torch device. Raises MevwatchError for an unreadable model or data.
    """
    import orjson

    from mevwatch.models import artifact
    from mevwatch.models.dataset import load
    from mevwatch.monitor.replay import replay_files

    m, meta = artifact.load(model or artifact.DEFAULT, device)
    samples = load(data)
    labs = [Path(d) for d in data if (Path(d) / "labels.jsonl").exists()]
    rules: dict[str, list[dict]] = {}
    for d in labs:
        buf = io.BytesIO()
        replay_files([d / "recording.jsonl"], out=buf, chain_id=31337)
        rules[d.name] = [orjson.loads(x) for x in buf.getvalue().splitlines()]
    rep = evaluate(samples, predict(m, samples, device), labs, rules)
    rep.meta = {"model": str(model or artifact.DEFAULT), "model hash": meta["model_hash"], "data": ", ".join(map(str, data)),
                "graphs": len(samples), "device": device}
    return rep
