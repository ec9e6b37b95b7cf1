"""The registry of detectors, in the spirit of brontes' inspectors and composer.

A **block rule** reads one decoded block (through :class:`BlockView`) and returns alerts at stage
``included``. Each declares its name, the kinds it raises and how it shares transactions with the
others:

- ``claims``: the attacker legs (every non-victim transaction) of its alerts become *claimed*:
  a later ``exclusive`` rule may not use them. A transaction is one attack's leg only once.
- ``exclusive``: its alerts whose legs were already claimed are dropped; the rule also receives
  the claimed set, to skip those transactions before it searches (arbitrage does: a sandwich's
  legs are no arbitrage).

Order is the registry's, not the caller's: rules run in registration order (``before=`` /
``after=`` place a new one). The default order is the one that keeps each attack reported once:
sandwich, JIT sandwich, arbitrage (an arbitrage right behind its target becomes a back-run),
displacement.

A **mempool rule** follows pending transactions (``on_pending`` -> alerts at stage ``pending``)
and learns from included blocks (``observe_block``). The engine makes one instance per run from
the registered factory.

Adding a rule: one module with a ``detect(view, claimed)`` function and one ``register_block_rule``
line (see docs/development.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from mevwatch.monitor.alerts import Alert
from mevwatch.monitor.detect import arbitrage, backrun, displacement, jit, liquidation, sandwich
from mevwatch.monitor.detect.common import BlockView, LossOracle
from mevwatch.monitor.kinds import Kind, TxRole
from mevwatch.monitor.types import DecodedBlock
from mevwatch.monitor.types import PendingTx

BlockDetect = Callable[[BlockView, frozenset[str]], list[Alert]]


@dataclass(frozen=True)
class BlockRule:
    name: str
    kinds: tuple[Kind, ...]
    detect: BlockDetect
    claims: bool = True
    exclusive: bool = False


class MempoolRule(Protocol):
    """A stateful rule over the mempool (one instance per engine)."""

    def on_pending(self, p: PendingTx) -> list[Alert]: ...

    def observe_block(self, db: DecodedBlock) -> None: ...


MempoolFactory = Callable[[int], MempoolRule]  # chain id -> a new rule


def attacker_legs(alert: Alert) -> set[str]:
    return {t.hash for t in alert.txs if t.role != TxRole.VICTIM}


def _order_key(a: Alert) -> tuple:
    return (min((t.position or 0) for t in a.txs), a.kind, a.alert_id)


@dataclass
class Registry:
    block_rules: list[BlockRule] = field(default_factory=list)
    mempool_rules: list[tuple[str, MempoolFactory]] = field(default_factory=list)

    def register_block_rule(self, rule: BlockRule, *, before: str | None = None, after: str | None = None) -> None:
        if any(r.name == rule.name for r in self.block_rules):
            raise ValueError(f"a block rule named {rule.name!r} is already registered")
        names = [r.name for r in self.block_rules]
        at = len(self.block_rules)
        if before is not None:
            at = names.index(before)
        elif after is not None:
            at = names.index(after) + 1
        self.block_rules.insert(at, rule)

    def unregister(self, name: str) -> None:
        self.block_rules = [r for r in self.block_rules if r.name != name]
        self.mempool_rules = [(n, f) for n, f in self.mempool_rules if n != name]

    def register_mempool_rule(self, name: str, factory: MempoolFactory) -> None:
        if any(n == name for n, _ in self.mempool_rules):
            raise ValueError(f"a mempool rule named {name!r} is already registered")
        self.mempool_rules.append((name, factory))

    @property
    def kinds(self) -> tuple[Kind, ...]:
        return tuple(dict.fromkeys(k for r in self.block_rules for k in r.kinds))

    def detect(self, db: DecodedBlock, extra_routers: frozenset[str] = frozenset(), oracle: LossOracle | None = None) -> list[Alert]:
        """Every block rule over ``db``, composed: each attack once, in block order. ``oracle``: a
        node to re-execute victims on (monitor/detect/common.py)."""
        view = BlockView(db, extra_routers, oracle)
        claimed: set[str] = set()
        alerts: list[Alert] = []
        for rule in self.block_rules:
            found = rule.detect(view, frozenset(claimed))
            if rule.exclusive:
                found = [a for a in found if not (attacker_legs(a) & claimed)]
            alerts += found
            if rule.claims:
                for a in found:
                    claimed |= attacker_legs(a)
        alerts.sort(key=_order_key)
        return alerts

    def mempool(self, chain_id: int) -> list[MempoolRule]:
        return [factory(chain_id) for _name, factory in self.mempool_rules]

    def copy(self) -> Registry:
        return Registry(list(self.block_rules), list(self.mempool_rules))


# --- the built-in rules -----------------------------------------------------------------------
def _sandwich(view: BlockView, claimed: frozenset[str]) -> list[Alert]:
    return sandwich.detect(view)


def _jit(view: BlockView, claimed: frozenset[str]) -> list[Alert]:
    return jit.detect(view)


def _arbitrage(view: BlockView, claimed: frozenset[str]) -> list[Alert]:
    return [backrun.as_backrun(view, route, arb) or arb for route, arb in arbitrage.detect(view, set(claimed))]


def _displacement(view: BlockView, claimed: frozenset[str]) -> list[Alert]:
    return displacement.detect(view)


def _liquidation(view: BlockView, claimed: frozenset[str]) -> list[Alert]:
    return liquidation.detect(view)


def _mempool_watcher(chain_id: int) -> MempoolRule:
    from mevwatch.monitor.detect.pending import MempoolWatcher

    return MempoolWatcher(chain_id=chain_id)


def _opaque_watcher(chain_id: int) -> MempoolRule:
    from mevwatch.monitor.detect.opaque import OpaqueSandwichWatcher

    return OpaqueSandwichWatcher(chain_id=chain_id)


def default_registry() -> Registry:
    """A new registry holding the built-in rules (callers may add to their copy)."""
    reg = Registry()
    reg.register_block_rule(BlockRule("sandwich", (Kind.SANDWICH,), _sandwich))
    # a JIT sandwich is not filtered by sandwich legs: liquidity changes are no swaps
    reg.register_block_rule(BlockRule("jit", (Kind.JIT_SANDWICH,), _jit))
    reg.register_block_rule(BlockRule("arbitrage", (Kind.ARBITRAGE, Kind.BACKRUN), _arbitrage, exclusive=True))
    # a displacement copies another account's transaction: a relation, not a leg of a trade
    reg.register_block_rule(BlockRule("displacement", (Kind.FRONTRUN_DISPLACEMENT,), _displacement, claims=False))
    # a liquidation is the lending protocol's own call; swaps in the same transaction stay free for the other rules
    reg.register_block_rule(BlockRule("liquidation", (Kind.LIQUIDATION,), _liquidation, claims=False))
    reg.register_mempool_rule("mempool", _mempool_watcher)
    reg.register_mempool_rule("opaque_calls", _opaque_watcher)  # attempts whose legs decode to no swap
    return reg


REGISTRY = default_registry()  # the process-wide registry every engine uses unless given another


def register_block_rule(rule: BlockRule, *, before: str | None = None, after: str | None = None) -> None:
    REGISTRY.register_block_rule(rule, before=before, after=after)


def detect_block(db: DecodedBlock, extra_routers: frozenset[str] = frozenset(), registry: Registry | None = None,
                 oracle: LossOracle | None = None) -> list[Alert]:
    return (registry or REGISTRY).detect(db, extra_routers, oracle)

