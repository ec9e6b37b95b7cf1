"""``mevwatch eval``: what ships, scored on held-out lab families against the baselines it must beat.

Every detector runs through the engine (as ``mevwatch replay`` and the daemon run it) with the
shipped threshold, and is scored with ``sim/score.py``'s criteria: an attack is found when one alert
of the stage's kind names its front-run and back-run in those roles; a false positive is an alert
that matches no attack; an alert naming another kind's attack legs (a JIT fill reported as a
sandwich) is counted apart, never as a find, and precision counts it against the detector:
precision = (alerts - false positives - other kind) / alerts. An alert naming the legs of an attack
that failed on chain (a real attempt) is neither a find nor a false positive. Precision is "-" for
a detector with no alert, recall "-" where nothing landed; such seeds are left out of the means.

Stages and detectors, side by side in one run:

- ``pending`` (``sandwich_attempt`` before inclusion): ``rules (mempool)`` (the decoding rule
  alone), ``rules`` (every registered mempool rule: the upgraded baseline), ``tx-mlp`` (the
  per-transaction classifier, no edges, through the same pairing and threshold as the model),
  ``gnn`` (attempts the graph model raised or confirmed, with ``gnn.model_alerts: all``), ``shipped``
  (every attempt of a run with the model on and the default settings: rules and model fused, as the
  daemon raises them).
- ``included`` (``sandwich`` in a block): ``rules`` (full decoders), ``token-flow rules`` (swaps
  inferred from transfers only, then the rules), ``tx-mlp``, ``gnn``, ``shipped``.

Trained detectors are trained here, once per training seed (``--seeds``), on ``--train`` exports
whose families must not overlap the evaluated ones; figures per seed, reported as mean and range.
Conditions: as recorded, and perturbed (``tips``: the bots' pending tips just around their victims';
``gas``: their pending gas limits drawn from the honest range; sim/perturb.py). ``--ablate`` adds the
graph model trained without the tip and gas-limit features.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mevwatch.monitor.errors import InputError

PENDING = ("rules (mempool)", "rules", "tx-mlp", "gnn", "shipped")
INCLUDED = ("rules", "token-flow rules", "tx-mlp", "gnn", "shipped")
STAGE_KIND = {"pending": ("sandwich_attempt", "pending"), "included": ("sandwich", "included")}
ABLATED = ["log_tip_gwei", "log_gas_used"]
TRAINED = ("tx-mlp", "gnn", "gnn (no tip/gas)")


@dataclass
class Lab:
    folder: Path
    messages: list
    labels: list[dict]
    manifest: dict

    @property
    def families(self) -> list[str]:
        return list(self.manifest.get("families") or ["classic"])

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])


def read(folder: Path) -> Lab:
    """A lab export, checked: its families and seed must be ones the lab writes (they are printed)."""
    from mevwatch.sim.families import FAMILIES

    from mevwatch.streams import envelope

    folder = Path(folder)
    for name in ("recording.jsonl", "labels.jsonl", "manifest.json"):
        if not (folder / name).exists():
            raise InputError(f"{folder}: not a lab export (no {name}; make one with mevwatch sim export)")
    msgs = [envelope.decode(line, source=str(folder)) for line in (folder / "recording.jsonl").read_bytes().splitlines() if line.strip()]
    labels = [json.loads(x) for x in (folder / "labels.jsonl").read_text().splitlines() if x.strip()]
    for lab in labels:
        lab.setdefault("family", "classic")
    try:
        out = Lab(folder, msgs, labels, json.loads((folder / "manifest.json").read_text()))
        if not isinstance(out.manifest["seed"], int):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{folder}: manifest.json has no integer seed") from None
    known = set(FAMILIES) | {"classic"}
    if any(f not in known for f in out.families + [lab["family"] for lab in labels]):
        raise InputError(f"{folder}: names a lab family this mevwatch does not know (known: {', '.join(sorted(known))})")
    return out


def check_held_out(train: list[Lab], data: list[Lab], *, same_families: bool) -> list[str]:
    """Refuses evaluation data that training saw: a seed in both (a seed fixes the accounts, the
    market and the contract addresses, whatever the families), or (unless ``same_families``) any
    family in both. Returns the families shared (for the report)."""
    seen = {lab.seed for lab in train}
    for lab in data:
        if lab.seed in seen:
            raise InputError(f"{lab.folder}: seed {lab.seed} is in the training data too (same accounts and contracts)")
    shared = sorted({f for lab in train for f in lab.families} & {f for lab in data for f in lab.families})
    if shared and not same_families:
        raise InputError(f"families {', '.join(shared)} are in both the training and the evaluation data; evaluate on "
                         "held-out families (mevwatch sim export --family heldout --ranges heldout), or pass "
                         "--same-families to measure in-family figures (reported as such)")
    return shared


def run_alerts(messages: list, *, scorer: Any = None, registry: Any = None, decoders: str = "full", chain_id: int = 31337) -> list[dict]:
    """Every alert the engine raises over ``messages`` (the first version of each)."""
    from mevwatch.monitor.batch import Batch
    from mevwatch.monitor.detect.registry import REGISTRY
    from mevwatch.monitor.engine import Engine, replay_offsets

    eng = Engine(chain_id=chain_id, registry=registry or REGISTRY, scorers=[scorer] if scorer is not None else [], decoders=decoders)
    batch = eng.feed(replay_offsets(messages), Batch())
    eng.settle(batch)
    out: dict[str, dict] = {}
    for ev in batch.alerts:
        if ev.alert.alert_id not in out:
            out[ev.alert.alert_id] = ev.alert.to_json()
    return list(out.values())


def stage(alerts: list[dict], name: str) -> list[dict]:
    kind, st = STAGE_KIND[name]
    return [a for a in alerts if a["kind"] == kind and a["stage"] == st]


def model_part(alerts: list[dict]) -> list[dict]:
    """The alerts a model raised (``gnn``) or confirmed (``both``: score at the threshold)."""
    return [a for a in alerts if a.get("detector") in ("gnn", "both")]


@dataclass
class Cell:
    """One detector on one stage: per family (landed, found per seed, victims named per seed), and
    alerts / false positives / other-kind alerts per seed."""

    families: dict[str, list] = field(default_factory=dict)  # family -> [landed, [found...], [named...]]
    alerts: list[int] = field(default_factory=list)
    false_positives: list[int] = field(default_factory=list)
    other_kind: list[int] = field(default_factory=list)

    def add(self, alerts: list[dict], labels: list[dict], kind: str, seed_i: int) -> None:
        from mevwatch.sim.score import score

        whole = score(alerts, labels, kinds=(kind,))
        for name, v in (("alerts", whole.alerts), ("false_positives", whole.false_positives), ("other_kind", whole.other_kind)):
            lst = getattr(self, name)
            while len(lst) <= seed_i:
                lst.append(0)
            lst[seed_i] += v
        for fam in sorted({lab["family"] for lab in labels if lab["kind"] == "sandwich"}):
            sub = [lab for lab in labels if lab["kind"] == "sandwich" and lab["family"] == fam]
            sc = score(alerts, sub, kinds=(kind,))
            row = self.families.setdefault(fam, [0, [], []])
            if seed_i == 0:
                row[0] += sc.attacks
            for j, v in ((1, sc.found), (2, sc.victims_named)):
                while len(row[j]) <= seed_i:
                    row[j].append(0)
                row[j][seed_i] += v

    def recall(self, fams: list[str] | None = None) -> list[float | None]:
        rows = [r for f, r in self.families.items() if fams is None or f in fams]
        landed = sum(r[0] for r in rows)
        n = max((len(r[1]) for r in rows), default=0)
        return [sum(r[1][i] for r in rows) / landed if landed else None for i in range(n)]

    def precision(self) -> list[float | None]:
        return [(a - fp - o) / a if a else None for a, fp, o in zip(self.alerts, self.false_positives, self.other_kind)]

    def to_json(self) -> dict:
        return {"families": {f: {"landed": r[0], "found": r[1], "victims_named": r[2]} for f, r in self.families.items()},
                "alerts": self.alerts, "false_positives": self.false_positives, "other_kind": self.other_kind,
                "recall": self.recall(), "precision": self.precision()}


def evaluate(data: list[Lab], models: dict[str, list[Path]], *, conditions: tuple[str, ...] = ("recorded", "tips", "gas"),
             on_step: Callable[[str], None] | None = None, decoders: str = "full") -> dict[str, dict[str, dict[str, Cell]]]:
    """results[condition][stage][detector]; ``models``: detector -> one model file per training seed
    (``gnn`` also gives ``shipped``); ``decoders``: the engine setting the models run under
    (``transfers``: block graphs and rules from token transfers only, as for a protocol with no
    decoder; the rules' rows are reported under both settings regardless)."""
    from mevwatch.models.scorer import Scorer
    from mevwatch.monitor.detect.registry import REGISTRY
    from mevwatch.sim.perturb import perturb_gas, perturb_tips

    legacy = REGISTRY.copy()
    legacy.unregister("opaque_calls")
    out: dict[str, dict[str, dict[str, Cell]]] = {}
    for cond in conditions:
        res = out[cond] = {"pending": {}, "included": {}}
        for lab in data:
            msgs = lab.messages
            seed = lab.seed
            if cond == "tips":
                msgs, _n = perturb_tips(msgs, lab.labels, seed=seed)
            elif cond == "gas":
                msgs, _n = perturb_gas(msgs, lab.labels, seed=seed)

            def put(st: str, det: str, alerts: list[dict], i: int = 0) -> None:
                res[st].setdefault(det, Cell()).add(stage(alerts, st), lab.labels, STAGE_KIND[st][0], i)

            if on_step:
                on_step(f"{cond} {lab.folder.name}: rules")
            rules = run_alerts(msgs)
            put("pending", "rules (mempool)", run_alerts(msgs, registry=legacy))
            put("pending", "rules", rules)
            put("included", "rules", rules)
            put("included", "token-flow rules", run_alerts(msgs, decoders="transfers"))
            for det, paths in models.items():
                for i, path in enumerate(paths):
                    if on_step:
                        on_step(f"{cond} {lab.folder.name}: {det} seed {i + 1}/{len(paths)}")
                    # the model's own alerts at every stage (gnn.model_alerts: all) ...
                    scored = run_alerts(msgs, scorer=Scorer(path, device="cpu", chain_id=31337, model_alerts="all"), decoders=decoders)
                    for st in ("pending", "included"):
                        put(st, det, model_part(scored), i)
                    if det == "gnn":  # ... and what ships: the default settings (gnn.model_alerts: pending)
                        shipped = run_alerts(msgs, scorer=Scorer(path, device="cpu", chain_id=31337), decoders=decoders)
                        for st in ("pending", "included"):
                            put(st, "shipped", shipped, i)
    return out


def _spread(values: list[float | None]) -> str:
    xs = [x for x in values if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.2f}"
    return f"{statistics.mean(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def markdown(results: dict[str, dict[str, dict[str, Cell]]], held_out: list[str]) -> str:
    """Tables per condition and stage; recall over the held-out families (over all when none is)."""
    lines: list[str] = []
    scope = "held-out families" if held_out else "all families, none held out"
    for cond, stages in results.items():
        for st, cells in stages.items():
            fams = sorted({f for c in cells.values() for f in c.families})
            lines += [f"### {st} stage, {cond}", "",
                      "| detector | " + " | ".join(f"{f} found/landed" for f in fams)
                      + f" | recall ({scope}) | precision | alerts | false positives | other kind |",
                      "|" + "---|" * (len(fams) + 6)]
            for det, c in cells.items():
                fam_cells = []
                for f in fams:
                    landed, found, _named = c.families.get(f, [0, [0], [0]])
                    fam_cells.append(f"{_spread([float(x) for x in found]).replace('.00', '')}/{landed}")
                lines.append(f"| {det} | " + " | ".join(fam_cells) + f" | {_spread(c.recall(held_out or None))} | {_spread(c.precision())}"
                             f" | {_spread([float(x) for x in c.alerts]).replace('.00', '')} | {_spread([float(x) for x in c.false_positives]).replace('.00', '')}"
                             f" | {_spread([float(x) for x in c.other_kind]).replace('.00', '')} |")
            lines.append("")
    return "\n".join(lines)


def to_json(results: dict[str, dict[str, dict[str, Cell]]], meta: dict) -> dict:
    return {**meta, "results": {cond: {st: {d: c.to_json() for d, c in cells.items()} for st, cells in stages.items()}
                                for cond, stages in results.items()}}


def train_models(train: list[Lab], seeds: list[int], work: Path, *, epochs: int, ablate: bool,
                 on_step: Callable[[str], None] | None = None, decoders: str = "full") -> dict[str, list[Path]]:
    """One GNN and one per-transaction MLP per seed (and the ablated GNN), on ``train``'s exports."""
    from mevwatch.models.dataset import load
    from mevwatch.models.train import train as run_train

    samples = load([lab.folder for lab in train], decoders=decoders)
    plan = [("tx-mlp", "mlp", None), ("gnn", "gnn", None)] + ([("gnn (no tip/gas)", "gnn", ABLATED)] if ablate else [])
    out: dict[str, list[Path]] = {d: [] for d, _a, _x in plan}
    for s in seeds:
        for det, arch, cols in plan:
            if on_step:
                on_step(f"training {det}, seed {s}")
            path = work / f"{arch}{'-ablated' if cols else ''}-seed{s}.pt"
            run_train(samples, path, epochs=epochs, seed=s, arch=arch, ablate=cols,
                      data=[str(lab.folder.name) for lab in train])
            out[det].append(path)
    return out
