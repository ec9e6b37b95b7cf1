"""Sending one batch's ``attest`` transaction, safely across crashes.

- Journal first: the batch plan and every signed transaction are written (mode 0600,
  never through a symlink, fsync of the file, atomic rename, fsync of the directory) to
  ``<data_dir>/attest/inflight-<chain>-<registry>.json`` before they are broadcast. A
  restarted attester finishes that batch before planning another: if the chain holds
  its root (as *this attester's* batch, with the plan's range, count and model), it is
  done; if the nonce is still free, the same signed transaction is broadcast again; if
  the nonce went to something else and the root is not on chain, the batch is planned
  afresh. The journal is cleared only by :meth:`Attester.done`, which the batcher calls
  after the batch's proofs are stored: a failure in between resumes the batch.
- Dry run first: ``attest`` is simulated with ``eth_call``. Roots are keyed per attester
  on chain, so only a batch of this attester is ever adopted, and only when its range,
  count and model are the plan's; any other batch of ours with that root is
  :class:`RootTaken` (the batcher re-plans and repairs its proofs).
- Fees (EIP-1559): priority fee ``priority_fee_gwei``, max fee 2 x base fee + priority,
  never above ``max_fee_gwei`` (the batch waits while the base fee is higher). Not mined
  after ``replace_after_s``: the same nonce re-signed with both fees 12.5% higher, the tip
  never above ``max_priority_fee_gwei``; once a cap keeps a replacement from being 12.5%
  higher, none is sent (a node would refuse it as under-priced): the batch waits for the
  transaction already out.
- Confirmation: the receipt must succeed and sit ``confirmations`` blocks deep.
- One attester per journal: whatever sends (:meth:`Attester.attest`, :meth:`Attester.resume`;
  the daemon at start) first takes an exclusive ``flock`` on ``<journal>.lock`` and keeps it
  until the process ends. A second process on the same journal (two pods on one volume, a
  ``mevwatch attest flush`` next to the daemon) gets :class:`JournalLocked`, naming the pid
  that holds it, and sends nothing. The lock belongs to the process: journals of one process
  share it (tests run restarted attesters in one process).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from mevwatch.monitor.attest.chain import AttestChain, decode_revert
from mevwatch.monitor.errors import AttestError
from mevwatch.monitor.log import get_logger

log = get_logger("mevwatch.attest")
GWEI = 10**9


@dataclass
class Plan:
    """One batch: what goes on chain, and the alerts (id, final version) behind the root."""

    root: str
    from_block: int
    to_block: int
    count: int
    model_hash: str
    uri: str
    alerts: list[tuple[str, int]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # the models of a one-block batch scored by several (model_hash: their set hash)


@dataclass
class Sent:
    tx_hash: str
    raw: str
    max_fee: int
    priority_fee: int
    sent_at: float


@dataclass
class Attested:
    batch_id: int
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    adopted: bool = False  # this attester's batch was on chain already (an earlier run)


@dataclass
class FeePolicy:
    priority_fee_wei: int
    max_fee_wei: int
    replace_after_s: float
    max_priority_fee_wei: int | None = None  # the cap of the escalating tip (None: max_fee_wei)

    @classmethod
    def from_settings(cls, a: Any) -> FeePolicy:
        return cls(int(a.priority_fee_gwei * GWEI), int(a.max_fee_gwei * GWEI), a.replace_after_s,
                   int(a.max_priority_fee_gwei * GWEI))

    @property
    def tip_cap(self) -> int:
        cap = self.max_fee_wei if self.max_priority_fee_wei is None else self.max_priority_fee_wei
        return min(cap, self.max_fee_wei)


class JournalLocked(AttestError):
    """Another process holds the attester journal's lock: two attesters would race for one nonce sequence."""

    def __init__(self, message: str):
        super().__init__(message, retriable=False)


_LOCKS: dict[str, int] = {}  # lock file -> the descriptor this process holds it through
_LOCKS_GUARD = threading.Lock()


class Journal:
    """The batch in flight, on disk: readable by its owner only, never written through a symlink."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def acquire(self) -> None:
        """Take the journal's exclusive lock for this process (kept until it exits or :meth:`release`);
        :class:`JournalLocked` when another process holds it."""
        key = str(self.lock_path.resolve())
        with _LOCKS_GUARD:
            if key in _LOCKS:
                return
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise AttestError(f"cannot open the attester lock {self.lock_path}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise JournalLocked(f"another attester is running on this journal: {self.lock_path} is locked by pid "
                                    f"{holder} (run exactly one attester per key and registry; on Kubernetes the "
                                    "chart's attest StatefulSet)") from None
            except OSError as exc:
                os.close(fd)
                raise AttestError(f"cannot lock {self.lock_path}: {exc.strerror}") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _LOCKS[key] = fd

    def release(self) -> None:
        with _LOCKS_GUARD:
            fd = _LOCKS.pop(str(self.lock_path.resolve()), None)
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock

    def load(self) -> tuple[Plan, int, list[Sent]] | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if os.path.islink(self.path):
                raise AttestError(f"attestation journal {self.path} is a symlink; refusing to follow it") from None
            raise AttestError(f"cannot read attestation journal {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            d = json.loads(fh.read())
        p = d["plan"]
        plan = Plan(**{**p, "alerts": [tuple(x) for x in p["alerts"]], "models": list(p.get("models", []))})
        return plan, int(d["nonce"]), [Sent(**s) for s in d["sent"]]

    def save(self, plan: Plan, nonce: int, sent: list[Sent]) -> None:
        body = json.dumps({"plan": asdict(plan), "nonce": nonce, "sent": [asdict(s) for s in sent]}).encode()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            os.unlink(tmp)  # whatever is there (a planted symlink included) goes; O_EXCL then refuses any new one
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        os.replace(tmp, self.path)  # replaces a symlink itself, never its target
        _fsync_dir(self.path.parent)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RootTaken(AttestError):
    """This attester attested the plan's root already, as a batch with another range, count or model."""

    def __init__(self, message: str, batch_id: int):
        super().__init__(message, retriable=True)
        self.batch_id = batch_id


class Attester:
    def __init__(self, chain: AttestChain, account: LocalAccount, journal: Journal, fees: FeePolicy, *,
                 confirmations: int = 1, receipt_timeout_s: float = 900.0, stop: threading.Event | None = None,
                 poll_s: float = 0.5):
        self.chain, self.account, self.journal, self.fees = chain, account, journal, fees
        self.confirmations = confirmations
        self.receipt_timeout_s = receipt_timeout_s
        self.stop = stop or threading.Event()
        self.poll_s = poll_s
        self.gas_total = 0
        self.replacements = 0
        self.capped = 0  # replacements not sent because a fee cap binds

    # --- public ---------------------------------------------------------------------------------
    def pending(self) -> Plan | None:
        j = self.journal.load()
        return j[0] if j else None

    def attest(self, plan: Plan) -> Attested | None:
        """Put ``plan`` on chain (or adopt this attester's identical batch); None when stopped first.
        The journal stays until :meth:`done`."""
        self.journal.acquire()
        existing = self._own_batch(plan)
        if existing:
            self.journal.save(plan, -1, [])  # nothing sent: the batch is on chain; its proofs are owed
            return Attested(existing, None, None, None, adopted=True)
        self._simulate(plan)
        nonce = self.chain.w3.eth.get_transaction_count(self.account.address, "pending")
        first = self._fees(None)
        assert first is not None  # (None only for a replacement)
        sent = [self._sign(plan, nonce, *first)]
        self.journal.save(plan, nonce, sent)  # before the broadcast: a crash from here on resumes this batch
        self._broadcast(sent[-1])
        return self._await(plan, nonce, sent)

    def done(self, plan: Plan) -> None:
        """The batch of ``plan`` is on chain and its proofs are stored: forget it."""
        j = self.journal.load()
        if j is not None and j[0].root == plan.root:
            self.journal.clear()

    def resume(self) -> tuple[Plan, Attested | None] | None:
        """Finish the batch a previous run left in flight. None when there is none.
        ``(plan, None)``: the batch did not land and its nonce went elsewhere (plan again),
        or this process was stopped while waiting."""
        self.journal.acquire()
        j = self.journal.load()
        if j is None:
            return None
        plan, nonce, sent = j
        log.info("resuming the batch in flight", root=plan.root, nonce=nonce, txs=len(sent))
        try:
            bid = self._own_batch(plan)
        except RootTaken:
            self.journal.clear()
            raise
        if bid:
            rec = self._any_receipt(sent)
            return plan, Attested(bid, "0x" + bytes(rec["transactionHash"]).hex() if rec else None,
                                  int(rec["blockNumber"]) if rec else None, int(rec["gasUsed"]) if rec else None,
                                  adopted=rec is None)
        if not sent:  # an adopted batch whose root is no longer on chain (reorganised away): plan again
            self.journal.clear()
            return plan, None
        mined_nonce = self.chain.w3.eth.get_transaction_count(self.account.address, "latest")
        if mined_nonce > nonce and self._any_receipt(sent) is None:
            log.warning("the batch in flight did not land and its nonce was used; planning again", root=plan.root)
            self.journal.clear()
            return plan, None
        if self._any_receipt(sent) is None:
            self._broadcast(sent[-1])
        return plan, self._await(plan, nonce, sent)

    # --- steps ------------------------------------------------------------------------------------
    def _own_batch(self, plan: Plan) -> int:
        """This attester's batch of ``plan.root`` when it matches the plan; 0 when there is none;
        :class:`RootTaken` when it is there with another range, count or model."""
        bid = self.chain.batch_id_of(self.account.address, _b32(plan.root))
        if not bid:
            return 0
        b = self.chain.batch(bid)
        want = (self.account.address, plan.from_block, plan.to_block, plan.count, _b32(plan.model_hash))
        got = (b.attester, b.from_block, b.to_block, b.count, b.model_hash)
        if got != want:
            raise RootTaken(f"root {plan.root} is already this attester's batch {bid} with blocks {b.from_block}.."
                            f"{b.to_block}, {b.count} alerts, model 0x{b.model_hash.hex()} (the plan: blocks "
                            f"{plan.from_block}..{plan.to_block}, {plan.count} alerts, model {plan.model_hash})", bid)
        return bid

    def _call_args(self, plan: Plan) -> tuple:
        return (_b32(plan.root), plan.from_block, plan.to_block, plan.count, _b32(plan.model_hash), plan.uri)

    def _simulate(self, plan: Plan) -> None:
        fn = self.chain.registry.functions.attest(*self._call_args(plan))
        try:
            fn.call({"from": self.account.address})
        except Exception as exc:  # noqa: BLE001 - web3 raises ContractCustomError, ContractLogicError, ...
            data = getattr(exc, "data", None)
            why = decode_revert(data) if isinstance(data, (str, bytes)) and data not in ("", "0x") else str(exc)[:200]
            raise AttestError(f"the registry at {self.chain.address} refuses the batch: {why}",
                              retriable=not why.startswith(("NotAttester", "RangeNotAfter", "BadRange"))) from None

    def _fees(self, prev: Sent | None) -> tuple[int, int] | None:
        """(max fee, tip) for the first transaction or a replacement of ``prev``. None: a
        replacement would not be 12.5% above ``prev`` on both fees within the caps (keep
        waiting for ``prev``). AttestError (retriable) while the base fee is above the cap."""
        latest = self.chain.w3.eth.get_block("latest")
        base = int(latest.get("baseFeePerGas", 0) or 0)
        cap, tip_cap = self.fees.max_fee_wei, self.fees.tip_cap
        prio = min(self.fees.priority_fee_wei, tip_cap)
        if base + prio > cap:
            raise AttestError(f"base fee {base / GWEI:.1f} gwei is above the cap of {cap / GWEI:.1f} gwei; "
                              "holding the batch", retriable=True)
        if prev is None:
            return min(2 * base + prio, cap), prio
        prio = max(prio, _bump(prev.priority_fee))
        max_fee = max(2 * base + prio, _bump(prev.max_fee))
        if prio > tip_cap or max_fee > cap:
            return None
        return max_fee, prio

    def _sign(self, plan: Plan, nonce: int, max_fee: int, prio: int) -> Sent:
        fn = self.chain.registry.functions.attest(*self._call_args(plan))
        gas = int(fn.estimate_gas({"from": self.account.address}) * 1.25) + 10_000
        tx = fn.build_transaction({"from": self.account.address, "nonce": nonce, "gas": gas, "chainId": self.chain.chain_id,
                                   "maxFeePerGas": max_fee, "maxPriorityFeePerGas": prio})
        signed = self.account.sign_transaction(tx)
        return Sent("0x" + bytes(signed.hash).hex(), "0x" + bytes(signed.raw_transaction).hex(), max_fee, prio, time.time())

    def _broadcast(self, s: Sent) -> None:
        try:
            self.chain.send_raw(bytes.fromhex(s.raw[2:]))
        except Exception as exc:  # noqa: BLE001
            msg = str(exc).lower()
            if "known" in msg or "already" in msg or "nonce too low" in msg:
                return  # the node has it, or it was mined: the receipt poll decides
            raise AttestError(f"broadcasting the attestation failed: {str(exc)[:200]}", retriable=True) from None
        log.info("attestation sent", tx=s.tx_hash, max_fee_gwei=round(s.max_fee / GWEI, 3),
                 priority_fee_gwei=round(s.priority_fee / GWEI, 3))

    def _any_receipt(self, sent: list[Sent]):
        for s in sent:
            try:
                r = self.chain.w3.eth.get_transaction_receipt(s.tx_hash)
            except Exception:  # noqa: BLE001 - TransactionNotFound and node hiccups alike
                r = None
            if r is not None:
                return r
        return None

    def _replace(self, plan: Plan, nonce: int, sent: list[Sent]) -> None:
        """Not mined in time: re-sign with higher fees, unless a cap keeps the raise below 12.5%."""
        if self.chain.w3.eth.get_transaction_count(self.account.address, "latest") > nonce:
            return  # mined, receipt not served yet
        try:
            fees = self._fees(sent[-1])
        except AttestError as exc:
            log.warning("cannot raise fees; waiting", error=str(exc))
            sent[-1].sent_at = time.time()
            return
        if fees is None:
            self.capped += 1
            if self.capped == 1 or self.capped % 10 == 0:
                log.warning("fees at their caps: no replacement (a node would refuse it as under-priced); "
                            "waiting for the transaction already sent", tx=sent[-1].tx_hash,
                            max_fee_gwei=round(sent[-1].max_fee / GWEI, 3), priority_fee_gwei=round(sent[-1].priority_fee / GWEI, 3))
            sent[-1].sent_at = time.time()
            return
        s = self._sign(plan, nonce, *fees)
        try:
            self._broadcast(s)
        except AttestError as exc:  # refused (under-priced, ...): not journaled, keep waiting for the last one
            log.warning("replacement refused; waiting for the transaction already sent", error=str(exc)[:200])
            sent[-1].sent_at = time.time()
            return
        sent.append(s)
        self.journal.save(plan, nonce, sent)
        self.replacements += 1

    def _await(self, plan: Plan, nonce: int, sent: list[Sent]) -> Attested | None:
        deadline = time.monotonic() + self.receipt_timeout_s
        while not self.stop.is_set():
            rec = self._any_receipt(sent)
            if rec is not None:
                if rec["status"] != 1:
                    bid = self._own_batch(plan)
                    if bid:  # an earlier transaction of ours with this batch landed first
                        return Attested(bid, None, None, None, adopted=True)
                    self.journal.clear()  # the nonce is spent and the batch is not on chain: plan again
                    raise AttestError(f"attestation tx 0x{bytes(rec['transactionHash']).hex()} reverted", retriable=True)
                head = self.chain.w3.eth.block_number
                if head - int(rec["blockNumber"]) + 1 >= self.confirmations:
                    bid = self._own_batch(plan)
                    if bid:  # (0: the receipt's block was reorganised away meanwhile: wait on)
                        self.gas_total += int(rec["gasUsed"])
                        return Attested(bid, "0x" + bytes(rec["transactionHash"]).hex(), int(rec["blockNumber"]),
                                        int(rec["gasUsed"]))
            elif time.time() - sent[-1].sent_at > self.fees.replace_after_s:
                self._replace(plan, nonce, sent)
            if time.monotonic() > deadline:
                raise AttestError(f"attestation not confirmed after {self.receipt_timeout_s:.0f} s "
                                  f"(txs {', '.join(s.tx_hash for s in sent)}); kept in flight", retriable=True)
            self.stop.wait(self.poll_s)
        return None


def _bump(fee: int) -> int:
    """12.5% more, rounded up: above the 10% a node wants from a replacement."""
    return fee + (fee + 7) // 8


def _b32(h: str) -> bytes:
    b = bytes.fromhex(h.removeprefix("0x")) if h else b""
    return b.rjust(32, b"\0")
