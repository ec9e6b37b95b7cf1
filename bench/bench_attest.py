"""Attestation (issues 7 and 15): gas per attestation on a real anvil, the gas of the bounded
paged reads, batch building and proof throughput, verification time, and the embedded chain's cost.

- gas: `attest` from an attester (a hot key; a cold key owns the registry) on anvil (the registry
  compiled by scripts/build_contracts.mjs), for the first batch of an attester and later ones, with
  an empty and a 60-byte `uri`, with a model hash.
- paged reads: `batchesInRange` scanning the most ids one call may (MAX_SCAN = 1,000) and
  `batchesOfInRange` for one attester, over 1,000 batches (eth_estimateGas of the eth_call).
- batch building: real-shaped final alerts (the fields of docs/alerts.md with evidence)
  -> canonical bytes (RFC 8785) -> leaves -> root -> every inclusion proof.
- verify: one alert's leaf + audit path check (no node), per alert.
- embedded chain: open (and replay of its log) and one attestation on py-evm.

Run: .venv/bin/python bench/bench_attest.py  (starts its own anvil)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from eth_account import Account  # noqa: E402
from web3 import HTTPProvider, Web3  # noqa: E402

from mevwatch.monitor.alerts import Alert, AlertTx, Amount  # noqa: E402
from mevwatch.monitor.attest import merkle  # noqa: E402
from mevwatch.monitor.attest.batcher import build_plan, leaf_of  # noqa: E402
from mevwatch.monitor.attest.chain import deploy_registry, open_embedded  # noqa: E402
from mevwatch.sim.anvil import Anvil  # noqa: E402

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil dev account 0: the owner
HOT = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # dev account 1: the attester


def alert(i: int) -> Alert:
    return Alert(kind="sandwich", stage="final", chain_id=1, block_number=21_000_000 + i // 3, block_hash=f"0x{i:064x}",
                 txs=[AlertTx(f"0x{i:062x}a1", 3, "frontrun"), AlertTx(f"0x{i:062x}b2", 4, "victim"), AlertTx(f"0x{i:062x}c3", 5, "backrun")],
                 attackers=[f"0x{i:040x}"], victims=[f"0x{i + 1:040x}"], pools=[f"0x{i + 2:040x}"], tokens=[f"0x{i + 3:040x}"],
                 profit=Amount(f"0x{i + 4:040x}", 10**18 + i, 0.0123 + i / 1e6), victim_loss=Amount(f"0x{i + 3:040x}", 5 * 10**20 + i, 0.0456),
                 gas_cost_wei=210_000 * 10**9,
                 evidence={"frontrun": {"amount_in": f"{10**21 + i}", "amount_out": f"{10**20 + i}"}, "victim_slippage_bps": 37,
                           "pool_reserves_before": [f"{10**24 + i}", f"{10**22}"], "backrun": {"amount_in": f"{10**20}", "amount_out": f"{10**21 + 7 * i}"}})


def gas_figures() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    with tempfile.TemporaryDirectory() as tmp:
        node = Anvil(Path(tmp) / "anvil", block_time=None).start()
        try:
            w3 = Web3(HTTPProvider(node.http_url))
            w3.provider.make_request("evm_setAutomine", [True])
            owner, hot = Account.from_key(KEY), Account.from_key(HOT)
            addr = deploy_registry(w3, owner, hot.address, owner.address)
            from mevwatch.monitor.attest.chain import registry_artifact

            reg = w3.eth.contract(address=addr, abi=registry_artifact()["abi"])
            out = []
            cases = [("", b"\0" * 32), ("", b"\0" * 32), ("https://mevwatch.example.org/batches/0x" + "ab" * 10, b"\0" * 32),
                     ("", b"\x42" * 32)]
            for n, (uri, model) in enumerate(cases):
                root = bytes([n + 1]) * 32
                h = reg.functions.attest(root, 100 * n, 100 * n + 99, 250, model, uri).transact({"from": hot.address})
                r = w3.eth.wait_for_transaction_receipt(h)
                label = ("first batch of an attester" if n == 0 else "a later batch") + (f", uri of {len(uri)} bytes" if uri else ", empty uri")
                label += ", with a model hash" if model != b"\0" * 32 else ""
                out.append((label, int(r["gasUsed"])))
            # 1,000 batches (two attesters taking turns), then the gas of the bounded reads over them
            reg.functions.addAttester(owner.address).transact({"from": owner.address})
            w3.provider.make_request("evm_setAutomine", [False])
            nonces = {a.address: w3.eth.get_transaction_count(a.address) for a in (owner, hot)}
            for i in range(len(cases), 1000):
                who = hot if i % 2 else owner
                reg.functions.attest(i.to_bytes(32, "big"), 1000 * i, 1000 * i + 999, 1, b"\0" * 32, "").transact(
                    {"from": who.address, "nonce": nonces[who.address], "gas": 300_000})
                nonces[who.address] += 1
                if i % 100 == 99:
                    w3.provider.make_request("evm_mine", [])
            w3.provider.make_request("evm_mine", [])
            assert reg.functions.batchCount().call() == 1000
            reads = [("`batchesInRange` scanning 1,000 ids (MAX_SCAN), one call",
                      reg.functions.batchesInRange(0, 2**64 - 1, 1, 1000).estimate_gas()),
                     ("`batchesInRange` scanning 100 ids, one call", reg.functions.batchesInRange(0, 2**64 - 1, 1, 100).estimate_gas()),
                     ("`batchesOfInRange` of one attester, its 10 newest batches",
                      reg.functions.batchesOfInRange(hot.address, 0, 2**64 - 1, 0, 10).estimate_gas()),
                     ("`batchIdOf(attester, root)` (verify's lookup by root)",
                      reg.functions.batchIdOf(hot.address, bytes([1]) * 32).estimate_gas())]
            return out, reads
        finally:
            node.stop()


def main() -> None:
    gas, reads = gas_figures()
    rows = []
    for n in (1_000, 10_000, 100_000):
        alerts = [(alert(i), 8 * i + 3) for i in range(n)]
        t = time.perf_counter()
        plan, leaves = build_plan(alerts, 0, 10**9)
        t_build = time.perf_counter() - t
        t = time.perf_counter()
        tree = merkle.Tree(leaves)
        paths = [tree.proof(i) for i in range(n)]
        t_path = (time.perf_counter() - t) / n
        rows.append((n, t_build, n / t_build, t_path, len(paths[0])))
    # verify: leaf from the record + audit path, per alert
    alerts = [(alert(i), 8 * i + 3) for i in range(10_000)]
    plan, leaves = build_plan(alerts, 0, 10**9)
    order = sorted(range(len(alerts)), key=lambda i: alerts[i][0].alert_id)
    tree = merkle.Tree(leaves)
    t = time.perf_counter()
    reps = 2_000
    root = bytes.fromhex(plan.root[2:])
    for j in range(reps):
        a = alerts[order[j]][0]
        assert merkle.verify_path(leaf_of(a), j, len(leaves), tree.proof(j), root)
    t_verify = (time.perf_counter() - t) / reps

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        chain = open_embedded(Path(tmp))
        t_open = time.perf_counter() - t
        from mevwatch.monitor.attest.attester import Attester, FeePolicy, Journal, Plan

        att = Attester(chain, Account.from_key("0x" + "00" * 31 + "01"), Journal(Path(tmp) / "j.json"),
                       FeePolicy(10**9, 300 * 10**9, 60), poll_s=0.01)
        lat = []
        for i in range(20):
            p = Plan("0x" + bytes([i + 1]).hex() * 32, i * 10, i * 10 + 9, 5, "0x" + "00" * 32, "")
            t = time.perf_counter()
            att.attest(p)
            att.done(p)
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        chain2 = open_embedded(Path(tmp))
        t_reopen = time.perf_counter() - t
        assert chain2.batch_count() == 20
    lat.sort()
    gas_rows = "\n".join(f"| gas per `attest`: {label} | **{g:,} gas** |" for label, g in gas)
    gas_rows += "\n" + "\n".join(f"| gas of a paged read (eth_call): {label} | {g:,} gas |" for label, g in reads)
    build_rows = "\n".join(f"| batch of {n:,} final alerts: canonical bytes + leaves + root | {tb:.2f} s (**{rate:,.0f} alerts/s**) |"
                           for n, tb, rate, _tp, _d in rows)
    path_rows = "\n".join(f"| tree + every inclusion proof, batch of {n:,} ({d} hashes each) | {tp * 1e6:,.1f} µs per alert |"
                          for n, _tb, _r, tp, d in rows)
    body = f"""
anvil (npm @foundry-rs/anvil) for gas; the AttestationRegistry as compiled by scripts/build_contracts.mjs (solc 0.8.30,
optimizer 200 runs): roots keyed per attester, each attester's block ranges strictly increasing, revocable attesters
and batches (docs/attestation.md). Alerts shaped like the rules' sandwiches (three transactions, amounts, evidence).

| measure | result |
|---|---|
{gas_rows}
{build_rows}
{path_rows}
| `verify` offline part (leaf from the record + audit path), batch of 10,000 | {t_verify * 1e6:,.0f} µs per alert |
| embedded chain (py-evm): open with deployment | {t_open:.2f} s |
| embedded chain: one attestation, signed, mined, confirmed (median of 20) | {lat[len(lat) // 2] * 1e3:.0f} ms |
| embedded chain: reopen, replaying its log of 21 transactions | {t_reopen:.2f} s |

At the default batch policy (every 100 final blocks, or 10 minutes) one attestation a batch costs about
{gas[1][1]:,} gas whatever the batch's size: mainnet's ~7,200 blocks a day need 72 attestations, about
{72 * gas[1][1] / 1e6:.1f} M gas a day. The paged reads stay bounded however many batches there are (at most
1,000 ids a call; a node's usual eth_call gas cap is 50 M).
"""
    print(body)
    write_section("attestation", "python bench/bench_attest.py", body)


if __name__ == "__main__":
    main()
