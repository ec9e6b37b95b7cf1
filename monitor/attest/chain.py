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
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from mevwatch.monitor.errors import AttestError, ConfigError

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
EMBEDDED_KEY = "0x" + "00" * 31 + "01"  # eth-tester's first funded account (public test key)


@cache
def registry_artifact() -> dict[str, Any]:
    path = ARTIFACTS / "AttestationRegistry.json"
    if not path.exists():
        raise ConfigError(f"contract artifact {path} is missing; run node scripts/build_contracts.mjs")
    return json.loads(path.read_text())


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


def load_account(settings: Any) -> LocalAccount | None:
    """The attester key from settings: private_key (or its _FILE), or an encrypted keystore."""
    a = settings.attest
    if a.private_key is not None:
        try:
            return Account.from_key(a.private_key.get_secret_value().strip())
        except Exception:  # noqa: BLE001 - never echo the key
            raise ConfigError("attest.private_key is not a valid 32-byte hex key") from None
    if a.keystore is not None:
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
    uri: str


class AttestChain:
    """Web3 on the attestation chain plus the registry; ``send_raw`` goes through here so
    the embedded chain can keep its log."""

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

    def batch_id_of(self, root: bytes) -> int:
        return int(self.registry.functions.batchIdOfRoot(root).call())

    def last_batch_of(self, attester: str) -> int:
        return int(self.registry.functions.lastBatchOf(to_checksum_address(attester)).call())

    def is_attester(self, who: str) -> bool:
        return bool(self.registry.functions.isAttester(to_checksum_address(who)).call())

    def batch(self, batch_id: int) -> OnChainBatch:
        b = self.registry.functions.getBatch(batch_id).call()
        root, model, frm, to, count, at, attester, uri = b
        return OnChainBatch(batch_id, bytes(root), bytes(model), int(frm), int(to), int(count), int(at), attester, uri)

    def batch_count(self) -> int:
        return int(self.registry.functions.batchCount().call())

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
    d.mkdir(parents=True, exist_ok=True)
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
        tx = c.constructor(to_checksum_address(first)).build_transaction(
            {"from": deployer.address, "nonce": 0, "gas": 3_000_000, "chainId": chain.chain_id,
             "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
        chain.send_raw(bytes(deployer.sign_transaction(tx).raw_transaction))
        if attester and to_bytes(hexstr=attester) != to_bytes(hexstr=deployer.address):
            fund = {"to": to_checksum_address(attester), "value": 10**20, "nonce": 1, "gas": 21_000,
                    "chainId": chain.chain_id, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
            chain.send_raw(bytes(deployer.sign_transaction(fund).raw_transaction))
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


def deploy_registry(w3, account: LocalAccount, attester: str | None = None) -> str:
    """Deploy the registry from ``account`` (its owner) on a node; returns the address."""
    import time

    art = registry_artifact()
    c = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    base = w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
    tx = c.constructor(to_checksum_address(attester or account.address)).build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
         "chainId": int(w3.eth.chain_id), "maxFeePerGas": 2 * base + 2 * 10**9, "maxPriorityFeePerGas": 2 * 10**9})
    h = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            r = w3.eth.get_transaction_receipt(h)
            if r["status"] != 1:
                raise AttestError(f"deploying the registry reverted (tx 0x{bytes(h).hex()})")
            return to_checksum_address(r["contractAddress"])
        except AttestError:
            raise
        except Exception:  # noqa: BLE001 - not mined yet
            time.sleep(0.5)
    raise AttestError(f"deploying the registry: tx 0x{bytes(h).hex()} not mined after 120 s", retriable=True)
