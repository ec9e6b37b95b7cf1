"""``mevwatch verify``: check one alert against the chain, step by step.

1. the alert id follows from its chain, kind and transactions (docs/alerts.md);
2. the alert is at stage ``final`` (only final alerts are attested);
3. its canonical encoding hashes to the proof's leaf, and the audit path leads to the proof's root;
4. the registry on the attestation chain holds that root, as the proof's batch, whose
   block range holds the alert's block and whose size is the proof's tree size;
5. an alert scored by a model: the batch names the same model hash, and it is the hash
   of a model shipped here. Alerts of the exact rules name no model and pass this check.

Every check is reported; the alert verifies only when all pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mevwatch.monitor.alerts import alert_from_json, compute_alert_id
from mevwatch.monitor.attest import canonical, merkle
from mevwatch.monitor.attest.chain import AttestChain

ZERO32 = b"\0" * 32


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    alert_id: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok


def shipped_model_hashes() -> set[str]:
    """Content hashes of the models shipped with this installation (models/)."""
    from mevwatch.models import artifact

    return {h.lower() for h in artifact.shipped_hashes()}


def _b(h: str) -> bytes:
    return bytes.fromhex(h.removeprefix("0x"))


def verify_alert(record: dict[str, Any], proof: dict[str, Any] | None, chain: AttestChain | None) -> Verdict:
    aid = str(record.get("alert_id", ""))
    v = Verdict(aid)
    try:
        alert = alert_from_json(record)
        expect = compute_alert_id(alert.chain_id, alert.kind, alert.txs)
        v.add("alert id", expect == aid, "matches its transactions" if expect == aid else f"should be {expect}")
    except (KeyError, TypeError, ValueError) as exc:
        v.add("alert record", False, f"not an alert record: {exc}")
        return v
    if not v.add("stage", alert.stage == "final", "final" if alert.stage == "final" else f"{alert.stage}: only final alerts are attested"):
        return v
    if proof is None:
        v.add("proof", False, "not attested yet (no proof stored for this alert)")
        return v
    try:
        leaf = merkle.leaf_hash(canonical.alert_bytes(record))
        path = [_b(p) for p in proof["path"]]
        root = _b(proof["root"])
        index, size = int(proof["index"]), int(proof["size"])
    except (KeyError, TypeError, ValueError) as exc:
        v.add("proof", False, f"malformed proof: {exc}")
        return v
    v.add("leaf", "0x" + leaf.hex() == str(proof.get("leaf", "")).lower(),
          f"keccak256(0x00 || canonical alert) = 0x{leaf.hex()}"
          + ("" if "0x" + leaf.hex() == str(proof.get("leaf", "")).lower() else f", proof says {proof.get('leaf')}"))
    in_tree = merkle.verify_path(leaf, index, size, path, root)
    v.add("inclusion", in_tree, f"leaf {index} of {size} leads to root {proof['root']}" if in_tree
          else f"the audit path does not lead from this alert's leaf to root {proof['root']}")
    if chain is None:
        v.add("on chain", False, "no attestation chain to check against")
        return v
    if int(proof.get("chain_id", chain.chain_id)) != chain.chain_id:
        v.add("chain", False, f"proof is for chain {proof.get('chain_id')}, the node serves chain {chain.chain_id}")
        return v
    if str(proof.get("contract", chain.address)).lower() != chain.address.lower():
        v.add("contract", False, f"proof names registry {proof.get('contract')}, checking {chain.address}")
        return v
    bid = chain.batch_id_of(root)
    if not v.add("root on chain", bid != 0 and bid == int(proof.get("batch_id", bid)),
                 f"batch {bid} of registry {chain.address} on chain {chain.chain_id}" if bid
                 else f"root {proof['root']} is not attested on registry {chain.address}"):
        return v
    b = chain.batch(bid)
    blk = alert.block_number
    v.add("batch", b.root == root and b.count == size and blk is not None and b.from_block <= blk <= b.to_block,
          f"blocks {b.from_block}..{b.to_block} hold block {blk}; {b.count} alerts" if b.count == size
          else f"batch holds {b.count} alerts, proof says {size}")
    want = (_b(alert.model_hash).rjust(32, b"\0") if alert.model_hash else ZERO32)
    if alert.model_hash:
        shipped = shipped_model_hashes()
        ok = b.model_hash == want and alert.model_hash.lower() in shipped
        v.add("model", ok, f"model {alert.model_hash} " + ("is the shipped model" if alert.model_hash.lower() in shipped
                                                            else "is not a model shipped here")
              + ("" if b.model_hash == want else f"; the batch names model 0x{b.model_hash.hex()}"))
    else:  # raised by the exact rules: no model to check (the batch may name the model that scored its other alerts)
        v.add("model", True, "exact rules, no model" + ("" if b.model_hash == ZERO32 else f" (batch model 0x{b.model_hash.hex()})"))
    return v
