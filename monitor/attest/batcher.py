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
where the model changed, since a batch names one model; a single block whose alerts were
scored by several models is a batch of its own that names the hash of that set of models
(:func:`model_set_hash`). No batch of model-scored alerts names model 0.

Crash safety is the attester's journal (monitor/attest/attester.py); proofs are written
after the batch is confirmed, idempotently, and only then is the journal cleared, so a
store failure in between resumes the batch. :meth:`Batcher.repair` rebuilds the proofs
of this attester's batches on chain from the store (``mevwatch attest repair``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from eth_utils import keccak

from mevwatch.monitor.alerts import Alert
from mevwatch.monitor.attest import canonical, merkle
from mevwatch.monitor.attest.attester import Attested, Attester, FeePolicy, Journal, Plan, RootTaken
from mevwatch.monitor.attest.chain import AttestChain, OnChainBatch, load_account, open_chain
from mevwatch.monitor.errors import AttestError, ConfigError, InputError, StoreError
from mevwatch.monitor.log import get_logger
from mevwatch.monitor.store.store import AlertStore

log = get_logger("mevwatch.attest")
PROOF_FORMAT = 2
ZERO32 = "0x" + "00" * 32


@dataclass
class BatchResult:
    plan: Plan
    attested: Attested


def leaf_of(alert: Alert) -> bytes:
    return merkle.leaf_hash(canonical.alert_bytes(alert.to_json()))


def build_plan(alerts: list[tuple[Alert, int]], from_block: int, to_block: int, uri_template: str = "") -> tuple[Plan, list[bytes]]:
    """The batch of ``alerts`` (sorted by id): its root and leaves, and the model hash it names:
    the one model that scored its alerts, the hash of the set when several did, 0 when none did."""
    alerts = sorted(alerts, key=lambda x: x[0].alert_id)
    leaves = [leaf_of(a) for a, _v in alerts]
    root = "0x" + merkle.root_of(leaves).hex()
    models = sorted({_b32hex(a.model_hash) for a, _v in alerts if a.model_hash})
    listed: list[str]
    if not models:
        model, listed = ZERO32, []
    elif len(models) == 1:
        model, listed = models[0], []
    else:
        model, listed = model_set_hash(models), models
    uri = uri_template.format(root=root, batch_from=from_block, batch_to=to_block) if uri_template else ""
    return Plan(root, from_block, to_block, len(alerts), model, uri, [(a.alert_id, v) for a, v in alerts], listed), leaves


def model_set_hash(models: list[str]) -> str:
    """The model hash of a batch scored by several models: keccak256(0x02 || the sorted distinct 32-byte hashes)."""
    hs = sorted({_b32hex(m) for m in models})
    return "0x" + keccak(b"\x02" + b"".join(bytes.fromhex(h[2:]) for h in hs)).hex()


def _b32hex(h: str) -> str:
    try:
        b = bytes.fromhex(h.removeprefix("0x"))
    except ValueError:
        raise InputError(f"model hash {h!r} is not hex") from None
    if len(b) > 32:
        raise InputError(f"model hash {h} is longer than 32 bytes")
    return "0x" + b.rjust(32, b"\0").hex()


def split_by_model(alerts: list[tuple[Alert, int]], to_block: int) -> tuple[list[tuple[Alert, int]], int]:
    """The leading run of blocks whose alerts share one model (rules-only alerts fit any); when
    the first block with a model has several, the run ends with that block."""
    by_block: dict[int, set[str]] = {}
    for a, _v in alerts:
        if a.model_hash:
            by_block.setdefault(a.block_number or 0, set()).add(_b32hex(a.model_hash))
    model: str | None = None
    cut = to_block
    for blk in sorted(by_block):
        ms = by_block[blk]
        if model is None:
            if len(ms) > 1:
                cut = blk  # one block, several models: a batch of its own (plus rules-only blocks before it)
                break
            model = next(iter(ms))
        elif ms != {model}:
            cut = blk - 1
            break
    if cut == to_block:
        return alerts, to_block
    return [x for x in alerts if (x[0].block_number or 0) <= cut], cut


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
        for _attempt in range(3):
            try:
                return self._step(force)
            except RootTaken as exc:  # our root with another range: its proofs are owed; plan past it
                log.warning("the planned root is already our batch with another range; repairing its proofs and "
                            "planning again", batch_id=exc.batch_id, error=str(exc)[:300])
                self.repair_batch(exc.batch_id)
        return None

    def _step(self, force: bool) -> BatchResult | None:
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
            rng = self.store.unattested_final_range(since=0)  # this attester's first batch: from all of history
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
        """Write every alert's proof and the batch row (idempotent: a re-run writes the same rows);
        then, and only then, the attester forgets the batch."""
        b = self.chain.batch(att.batch_id)
        self._write_proofs(b, plan.alerts, att.tx_hash, att.block_number, att.gas_used, plan.models)
        self.attester.done(plan)
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

    def _write_proofs(self, b: OnChainBatch, ids: list[tuple[str, int]] | None, tx_hash: str | None,
                      block_number: int | None, gas_used: int | None, models: list[str]) -> int:
        """Proofs of on-chain batch ``b`` from the store's final alerts of its blocks (only ``ids`` when
        given); AttestError when they do not give its root."""
        alerts = self.store.final_alerts(b.from_block, b.to_block)
        if ids is not None:
            want = dict(ids)
            alerts = [(a, v) for a, v in alerts if a.alert_id in want]
        root = "0x" + b.root.hex()
        if not alerts:
            raise AttestError(f"batch {b.batch_id}: no final alerts of blocks {b.from_block}..{b.to_block} in the store; "
                              "proofs not written")
        rebuilt, leaves = build_plan(alerts, b.from_block, b.to_block, "")
        if rebuilt.root != root:
            raise AttestError(f"batch {b.batch_id}: the store's alerts of blocks {b.from_block}..{b.to_block} give root "
                              f"{rebuilt.root}, not the batch's {root} ({len(alerts)} alerts found, the batch has "
                              f"{b.count}); proofs not written")
        model = "0x" + b.model_hash.hex()
        if rebuilt.model_hash != model:
            raise AttestError(f"batch {b.batch_id}: its alerts' model hash {rebuilt.model_hash} is not the batch's {model}")
        models = rebuilt.models or models
        tree = merkle.Tree(leaves)
        items = []
        for i, (a, v) in enumerate(sorted(alerts, key=lambda x: x[0].alert_id)):
            proof = {"format": PROOF_FORMAT, "batch_id": b.batch_id, "root": root, "leaf": "0x" + leaves[i].hex(),
                     "index": i, "size": len(leaves), "path": ["0x" + p.hex() for p in tree.proof(i)],
                     "contract": self.chain.address, "chain_id": self.chain.chain_id, "attester": b.attester,
                     "tx_hash": tx_hash, "from_block": b.from_block, "to_block": b.to_block, "model_hash": model}
            if models:
                proof["models"] = models
            items.append((a, v, orjson.dumps(proof, option=orjson.OPT_SORT_KEYS).decode(), b.batch_id))
        row = (b.batch_id, root, self.chain.address, self.chain.chain_id, tx_hash or "", block_number,
               gas_used, b.attester, b.from_block, b.to_block, b.count, model, b.uri, int(time.time()), 1)
        self.store.write_proofs(items, row)
        return len(items)

    # --- repair -----------------------------------------------------------------------------------
    def repair_batch(self, batch_id: int) -> int:
        """Rebuild and store the proofs of this attester's on-chain batch ``batch_id``; the number written."""
        b = self.chain.batch(batch_id)
        if b.attester != self.address:
            raise AttestError(f"batch {batch_id} was attested by {b.attester}, not by this attester {self.address}")
        tx_hash, block, gas = self._attested_tx(b)
        n = self._write_proofs(b, None, tx_hash, block, gas, [])
        log.info("proofs rebuilt from the chain", batch_id=batch_id, alerts=n, tx=tx_hash)
        return n

    def repair(self, *, everything: bool = False) -> list[tuple[int, int, str]]:
        """Rebuild the proofs of this attester's batches on chain that the store lacks (every batch
        with ``everything``). One (batch id, proofs written, note) per batch looked at; a batch whose
        alerts the store cannot give back is reported, not fatal."""
        have = self.store.proof_counts(self.chain.address)
        out: list[tuple[int, int, str]] = []
        for bid in self.chain.batches_of(self.address):
            b = self.chain.batch(bid)
            if not everything and have.get(bid, 0) == b.count:
                continue
            try:
                n = self.repair_batch(bid)
            except AttestError as exc:
                out.append((bid, 0, str(exc)))
            else:
                out.append((bid, n, "rebuilt"))
        return out

    def _attested_tx(self, b: OnChainBatch) -> tuple[str | None, int | None, int | None]:
        """The transaction that attested ``b`` (from its Attested log), when the node serves the logs."""
        try:
            ev = self.chain.registry.events.Attested()
            logs = ev.get_logs(from_block=0, argument_filters={"batchId": b.batch_id, "attester": b.attester})
        except Exception:  # noqa: BLE001 - a node limiting log ranges: the proof goes without the tx hash
            return None, None, None
        for lg in logs:
            if bytes(lg["args"]["root"]) == b.root:
                h = "0x" + bytes(lg["transactionHash"]).hex()
                try:
                    gas = int(self.chain.w3.eth.get_transaction_receipt(h)["gasUsed"])
                except Exception:  # noqa: BLE001
                    gas = None
                return h, int(lg["blockNumber"]), gas
        return None, None, None

    def run(self, stop: threading.Event, poll_s: float = 2.0,
            on_round: Callable[[BaseException | None], None] | None = None) -> None:
        """Loop until ``stop``: retriable failures back off, others are logged and retried slowly.
        ``on_round(None or the failure)`` after each round (the daemon's readiness)."""
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
                failure: BaseException | None = None
            except (AttestError, StoreError) as exc:
                failure = exc
                self.failures += 1
                metrics.ATTEST_FAILURES.inc()
                self.last_error = str(exc)
                failures_in_a_row += 1
                delay = backoff.delay(failures_in_a_row)
                metrics.RETRIES.labels(backoff.name).inc()
                log.warning("attestation failed; retrying", error=str(exc)[:300], retry_in_s=round(delay, 2))
            except Exception as exc:  # noqa: BLE001 - a node hiccup must not kill the daemon
                failure = exc
                self.failures += 1
                metrics.ATTEST_FAILURES.inc()
                self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                failures_in_a_row += 1
                delay = backoff.delay(failures_in_a_row)
                metrics.RETRIES.labels(backoff.name).inc()
                log.warning("attestation failed; retrying", error=self.last_error, retry_in_s=round(delay, 2))
            if on_round is not None:
                on_round(failure)
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
    if not chain.code_matches():
        raise ConfigError(f"the code at {chain.address} on chain {chain.chain_id} is not the AttestationRegistry this "
                          "mevwatch was built with; refusing to attest there")
    info = chain.attester_info(account.address)
    if not info.allowed:
        why = "was revoked" if info.revoked else "is not an attester"
        raise ConfigError(f"{account.address} {why} of the registry at {chain.address}"
                          + ("" if info.revoked else "; its owner must call addAttester (mevwatch attest grant)"))
    if not embedded and chain.registry.functions.owner().call() == account.address:
        log.warning("the attester key is also the registry's owner: a leaked hot key could then add attesters; "
                    "make a cold key or a multisig the owner (docs/attestation.md)", attester=account.address)
    stop = stop or threading.Event()
    journal = Journal(settings.data_dir / "attest" / f"inflight-{chain.chain_id}-{chain.address.lower()}.json")
    attester = Attester(chain, account, journal, FeePolicy.from_settings(a),
                        confirmations=1 if embedded else a.confirmations,
                        receipt_timeout_s=a.receipt_timeout_s, stop=stop, poll_s=0.05 if embedded else 0.5)
    return Batcher(store, chain, attester, confirmations=settings.node.confirmations, batch_blocks=a.batch_blocks,
                   batch_seconds=a.batch_seconds, uri_template=a.uri_template)
