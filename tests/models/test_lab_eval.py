"""`mevwatch eval` on real lab v2 exports (anvil): held-out families refused when training saw them,
every detector scored through the engine with the same criteria, a figure per training seed, and
the rules' figures equal to what `mevwatch replay` itself raises on the same recording."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.anvil
pytest.importorskip("torch")


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("mevwatch"))
    return subprocess.run([exe, "--log-level", "WARNING", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def labs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("labeval")
    out = {"train": base / "train", "heldout": base / "heldout"}
    for name, fam, seed in (("train", "train", 71), ("heldout", "heldout", 72)):
        r = cli("sim", "export", "--blocks", "14", "--seed", str(seed), "--family", fam, "--ranges", fam, "--out", str(out[name]))
        assert r.returncode == 0, r.stderr
    return out


def test_eval_refuses_families_that_training_saw(labs, tmp_path):
    r = cli("eval", "--train", str(labs["train"]), "--data", str(labs["train"]), "--seeds", "0", "--out", str(tmp_path))
    assert r.returncode != 0 and "in the training data" in r.stderr
    r = cli("eval", "--train", str(labs["heldout"]), "--data", str(labs["heldout"]) + "/..", "--seeds", "0", "--out", str(tmp_path))
    assert r.returncode != 0 and "not a lab export" in r.stderr
    r = cli("eval", "--data", str(labs["heldout"]), "--conditions", "recorded,wind", "--out", str(tmp_path))
    assert r.returncode != 0 and "'wind'" in r.stderr
    # a seed fixes accounts, market and contract addresses: other families on a training seed are refused too
    import shutil

    same_seed = tmp_path / "same_seed"
    shutil.copytree(labs["heldout"], same_seed)
    man = json.loads((same_seed / "manifest.json").read_text())
    (same_seed / "manifest.json").write_text(json.dumps({**man, "seed": 71}))
    r = cli("eval", "--train", str(labs["train"]), "--data", str(same_seed), "--seeds", "0", "--out", str(tmp_path))
    assert r.returncode != 0 and "seed 71 is in the training data too" in r.stderr
    (same_seed / "manifest.json").write_text(json.dumps({**man, "families": ["packed_bot", "\x1b[31mevil"]}))
    r = cli("eval", "--data", str(same_seed), "--out", str(tmp_path))
    assert r.returncode != 0 and "family this mevwatch does not know" in r.stderr and "\x1b" not in r.stderr
    r = cli("eval", "--train", str(labs["train"]), "--data", str(labs["heldout"]), "--seeds", "0,0", "--out", str(tmp_path))
    assert r.returncode != 0 and "no seed twice" in r.stderr


def test_eval_scores_every_detector_per_seed_and_the_rules_as_replay_raises_them(labs, tmp_path):
    from mevwatch.models.lab_eval import read
    from mevwatch.sim.score import score

    js = tmp_path / "ev.json"
    r = cli("eval", "--train", str(labs["train"]), "--data", str(labs["heldout"]), "--seeds", "0,1", "--epochs", "2",
            "--conditions", "recorded,gas", "--json", str(js), "--out", str(tmp_path / "ev"))
    assert r.returncode == 0, r.stderr
    rep = json.loads(js.read_text())
    assert rep["held_out_families"] == ["mm_opaque", "packed_bot"] and rep["training_seeds"] == [0, 1]
    res = rep["results"]
    assert set(res) == {"recorded", "gas"}
    assert set(res["recorded"]["pending"]) == {"rules (mempool)", "rules", "tx-mlp", "gnn", "shipped"}
    assert set(res["recorded"]["included"]) == {"rules", "token-flow rules", "tx-mlp", "gnn", "shipped"}
    for det in ("tx-mlp", "gnn", "shipped"):  # one figure per training seed
        assert len(res["recorded"]["pending"][det]["families"]["packed_bot"]["found"]) == 2
    # the rules' cells are what `mevwatch replay` raises on the same recording, scored the same way
    out = cli("replay", str(labs["heldout"] / "recording.jsonl"), "--no-gnn")
    assert out.returncode == 0, out.stderr
    alerts = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    firsts: dict[str, dict] = {}
    for a in alerts:
        firsts.setdefault(a["alert_id"], a)
    labels = read(labs["heldout"]).labels
    for st, kind, stage in (("pending", "sandwich_attempt", "pending"), ("included", "sandwich", "included")):
        mine = [a for a in firsts.values() if a["kind"] == kind and a["stage"] == stage]
        sc = score(mine, labels, kinds=(kind,))
        cell = res["recorded"][st]["rules"]
        assert cell["alerts"] == [sc.alerts] and cell["false_positives"] == [sc.false_positives], (st, cell, sc)
        packed = [x for x in labels if x["family"] == "packed_bot"]
        assert cell["families"]["packed_bot"]["found"] == [score(mine, packed, kinds=(kind,)).found]
    assert res["recorded"]["included"]["rules"]["families"]["packed_bot"]["landed"] >= 2
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "Held-out families: mm_opaque, packed_bot" in report and "### pending stage, gas" in report


def test_a_per_transaction_baseline_is_its_own_architecture_and_leaves_the_shipped_hash_alone(labs, tmp_path):
    from mevwatch.models import artifact
    from mevwatch.models.dataset import load
    from mevwatch.models.model import TxMLP
    from mevwatch.models.train import train

    samples = load([labs["train"]])
    model, meta = train(samples, tmp_path / "mlp.pt", epochs=1, arch="mlp", ablate=["log_tip_gwei"])
    loaded, lmeta = artifact.load(tmp_path / "mlp.pt")
    assert isinstance(loaded, TxMLP) and lmeta["arch"] == "mlp" and lmeta["ablate"] == ["log_tip_gwei"]
    assert lmeta["model_hash"] == meta["model_hash"]
    shipped = json.loads(artifact.DEFAULT.with_suffix(".json").read_text())
    assert "arch" not in shipped and artifact.load(artifact.DEFAULT)[1]["model_hash"] == shipped["model_hash"]


@pytest.mark.fast
def test_blocks_are_split_into_contiguous_folds_that_cover_them_once(tmp_path):
    from mevwatch.models.block_eval import folds
    from mevwatch.monitor.errors import InputError

    paths = [tmp_path / f"{n}.json.gz" for n in (30, 4, 1000, 7, 12)]
    parts = folds(paths, 2)
    assert [[p.name for p in f] for f in parts] == [["4.json.gz", "7.json.gz", "12.json.gz"], ["30.json.gz", "1000.json.gz"]]
    with pytest.raises(InputError, match="--folds must be between 2 and the number of blocks"):
        folds(paths, 6)


@pytest.mark.parametrize("decoders", ["full", "transfers"])
def test_real_blocks_are_scored_only_by_models_that_never_trained_on_them(traces_dir, tmp_path, decoders):
    js = tmp_path / "blocks.json"
    r = cli("eval", "--blocks", str(traces_dir), "--folds", "3", "--seeds", "0", "--epochs", "1", "--decoders", decoders,
            "--json", str(js), "--out", str(tmp_path / "ev"))
    assert r.returncode == 0, r.stderr
    rep = json.loads(js.read_text())
    assert len(rep["runs"]) == 3
    evaluated: list[int] = []
    for run in rep["runs"]:
        assert not {f"mainnet:{b}" for b in run["blocks"]} & set(run["trained_on_blocks"])
        assert len(run["trained_on_blocks"]) + len(run["blocks"]) == 17
        evaluated += run["blocks"]
    assert len(set(evaluated)) == 17
    # the rules' attacks counted are exactly what `mevwatch replay` raises on the same blocks
    out = cli("replay", str(traces_dir), "--no-gnn", "--decoders", decoders)
    assert out.returncode in (0, 1), out.stderr
    firsts: dict[str, dict] = {}
    for a in (json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")):
        firsts.setdefault(a["alert_id"], a)
    for kind in ("sandwich", "arbitrage", "backrun"):
        want = sum(1 for a in firsts.values() if a["kind"] == kind and a["stage"] == "included")
        assert sum(run["rule_attacks"][kind] for run in rep["runs"]) == want, kind
    if decoders == "transfers":
        t = [run["transfers"] for run in rep["runs"]]
        assert sum(x["full_rule_attacks"] for x in t) >= 25 and all(x["token_flow_rules"] <= x["full_rule_attacks"] for x in t)


def test_model_alert_modes_through_the_engine_keep_every_rule_alert(labs):
    """gnn.model_alerts on a held-out lab recording: pending (the default) raises model-only attempts
    but no model-only block alert, none raises neither, all both; the rules' alerts are the same in
    every mode (fusion scores them, never removes one)."""
    from mevwatch.models.lab_eval import read, run_alerts
    from mevwatch.models.scorer import Scorer

    msgs = read(labs["heldout"]).messages
    rules_ids = {a["alert_id"] for a in run_alerts(msgs)}
    seen = {}
    for mode in ("pending", "all", "none"):
        alerts = run_alerts(msgs, scorer=Scorer(device="cpu", chain_id=31337, model_alerts=mode))
        assert rules_ids <= {a["alert_id"] for a in alerts}, mode
        seen[mode] = ({a["alert_id"] for a in alerts if a["detector"] == "gnn" and a["stage"] == "pending"},
                      {a["alert_id"] for a in alerts if a["detector"] == "gnn" and a["stage"] == "included"})
    assert seen["none"] == (set(), set()) and not seen["pending"][1]
    assert seen["all"][0] == seen["pending"][0]
    # this recording (seed 72, 14 blocks) gives the shipped model block alerts of its own when allowed
    assert seen["all"][1], "no model-only block alert: the modes would not be told apart"
