"""The batcher: final alerts from the store -> Merkle batch -> registry -> proofs in the store.

Which alerts: only ``final`` ones, of blocks up to the *final horizon*, the newest
processed block minus ``node.confirmations``. Every alert of a block at or below it is
final or retracted already (monitor/lifecycle.py), so a batch's contents never change
after it was planned, and a reorganised-away alert (retracted) is never in one.

Which range: a batch covers blocks ``from..to`` where ``from`` is one past the
``toBlock`` of this attester's newest batch *on chain* (``lastBatchOf``), so the chain,
not a local file, says where to go on; ``to`` is the horizon. A batch is sent when the
range spans ``batch_blocks`` final blocks or its oldest alert has waited
``batch_seconds``; ranges with no final alert are not attested (the next batch spans
them). Alerts scored by different models are cut into separate batches at the block
where the model changed, since a batch names one model.

Crash safety is the attester's journal (monitor/attest/attester.py); proofs are written
after the batch is confirmed, idempotently.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from mevwatch.monitor.alerts import Alert
from mevwatch.monitor.attest import canonical, merkle
from mevwatch.monitor.attest.attester import Attested, Attester, FeePolicy, Journal, Plan
from mevwatch.monitor.attest.chain import AttestChain, load_account, open_chain
from mevwatch.monitor.errors import AttestError, ConfigError, StoreError
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.store.store import AlertStore

log = get_logger("mevwatch.attest")
PROOF_FORMAT = 1
ZERO32 = "0x" + "00" * 32


@dataclass
class BatchResult:
    plan: Plan
    attested: Attested


def leaf_of(alert: Alert) -> bytes:
    return merkle.leaf_hash(canonical.alert_bytes(alert.to_json()))


def build_plan(alerts: list[tuple[Alert, int]], from_block: int, to_block: int, uri_template: str = "") -> tuple[Plan, list[bytes]]:
    """The batch of ``alerts`` (sorted by id): its root and leaves."""
    alerts = sorted(alerts, key=lambda x: x[0].alert_id)
    leaves = [leaf_of(a) for a, _v in alerts]
    root = "0x" + merkle.root_of(leaves).hex()
    models = {a.model_hash for a, _v in alerts if a.model_hash}
    model = _b32hex(next(iter(models))) if len(models) == 1 else ZERO32
    uri = uri_template.format(root=root, batch_from=from_block, batch_to=to_block) if uri_template else ""
    return Plan(root, from_block, to_block, len(alerts), model, uri, [(a.alert_id, v) for a, v in alerts]), leaves


def _b32hex(h: str) -> str:
    b = bytes.fromhex(h.removeprefix("0x"))
    if len(b) > 32:
        raise ConfigError(f"model hash {h} is longer than 32 bytes")
    return "0x" + b.rjust(32, b"\0").hex()


def split_by_model(alerts: list[tuple[Alert, int]], to_block: int) -> tuple[list[tuple[Alert, int]], int]:
    """The leading run of blocks whose alerts share one model (rules-only alerts fit any)."""
    by_block = sorted(alerts, key=lambda x: (x[0].block_number or 0))
    model = None
    for a, _v in by_block:
        if a.model_hash:
            if model is None:
                model = a.model_hash
            elif a.model_hash != model:
                cut = (a.block_number or 0) - 1
                head = [x for x in alerts if (x[0].block_number or 0) <= cut]
                if head:
                    return head, cut
                break  # two models in the first block: one batch with no single model (model hash 0)
    return alerts, to_block


class Batcher:
    def __init__(self, store: AlertStore, chain: AttestChain, attester: Attester, *, confirmations: int,
                 batch_blocks: int, batch_seconds: float, uri_template: str = "", contract_label: str | None = None):
        self.store, self.chain, self.attester = store, chain, attester
        self.confirmations = confirmations
        self.batch_blocks, self.batch_seconds = batch_blocks, batch_seconds
        self.uri_template = uri_template
        self.batches = 0
        self.failures = 0
        self.alerts_attested = 0
        self._waiting_since: float | None = None
        self.last_error: str | None = None

    @property
    def address(self) -> str:
        return self.attester.account.address

    def horizon(self) -> int | None:
        last = self.store.last_block()
        return None if last is None else last - self.confirmations

    def next_from(self) -> int | None:
        """One past this attester's newest batch on chain; None before its first."""
        last = self.chain.last_batch_of(self.address)
        return self.chain.batch(last).to_block + 1 if last else None

    def step(self, *, force: bool = False) -> BatchResult | None:
        """Finish a batch in flight, or plan and send the next one when due. None: nothing sent."""
        resumed = self.attester.resume()
        if resumed is not None:
            plan, att = resumed
            if att is not None:
                return self._record(plan, att)
            if self.attester.stop.is_set():
                return None
        horizon = self.horizon()
        if horizon is None or horizon < 0:
            return None
        frm = self.next_from()
        if frm is not None and frm > horizon:
            return None
        lo = frm
        if lo is None:
            rng = self.store.unattested_final_range()
            if rng is None:
                return None
            lo = rng[0]
        alerts = self.store.final_alerts(lo, horizon)
        if not alerts:
            self._waiting_since = None
            return None
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        due = force or horizon - lo + 1 >= self.batch_blocks or now - self._waiting_since >= self.batch_seconds
        if not due:
            return None
        alerts, to_block = split_by_model(alerts, horizon)
        plan, _leaves = build_plan(alerts, lo, to_block, self.uri_template)
        log.info("attesting a batch", root=plan.root, from_block=plan.from_block, to_block=plan.to_block, alerts=plan.count)
        att = self.attester.attest(plan)
        if att is None:
            return None
        self._waiting_since = None
        return self._record(plan, att)

    def _record(self, plan: Plan, att: Attested) -> BatchResult:
        """Write every alert's proof and the batch row (idempotent: a re-run writes the same rows)."""
        ids = dict(plan.alerts)
        alerts = [(a, v) for a, v in self.store.final_alerts(plan.from_block, plan.to_block) if a.alert_id in ids]
        rebuilt, leaves = build_plan(alerts, plan.from_block, plan.to_block, "")
        if rebuilt.root != plan.root:
            raise AttestError(f"batch {att.batch_id}: the store's alerts no longer give root {plan.root} "
                              f"({len(alerts)} of {plan.count} alerts found); proofs not written")
        b = self.chain.batch(att.batch_id)
        tree = merkle.Tree(leaves)
        items = []
        for i, (a, v) in enumerate(sorted(alerts, key=lambda x: x[0].alert_id)):
            proof = {"format": PROOF_FORMAT, "batch_id": att.batch_id, "root": plan.root, "leaf": "0x" + leaves[i].hex(),
                     "index": i, "size": len(leaves), "path": ["0x" + p.hex() for p in tree.proof(i)],
                     "contract": self.chain.address, "chain_id": self.chain.chain_id, "tx_hash": att.tx_hash,
                     "from_block": plan.from_block, "to_block": plan.to_block, "model_hash": plan.model_hash}
            items.append((a, v, orjson.dumps(proof, option=orjson.OPT_SORT_KEYS).decode(), att.batch_id))
        row = (att.batch_id, plan.root, self.chain.address, self.chain.chain_id, att.tx_hash or "", att.block_number,
               att.gas_used, b.attester, plan.from_block, plan.to_block, plan.count, plan.model_hash, plan.uri,
               int(time.time()), 1)
        self.store.write_proofs(items, row)
        self.batches += 1
        self.alerts_attested += plan.count
        from mevwatch.monitor import metrics

        metrics.ATTEST_BATCHES.inc()
        metrics.ATTEST_LAST.set(time.time())
        metrics.ATTEST_ALERTS.inc(plan.count)
        if att.gas_used:
            metrics.ATTEST_GAS.inc(att.gas_used)
        log.info("batch attested", batch_id=att.batch_id, root=plan.root, alerts=plan.count, tx=att.tx_hash,
                 gas=att.gas_used, adopted=att.adopted)
        return BatchResult(plan, att)

    def run(self, stop: threading.Event, poll_s: float = 2.0) -> None:
        """Loop until ``stop``: retriable failures back off, others are logged and retried slowly."""
        from mevwatch.monitor import metrics
        from mevwatch.monitor.retry import policy
        from mevwatch.monitor.store.queries import unattested_final_count

        backoff = policy("attest")
        failures_in_a_row = 0
        last_gauge = 0.0
        while not stop.is_set():
            try:
                while self.step() is not None and not stop.is_set():
                    pass
                if time.monotonic() - last_gauge > 15:
                    last_gauge = time.monotonic()
                    metrics.ATTEST_WAITING.set(unattested_final_count(self.store))
                delay = poll_s
                failures_in_a_row = 0
                self.last_error = None
            except (AttestError, StoreError) as exc:
                self.failures += 1
                metrics.ATTEST_FAILURES.inc()
                self.last_error = str(exc)
                failures_in_a_row += 1
                delay = backoff.delay(failures_in_a_row)
                metrics.RETRIES.labels(backoff.name).inc()
                log.warning("attestation failed; retrying", error=str(exc)[:300], retry_in_s=round(delay, 2))
            except Exception as exc:  # noqa: BLE001 - a node hiccup must not kill the daemon
                self.failures += 1
                metrics.ATTEST_FAILURES.inc()
                self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                failures_in_a_row += 1
                delay = backoff.delay(failures_in_a_row)
                metrics.RETRIES.labels(backoff.name).inc()
                log.warning("attestation failed; retrying", error=self.last_error, retry_in_s=round(delay, 2))
            stop.wait(delay)


def make_batcher(settings: Any, store: AlertStore, *, stop: threading.Event | None = None,
                 rpc: str | None = None, contract: str | None = None) -> Batcher:
    """A batcher from the settings: the key, the chain (node or embedded), the journal."""
    from eth_account import Account

    from mevwatch.monitor.attest.chain import EMBEDDED_KEY

    a = settings.attest
    account = load_account(settings)
    embedded = (rpc or a.rpc) is None
    if account is None:
        if not embedded:
            raise ConfigError("attesting on a node needs a key: MEVWATCH_ATTEST__PRIVATE_KEY_FILE, "
                              "attest.private_key or attest.keystore")
        account = Account.from_key(EMBEDDED_KEY)
    chain = open_chain(settings, rpc=rpc, contract=contract, account=account)
    if not chain.is_attester(account.address):
        raise ConfigError(f"{account.address} is not an attester of the registry at {chain.address}; "
                          "its owner must call setAttester")
    stop = stop or threading.Event()
    journal = Journal(settings.data_dir / "attest" / f"inflight-{chain.chain_id}-{chain.address.lower()}.json")
    attester = Attester(chain, account, journal, FeePolicy.from_settings(a),
                        confirmations=1 if embedded else a.confirmations,
                        receipt_timeout_s=a.receipt_timeout_s, stop=stop, poll_s=0.05 if embedded else 0.5)
    return Batcher(store, chain, attester, confirmations=settings.node.confirmations, batch_blocks=a.batch_blocks,
                   batch_seconds=a.batch_seconds, uri_template=a.uri_template)
