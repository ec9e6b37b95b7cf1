"""``mevwatch eval --blocks DIR``: the graph model on real recorded blocks it never trained on.

The blocks (mev-inspect files) are split by block into ``folds`` contiguous groups (block number
order). For each fold and each training seed a model is trained on the lab exports given (``--train``)
plus the *other* folds' blocks, each block once (weak labels from the exact rules; no 20x repetition),
and then runs through the engine on the fold's blocks, as ``mevwatch replay`` runs it:

- ``confirmed``: the rules' included sandwiches, arbitrages and back-runs whose model score reaches
  the shipped threshold (``detector = both``); the target is 90%;
- ``model-only``: the alerts the model raises on its own in those blocks (``gnn.model_alerts: all``),
  each listed for audit (block, kind, transactions, score): on blocks with no ground truth, every
  one of them is a claim the rules do not make;
- with ``decoders = transfers``: the models are trained on token-transfer graphs and run with the
  token-flow decoder; ``found`` then counts the full rules' attacks that the token-flow rules, and
  the token-flow rules with the model, name by the same attacker transactions.

No evaluated block is ever in its model's training data (a test checks the split).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

ATTACK_KINDS = ("sandwich", "arbitrage", "backrun")


def folds(paths: list[Path], k: int, number_of: Callable[[Path], int] | None = None) -> list[list[Path]]:
    """``paths`` in block-number order (``number_of``: the block number a file holds; default the
    digits of its name), cut into ``k`` contiguous, non-empty folds; a block in two files is refused
    (it would be in training and evaluation at once)."""
    from mevwatch.monitor.errors import InputError

    num = number_of or (lambda p: int("".join(c for c in p.name.split(".")[0] if c.isdigit()) or 0))
    numbers = {p: num(p) for p in paths}
    dup = sorted(n for n in set(numbers.values()) if list(numbers.values()).count(n) > 1)
    if dup:
        raise InputError(f"block {dup[0]} is in more than one file: each block once, or it leaks into training")
    paths = sorted(paths, key=numbers.__getitem__)
    if k < 2 or k > len(paths):
        raise InputError(f"--folds must be between 2 and the number of blocks ({len(paths)}), not {k}")
    size, extra = divmod(len(paths), k)
    out, i = [], 0
    for j in range(k):
        n = size + (1 if j < extra else 0)
        out.append(paths[i:i + n])
        i += n
    return out


def _legs(a: dict) -> frozenset[str]:
    return frozenset(t["hash"] for t in a["txs"] if t["role"] != "victim")


def _included(alerts: list[dict]) -> list[dict]:
    return [a for a in alerts if a["stage"] == "included" and a["kind"] in ATTACK_KINDS]


def fold_figures(blocks: list, rules: list[dict], scored: list[dict], threshold: float,
                 full_rules: list[dict] | None = None) -> dict[str, Any]:
    """One fold, one seed: the figures of the module doc. ``rules``: the rules' alerts under the
    setting the model ran with; ``full_rules`` (transfers mode): the full decoders' alerts, the
    reference of what there is to find."""
    attacks = _included(rules)
    by_id = {a["alert_id"]: a for a in scored}
    confirmed = [a for a in attacks if (by_id.get(a["alert_id"]) or {}).get("detector") == "both"]
    model_only = [a for a in _included(scored) if a.get("detector") == "gnn"]
    out: dict[str, Any] = {
        "blocks": [b.number for b in blocks],
        "rule_attacks": {k: sum(1 for a in attacks if a["kind"] == k) for k in ATTACK_KINDS},
        "confirmed": {k: sum(1 for a in confirmed if a["kind"] == k) for k in ATTACK_KINDS},
        "model_only": [{"block": a["block_number"], "kind": a["kind"], "txs": sorted(_legs(a)), "score": a["score"]} for a in model_only],
        "threshold": threshold,
    }
    if full_rules is not None:
        want = {_legs(a) for a in _included(full_rules)}
        out["transfers"] = {"full_rule_attacks": len(want), "token_flow_rules": len(want & {_legs(a) for a in attacks}),
                            "token_flow_rules_and_model": len(want & {_legs(a) for a in _included(scored)})}
    return out


def evaluate_blocks(paths: list[Path], train: list[Path], seeds: list[int], k: int, work: Path, *, epochs: int,
                    decoders: str = "full", threshold: float = 0.9,
                    on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    from mevwatch.models.dataset import lab_samples, mainnet_samples
    from mevwatch.models.lab_eval import run_alerts
    from mevwatch.models.scorer import Scorer
    from mevwatch.models.train import train as run_train
    from mevwatch.streams.files import read_mev_inspect

    groups = folds(paths, k, lambda p: read_mev_inspect(p, 1).number)
    lab = [s for d in train for s in lab_samples(d, decoders=decoders)]
    per_block = {p: mainnet_samples([p], decoders) for p in paths}
    results: list[dict[str, Any]] = []
    for fi, held in enumerate(groups):
        blocks = [read_mev_inspect(p, 1) for p in held]
        full = run_alerts(blocks, chain_id=1)
        rules = full if decoders == "full" else run_alerts(blocks, chain_id=1, decoders=decoders)
        training = lab + [s for p in paths if p not in held for s in per_block[p]]
        trained_on = sorted({s.source for s in training if s.source.startswith("mainnet:")})
        if {f"mainnet:{b.number}" for b in blocks} & set(trained_on):  # folds() refuses duplicates; kept as a guard
            raise RuntimeError("an evaluated block is in its model's training data")
        for seed in seeds:
            if on_step:
                on_step(f"fold {fi + 1}/{len(groups)}, seed {seed}: training on {len(training)} graphs")
            path = work / f"fold{fi}-seed{seed}.pt"
            run_train(training, path, epochs=epochs, seed=seed, data=[str(d) for d in train] + trained_on)
            scorer = Scorer(path, device="cpu", chain_id=1, threshold=threshold, model_alerts="all")
            scored = run_alerts(blocks, chain_id=1, scorer=scorer, decoders=decoders)
            fig = fold_figures(blocks, rules, scored, threshold, full if decoders == "transfers" else None)
            results.append({"fold": fi, "seed": seed, "trained_on_blocks": trained_on, **fig})
    return {"folds": k, "seeds": seeds, "decoders": decoders, "train": [str(d) for d in train], "epochs": epochs, "runs": results}


def markdown(rep: dict[str, Any]) -> str:
    """Per seed, summed over folds: confirmed / rule attacks per kind, model-only alerts."""
    lines = ["| seed | " + " | ".join(f"{k} confirmed" for k in ATTACK_KINDS) + " | confirmed share | model-only alerts |"
             + (" full-rule attacks found by token-flow rules | ... with the model |" if rep["decoders"] == "transfers" else ""),
             "|" + "---|" * (len(ATTACK_KINDS) + 3 + (2 if rep["decoders"] == "transfers" else 0))]
    shares = []
    for seed in rep["seeds"]:
        runs = [r for r in rep["runs"] if r["seed"] == seed]
        att = {k: sum(r["rule_attacks"][k] for r in runs) for k in ATTACK_KINDS}
        conf = {k: sum(r["confirmed"][k] for r in runs) for k in ATTACK_KINDS}
        share = sum(conf.values()) / max(1, sum(att.values()))
        shares.append(share)
        row = f"| {seed} | " + " | ".join(f"{conf[k]}/{att[k]}" for k in ATTACK_KINDS) + f" | {share:.2f} | {sum(len(r['model_only']) for r in runs)} |"
        if rep["decoders"] == "transfers":
            t = [r["transfers"] for r in runs]
            full = sum(x["full_rule_attacks"] for x in t)
            row += f" {sum(x['token_flow_rules'] for x in t)}/{full} | {sum(x['token_flow_rules_and_model'] for x in t)}/{full} |"
        lines.append(row)
    if len(shares) > 1:
        lines.append(f"\nconfirmed share over seeds: mean {statistics.mean(shares):.2f}, range {min(shares):.2f}-{max(shares):.2f}")
    return "\n".join(lines)
