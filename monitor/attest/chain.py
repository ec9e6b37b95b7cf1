"""The attestation chain: a node (any EVM JSON-RPC) or the embedded py-evm chain, the
attester's key, and the AttestationRegistry contract on it.

Embedded chain: with no ``attest.rpc``, mevwatch runs an in-process EVM (py-evm through
eth-tester). Its state lives in this process only, so every signed transaction sent
to it is appended to ``<data_dir>/attest/embedded-chain.jsonl``; opening the chain again
re-executes that log, which rebuilds the same contract state (same roots, batch ids and
block ranges; only timestamps differ). The first transactions deploy the registry from
eth-tester's first funded account, the well-known test key 0x00..01, which is also the
attester unless a key is configured. That key guards nothing: the embedded chain is for
the demo and local runs; production attests on a real chain with its own key.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from mevwatch.monitor.errors import AttestError, ConfigError
from mevwatch.monitor.log import get_logger

log = get_logger("mevwatch.attest")

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
EMBEDDED_KEY = "0x" + "00" * 31 + "01"  # eth-tester's first funded account (public test key)


@cache
def registry_artifact() -> dict[str, Any]:
    path = ARTIFACTS / "AttestationRegistry.json"
    if not path.exists():
        raise ConfigError(f"contract artifact {path} is missing; run node scripts/build_contracts.mjs")
    return json.loads(path.read_text())


@cache
def artifact_code_hash() -> bytes:
    """keccak256 of the registry's runtime code as built (``deployedBytecode``: the registry has no immutables,
    so every deployment carries exactly these bytes)."""
    return keccak(bytes.fromhex(registry_artifact()["deployedBytecode"].removeprefix("0x")))


def error_selectors() -> dict[bytes, dict[str, Any]]:
    out = {}
    for item in registry_artifact()["abi"]:
        if item["type"] == "error":
            sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            out[keccak(text=sig)[:4]] = item
    return out


def decode_revert(data: bytes | str | None) -> str:
    """A registry revert as ``Name(args)``; the raw data when it is not one of its errors."""
    from eth_abi import decode

    if data is None:
        return "reverted (no data)"
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    item = error_selectors().get(bytes(data[:4]))
    if item is None:
        return f"reverted: 0x{bytes(data).hex()}"
    types = [i["type"] for i in item["inputs"]]
    vals = decode(types, bytes(data[4:])) if types else ()
    shown = ", ".join("0x" + v.hex() if isinstance(v, bytes) else to_checksum_address(v) if t == "address" else str(v)
                      for t, v in zip(types, vals))
    return f"{item['name']}({shown})"


_warned_paths: set[str] = set()


def warn_if_readable(path: str | Path, what: str) -> bool:
    """Log a warning (once per file) when a secret's file is readable by its group or others."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not st.st_mode & 0o077:
        return False
    key = f"{what}:{Path(path).resolve()}"
    if key not in _warned_paths:
        _warned_paths.add(key)
        log.warning(f"{what} is readable by its group or others; chmod 600 it", file=str(path),
                    mode=oct(stat.S_IMODE(st.st_mode)))
    return True


def load_account(settings: Any) -> LocalAccount | None:
    """The attester key from settings: private_key (or its _FILE), or an encrypted keystore.
    Warns when the file holding it (or the keystore's password) is group- or world-readable."""
    a = settings.attest
    for var, what in (("MEVWATCH_ATTEST__PRIVATE_KEY_FILE", "the attester key file"),
                      ("MEVWATCH_ATTEST__KEYSTORE_PASSWORD_FILE", "the keystore password file")):
        if os.environ.get(var):
            warn_if_readable(os.environ[var], what)
    if a.private_key is not None:
        try:
            return Account.from_key(a.private_key.get_secret_value().strip())
        except Exception:  # noqa: BLE001 - never echo the key
            raise ConfigError("attest.private_key is not a valid 32-byte hex key") from None
    if a.keystore is not None:
        warn_if_readable(a.keystore, "the attester keystore")
        if a.keystore_password is None:
            raise ConfigError("attest.keystore needs attest.keystore_password (or MEVWATCH_ATTEST__KEYSTORE_PASSWORD_FILE)")
        try:
            blob = json.loads(Path(a.keystore).read_text())
            key = Account.decrypt(blob, a.keystore_password.get_secret_value())
        except OSError as exc:
            raise ConfigError(f"cannot read keystore {a.keystore}: {exc.strerror}") from None
        except ValueError:
            raise ConfigError(f"cannot decrypt keystore {a.keystore}: wrong password or not a keystore") from None
        return Account.from_key(key)
    return None


@dataclass
class OnChainBatch:
    batch_id: int
    root: bytes
    model_hash: bytes
    from_block: int
    to_block: int
    count: int
    attested_at: int
    attester: str
    prev_of_attester: int
    revoked: bool
    uri: str


@dataclass
class AttesterInfo:
    allowed: bool
    revoked: bool
    last_batch: int
    revoked_at_block: int
    valid_through: int


Block = str | int  # a block tag ("latest", "safe", "finalized") or number


class AttestChain:
    """Web3 on the attestation chain plus the registry; ``send_raw`` goes through here so
    the embedded chain can keep its log. Reads take ``block`` (default ``latest``)."""

    def __init__(self, w3, registry_address: str, *, embedded: bool = False, log_path: Path | None = None):
        self.w3 = w3
        self.embedded = embedded
        self.log_path = log_path
        self.chain_id = int(w3.eth.chain_id)
        self.address = to_checksum_address(registry_address)
        self.registry = w3.eth.contract(address=self.address, abi=registry_artifact()["abi"])

    # --- reads --------------------------------------------------------------------------------
    def has_code(self) -> bool:
        return len(self.w3.eth.get_code(self.address)) > 0

    def code_hash(self, block: Block = "latest") -> bytes:
        """keccak256 of the code at the registry's address."""
        return keccak(bytes(self.w3.eth.get_code(self.address, block)))

    def code_matches(self, block: Block = "latest") -> bool:
        """Is the code at the address the registry this mevwatch was built with (its ``deployedBytecode``)?"""
        return self.code_hash(block) == artifact_code_hash()

    def batch_id_of(self, attester: str, root: bytes, block: Block = "latest") -> int:
        """The batch id of ``root`` as attested by ``attester`` (0: it did not attest it)."""
        return int(self.registry.functions.batchIdOf(to_checksum_address(attester), root).call(block_identifier=block))

    def last_batch_of(self, attester: str, block: Block = "latest") -> int:
        return int(self.registry.functions.lastBatchOf(to_checksum_address(attester)).call(block_identifier=block))

    def is_attester(self, who: str, block: Block = "latest") -> bool:
        return bool(self.registry.functions.isAttester(to_checksum_address(who)).call(block_identifier=block))

    def attester_info(self, who: str, block: Block = "latest") -> AttesterInfo:
        allowed, revoked, last, at, through = self.registry.functions.attesterState(to_checksum_address(who)).call(
            block_identifier=block)
        return AttesterInfo(bool(allowed), bool(revoked), int(last), int(at), int(through))

    def batch(self, batch_id: int, block: Block = "latest") -> OnChainBatch:
        b = self.registry.functions.getBatch(batch_id).call(block_identifier=block)
        root, model, frm, to, count, at, attester, prev, revoked, uri = b
        return OnChainBatch(batch_id, bytes(root), bytes(model), int(frm), int(to), int(count), int(at),
                            to_checksum_address(attester), int(prev), bool(revoked), uri)

    def batch_valid(self, batch_id: int, block: Block = "latest") -> bool:
        return bool(self.registry.functions.batchValid(batch_id).call(block_identifier=block))

    def batch_count(self, block: Block = "latest") -> int:
        return int(self.registry.functions.batchCount().call(block_identifier=block))

    def batches_of(self, attester: str, from_block: int = 0, to_block: int = 2**64 - 1, *, page: int = 200,
                   block: Block = "latest") -> list[int]:
        """Ids of ``attester``'s batches overlapping ``from_block..to_block``, oldest first
        (paged reads of ``batchesOfInRange``: bounded gas per call, resumed from its cursor)."""
        out: list[int] = []
        cursor = 0
        fn = self.registry.functions.batchesOfInRange
        while True:
            ids, cursor = fn(to_checksum_address(attester), from_block, to_block, cursor, page).call(block_identifier=block)
            out += [int(i) for i in ids]
            if not cursor:
                return sorted(out)

    def block_number(self, block: Block = "latest") -> int:
        if isinstance(block, int):
            return block
        return int(self.w3.eth.get_block(block)["number"])

    # --- writes -------------------------------------------------------------------------------
    def send_raw(self, raw: bytes) -> bytes:
        h = bytes(self.w3.eth.send_raw_transaction(raw))
        if self.embedded and self.log_path is not None:
            _append_log(self.log_path, raw)
        return h


def _append_log(path: Path, raw: bytes) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps({"raw": "0x" + raw.hex()}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def open_embedded(data_dir: Path, attester: str | None = None) -> AttestChain:
    """The embedded chain under ``data_dir/attest``, rebuilt from its log; the registry deployed on first use."""
    try:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import Web3
        from web3.providers.eth_tester import EthereumTesterProvider
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ConfigError(f"the embedded attestation chain needs eth-tester[py-evm]: {exc}") from None
    import logging

    for name in ("eth", "evm", "eth.vm", "eth_tester", "trie", "py_evm"):
        logging.getLogger(name).setLevel(logging.WARNING)
    d = Path(data_dir) / "attest"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = d / "embedded-chain.jsonl"
    w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
    deployer = Account.from_key(EMBEDDED_KEY)
    if log_path.exists():
        for n, line in enumerate(log_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                w3.eth.send_raw_transaction(bytes.fromhex(json.loads(line)["raw"].removeprefix("0x")))
            except Exception as exc:  # noqa: BLE001
                raise AttestError(f"embedded chain log {log_path} line {n} does not replay: {exc}") from None
    from eth_utils import to_bytes

    address = _create_address(deployer.address, 0)
    chain = AttestChain(w3, address, embedded=True, log_path=log_path)
    if not chain.has_code():
        art = registry_artifact()
        c = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        first = attester or deployer.address
        tx = c.constructor(deployer.address, to_checksum_address(first)).build_transaction(
            {"from": deployer.address, "nonce": 0, "gas": 5_000_000, "chainId": chain.chain_id,
             "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
        chain.send_raw(bytes(deployer.sign_transaction(tx).raw_transaction))
        if attester and to_bytes(hexstr=attester) != to_bytes(hexstr=deployer.address):
            fund = {"to": to_checksum_address(attester), "value": 10**20, "nonce": 1, "gas": 21_000,
                    "chainId": chain.chain_id, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
            chain.send_raw(bytes(deployer.sign_transaction(fund).raw_transaction))
    elif not chain.code_matches():
        raise AttestError(f"the embedded chain in {d} holds a registry other than the one this mevwatch was built "
                          f"with (an older version?); move {d} away to start a new embedded chain")
    return chain


def _create_address(sender: str, nonce: int) -> str:
    import rlp

    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:])


def open_chain(settings: Any, *, rpc: str | None = None, contract: str | None = None,
               account: LocalAccount | None = None) -> AttestChain:
    """The attestation chain named by the settings (or the arguments): a node, or the embedded chain."""
    rpc = rpc or settings.attest.rpc
    contract = contract or settings.attest.contract
    if rpc is None:
        chain = open_embedded(settings.data_dir, account.address if account else None)
        if contract and to_checksum_address(contract) != chain.address:
            raise ConfigError(f"attest.contract {contract} is not the embedded chain's registry {chain.address}")
        return chain
    if not contract:
        raise ConfigError("attesting on a node needs the registry address: attest.contract, --contract, "
                          "or deploy one with mevwatch attest deploy")
    contract = checked_address(contract, "the registry address")
    from web3 import HTTPProvider, Web3

    if not rpc.startswith(("http://", "https://")):
        raise ConfigError(f"attest.rpc must be an http(s) URL, got {rpc.split('://')[0]}://...")
    w3 = Web3(HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    try:
        chain = AttestChain(w3, contract)
    except Exception as exc:  # noqa: BLE001 - connection refused, DNS, ...
        raise AttestError(f"attestation node unreachable: {type(exc).__name__}", retriable=True) from None
    if not chain.has_code():
        raise ConfigError(f"no contract at {contract} on chain {chain.chain_id}")
    return chain


def checked_address(value: str, what: str) -> str:
    """``value`` as a checksummed address; ConfigError naming ``what`` when it is not 20 bytes of hex."""
    from eth_utils import is_address

    if not isinstance(value, str) or not is_address(value.strip()):
        raise ConfigError(f"{what} {value!r} is not an address (0x and 40 hex digits)")
    return to_checksum_address(value.strip())


def _send(w3, account: LocalAccount, tx: dict[str, Any], what: str, timeout_s: float = 120.0):
    """Sign and send ``tx`` from ``account`` with EIP-1559 fees; the receipt once mined (AttestError if it reverts)."""
    import time

    base = w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
    tx = {**tx, "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
          "chainId": int(w3.eth.chain_id), "maxFeePerGas": 2 * base + 2 * 10**9, "maxPriorityFeePerGas": 2 * 10**9}
    if "gas" not in tx:
        tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.2) + 10_000
    h = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            r = w3.eth.get_transaction_receipt(h)
        except Exception:  # noqa: BLE001 - not mined yet
            time.sleep(0.5)
            continue
        if r["status"] != 1:
            raise AttestError(f"{what} reverted (tx 0x{bytes(h).hex()})")
        return r
    raise AttestError(f"{what}: tx 0x{bytes(h).hex()} not mined after {timeout_s:.0f} s", retriable=True)


def deploy_registry(w3, account: LocalAccount, attester: str | None = None, owner: str | None = None) -> str:
    """Deploy the registry from ``account`` on a node; returns the address.

    ``owner`` manages the attesters (default: ``account``; use a cold key or a multisig);
    ``attester`` is allowed to attest from the start (default: none; add one later with
    ``addAttester``). The deploying key is never made an attester implicitly."""
    art = registry_artifact()
    c = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    zero = "0x" + "00" * 20
    data = c.constructor(to_checksum_address(owner or account.address), to_checksum_address(attester or zero)).data_in_transaction
    r = _send(w3, account, {"data": data}, "deploying the registry")
    return to_checksum_address(r["contractAddress"])


def owner_call(chain: AttestChain, name: str, *args: Any) -> bytes:
    """Calldata of an owner function (addAttester, revokeAttester, revokeBatch, transferOwnership), for a multisig."""
    fn = getattr(chain.registry.functions, name)(*args)
    return bytes.fromhex(fn._encode_transaction_data().removeprefix("0x"))


def send_owner_call(chain: AttestChain, account: LocalAccount, name: str, *args: Any):
    """Send an owner function from ``account`` (which must be the owner); the receipt."""
    data = owner_call(chain, name, *args)
    try:
        getattr(chain.registry.functions, name)(*args).call({"from": account.address})
    except Exception as exc:  # noqa: BLE001 - a revert: say which
        d = getattr(exc, "data", None)
        why = decode_revert(d) if isinstance(d, (str, bytes)) and d not in ("", "0x") else str(exc)[:200]
        raise AttestError(f"{name} refused by the registry at {chain.address}: {why}") from None
    return _send(chain.w3, account, {"to": chain.address, "data": "0x" + data.hex()}, name)
