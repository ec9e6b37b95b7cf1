"""The alert record: the JSONL contract between mevwatch and everything downstream.

See docs/alerts.md for every field; kinds, stages, roles and detectors are the enums of
monitor/kinds.py (plain strings here: this module is compiled with mypyc). ``alert_id`` is the keccak-256 of
``"{chain_id}|{kind}|{hash,hash,...}"`` over the sorted hashes of the transactions
that define the alert: every transaction except victims, or the victims when an
alert has only those (``exposed_swap``). So the same attack gets the same id in
every run and every sink, and can move from stage to stage without duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from eth_hash.auto import keccak

SCHEMA_VERSION = 1


@dataclass(slots=True)
class AlertTx:
    hash: str
    position: int | None
    role: str
    # order flow (monitor/fates.py): before | after | never | unknown; None until the alert is included
    mempool: str | None = None
    lead_ms: int | None = None  # block timestamp minus first sight in our mempool (negative: seen after)

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.hash, "position": self.position, "role": self.role, "mempool": self.mempool,
                "lead_ms": self.lead_ms}


@dataclass(slots=True)
class Amount:
    """Money in an alert (docs/alerts.md, "Amounts"): ``by_token`` every token's exact amount;
    ``eth`` the ETH value of their sum (None when any is unpriced), ``usd`` its USD value (None
    without a same-block stablecoin price); ``token``/``amount`` the headline entry of ``by_token``."""

    token: str
    amount: int
    eth: float | None
    usd: float | None = None
    by_token: dict[str, int] | None = None  # None: only the headline token (``{token: amount}``)

    def to_json(self) -> dict[str, Any]:
        parts = self.by_token if self.by_token is not None else {self.token: self.amount}
        return {"token": self.token, "amount": f"{self.amount}", "eth": self.eth, "usd": self.usd,
                "by_token": {t: f"{a}" for t, a in sorted(parts.items())}}


@dataclass(slots=True)
class Alert:
    kind: str
    stage: str
    chain_id: int
    block_number: int | None
    block_hash: str | None
    txs: list[AlertTx]
    attackers: list[str]
    victims: list[str]
    pools: list[str]
    tokens: list[str]
    profit: Amount | None
    victim_loss: Amount | None
    gas_cost_wei: int | None
    evidence: dict[str, Any]
    detector: str = "rules"
    score: float = 1.0
    model_hash: str | None = None
    alert_id: str = field(default="")
    # public | private | partly_private | unknown: were the attack legs in our mempool before inclusion
    order_flow: str | None = None

    def __post_init__(self) -> None:
        if not self.alert_id:
            self.alert_id = compute_alert_id(self.chain_id, self.kind, self.txs)

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "stage": self.stage,
            "chain_id": self.chain_id,
            "block_number": self.block_number,
            "block_hash": self.block_hash,
            "txs": [t.to_json() for t in self.txs],
            "attackers": self.attackers,
            "victims": self.victims,
            "pools": self.pools,
            "tokens": self.tokens,
            "profit": self.profit.to_json() if self.profit else None,
            "victim_loss": self.victim_loss.to_json() if self.victim_loss else None,
            "gas_cost_wei": f"{self.gas_cost_wei}" if self.gas_cost_wei is not None else None,
            "detector": self.detector,
            "score": self.score,
            "model_hash": self.model_hash,
            "evidence": self.evidence,
            "order_flow": self.order_flow,
        }

    def to_jsonl(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS) + b"\n"


def compute_alert_id(chain_id: int, kind: str, txs: list[AlertTx]) -> str:
    defining = sorted({t.hash.lower() for t in txs if t.role != "victim"})
    if not defining:
        defining = sorted({t.hash.lower() for t in txs})
    return "0x" + keccak(f"{chain_id}|{kind}|{','.join(defining)}".encode()).hex()


def _amount(obj: dict[str, Any] | None) -> Amount | None:
    if obj is None:
        return None
    parts = obj.get("by_token")  # records written before the per-token breakdown lack it
    return Amount(obj["token"], int(obj["amount"]), obj.get("eth"), obj.get("usd"),
                  {t: int(a) for t, a in parts.items()} if parts is not None else None)


def alert_from_json(obj: dict[str, Any]) -> Alert:
    """The inverse of :meth:`Alert.to_json` (the alert id is kept, not recomputed)."""
    gas = obj.get("gas_cost_wei")
    return Alert(
        kind=obj["kind"], stage=obj["stage"], chain_id=int(obj["chain_id"]), block_number=obj.get("block_number"),
        block_hash=obj.get("block_hash"),
        txs=[AlertTx(t["hash"], t.get("position"), t["role"], t.get("mempool"), t.get("lead_ms")) for t in obj.get("txs", [])],
        attackers=list(obj.get("attackers", [])), victims=list(obj.get("victims", [])), pools=list(obj.get("pools", [])),
        tokens=list(obj.get("tokens", [])), profit=_amount(obj.get("profit")), victim_loss=_amount(obj.get("victim_loss")),
        gas_cost_wei=int(gas) if gas is not None else None, evidence=obj.get("evidence") or {},
        detector=obj.get("detector", "rules"), score=float(obj.get("score", 1.0)), model_hash=obj.get("model_hash"),
        alert_id=obj["alert_id"], order_flow=obj.get("order_flow"),
    )


def with_stage(alert: Alert, stage: str) -> Alert:
    """A copy of ``alert`` at another stage (same id)."""
    a = alert_from_json(alert.to_json())
    a.stage = stage
    return a


@dataclass(slots=True)
class AlertEvent:
    """One stage of one alert, as every sink receives it.

    ``version`` orders the stages of one alert across sinks and restarts (see
    monitor/store/schema.py); ``first_seen_ns`` is the earliest first sight of any of its
    transactions in the mempool, 0 when none was seen pending.
    """

    alert: Alert
    version: int
    first_seen_ns: int = 0

    @property
    def event_type(self) -> str:
        if self.alert.stage == "retracted":
            return "mev.alert.retracted"
        return f"mev.{self.alert.kind}.{self.alert.stage}"

    @property
    def event_id(self) -> str:
        """Stable per (alert, version): the webhook-id and the outbox's idempotency key."""
        return f"{self.alert.alert_id}-{self.version}"
