"""``mevwatch verify``: check one alert against the chain, step by step.

What is trusted comes from the verifier's own settings and options (:class:`Trust`), never
from the bundle: the registry address (``attest.contract`` / ``--contract``), the code it
must run (the artifact this mevwatch ships), the attesters whose batches count
(``attest.trusted_attesters`` / ``--attester``, plus the configured key's own address) and
the models (``attest.trusted_models`` / ``--model``: model files hashed from their weights,
or release records naming hashes; by default the shipped model file, hashed).

1. the alert id follows from its chain, kind and transactions (docs/alerts.md);
2. the alert is at stage ``final`` (only final alerts are attested);
3. its canonical encoding hashes to the proof's leaf, and the audit path (index
   ``0 <= index < size``) leads to the proof's root;
4. the proof names the trusted registry and its chain; the code there is the artifact's;
5. the proof's attester is trusted, and *that attester's* batch of the root (looked up by
   root, read at ``finalized`` by default) holds the alert's block and the proof's tree
   size, and is valid (not revoked; its attester not revoked before it);
6. an alert scored by a model: the batch names that model (or a set holding it) and the
   model is one the verifier trusts; rules-only alerts pass;
7. optionally (``--chain-rpc``): the alert's block and transactions are still on the
   monitored chain (no reorganisation after "final").

Malformed input (bad hex, a 31-byte root, a fractional index, a bad model hash, a field of the
wrong type in the alert record or the proof) is an :class:`~monitor.errors.InputError` naming the
field (exit 2, one line; :func:`check_bundle` runs before any node is asked); everything else is
reported per check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from mevwatch.monitor.alerts import Alert, alert_from_json, compute_alert_id
from mevwatch.monitor.attest import canonical, merkle
from mevwatch.monitor.attest.chain import AttestChain, artifact_code_hash
from mevwatch.monitor.errors import ConfigError, InputError

ZERO32 = b"\0" * 32
EMPTY_CODE = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")  # keccak256 of no bytes


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    alert_id: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok


@dataclass
class Trust:
    """What the verifier trusts: from its settings and options, never from the bundle."""

    contract: str  # the registry address (checksummed)
    attesters: set[str]  # checksummed addresses
    models: Callable[[], dict[str, str]]  # model hash (0x, 32 bytes, lowercase) -> where it comes from; lazy
    at: str | int = "finalized"  # the attestation-chain block the registry is read at
    embedded: bool = False


# --- trusted models --------------------------------------------------------------------------

def model_hashes_of(path: Path) -> dict[str, str]:
    """The model hashes a file vouches for: a model file (``.pt``) hashed from its weights and
    metadata, or a release record (JSON with ``model_hash`` or ``models``: a list of hashes)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"model file or release record {path} does not exist")
    if path.suffix == ".json":
        import json

        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"release record {path} is not readable JSON: {exc}") from None
        hashes = doc.get("models", []) if isinstance(doc, dict) else []
        if isinstance(doc, dict) and "model_hash" in doc:
            hashes = [doc["model_hash"], *hashes]
        if not hashes:
            raise ConfigError(f"release record {path} names no model_hash")
        return {hex32(h, f"model hash in {path}"): f"release record {path}" for h in hashes}
    try:
        import torch
    except ImportError:
        raise ConfigError(f"hashing model file {path} needs torch (the gnn extra); or name a release record "
                          "(JSON with model_hash) with --model") from None
    from mevwatch.models.artifact import content_hash

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        h = content_hash(blob["state_dict"], blob["meta"])
    except Exception as exc:  # noqa: BLE001 - not a model file
        raise ConfigError(f"{path} is not a mevwatch model file: {type(exc).__name__}: {str(exc)[:120]}") from None
    return {h.lower(): f"model file {path} (weights hashed)"}


def trusted_models(paths: list[Path]) -> dict[str, str]:
    """Hashes of the named model files / release records; none named: the shipped model file."""
    if not paths:
        from mevwatch.models.artifact import DEFAULT

        if not DEFAULT.exists():
            return {}
        paths = [DEFAULT]
    out: dict[str, str] = {}
    for p in paths:
        out.update(model_hashes_of(p))
    return out


# --- input ----------------------------------------------------------------------------------

def hex32(v: Any, what: str) -> str:
    """``v`` as 0x + 64 lowercase hex digits (exactly 32 bytes); InputError otherwise."""
    if not isinstance(v, str) or not v.startswith(("0x", "0X")):
        raise InputError(f"{what} must be a 0x-prefixed hex string of 32 bytes, got {v!r}"[:200])
    body = v[2:]
    try:
        b = bytes.fromhex(body)
    except ValueError:
        raise InputError(f"{what} {v[:80]!r} is not hex") from None
    if len(body) != 64 or len(b) != 32:
        raise InputError(f"{what} is {len(b)} bytes, not 32: {v[:80]}")
    return "0x" + body.lower()


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"{what} must be an integer, got {v!r}"[:200])
    return v


@dataclass
class ParsedProof:
    root: bytes
    leaf: bytes
    index: int
    size: int
    path: list[bytes]
    batch_id: int | None
    contract: str | None
    chain_id: int | None
    attester: str | None
    models: list[str]


def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_record(record: Any) -> Alert:
    """The alert record's fields, checked for form (InputError naming the field); the alert it holds."""
    if not isinstance(record, dict):
        raise InputError("the alert record is not a JSON object")

    def bad(name: str, want: str) -> InputError:
        return InputError(f"the alert's {name} must be {want}, got {record.get(name)!r}"[:200])

    for name in ("alert_id", "kind", "stage"):
        if not isinstance(record.get(name), str):
            raise bad(name, "a string")
    if not _is_uint(record.get("chain_id")):
        raise bad("chain_id", "a non-negative integer")
    if record.get("block_number") is not None and not _is_uint(record["block_number"]):
        raise bad("block_number", "a non-negative integer or null")
    if record.get("block_hash") is not None and not isinstance(record["block_hash"], str):
        raise bad("block_hash", "a string or null")
    txs = record.get("txs", [])
    if not isinstance(txs, list):
        raise bad("txs", "a list of transactions")
    for i, t in enumerate(txs):
        if not isinstance(t, dict) or not isinstance(t.get("hash"), str) or not isinstance(t.get("role"), str) \
                or (t.get("position") is not None and (isinstance(t["position"], bool) or not isinstance(t["position"], int))):
            raise InputError(f"the alert's txs[{i}] must be an object with a hash and a role (strings) and an integer "
                             f"position, got {t!r}"[:200])
    if record.get("model_hash") is not None:
        hex32(record["model_hash"], "the alert's model_hash")
    try:
        return alert_from_json(record)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"not an alert record: {type(exc).__name__}: {exc}"[:200]) from None


def check_bundle(record: Any, proof: Any) -> None:
    """Both halves of a bundle checked for form, before any node is asked (InputError naming the field)."""
    check_record(record)
    if proof is not None:
        parse_proof(proof)


def parse_proof(proof: Any) -> ParsedProof:
    """The proof's fields, checked for form (InputError); binding fields that are missing stay None."""
    if not isinstance(proof, dict):
        raise InputError("the proof is not a JSON object")
    for k in ("root", "leaf", "index", "size", "path"):
        if k not in proof:
            raise InputError(f"the proof has no {k!r}")
    path = proof["path"]
    if not isinstance(path, list):
        raise InputError("proof path must be a list of 32-byte hex strings")
    contract = proof.get("contract")
    if contract is not None and (not isinstance(contract, str) or not is_address(contract)):
        raise InputError(f"proof contract {contract!r} is not an address"[:200])
    attester = proof.get("attester")
    if attester is not None and (not isinstance(attester, str) or not is_address(attester)):
        raise InputError(f"proof attester {attester!r} is not an address"[:200])
    if proof.get("model_hash") is not None:
        hex32(proof["model_hash"], "proof model_hash")
    models = proof.get("models", [])
    if not isinstance(models, list):
        raise InputError("proof models must be a list of 32-byte hex strings")
    return ParsedProof(
        root=bytes.fromhex(hex32(proof["root"], "proof root")[2:]),
        leaf=bytes.fromhex(hex32(proof["leaf"], "proof leaf")[2:]),
        index=_int(proof["index"], "proof index"),
        size=_int(proof["size"], "proof size"),
        path=[bytes.fromhex(hex32(p, f"proof path entry {i}")[2:]) for i, p in enumerate(path)],
        batch_id=_int(proof["batch_id"], "proof batch_id") if proof.get("batch_id") is not None else None,
        contract=to_checksum_address(contract) if contract else None,
        chain_id=_int(proof["chain_id"], "proof chain_id") if proof.get("chain_id") is not None else None,
        attester=to_checksum_address(attester) if attester else None,
        models=[hex32(m, "proof models entry") for m in models],
    )


# --- the checks -------------------------------------------------------------------------------

def verify_alert(record: dict[str, Any], proof: dict[str, Any] | None, chain: AttestChain | None,
                 trust: Trust | None = None, monitored: Any = None) -> Verdict:
    """Every check of one alert against ``chain`` under ``trust`` (``monitored``: web3 of the monitored chain)."""
    alert = check_record(record)
    aid = str(record.get("alert_id", ""))
    v = Verdict(aid)
    try:
        expect = compute_alert_id(alert.chain_id, alert.kind, alert.txs)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"not an alert record: {exc}") from None
    model_want = hex32(alert.model_hash, "the alert's model_hash") if alert.model_hash else None
    v.add("alert id", expect == aid, "matches its transactions" if expect == aid else f"should be {expect}")
    if not v.add("stage", alert.stage == "final", "final" if alert.stage == "final" else f"{alert.stage}: only final alerts are attested"):
        return v
    if proof is None:
        v.add("proof", False, "not attested yet (no proof stored for this alert)")
        return v
    p = parse_proof(proof)
    leaf = merkle.leaf_hash(canonical.alert_bytes(record))
    v.add("leaf", leaf == p.leaf, f"keccak256(0x00 || canonical alert) = 0x{leaf.hex()}"
          + ("" if leaf == p.leaf else f", proof says 0x{p.leaf.hex()}"))
    root_hex = "0x" + p.root.hex()
    if not 0 <= p.index < p.size:
        v.add("inclusion", False, f"index {p.index} is outside a tree of {p.size} leaves")
    else:
        in_tree = merkle.verify_path(leaf, p.index, p.size, p.path, p.root)
        v.add("inclusion", in_tree, f"leaf {p.index} of {p.size} leads to root {root_hex}" if in_tree
              else f"the audit path does not lead from this alert's leaf to root {root_hex}")
    if chain is None or trust is None:
        v.add("on chain", False, "no attestation chain to check against")
        return v
    at = "latest" if trust.embedded else trust.at
    if trust.embedded:
        v.add("attestation chain", True, f"the EMBEDDED chain of this installation (registry {chain.address}); its key is "
              "public: this shows the alert is what this mevwatch recorded, and proves nothing to anyone else")
        v.notes.append("embedded chain: its key is public; the attestation proves nothing to a third party")
    else:
        v.add("attestation chain", True, f"chain {chain.chain_id}, registry read at the {at} block "
              f"{chain.block_number(at)}")
    # the registry: the one the verifier trusts, whatever the bundle says
    if p.contract is None or p.chain_id is None:
        missing = " and ".join(k for k, x in (("contract", p.contract), ("chain_id", p.chain_id)) if x is None)
        v.add("registry", False, f"the proof does not name its {missing}; it cannot be tied to the trusted registry "
              f"{trust.contract}")
        return v
    same = p.contract == trust.contract and p.chain_id == chain.chain_id
    if not v.add("registry", same, f"registry {p.contract} on chain {p.chain_id} is the trusted one" if same else
                 f"the proof names registry {p.contract} on chain {p.chain_id}; the trusted registry is "
                 f"{trust.contract} on chain {chain.chain_id}"):
        return v
    code = chain.code_hash(at)
    if code == EMPTY_CODE and at != "latest" and chain.code_matches("latest"):
        v.add("registry code", False, f"the registry at {chain.address} is not deployed yet at the {at} block; try again "
              "later (or --at latest)")
        return v
    if not v.add("registry code", code == artifact_code_hash(),
                 f"code hash 0x{code.hex()} is the AttestationRegistry artifact's" if code == artifact_code_hash() else
                 f"the code at {chain.address} (hash 0x{code.hex()}) is not the AttestationRegistry this mevwatch "
                 f"ships (hash 0x{artifact_code_hash().hex()})"):
        return v
    # the attester: trusted by the verifier, and the batch is its own
    if p.attester is None:
        v.add("attester", False, "the proof names no attester")
        return v
    trusted = ", ".join(sorted(trust.attesters)) or "none configured (attest.trusted_attesters or --attester)"
    if not v.add("attester", p.attester in trust.attesters,
                 f"{p.attester} is a trusted attester" if p.attester in trust.attesters
                 else f"{p.attester} is not a trusted attester (trusted: {trusted})"):
        return v
    bid = chain.batch_id_of(p.attester, p.root, at)
    if not bid:
        later = chain.batch_id_of(p.attester, p.root, "latest") if at != "latest" else 0
        v.add("root on chain", False, f"root {root_hex} is attested by {p.attester} as batch {later}, but not yet at the "
              f"{at} block; try again later (or --at latest)" if later else
              f"root {root_hex} is not attested by {p.attester} on registry {chain.address}")
        return v
    shifted = "" if p.batch_id in (None, bid) else f" (the proof says batch {p.batch_id})"
    v.add("root on chain", True, f"batch {bid} of attester {p.attester}, looked up by root{shifted}")
    b = chain.batch(bid, at)
    blk = alert.block_number
    ok = b.root == p.root and b.attester == p.attester and b.count == p.size and blk is not None \
        and b.from_block <= blk <= b.to_block
    v.add("batch", ok, f"blocks {b.from_block}..{b.to_block} hold block {blk}; {b.count} alerts" if ok else
          f"batch {bid}: blocks {b.from_block}..{b.to_block}, {b.count} alerts; the alert's block is {blk}, "
          f"the proof's tree has {p.size} leaves")
    info = chain.attester_info(p.attester, at)
    valid = chain.batch_valid(bid, at)
    if b.revoked:
        why = f"batch {bid} was revoked by the registry's owner"
    elif info.revoked:
        why = (f"attester revoked at block {info.revoked_at_block}; its batches through {info.valid_through} stay valid"
               + ("" if valid else f", batch {bid} is after that"))
    else:
        why = "attester authorised, batch not revoked"
    v.add("authorised", valid, why)
    # the model
    if model_want is None:  # raised by the exact rules: no model to check
        v.add("model", True, "exact rules, no model" + ("" if b.model_hash == ZERO32 else f" (batch model 0x{b.model_hash.hex()})"))
    else:
        v.add("model", *_model_check(model_want, b.model_hash, p.models, trust))
    if monitored is not None:
        v.add("monitored chain", *monitored_check(alert, monitored))
    return v


def _model_check(want: str, batch_model: bytes, listed: list[str], trust: Trust) -> tuple[bool, str]:
    from mevwatch.monitor.attest.batcher import model_set_hash

    bm = "0x" + batch_model.hex()
    if bm == want:
        named = "the batch names it"
    elif listed and want in listed and model_set_hash(listed) == bm:
        named = f"the batch names the set of {len(listed)} models holding it"
    else:
        return False, f"model {want}: the batch names model {bm}"
    try:
        models = trust.models()
    except ConfigError as exc:
        return False, f"model {want}: {named}, but the trusted models cannot be read: {exc}"
    if want in models:
        return True, f"model {want}: {named}; it is the {models[want]}"
    have = ", ".join(f"{h} ({src})" for h, src in sorted(models.items())) or "none"
    return False, f"model {want}: {named}, but it is not a model you trust (--model / attest.trusted_models; trusted: {have})"


def monitored_check(alert: Any, w3: Any) -> tuple[bool, str]:
    """Is the alert's block (and are its transactions) still on the monitored chain?"""
    try:
        cid = int(w3.eth.chain_id)
        if cid != alert.chain_id:
            return False, f"the node serves chain {cid}, the alert is of chain {alert.chain_id}"
        if alert.block_number is None or not alert.block_hash:
            return False, "the alert names no block"
        blk = w3.eth.get_block(alert.block_number)
        have = "0x" + bytes(blk["hash"]).hex()
        if have.lower() != alert.block_hash.lower():
            return False, (f"block {alert.block_number} is now {have}, not the alert's {alert.block_hash}: "
                           "reorganised after the alert was final")
        for t in alert.txs:
            tx = w3.eth.get_transaction(t.hash)
            if tx is None or tx.get("blockHash") is None or "0x" + bytes(tx["blockHash"]).hex() != have.lower():
                return False, f"transaction {t.hash} is not in block {alert.block_number} any more"
            if t.position is not None and t.position >= 0 and int(tx["transactionIndex"]) != t.position:
                return False, f"transaction {t.hash} is at position {tx['transactionIndex']}, not {t.position}"
    except Exception as exc:  # noqa: BLE001 - unreachable node, transaction not found, ...
        return False, f"cannot check the monitored chain: {type(exc).__name__}: {str(exc)[:160]}"
    return True, f"block {alert.block_number} {alert.block_hash} and its {len(alert.txs)} transactions are on chain {cid}"


def trust_from_settings(settings: Any, chain: AttestChain, *, contract: str | None = None,
                        attesters: list[str] | None = None, models: list[Path] | None = None,
                        at: str | None = None) -> Trust:
    """The verifier's trust: the pinned registry, the trusted attesters (settings, options and the
    configured key's own address; the embedded chain: its attester key), the trusted models (lazy)."""
    from mevwatch.monitor.attest.chain import EMBEDDED_KEY, checked_address, load_account

    a = settings.attest
    names = [*a.trusted_attesters, *(attesters or [])]
    trusted: set[str] = {checked_address(x, "trusted attester") for x in names}
    account = load_account(settings)
    if account is not None:
        trusted.add(account.address)
    if chain.embedded:
        if account is None:
            from eth_account import Account

            trusted.add(Account.from_key(EMBEDDED_KEY).address)
        pinned: str = chain.address
    else:
        pinned_raw = contract or a.contract
        if not pinned_raw:
            raise ConfigError("verify needs the official registry address: attest.contract or --contract "
                              "(never the bundle's own)")
        pinned = checked_address(pinned_raw, "the registry address")
    paths = list(models or []) or list(a.trusted_models)
    cache: dict[str, dict[str, str]] = {}

    def load_models() -> dict[str, str]:
        if "m" not in cache:
            cache["m"] = trusted_models(paths)
        return cache["m"]

    return Trust(pinned, trusted, load_models, at or a.verify_at, chain.embedded)
