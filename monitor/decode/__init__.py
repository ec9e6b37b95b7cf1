"""Decoders: one module per protocol family (uniswap_v2, uniswap_v3, uniswap_v4, balancer, curve,
zerox, bancor, transfers), pending.py for calldata, and block.py, which walks a block's traces or
logs and dispatches to them.

The package's ``__init__`` stays plain Python: a mypyc-compiled package ``__init__`` computes its
``__path__`` from the shared library's folder, which is ``mevwatch/`` here, not the site root.
"""

from __future__ import annotations

from mevwatch.monitor.decode.block import LOG_HANDLERS, TRACE_HANDLERS, BlockDecoder

__all__ = ["BlockDecoder", "LOG_HANDLERS", "TRACE_HANDLERS"]
