"""Compiled contract artifacts (sim/artifacts, made by scripts/build_contracts.mjs) and deployment."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import keccak

from mevwatch.monitor.errors import ServiceError

BUILD = Path(__file__).resolve().parent / "artifacts"


@cache
def artifact(name: str) -> dict[str, Any]:
    path = BUILD / f"{name}.json"
    if not path.exists():
        raise ServiceError(f"contract artifact {path} is missing; run node scripts/build_contracts.mjs")
    return json.loads(path.read_text())


def init_code_hash(name: str = "Pair") -> str:
    """keccak256 of a contract's creation code: what CREATE2 pair addresses are derived from."""
    return "0x" + keccak(hexstr=artifact(name)["bytecode"]).hex()


def deploy(w3, name: str, *args: Any, sender: str, gas: int = 6_000_000):
    """Deploy ``name`` from ``sender`` (an unlocked anvil account); mines if the node does not."""
    a = artifact(name)
    factory = w3.eth.contract(abi=a["abi"], bytecode=a["bytecode"])
    tx_hash = factory.constructor(*args).transact({"from": sender, "gas": gas})
    receipt = wait_receipt(w3, tx_hash)
    if receipt["status"] != 1:
        raise ServiceError(f"deploying {name} failed (tx {tx_hash.hex()})")
    return w3.eth.contract(address=receipt["contractAddress"], abi=a["abi"])


def at(w3, name: str, address: str):
    return w3.eth.contract(address=w3.to_checksum_address(address), abi=artifact(name)["abi"])


def wait_receipt(w3, tx_hash, timeout: float = 30.0):
    """The receipt of ``tx_hash``; mines blocks (evm_mine) while it is pending, so this works
    whether the node mines on a timer or not at all."""
    import time

    from web3.exceptions import TransactionNotFound

    deadline = time.monotonic() + timeout
    automine = bool(w3.provider.make_request("anvil_getAutomine", []).get("result"))
    while True:
        try:
            return w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"transaction {tx_hash.hex()} not mined after {timeout:.0f} s")
        if not automine:  # mining only when the node will not: the same seed gives the same block numbers
            w3.provider.make_request("evm_mine", [])
        time.sleep(0.02)
