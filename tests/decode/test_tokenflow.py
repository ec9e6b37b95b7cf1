"""Transfers-only decoding (monitor/decode/tokenflow.py): swaps inferred from token transfers, as
for a protocol no decoder knows. On constructed flows: a two-hop route gives one swap per hop in
either transfer order (V2 pays first, V3 is paid in a callback), forwarders, the trader, its
router or bot, and mints/burns are never pools. On the real mainnet blocks: the block rules on
the inferred swaps recover every sandwich the full decoders find, and at least 90% of all attacks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

from mevwatch.monitor.decode.tokenflow import infer_swaps, make_decoder
from mevwatch.monitor.engine import analyse
from mevwatch.monitor.types import ZERO_ADDRESS, Transaction, Transfer

USER, ROUTER, P1, P2 = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "a1" * 20, "0x" + "a2" * 20
WETH, DAI, USDC, LP = "0x" + "e0" * 20, "0x" + "d0" * 20, "0x" + "c0" * 20, "0x" + "f0" * 20


def tx() -> Transaction:
    return Transaction("0x" + "ab" * 32, 7, USER, ROUTER, "0x", 0, 1)


def xfer(token: str, frm: str, to: str, amount: int, order: int) -> Transfer:
    return Transfer(token, frm, to, amount, "0x" + "ab" * 32, 7, order)


def test_a_two_hop_route_is_one_swap_per_hop_in_either_order():
    v2 = [xfer(WETH, USER, P1, 10, 1), xfer(DAI, P1, P2, 300, 2), xfer(USDC, P2, USER, 299, 3)]
    v3 = [xfer(DAI, P1, P2, 300, 1), xfer(USDC, P2, USER, 299, 2), xfer(WETH, USER, P1, 10, 3)]  # paid in callbacks
    for flow in (v2, v3):
        swaps = infer_swaps(tx(), flow)
        assert {(s.pool, s.token_in, s.token_out, s.amount_in, s.amount_out) for s in swaps} == {
            (P1, WETH, DAI, 10, 300), (P2, DAI, USDC, 300, 299)}
        assert [s.order for s in swaps] == sorted(s.order for s in swaps)
        assert {s.protocol for s in swaps} == {"transfers"} and all(s.tx_from == USER and s.tx_to == ROUTER for s in swaps)
        assert {s.pool: s.sender for s in swaps} == {P1: USER, P2: P1}


def test_forwarders_traders_routers_and_liquidity_are_not_pools():
    # the router forwards the same token: no swap; the trader and the called contract are never pools
    assert infer_swaps(tx(), [xfer(WETH, USER, ROUTER, 10, 1), xfer(WETH, ROUTER, P1, 10, 2)]) == []
    assert infer_swaps(tx(), [xfer(WETH, P1, USER, 10, 1), xfer(DAI, USER, P1, 300, 2)])[0].pool == P1  # USER is not a pool
    # adding liquidity: the pool mints its LP token (from the zero address) -> no swap
    add = [xfer(WETH, USER, P1, 10, 1), xfer(DAI, USER, P1, 300, 2), xfer(LP, ZERO_ADDRESS, USER, 5, 3)]
    assert infer_swaps(tx(), add) == []
    # removing it: the pool receives LP and burns it, pays two tokens -> no swap
    remove = [xfer(LP, USER, P1, 5, 1), xfer(LP, P1, ZERO_ADDRESS, 5, 2), xfer(WETH, P1, USER, 10, 3), xfer(DAI, P1, USER, 300, 4)]
    assert infer_swaps(tx(), remove) == []
    # a Compound-style cToken: takes USDC, pays its own token (minted shares) -> no swap
    ctoken = "0x" + "cc" * 20
    assert infer_swaps(tx(), [xfer(USDC, USER, ctoken, 100, 1), xfer(ctoken, ctoken, USER, 4_000, 2)]) == []


def test_transfers_only_recovers_the_full_rules_attacks_on_real_blocks(load_block, all_block_numbers):
    full_d, flow_d = make_decoder("full"), make_decoder("transfers")
    found, total = Counter(), Counter()
    for n in all_block_numbers:
        full = {(a.kind, tuple(sorted(t.hash for t in a.txs))) for a in analyse(full_d, load_block(n)).alerts}
        flow = {(a.kind, tuple(sorted(t.hash for t in a.txs))) for a in analyse(flow_d, load_block(n)).alerts}
        for k in full:
            total[k[0]] += 1
            found[k[0]] += k in flow
    assert total["sandwich"] >= 5 and found["sandwich"] == total["sandwich"], (found, total)
    assert sum(found.values()) >= 0.9 * sum(total.values()), (found, total)


def _replay_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "replay", *args], capture_output=True, text=True,
                          timeout=600)


def test_replay_decoders_transfers_through_the_cli_and_its_workers(traces_dir, tmp_path):
    """`mevwatch replay --decoders transfers` (two worker processes) raises the same sandwiches, under
    the same alert ids, as the full decoders, and its swaps are the inferred ones."""
    runs = {}
    blocks = [str(p) for p in sorted(traces_dir.glob("*.json.gz"))]  # the blocks, not the reference files beside them
    for mode in ("full", "transfers"):
        out = tmp_path / f"{mode}.jsonl"
        r = _replay_cli(*blocks, "--decoders", mode, "--workers", "2", "--out", str(out), "-q")
        assert r.returncode == 0, r.stderr
        runs[mode] = [json.loads(line) for line in out.read_text().splitlines()]
    sandwiches = {m: {a["alert_id"] for a in alerts if a["kind"] == "sandwich"} for m, alerts in runs.items()}
    assert len(sandwiches["full"]) >= 5 and sandwiches["transfers"] == sandwiches["full"]
    routes = [r for a in runs["transfers"] if a["kind"] == "arbitrage" for r in a["evidence"].get("route", [])]
    assert routes and {r["protocol"] for r in routes} == {"transfers"}
    bad = _replay_cli(str(traces_dir), "--decoders", "logs", "--out", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "--decoders must be full or transfers" in bad.stderr
