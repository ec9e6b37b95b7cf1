"""Exact MEV rules over a decoded block, one module per kind.

``detect_block`` runs them in an order that keeps each attack reported once: sandwich
legs are not arbitrages; an arbitrage right behind its target is reported as a
back-run instead.
"""

from __future__ import annotations

from monitor.alerts import Alert
from monitor.detect import arbitrage, backrun, displacement, jit, sandwich
from monitor.detect.common import ROUTERS, BlockView
from monitor.types import DecodedBlock

__all__ = ["detect_block", "BlockView", "ROUTERS"]


def detect_block(db: DecodedBlock, extra_routers: frozenset[str] = frozenset()) -> list[Alert]:
    view = BlockView(db, extra_routers)
    alerts = sandwich.detect(view)
    legs = {t.hash for a in alerts for t in a.txs if t.role in ("frontrun", "backrun")}
    alerts += jit.detect(view)
    legs |= {t.hash for a in alerts if a.kind == "jit_sandwich" for t in a.txs if t.role != "victim"}
    for route, arb in arbitrage.detect(view, legs):
        alerts.append(backrun.as_backrun(view, route, arb) or arb)
    alerts += displacement.detect(view)
    alerts.sort(key=lambda a: (min((t.position or 0) for t in a.txs), a.kind, a.alert_id))
    return alerts
