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
) -> None:
    """Train the graph model on labelled transaction graphs; resumes from the checkpoint if one is there."""
    from mevwatch.models.dataset import load
    from mevwatch.models.train import describe_source
    from mevwatch.models.train import train as run_train
    from mevwatch.monitor.cli.output import progress

    dev = gnn_device(device)
    samples = load(data, weak_repeat=weak_repeat)
    err.print(f"{len(samples)} graphs from {len(data)} sources; training on {dev}")
    with progress("train", "epochs {task.fields[loss]}", epochs, show=err.is_terminal, loss="") as update:
        _model, meta = run_train(samples, out, epochs=epochs, seed=seed, hidden=hidden, device=dev, threads=threads,
                                 data=[describe_source(d) for d in data],
                                 on_epoch=lambda e, loss: update(completed=e + 1, loss=f"loss {loss:.4f}"))
    err.print(f"wrote {esc(out)} (model hash {meta['model_hash']}); evaluate it with: mevwatch eval --model {esc(out)} --data ...")


@handled(USAGE)
def evaluate_cmd(
    model: Annotated[Optional[Path], typer.Option("--model", help="Model file (default: the shipped one).")] = None,
    data: Annotated[list[Path], typer.Option("--data", help="Held-out lab exports and/or recorded blocks.")] = [],  # noqa: B006
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, pr_curves.png, confusion.png.")] = Path("eval"),
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Precision, recall and F1 per role and per attack type, the model and the exact rules side by side."""
    from mevwatch.models.evaluate import evaluate_model, write_report
    from mevwatch.monitor.cli.output import print_eval

    dev = gnn_device(device)
    if not data:
        raise OptionError("give held-out data with --data")
    rep = evaluate_model(model, data, dev)
    path = write_report(rep, out)
    print_eval(rep)
    err.print(f"report: {esc(path)}")
