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
