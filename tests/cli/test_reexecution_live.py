"""Victim loss by counterfactual re-execution on the node (streams/simulate.py, `replay --rpc
--reexecute`), checked on a real anvil running the lab: re-executing each sandwich victim without
the front-run (eth_simulateV1) must give exactly what the pool models give (constant-product replay
of the V2 pairs), and by default (`auto`, only where no exact model exists) the alerts are the
same bytes as without a node's help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services import Anvil
from mevwatch.monitor.errors import NodeError
from mevwatch.monitor.types import Block, Transaction
from mevwatch.sim.runner import Lab
from mevwatch.streams.simulate import TRANSFER_TOPIC as TRANSFER
from mevwatch.streams.simulate import NodeSimulator, http_request

pytestmark = [pytest.mark.anvil]
EXE = str(Path(sys.executable).with_name("mevwatch"))


def replay(url: str, first: int, last: int, out: Path, *extra: str) -> list[dict]:
    r = subprocess.run([EXE, "replay", "--rpc", url, "--from", str(first), "--to", str(last), "--no-gnn", "-q",
                        "--out", str(out), *extra], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in out.read_text().splitlines()]


def test_reexecution_agrees_with_the_exact_models_on_the_lab(tmp_path):
    node = Anvil(tmp_path / "anvil", chain_id=31337).start()
    try:
        lab = Lab(node.http_url, node.ws_url, seed=4)
        lab.setup()
        request = http_request(node.http_url)
        first = int(request("eth_blockNumber", []), 16) + 1
        lab.run(8)
        last = int(request("eth_blockNumber", []), 16)
        every = replay(node.http_url, first, last, tmp_path / "all.jsonl", "--reexecute", "all")
        sandwiches = [a for a in every if a["kind"] == "sandwich" and a["stage"] == "included"]
        assert len(sandwiches) >= 2, [a["kind"] for a in every]
        single = routed = 0
        for a in sandwiches:
            ev = a["evidence"]
            hops: dict[str, list[dict]] = {}
            for v in ev["victim_swaps"]:
                hops.setdefault(v["transaction_hash"], []).append(v)
            for pool, method in ev["victim_loss_method"].items():
                assert method == "reexecution", (pool, ev["victim_loss_detail"][pool])
                detail = ev["victim_loss_detail"][pool]
                assert detail["node_method"] == "eth_simulateV1" and detail["model_method"] == "constant_product_replay"
                assert set(detail["left_out"]) <= {t["hash"] for t in a["txs"] if t["role"] == "frontrun"}
            for h, vs in hops.items():
                if len(vs) == 1:  # one sandwiched pool on the victim's way: re-execution == the pool model, to the wei
                    (v,) = vs
                    assert v["loss"] == ev["victim_loss_detail"][v["pool"]]["model_losses"][h], (v, ev)
                    assert int(v["loss"]) > 0  # a sandwich worsens its victims' price
                    single += 1
                else:  # routed through both sandwiched pools: the loss once, at the route's last hop
                    *earlier, final_hop = sorted(vs, key=lambda v: (v["trace_address"] or [], v["log_index"] or 0))
                    assert all(v["loss"] == "0" for v in earlier) and int(final_hop["loss"]) > 0, vs
                    routed += 1
        assert single >= 2 and routed >= 1, (single, routed)  # seed 4 has two-pool sandwiches of routed victims
        # auto (the default): every lab pool has an exact model, so no re-execution and the same bytes as off
        auto = replay(node.http_url, first, last, tmp_path / "auto.jsonl")
        off = replay(node.http_url, first, last, tmp_path / "off.jsonl", "--reexecute", "off")
        assert (tmp_path / "auto.jsonl").read_bytes() == (tmp_path / "off.jsonl").read_bytes()
        assert [a["alert_id"] for a in auto] == [a["alert_id"] for a in every] == [a["alert_id"] for a in off]
    finally:
        node.stop()


def test_the_oracle_names_why_it_has_no_number(tmp_path):
    """A victim that is not in the block, a pool that pays nothing out, a node without the method:
    each gives no number and a reason, never a wrong loss."""
    node = Anvil(tmp_path / "anvil", chain_id=31337).start()
    try:
        request = http_request(node.http_url)
        me = request("eth_accounts", [])[1]
        tx_hash = request("eth_sendTransaction", [{"from": me, "to": me, "value": "0x1"}])
        request("evm_mine", [])
        head = request("eth_getBlockByNumber", ["latest", False])
        block = Block(int(head["number"], 16), head["hash"], head["parentHash"], int(head["timestamp"], 16), head["miner"],
                      None, [Transaction(tx_hash, 0, me, me, "0x", 1)], 31337)
        sim = NodeSimulator(request)
        weth = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
        assert sim.victim_output(block, frozenset(), "0x" + "ab" * 32, me, weth) == (None, "the victim's transaction is not in the block")
        out, why = sim.victim_output(block, frozenset(), tx_hash, me, weth)
        assert out is None and "pays no token out" in why and sim.simulations == 1
        def no_method(method: str, params: list):
            raise NodeError(f"{method} failed: {{'code': -32601, 'message': 'Method not found'}}")

        missing = NodeSimulator(no_method)
        assert missing.victim_output(block, frozenset(), tx_hash, me, weth) == (None, "the node does not serve eth_simulateV1")
        assert missing.unsupported is not None
    finally:
        node.stop()


def _answer(status="0x1", logs=None, calls=1):
    return [{"calls": [{"status": "0x1", "logs": []}] * (calls - 1) + [{"status": status, "logs": logs}]}]


def test_malformed_node_answers_give_no_number_and_no_crash():
    """A hostile or broken node: logs that are not a list, negative or non-hex amounts, fewer calls
    answered than sent, a reverted victim. And "header not found" (no state for that block) costs
    that victim only, while "method not found" turns re-execution off for the run."""
    me, pool, token = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
    block = Block(5, "0x" + "aa" * 32, "0x" + "bb" * 32, 0, "0x" + "00" * 20, None,
                  [Transaction("0x" + "01" * 32, 0, me, pool, "0x", 0)], 31337)
    victim = "0x" + "01" * 32
    pay = {"address": token, "topics": [TRANSFER, "0x" + "0" * 24 + pool[2:], "0x" + "0" * 24 + me[2:]], "data": hex(7)}
    cases = [(_answer(logs=5), "malformed"), (_answer(logs=[{**pay, "data": "-0x5"}]), "malformed"),
             (_answer(logs=[{**pay, "data": "0xzz"}]), "malformed"), (_answer(logs=[pay], calls=2), "answered 2 calls for 1"),
             (_answer(status="0x0", logs=[pay]), "fails without the front-run"), ([], "malformed answer")]
    for answer, why in cases:
        sim = NodeSimulator(lambda m, p, a=answer: a)
        out, detail = sim.victim_output(block, frozenset(), victim, pool, token)
        assert out is None and why in detail, (answer, detail)
    assert NodeSimulator(lambda m, p: _answer(logs=[pay])).victim_output(block, frozenset(), victim, pool, token) == (7, "eth_simulateV1")

    def header_missing(method: str, params: list):
        raise NodeError(f"{method} failed: {{'code': -32000, 'message': 'header not found'}}")

    sim = NodeSimulator(header_missing)
    assert sim.victim_output(block, frozenset(), victim, pool, token)[0] is None and sim.unsupported is None
