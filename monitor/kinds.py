"""The project's closed vocabularies, each one ``StrEnum`` (members compare equal to their strings,
so JSONL, ClickHouse rows and webhook payloads keep the plain values).

- :class:`Kind`: what an alert reports (docs/alerts.md).
- :class:`Stage`: where an alert is in its life (monitor/lifecycle.py owns the transitions).
- :class:`TxRole`: what a transaction is inside an alert.
- :class:`Detector`: who raised or confirmed an alert.
- :class:`NodeRole`: what a ``mevwatch run`` process does (docs/operations.md).

Groupings used across the tree (scoring, datasets, metrics) live here too, so a new kind is
typed once.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    SANDWICH = "sandwich"
    JIT_SANDWICH = "jit_sandwich"
    FRONTRUN_DISPLACEMENT = "frontrun_displacement"
    BACKRUN = "backrun"
    ARBITRAGE = "arbitrage"
    SANDWICH_ATTEMPT = "sandwich_attempt"
    EXPOSED_SWAP = "exposed_swap"
    LIQUIDATION = "liquidation"


class Stage(StrEnum):
    PENDING = "pending"
    INCLUDED = "included"
    FINAL = "final"
    RETRACTED = "retracted"


class TxRole(StrEnum):
    FRONTRUN = "frontrun"
    BACKRUN = "backrun"
    VICTIM = "victim"
    ARBITRAGE = "arbitrage"
    LIQUIDITY_ADD = "liquidity_add"
    LIQUIDITY_REMOVE = "liquidity_remove"
    DISPLACED = "displaced"
    DISPLACER = "displacer"
    LIQUIDATOR = "liquidator"


class Detector(StrEnum):
    RULES = "rules"
    GNN = "gnn"
    BOTH = "both"


class NodeRole(StrEnum):
    ALL = "all"
    INGEST = "ingest"
    DETECT = "detect"
    ATTEST = "attest"


# alerts raised from included blocks (an attack that happened), and from the mempool (a warning)
BLOCK_KINDS: tuple[Kind, ...] = (Kind.SANDWICH, Kind.JIT_SANDWICH, Kind.FRONTRUN_DISPLACEMENT, Kind.BACKRUN, Kind.ARBITRAGE,
                                  Kind.LIQUIDATION)
PENDING_KINDS: tuple[Kind, ...] = (Kind.SANDWICH_ATTEMPT, Kind.EXPOSED_SWAP)
# the roles an attacker's own transactions play (every role but the victims')
ATTACKER_ROLES: tuple[TxRole, ...] = (TxRole.FRONTRUN, TxRole.BACKRUN, TxRole.ARBITRAGE, TxRole.DISPLACER,
                                      TxRole.LIQUIDITY_ADD, TxRole.LIQUIDITY_REMOVE, TxRole.LIQUIDATOR)
