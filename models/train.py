"""Training: role classification of every transaction node, cross-entropy weighted against the
rarity of attack roles, Adam, a fixed seed; a checkpoint after every epoch (resumable)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mevwatch.models.dataset import ROLES, Sample


def class_weights(samples: list[Sample]) -> np.ndarray:
    counts = np.bincount(np.concatenate([s.y for s in samples]), minlength=len(ROLES)).astype(np.float64)
    w = counts.sum() / np.maximum(counts, 1) / len(ROLES)
    return np.sqrt(w).astype(np.float32)  # sqrt: rare roles matter without drowning the benign class


def train(samples: list[Sample], out: Path, *, epochs: int = 30, seed: int = 0, hidden: int = 48, layers: int = 2,
          lr: float = 3e-3, device: str = "cpu", data: list[str] | None = None,
          on_epoch: Callable[[int, float], None] | None = None, threads: int = 1, arch: str = "gnn",
          ablate: list[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """``arch``: ``gnn`` (the product's model) or ``mlp`` (the per-transaction baseline, no edges);
    ``ablate``: ``tx`` feature columns zeroed in training and, through the metadata, at inference.
    ``threads``: CPU threads torch may use, pinned (default 1) because a float sum split over
    another number of threads rounds differently: with the same data, seed, threads and torch
    version a re-run writes the same model bytes, whatever machine it runs on."""
    import torch

    from mevwatch.models import artifact
    from mevwatch.models.model import ARCHS, seed_all, to_data
    from mevwatch.models.model import ablate as zero_columns

    torch.set_num_threads(threads)
    seed_all(seed)
    model = ARCHS[arch](hidden, layers).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(class_weights(samples)).to(device))
    prepared = [((zero_columns(x, ablate or []), ei), torch.from_numpy(s.y).to(device))
                for s in samples if len(s.y) for x, ei in [to_data(s.graph, device)]]
    ckpt = Path(out).with_suffix(".ckpt")
    start = 0
    if ckpt.exists():  # resume
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"] + 1
        random.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
    order = list(range(len(prepared)))
    rng = random.Random(seed)
    losses: list[float] = []
    for epoch in range(start, epochs):
        rng.seed(seed * 1000 + epoch)
        rng.shuffle(order)
        model.train()
        total = 0.0
        for i in order:
            (x, ei), y = prepared[i]
            opt.zero_grad()
            loss = loss_fn(model(x, ei), y)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total / max(1, len(prepared)))
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch, "rng": random.getstate(),
                    "torch_rng": torch.get_rng_state()}, ckpt)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    model.eval()
    meta = {"roles": list(ROLES), "epochs": epochs, "seed": seed, "lr": lr, "data": data or [],
            "samples": len(prepared), "train_loss": [round(x, 6) for x in losses[-5:]], "threads": threads,
            "torch": torch.__version__.split("+")[0]}
    if ablate:
        meta["ablate"] = list(ablate)
    meta["model_hash"] = artifact.save(model, meta, out)
    ckpt.unlink(missing_ok=True)
    return model, meta


def describe_source(d: Path) -> str:
    """A training data source as the model's metadata records it (not a temporary path)."""
    import json

    d = Path(d)
    m = d / "manifest.json"
    if m.exists():
        man = json.loads(m.read_text())
        return f"lab seed {man['seed']}, {man['blocks']} blocks, {man['landed']} landed attacks"
    files = sorted(d.glob("*.json.gz")) if d.is_dir() else [d]
    return f"recorded blocks {d.name} ({len(files)} files, weak labels from the rules)"
