"""Model artifacts: weights plus metadata, and their content hash.

A file (``torch.save``) holds ``{"state_dict", "meta"}``; ``meta`` records the feature schema
version, the architecture, the roles, the training data and settings, and the metrics at the end
of training. The content hash is ``0x`` + sha256 over the metadata's canonical JSON (RFC 8785,
without the hash itself) and every tensor of the state dict in name order (name, dtype, shape,
raw bytes): 32 bytes, the ``model_hash`` of every alert the model scores and the ``modelHash``
of their attestation batches. The shipped default model is ``models/default/model.pt``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mevwatch.models.graph import SCHEMA_VERSION
from mevwatch.monitor.errors import ConfigError

DEFAULT = Path(__file__).resolve().parent / "default" / "model.pt"


def content_hash(state_dict: dict, meta: dict[str, Any]) -> str:
    from mevwatch.monitor.attest.canonical import canonical_json

    h = hashlib.sha256()
    h.update(canonical_json({k: v for k, v in meta.items() if k != "model_hash"}))
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return "0x" + h.hexdigest()


def save(model, meta: dict[str, Any], path: Path) -> str:
    import torch

    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = dict(meta, schema_version=SCHEMA_VERSION, hidden=model.hidden, layers=model.layers)
    if getattr(model, "arch", "gnn") != "gnn":  # the shipped GNN's metadata (and hash) stay as they were
        meta["arch"] = model.arch
    meta["model_hash"] = content_hash(sd, meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": sd, "meta": meta}, tmp)
    tmp.replace(path)
    # the metadata beside it, readable without torch (mevwatch verify checks hashes against it)
    import json

    path.with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta["model_hash"]


def load(path: Path, device: str = "cpu"):
    """(model in eval mode, meta); refuses another schema and a file whose content hash does not match."""
    import torch

    from mevwatch.models.model import ARCHS

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no model at {path}; train one with mevwatch train")
    blob = torch.load(path, map_location=device, weights_only=True)
    meta, sd = blob["meta"], blob["state_dict"]
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"model {path} uses feature schema {meta.get('schema_version')}, this mevwatch builds {SCHEMA_VERSION}")
    if content_hash(sd, meta) != meta.get("model_hash"):
        raise ConfigError(f"model {path}: content does not match its hash (corrupted or edited)")
    arch = meta.get("arch", "gnn")
    if arch not in ARCHS:
        raise ConfigError(f"model {path}: unknown architecture {arch!r} (this mevwatch knows {', '.join(ARCHS)})")
    model = ARCHS[arch](hidden=meta["hidden"], layers=meta["layers"])
    model.load_state_dict(sd)
    model.to(device).eval()
    return model, meta


def shipped_hashes() -> list[str]:
    """Hashes of the models shipped with this installation (their metadata files; no torch needed)."""
    import json

    meta = DEFAULT.with_suffix(".json")
    if not meta.exists():
        return []
    return [json.loads(meta.read_text())["model_hash"]]
