"""The lab end to end: ground truth, determinism, and the rules' precision and recall on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mevwatch.sim.score import score

pytestmark = pytest.mark.anvil


def run(*args) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("mevwatch"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


def lines(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def export_seed5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lab") / "seed5"
    r = run("sim", "export", "--blocks", "25", "--seed", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_export_replays_to_every_landed_attack_and_nothing_else(export_seed5, tmp_path):
    labels = lines(export_seed5 / "labels.jsonl")
    manifest = json.loads((export_seed5 / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["blocks"] == 25 and manifest["attacks"] == len(labels) > 5
    assert {x["variant"] for x in labels} >= {"classic", "split_accounts", "two_pool", "cross_venue", "copied_call", "jit_liquidity"}
    assert all(x["outcome"] in ("landed", "failed") for x in labels)
    out = tmp_path / "alerts.jsonl"
    r = run("--chain-id", "31337", "replay", str(export_seed5 / "recording.jsonl"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    alerts = lines(out)
    sc = score(alerts, labels)
    assert sc.attacks >= 5 and sc.recall == 1.0 and sc.false_positives == 0, sc
    arb = score(alerts, labels, kinds=("arbitrage", "backrun"))
    assert arb.attacks >= 3 and arb.recall == 1.0 and arb.false_positives == 0, arb
    disp = score(alerts, labels, kinds=("frontrun_displacement",))
    assert disp.attacks >= 3 and disp.recall == 1.0 and disp.false_positives == 0, disp
    jit = score(alerts, labels, kinds=("jit_sandwich",))
    assert jit.attacks >= 3 and jit.recall == 1.0 and jit.false_positives == 0, jit
    # sandwiches across two pools: one alert names both pools, with the victim in between
    two = [x for x in labels if x["variant"] == "two_pool" and x["outcome"] == "landed"]
    assert two and score(alerts, two, kinds=("sandwich",)).recall == 1.0
    for lab in two:
        front = lab["txs"][0]["hash"]
        alert = next(a for a in alerts if a["kind"] == "sandwich" and any(t["hash"] == front for t in a["txs"]))
        assert set(lab["pools"]) <= set(alert["pools"]) and len(lab["pools"]) == 2
        assert lab["txs"][1]["hash"] in {t["hash"] for t in alert["txs"] if t["role"] == "victim"}
    assert any(a["kind"] == "exposed_swap" and a["stage"] == "pending" for a in alerts)
    # every landed attack's alert prices the attacker's result in ETH and the victim's loss
    # (profit can be negative: honest swaps that land between the legs eat into it)
    landed = [x for x in labels if x["outcome"] == "landed" and x["kind"] == "sandwich"]
    profitable = 0
    for lab in landed:
        front = lab["txs"][0]["hash"]
        alert = next(a for a in alerts if a["kind"] == "sandwich" and any(t["hash"] == front for t in a["txs"]))
        assert alert["profit"]["eth"] is not None and int(alert["victim_loss"]["amount"]) > 0
        if lab["variant"] != "two_pool":  # a two-pool attack starts and ends in the victim's input token
            assert alert["profit"]["token"] == "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
        profitable += alert["profit"]["eth"] > 0
    assert profitable > len(landed) // 2


def test_same_seed_same_ground_truth(export_seed5, tmp_path):
    again = tmp_path / "again"
    r = run("sim", "export", "--blocks", "25", "--seed", "5", "--out", str(again))
    assert r.returncode == 0, r.stderr
    assert (again / "labels.jsonl").read_text() == (export_seed5 / "labels.jsonl").read_text()
    # and the two recordings replay to the same alerts; only wall-clock facts differ: block
    # hashes (anvil stamps blocks with the wall clock), first-sight times of pending swaps and what
    # follows from them (the order-flow labels: seen before or after the block's timestamp, the lead)
    outs = []
    for d in (export_seed5, again):
        out = tmp_path / f"{d.name}.alerts.jsonl"
        assert run("--chain-id", "31337", "replay", str(d / "recording.jsonl"), "--out", str(out)).returncode == 0
        alerts = [{k: v for k, v in a.items() if k not in ("block_hash", "order_flow")} for a in lines(out)]
        for a in alerts:
            a["evidence"].pop("first_seen_ns", None)
            for t in a["txs"]:
                t.pop("lead_ms", None)
                t.pop("mempool", None)
        outs.append(alerts)
    assert outs[0] == outs[1] and len(outs[0]) > 10


def test_honest_traders_only_raise_no_sandwich(tmp_path):
    out = tmp_path / "honest"
    r = run("sim", "export", "--blocks", "25", "--seed", "5", "--honest-only", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert lines(out / "labels.jsonl") == []
    alerts_path = tmp_path / "a.jsonl"
    assert run("--chain-id", "31337", "replay", str(out / "recording.jsonl"), "--out", str(alerts_path)).returncode == 0
    attack_kinds = ("sandwich", "sandwich_attempt", "arbitrage", "backrun", "frontrun_displacement", "jit_sandwich")
    assert [a for a in lines(alerts_path) if a["kind"] in attack_kinds] == []
