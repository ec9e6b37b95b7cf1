"""Build hook: compiles the hot decoding and detection modules with mypyc.

Compiled modules format ints with f-strings, never ``str(n)``: mypyc 2.4 leaks one
object per ``str()`` of an int wider than 63 bits (token amounts), which made a long
replay grow without bound; bench/bench_detect.py watches memory over 10,000 blocks.

The same modules run as plain Python when compiled code is not wanted or cannot be
built: set MEVWATCH_PURE=1 (e.g. for an editable install while developing them).
"""

import os
import sys

from setuptools import setup

COMPILED = [
    "monitor/types.py",
    "monitor/money.py",
    "monitor/alerts.py",
    "monitor/decode/__init__.py",
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
    "monitor/detect/common.py",
    "monitor/detect/sandwich.py",
    "monitor/detect/arbitrage.py",
    "monitor/detect/backrun.py",
    "monitor/detect/jit.py",
    "monitor/detect/displacement.py",
    "streams/mevinspect.py",
]

ext_modules = []
if os.environ.get("MEVWATCH_PURE") != "1":
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("mevwatch: mypyc not available, installing pure Python modules", file=sys.stderr)
    else:
        # third-party modules (orjson, eth_hash) are not in the isolated build environment: type them as Any
        ext_modules = mypycify(["--ignore-missing-imports", *COMPILED], opt_level="3")

setup(ext_modules=ext_modules)
