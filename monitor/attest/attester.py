"""Sending one batch's ``attest`` transaction, safely across crashes.

- Journal first: the batch plan and every signed transaction are written (fsync,
  atomic rename) to ``<data_dir>/attest/inflight.json`` before they are broadcast. A
  restarted attester finishes that batch before planning another: if the chain holds
  its root, it is done; if the nonce is still free, the same signed transaction is
  broadcast again; if the nonce went to something else and the root is not on chain,
  the batch is planned afresh. So no alert is ever attested in two batches.
- Dry run first: ``attest`` is simulated with ``eth_call``; a root already on chain
  (``DuplicateRoot``) is adopted, other reverts (``NotAttester``) are errors.
- Fees (EIP-1559): priority fee ``priority_fee_gwei``, max fee 2 x base fee + priority,
  never above ``max_fee_gwei`` (the batch waits while the base fee is higher). Not mined
  after ``replace_after_s``: the same nonce re-signed with fees 12.5% higher.
- Confirmation: the receipt must succeed and sit ``confirmations`` blocks deep.
"""

from __future__ import annotations

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
    adopted: bool = False  # the root was on chain already (an earlier run, or another attester)


@dataclass
class FeePolicy:
    priority_fee_wei: int
    max_fee_wei: int
    replace_after_s: float

    @classmethod
    def from_settings(cls, a: Any) -> FeePolicy:
        return cls(int(a.priority_fee_gwei * GWEI), int(a.max_fee_gwei * GWEI), a.replace_after_s)


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> tuple[Plan, int, list[Sent]] | None:
        if not self.path.exists():
            return None
        d = json.loads(self.path.read_text())
        plan = Plan(**{**d["plan"], "alerts": [tuple(x) for x in d["plan"]["alerts"]]})
        return plan, int(d["nonce"]), [Sent(**s) for s in d["sent"]]

    def save(self, plan: Plan, nonce: int, sent: list[Sent]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump({"plan": asdict(plan), "nonce": nonce, "sent": [asdict(s) for s in sent]}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


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

    # --- public ---------------------------------------------------------------------------------
    def pending(self) -> Plan | None:
        j = self.journal.load()
        return j[0] if j else None

    def attest(self, plan: Plan) -> Attested | None:
        """Put ``plan`` on chain (or adopt it when its root is there); None when stopped first."""
        existing = self.chain.batch_id_of(_b32(plan.root))
        if existing:
            self.journal.clear()
            return Attested(existing, None, None, None, adopted=True)
        self._simulate(plan)
        nonce = self.chain.w3.eth.get_transaction_count(self.account.address, "pending")
        sent = [self._sign(plan, nonce, *self._fees(None))]
        self.journal.save(plan, nonce, sent)  # before the broadcast: a crash from here on resumes this batch
        self._broadcast(sent[-1])
        return self._await(plan, nonce, sent)

    def resume(self) -> tuple[Plan, Attested | None] | None:
        """Finish the batch a previous run left in flight. None when there is none.
        ``(plan, None)``: the batch did not land and its nonce went elsewhere (plan again),
        or this process was stopped while waiting."""
        j = self.journal.load()
        if j is None:
            return None
        plan, nonce, sent = j
        log.info("resuming the batch in flight", root=plan.root, nonce=nonce, txs=len(sent))
        bid = self.chain.batch_id_of(_b32(plan.root))
        if bid:
            rec = self._any_receipt(sent)
            self.journal.clear()
            return plan, Attested(bid, "0x" + bytes(rec["transactionHash"]).hex() if rec else None,
                                  int(rec["blockNumber"]) if rec else None, int(rec["gasUsed"]) if rec else None,
                                  adopted=rec is None)
        mined_nonce = self.chain.w3.eth.get_transaction_count(self.account.address, "latest")
        if mined_nonce > nonce and self._any_receipt(sent) is None:
            log.warning("the batch in flight did not land and its nonce was used; planning again", root=plan.root)
            self.journal.clear()
            return plan, None
        if self._any_receipt(sent) is None:
            self._broadcast(sent[-1])
        return plan, self._await(plan, nonce, sent)

    # --- steps ------------------------------------------------------------------------------------
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
                              retriable="NotAttester" not in why) from None

    def _fees(self, prev: Sent | None) -> tuple[int, int]:
        latest = self.chain.w3.eth.get_block("latest")
        base = int(latest.get("baseFeePerGas", 0) or 0)
        prio = self.fees.priority_fee_wei
        if prev is not None:
            prio = max(prio, prev.priority_fee * 9 // 8 + 1)
        max_fee = 2 * base + prio
        if prev is not None:
            max_fee = max(max_fee, prev.max_fee * 9 // 8 + 1)
        if base + prio > self.fees.max_fee_wei:
            raise AttestError(f"base fee {base / GWEI:.1f} gwei is above the cap of {self.fees.max_fee_wei / GWEI:.1f} gwei; "
                              "holding the batch", retriable=True)
        return min(max_fee, self.fees.max_fee_wei), min(prio, self.fees.max_fee_wei)

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

    def _await(self, plan: Plan, nonce: int, sent: list[Sent]) -> Attested | None:
        deadline = time.monotonic() + self.receipt_timeout_s
        while not self.stop.is_set():
            rec = self._any_receipt(sent)
            if rec is not None:
                if rec["status"] != 1:
                    bid = self.chain.batch_id_of(_b32(plan.root))
                    self.journal.clear()
                    if bid:  # someone attested the same root first: the batch is on chain all the same
                        return Attested(bid, None, None, None, adopted=True)
                    raise AttestError(f"attestation tx 0x{bytes(rec['transactionHash']).hex()} reverted", retriable=True)
                head = self.chain.w3.eth.block_number
                if head - int(rec["blockNumber"]) + 1 >= self.confirmations:
                    bid = self.chain.batch_id_of(_b32(plan.root))
                    if bid:  # (0: the receipt's block was reorganised away meanwhile: wait on)
                        self.gas_total += int(rec["gasUsed"])
                        self.journal.clear()
                        return Attested(bid, "0x" + bytes(rec["transactionHash"]).hex(), int(rec["blockNumber"]),
                                        int(rec["gasUsed"]))
            elif time.time() - sent[-1].sent_at > self.fees.replace_after_s:
                if self.chain.w3.eth.get_transaction_count(self.account.address, "latest") > nonce:
                    pass  # mined, receipt not served yet
                else:
                    try:
                        s = self._sign(plan, nonce, *self._fees(sent[-1]))
                    except AttestError as exc:
                        log.warning("cannot raise fees; waiting", error=str(exc))
                        sent[-1].sent_at = time.time()
                    else:
                        sent.append(s)
                        self.journal.save(plan, nonce, sent)
                        self.replacements += 1
                        self._broadcast(s)
            if time.monotonic() > deadline:
                raise AttestError(f"attestation not confirmed after {self.receipt_timeout_s:.0f} s "
                                  f"(txs {', '.join(s.tx_hash for s in sent)}); kept in flight", retriable=True)
            self.stop.wait(self.poll_s)
        return None


def _b32(h: str) -> bytes:
    b = bytes.fromhex(h.removeprefix("0x")) if h else b""
    return b.rjust(32, b"\0")
