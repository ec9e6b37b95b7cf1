"""The import layers: a module imports only from its own layer or the layers below (function-level
imports included). The layers, lowest first:

0. core: the data types, errors, enums, config, logging, metrics, alert stages, fates
1. decode, detect, transport (streams/), the retry policy and the scorer protocol
2. what the engine drives and is made of: the engine, store, sinks, attestation, the graph model
3. entry points: the detect pipeline, daemon, replay, demo, the lab, dashboards
4. the command line
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOPS = ("monitor", "streams", "models", "sim", "dashboards")
LAYERS: list[tuple[int, tuple[str, ...]]] = [  # (layer, module-name prefixes); the longest prefix wins
    (0, ("monitor", "monitor.types", "monitor.errors", "monitor.kinds", "monitor.money", "monitor.alerts", "monitor.log",
         "monitor.metrics", "monitor.config", "monitor.fates", "monitor.lifecycle", "monitor.batch", "monitor.shard", "monitor.chains")),
    (1, ("monitor.decode", "monitor.detect", "streams", "monitor.retry", "monitor.scoring")),
    (2, ("monitor.engine", "monitor.store", "monitor.sinks", "monitor.attest", "monitor.health", "models", "sim.score")),
    # models.evaluate, models.alert_eval and models.lab_eval drive replays and the lab (the rules beside the model):
    # entry points like `mevwatch eval`
    (3, ("monitor.pipeline", "monitor.replay", "monitor.replay_rpc", "monitor.daemon", "monitor.demo", "sim", "dashboards",
         "models.evaluate", "models.alert_eval", "models.lab_eval", "models.block_eval")),
    (4, ("monitor.cli",)),
]


def layer_of(module: str) -> int:
    best, layer = -1, None
    for n, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, layer = len(p), n
    assert layer is not None, f"{module} is in no layer: add it to tests/arch/test_layers.py"
    return layer


def modules() -> list[tuple[str, Path]]:
    out = []
    for top in TOPS:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out.append((".".join(parts), path))
    return out


def imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(line, m.removeprefix("mevwatch.")) for line, m in out if m.startswith("mevwatch.")]


@pytest.mark.fast
def test_no_module_imports_from_a_higher_layer():
    bad = []
    for name, path in modules():
        mine = layer_of(name)
        for line, target in imports(path):
            if layer_of(target) > mine:
                bad.append(f"{path.relative_to(REPO)}:{line}: {name} (layer {mine}) imports {target} (layer {layer_of(target)})")
    assert not bad, "\n".join(bad)


@pytest.mark.fast
def test_the_check_sees_a_violation():
    assert layer_of("monitor.types") == 0 and layer_of("monitor.cli.replay") == 4 and layer_of("streams.bus") == 1
    assert layer_of("monitor.pipeline") > layer_of("monitor.engine") > layer_of("monitor.detect.registry")


@pytest.mark.fast
def test_the_installed_distribution_has_one_top_level_name():
    """`pip install` puts only mevwatch (and its dist-info, and the console script) in site-packages."""
    from importlib.metadata import distribution

    dist = distribution("mevwatch")
    files = dist.files or []
    direct = dist.read_text("direct_url.json") or ""
    if '"editable": true' in direct.replace(" ", "").replace('"editable":true', '"editable": true'):
        pytest.skip("an editable install maps the source folders instead of copying them")
    tops = {f.parts[0] for f in files if not f.parts[0].startswith("..")}
    assert tops == {"mevwatch", f"mevwatch-{dist.version}.dist-info"}, tops
