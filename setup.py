"""Build hook: the ``mevwatch`` namespace and the mypyc-compiled hot path.

Layout: the repository keeps the top-level folders DESIGN.md fixes (monitor/, streams/, models/,
sim/, dashboards/); installed, they are ``mevwatch.monitor``, ``mevwatch.streams``, ... so the wheel
puts only ``mevwatch`` (a namespace package) and its dist-info at the top of site-packages. The
package list is computed here from the folders' ``__init__.py`` files, so it cannot drift.

Compiled modules: mypy names a module by its place under a package base, so the sources are staged
under ``build/mypyc-src/mevwatch/`` and compiled with that folder as the base (module names
``mevwatch.monitor.types``, ...); the shared mypyc runtime is ``mevwatch/native__mypyc*.so``. No package ``__init__`` is compiled:
mypyc would give it a ``__path__`` under the shared library's folder (``mevwatch/mevwatch/...``). The
project's ``[tool.mypy]`` settings (a type-check of the tree, with plugins the isolated build
environment lacks) are not read by this build (``--config-file=``).

Compiled modules format ints with f-strings, never ``str(n)``: mypyc 2.4 leaks one object per
``str()`` of an int wider than 63 bits (token amounts), which made a long replay grow without
bound; bench/bench_detect.py watches memory over 10,000 blocks.

The same modules run as plain Python when compiled code is not wanted or cannot be built: set
MEVWATCH_PURE=1 (e.g. for an editable install while developing them).
"""

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
TOPS = ("monitor", "streams", "models", "sim", "dashboards")
COMPILED = [
    "monitor/types.py",
    "monitor/money.py",
    "monitor/alerts.py",
    "monitor/decode/block.py",
    "monitor/decode/hexabi.py",
    "monitor/decode/context.py",
    "monitor/decode/transfers.py",
    "monitor/decode/uniswap_v2.py",
    "monitor/decode/uniswap_v3.py",
    "monitor/decode/uniswap_v4.py",
    "monitor/decode/balancer.py",
    "monitor/decode/curve.py",
    "monitor/decode/zerox.py",
    "monitor/decode/bancor.py",
    "monitor/decode/mooniswap.py",
    "monitor/decode/dodo.py",
    "monitor/decode/kyber.py",
    "monitor/detect/common.py",
    "monitor/detect/sandwich.py",
    "monitor/detect/arbitrage.py",
    "monitor/detect/backrun.py",
    "monitor/detect/jit.py",
    "monitor/detect/displacement.py",
    "streams/mevinspect.py",
    "streams/cryo.py",
    "streams/envelope.py",
    "monitor/detect/opaque.py",
    "monitor/fates.py",
]
PACKAGE_DATA = {
    "mevwatch.sim": ["artifacts/*.json"],
    "mevwatch.monitor": ["attest/artifacts/*.json"],
    "mevwatch.dashboards": ["json/*.json", "provisioning/*/*.yaml", "prometheus/*.yml"],
    "mevwatch.models": ["default/*.pt", "default/*.json"],
}


def packages() -> list[str]:
    out = []
    for top in TOPS:
        for init in sorted((HERE / top).rglob("__init__.py")):
            rel = init.parent.relative_to(HERE)
            out.append("mevwatch." + ".".join(rel.parts))
    return out


def compiled_extensions() -> list:
    if os.environ.get("MEVWATCH_PURE") == "1":
        return []
    if "editable_wheel" in sys.argv:  # an editable install maps the folders: compiled modules would have no home
        print("mevwatch: editable install, pure Python modules (as with MEVWATCH_PURE=1)", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("mevwatch: mypyc not available, installing pure Python modules", file=sys.stderr)
        return []
    stage = Path("build") / "mypyc-src"
    shutil.rmtree(stage, ignore_errors=True)
    for top in TOPS:  # the whole packages: compiled modules import their neighbours by full name
        shutil.copytree(HERE / top, stage / "mevwatch" / top, ignore=shutil.ignore_patterns("__pycache__", "*.so", "json", "default"))
    os.environ["MYPYPATH"] = str(stage)
    paths = [str(stage / "mevwatch" / p) for p in COMPILED]
    # third-party modules (orjson, eth_hash) are not in the isolated build environment: type them as Any
    return mypycify(["--config-file=", "--explicit-package-bases", "--ignore-missing-imports", *paths],
                    opt_level="3", group_name="mevwatch.native")


if "bdist_wheel" in sys.argv:  # outputs of an earlier build (another layout) would be packed along
    for old in Path("build").glob("lib*"):
        shutil.rmtree(old, ignore_errors=True)

setup(
    packages=packages(),
    package_dir={f"mevwatch.{top}": top for top in TOPS},
    package_data=PACKAGE_DATA,
    ext_modules=compiled_extensions(),
)
