"""The graph model: ``train`` and ``eval`` (torch is imported only when one of them runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mevwatch.monitor.cli.main import USAGE, OptionError, err, gnn_device, handled
from mevwatch.monitor.cli.output import esc


@handled(USAGE)
def train(
    data: Annotated[list[Path], typer.Option("--data", help="Lab exports (mevwatch sim export) and/or folders of recorded mainnet blocks (weak labels from the rules).")],
    out: Annotated[Path, typer.Option("--out", help="Model file to write (a .ckpt beside it while training).")] = Path("model.pt"),
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data: the same model.")] = 0,
    hidden: Annotated[int, typer.Option("--hidden", min=4)] = 48,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    weak_repeat: Annotated[int, typer.Option("--weak-repeat", min=1, help="Times each recorded (weakly labelled) block is seen per epoch.")] = 20,
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads for training, pinned so that a re-run (same data, seed, threads, torch version) writes the same model bytes on any machine.")] = 1,
    arch: Annotated[str, typer.Option("--arch", help="gnn (the graph model) or mlp (the per-transaction baseline: no edges).")] = "gnn",
    decoders: Annotated[str, typer.Option("--decoders", help="full, or transfers: lab block graphs from token transfers only (a model for `decoders: transfers`).")] = "full",
) -> None:
    """Train the graph model on labelled transaction graphs; resumes from the checkpoint if one is there."""
    from mevwatch.models.dataset import load
    from mevwatch.models.train import describe_source
    from mevwatch.models.train import train as run_train
    from mevwatch.monitor.cli.output import progress

    dev = gnn_device(device)
    if arch not in ("gnn", "mlp"):
        raise OptionError(f"--arch must be gnn or mlp, not {arch!r}")
    if decoders not in ("full", "transfers"):
        raise OptionError(f"--decoders must be full or transfers, not {decoders!r}")
    samples = load(data, weak_repeat=weak_repeat, decoders=decoders)
    err.print(f"{len(samples)} graphs from {len(data)} sources; training on {dev}")
    with progress("train", "epochs {task.fields[loss]}", epochs, show=err.is_terminal, loss="") as update:
        _model, meta = run_train(samples, out, epochs=epochs, seed=seed, hidden=hidden, device=dev, threads=threads, arch=arch,
                                 data=[describe_source(d) for d in data],
                                 on_epoch=lambda e, loss: update(completed=e + 1, loss=f"loss {loss:.4f}"))
    err.print(f"wrote {esc(out)} (model hash {meta['model_hash']}); evaluate it with: mevwatch eval --model {esc(out)} --data ...")


@handled(USAGE)
def evaluate_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="Held-out lab exports (mevwatch sim export; --roles: recorded blocks too).")] = [],  # noqa: B006
    train_dirs: Annotated[list[Path], typer.Option("--train", help="Lab exports to train the graph model and the per-transaction baseline on, once per seed; their families must not be in --data.")] = [],  # noqa: B006
    model: Annotated[Optional[Path], typer.Option("--model", help="Without --train: the graph model to evaluate (default: the shipped one; one model, no seed spread).")] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Training seeds, comma-separated (at least 3 for a spread).")] = "0,1,2",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs per model.")] = 12,
    ablate: Annotated[bool, typer.Option("--ablate", help="Also train the graph model without the tip and gas-limit features.")] = False,
    conditions: Annotated[str, typer.Option("--conditions", help="recorded, tips (the bots' tips perturbed), gas (their gas limits perturbed); comma-separated.")] = "recorded,tips,gas",
    same_families: Annotated[bool, typer.Option("--same-families", help="Allow families in both --train and --data (in-family figures, reported as such).")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write every figure here, machine-readably.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md (and, with --roles, the role plots).")] = Path("eval"),
    decoders: Annotated[str, typer.Option("--decoders", help="full, or transfers: train and run the models on token-transfer graphs (decoders: transfers), beside the full and token-flow rules.")] = "full",
    blocks: Annotated[Optional[Path], typer.Option("--blocks", help="Recorded mainnet blocks (a folder of mev-inspect files): split by block into --folds, a model trained per fold without its blocks (plus --train), scored on them.")] = None,
    folds: Annotated[int, typer.Option("--folds", help="With --blocks: contiguous folds of blocks.")] = 4,
    roles: Annotated[bool, typer.Option("--roles", help="The per-role report instead (precision/recall per role and attack type, no alert path).")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda (--roles; the alert path scores on the CPU).")] = "auto",
) -> None:
    """Score what ships on held-out lab families: the rules, a per-transaction classifier, the token-flow
    rules and the graph model through the same alert path and threshold, over training seeds."""
    if decoders not in ("full", "transfers"):
        raise OptionError(f"--decoders must be full or transfers, not {decoders!r}")
    if blocks is not None:
        if data or model is not None or roles:
            raise OptionError("--blocks evaluates models trained here on real blocks: not with --data, --model or --roles")
        _block_eval(blocks, train_dirs, seeds, folds, epochs, decoders, json_out, out)
        return
    if not data:
        raise OptionError("give held-out data with --data (or real blocks with --blocks)")
    if roles:
        from mevwatch.models.evaluate import evaluate_model, write_report
        from mevwatch.monitor.cli.output import print_eval

        rep = evaluate_model(model, data, gnn_device(device))
        path = write_report(rep, out)
        print_eval(rep)
        err.print(f"report: {esc(path)}")
        return
    _alert_path_eval(data, train_dirs, model, seeds, epochs, ablate, conditions, same_families, json_out, out, decoders)


def _seed_list(seeds: str) -> list[int]:
    try:
        out = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise OptionError(f"--seeds must be integers separated by commas, not {esc(repr(seeds))}") from None
    if not out or len(set(out)) != len(out):
        raise OptionError(f"--seeds needs at least one seed and no seed twice, not {esc(repr(seeds))}")
    return out


def _block_eval(folder: Path, train_dirs: list[Path], seeds: str, folds: int, epochs: int, decoders: str,
                json_out: Path | None, out: Path) -> None:
    import json
    import tempfile

    from mevwatch.models import block_eval

    from mevwatch.models.lab_eval import read

    paths = sorted(folder.glob("*.json.gz")) if folder.is_dir() else []
    if not paths:
        raise OptionError(f"--blocks {folder}: no recorded blocks (*.json.gz) there")
    for d in train_dirs:  # a clear error before any training starts
        read(d)
    seed_list = _seed_list(seeds)
    show = err.is_terminal
    with tempfile.TemporaryDirectory(prefix="mevwatch-eval-") as work:
        rep = block_eval.evaluate_blocks(paths, train_dirs, seed_list, folds, Path(work), epochs=epochs, decoders=decoders,
                                         on_step=lambda m: err.print(esc(m)) if show else None)
    table = block_eval.markdown(rep)
    head = (f"# mevwatch eval --blocks\n\n{len(paths)} recorded blocks in {folds} folds by block number; a model per fold "
            f"and seed trained without its blocks (lab exports: {len(train_dirs)}; {epochs} epochs); decoders: {decoders}; "
            "threshold 0.9\n\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(head + table + "\n")
    if json_out is not None:
        json_out.write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n")
    typer.echo(head + table)
    err.print(f"report: {esc(out / 'report.md')}" + (f", figures: {esc(json_out)}" if json_out else ""))


def _alert_path_eval(data: list[Path], train_dirs: list[Path], model: Path | None, seeds: str, epochs: int, ablate: bool,
                     conditions: str, same_families: bool, json_out: Path | None, out: Path, decoders: str) -> None:
    import json
    import tempfile

    from mevwatch.models import lab_eval
    from mevwatch.models.artifact import DEFAULT

    seed_list = _seed_list(seeds)
    conds = tuple(c.strip() for c in conditions.split(",") if c.strip())
    bad = [c for c in conds if c not in ("recorded", "tips", "gas")]
    if bad or not conds:
        raise OptionError(f"--conditions: unknown {', '.join(map(repr, bad)) or 'none given'} (recorded, tips, gas)")
    if model is not None and train_dirs:
        raise OptionError("--model and --train exclude each other: evaluate a given model, or train them here")
    labs = [lab_eval.read(d) for d in data]
    trains = [lab_eval.read(d) for d in train_dirs]
    shared = lab_eval.check_held_out(trains, labs, same_families=same_families) if trains else []
    held_out = sorted({f for lab in labs for f in lab.families} - set(shared))
    show = err.is_terminal
    with tempfile.TemporaryDirectory(prefix="mevwatch-eval-") as work:
        if trains:
            models = lab_eval.train_models(trains, seed_list, Path(work), epochs=epochs, ablate=ablate,
                                           on_step=lambda m: err.print(esc(m)) if show else None, decoders=decoders)
        else:
            models = {"gnn": [model or DEFAULT]}
        results = lab_eval.evaluate(labs, models, conditions=conds, on_step=lambda m: err.print(esc(m)) if show else None,
                                    decoders=decoders)
    meta = {"data": [{"folder": lab.folder.name, "seed": lab.manifest.get("seed"), "families": lab.families,
                      "ranges": lab.manifest.get("ranges"), "blocks": lab.manifest.get("blocks")} for lab in labs],
            "train": [{"folder": lab.folder.name, "seed": lab.manifest.get("seed"), "families": lab.families,
                       "ranges": lab.manifest.get("ranges")} for lab in trains],
            "training_seeds": seed_list if trains else [], "epochs": epochs if trains else None,
            "model": None if trains else str(model or DEFAULT), "held_out_families": held_out, "shared_families": shared,
            "threshold": 0.9, "decoders": decoders}
    report = lab_eval.markdown(results, held_out)
    out.mkdir(parents=True, exist_ok=True)
    head = (f"# mevwatch eval\n\nHeld-out families: {', '.join(held_out) or 'none'}; models run with decoders: {decoders}"
            + (f"; shared with training: {', '.join(shared)}" if shared else "")
            + (f"\nTraining seeds: {', '.join(map(str, seed_list))} ({epochs} epochs); cells: mean (min-max) over seeds; "
               "shipped: each seed's model with the default settings (gnn.model_alerts: pending)"
               if trains else f"\nOne model ({model or DEFAULT}) with the default settings: no seed spread") + "\n\n")
    (out / "report.md").write_text(head + report + "\n")
    if json_out is not None:
        json_out.write_text(json.dumps(lab_eval.to_json(results, meta), indent=1, sort_keys=True) + "\n")
    typer.echo(head + report)
    err.print(f"report: {esc(out / 'report.md')}" + (f", figures: {esc(json_out)}" if json_out else ""))
