"""Exact MEV rules over a decoded block, one module per kind.

Which rules run, in which order, and which attack a transaction is a leg of is decided by the
registry (monitor/detect/registry.py); ``detect_block`` runs the process-wide registry.
"""

from __future__ import annotations

from mevwatch.monitor.detect.common import ROUTERS, BlockView
from mevwatch.monitor.detect.registry import REGISTRY, detect_block

__all__ = ["detect_block", "BlockView", "ROUTERS", "REGISTRY"]
