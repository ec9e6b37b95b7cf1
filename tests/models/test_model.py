"""The graph model (needs the gnn extra): reproducible training, checked artifacts, the shipped
model's size and hash, evaluation against the rules on held-out lab seeds, agreement with the
rules on the recorded mainnet blocks, and fusion in the detect pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the gnn extra is installed by scripts/setup.sh --all")

from mevwatch.models import artifact  # noqa: E402
from mevwatch.models.dataset import lab_samples  # noqa: E402
from mevwatch.models.scorer import Scorer  # noqa: E402
from mevwatch.monitor.detect import detect_block  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("mevwatch"))
    return subprocess.run([exe, "--log-level", "WARNING", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gnn") / "seed7"
    r = cli("sim", "export", "--blocks", "30", "--seed", "7", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.fast
def test_shipped_model_is_small_checked_and_named():
    assert artifact.DEFAULT.exists() and artifact.DEFAULT.stat().st_size <= 5 * 2**20
    model, meta = artifact.load(artifact.DEFAULT)
    assert meta["model_hash"] == json.loads(artifact.DEFAULT.with_suffix(".json").read_text())["model_hash"]
    assert artifact.shipped_hashes() == [meta["model_hash"]] and len(bytes.fromhex(meta["model_hash"][2:])) == 32
    assert any(d.startswith("lab seed") for d in meta["data"]) and meta["roles"][0] == "benign"


@pytest.mark.fast
def test_rules_and_model_agree_on_every_recorded_mainnet_sandwich(decode_block, all_block_numbers):
    sc = Scorer(device="cpu")
    n = 0
    for number in all_block_numbers:
        db = decode_block(number)
        alerts = [a for a in detect_block(db) if a.kind == "sandwich"]
        sc.fuse(alerts, sc.score_block(db))
        for a in alerts:
            n += 1
            assert a.detector == "both" and a.model_hash == sc.model_hash, (number, a.alert_id, a.score)
    assert n >= 5


@pytest.mark.anvil
def test_training_is_reproducible_and_artifacts_are_checked(heldout, tmp_path):
    from mevwatch.models.train import train

    samples = lab_samples(heldout)
    _m1, meta1 = train(samples, tmp_path / "a.pt", epochs=2, seed=3)
    _m2, meta2 = train(samples, tmp_path / "b.pt", epochs=2, seed=3)
    assert meta1["model_hash"] == meta2["model_hash"]
    _m3, meta3 = train(samples, tmp_path / "c.pt", epochs=2, seed=4)
    assert meta3["model_hash"] != meta1["model_hash"]
    blob = torch.load(tmp_path / "a.pt", weights_only=True)
    blob["state_dict"]["head.2.bias"] += 0.001  # one weight edited
    torch.save(blob, tmp_path / "tampered.pt")
    from mevwatch.monitor.errors import ConfigError

    with pytest.raises(ConfigError, match="does not match its hash"):
        artifact.load(tmp_path / "tampered.pt")
    blob = torch.load(tmp_path / "a.pt", weights_only=True)
    blob["meta"]["schema_version"] = 99
    torch.save(blob, tmp_path / "old.pt")
    with pytest.raises(ConfigError, match="feature schema 99"):
        artifact.load(tmp_path / "old.pt")


@pytest.mark.anvil
def test_eval_on_a_held_out_seed_reports_the_model_beside_the_rules(heldout, tmp_path):
    r = cli("eval", "--roles", "--data", str(heldout), "--out", str(tmp_path / "ev"), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    report = (tmp_path / "ev" / "report.md").read_text()
    assert (tmp_path / "ev" / "pr_curves.png").stat().st_size > 1000 and (tmp_path / "ev" / "confusion.png").stat().st_size > 1000
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[1] in ("block", "pending"):
            rows[(cells[0], cells[1])] = (int(cells[2]), float(cells[4]), float(cells[6]))
    landed, model_recall, rules_recall = rows[("two_pool", "pending")]
    # the finding of issue 16: the structural opaque-call rule finds the disguised two-pool attempts
    # the model used to find alone; the model still finds them, no better than the rules
    assert landed >= 3 and model_recall >= 0.9 and rules_recall >= 0.9, rows
    prec = {p.split()[0]: float(p.split()[1]) for p in report.split("that belong to a labelled attack): ")[1].splitlines()[0].split(", ")}
    assert prec["pending"] >= 0.95 and prec["block"] >= 0.95, prec
    for (variant, stage), (n, m, _rl) in rows.items():
        if stage == "block":
            assert m >= 0.9, (variant, n, m)


@pytest.mark.anvil
def test_pipeline_raises_model_only_attempts_and_fuses_rule_alerts(lab_messages):
    from mevwatch.monitor.pipeline import DetectWorker
    from mevwatch.monitor.sinks.base import SinkChain
    from mevwatch.streams import bus as busmod
    from mevwatch.streams.ingest import publish

    bus = busmod.InProcessBus()
    for m in lab_messages:
        publish(bus, m)
    worker = DetectWorker(bus, SinkChain([]), chain_id=31337, confirmations=3, scorers=[Scorer(device="cpu", chain_id=31337)])
    events = worker.drain()
    by = {}
    for e in events:
        by.setdefault((e.alert.kind, e.alert.detector), []).append(e.alert)
    assert by.get(("sandwich", "both")), sorted(by)
    gnn = by.get(("sandwich_attempt", "gnn"), [])
    assert gnn, sorted(by)
    for a in gnn:
        assert a.model_hash == worker.scorer.model_hash and a.score >= 0.9 and a.stage == "pending"
        assert [t.role for t in a.txs][0] == "frontrun" and a.txs[-1].role == "backrun"
    assert all(a.model_hash == worker.scorer.model_hash for (k, d), xs in by.items() if d != "rules" for a in xs)


@pytest.mark.fast
def test_batched_scoring_equals_per_block_and_replay_scores_with_the_model(decode_block, all_block_numbers, traces_dir, tmp_path):
    import numpy as np

    sc = Scorer(device="cpu")
    dbs = [decode_block(n) for n in all_block_numbers[:6]]
    batched = sc.score_blocks(dbs)
    for db, probs in zip(dbs, batched):
        single = sc.score_block(db)
        assert list(single) == list(probs)
        assert all(np.allclose(single[h], probs[h], atol=1e-5) for h in single)
    plain, scored = tmp_path / "plain.jsonl", tmp_path / "gnn.jsonl"
    assert cli("replay", str(traces_dir), "--no-gnn", "--out", str(plain), "-q").returncode in (0, 1)
    assert cli("replay", str(traces_dir), "--gnn", "--device", "cpu", "--out", str(scored), "-q").returncode in (0, 1)
    a = [json.loads(x) for x in plain.read_text().splitlines()]
    b = [json.loads(x) for x in scored.read_text().splitlines()]
    assert [x["alert_id"] for x in a] == [x["alert_id"] for x in b]  # the same alerts, in the same order
    assert all(x["model_hash"] == sc.model_hash for x in b) and all(x["model_hash"] is None for x in a)
    assert {x["detector"] for x in b if x["kind"] == "sandwich"} == {"both"}


@pytest.mark.fast
def test_fast_inference_gives_the_modules_logits_bit_for_bit(decode_block, load_block, all_block_numbers):
    """The scorer's forward pass (models.model.infer: the same operations without PyG's per-call machinery) gives
    exactly the module's logits: on every shared mainnet block, on its batched graph, on a model with other
    weights and on graphs missing relations (a block with one transaction)."""
    import dataclasses

    from mevwatch.models.graph import block_graph, merge
    from mevwatch.models.model import MevGNN, infer, to_data
    from mevwatch.monitor.decode import BlockDecoder

    sc = Scorer(device="cpu")
    with torch.random.fork_rng():  # other weights, without touching the session's random state
        torch.manual_seed(3)
        other = MevGNN(hidden=16, layers=3).eval()
    graphs = [block_graph(decode_block(n)) for n in all_block_numbers]
    first = load_block(all_block_numbers[0])  # a copy: the loaded block is shared by the session
    one = BlockDecoder().decode(dataclasses.replace(first, transactions=first.transactions[:1]))
    graphs += [merge(graphs[:5]), block_graph(one)]
    for g in graphs:
        x, ei = to_data(g)
        for model in (sc.model, other):
            with torch.no_grad():
                want = model(x, {k: v for k, v in ei.items()})
            got = infer(model, x, ei)
            assert got.shape == (len(g.tx_hashes), 5) and torch.equal(got, want)
    assert any(not v.numel() for v in to_data(graphs[-1])[1].values())  # the relations missing there


def test_training_pins_its_threads_so_a_rerun_elsewhere_writes_the_same_model(traces_dir, tmp_path):
    """Two `mevwatch train` processes that the machine would give different thread counts (as a
    laptop and a server would) write the same model bytes: training pins its threads (--threads,
    default 1) and records them with the torch version in the model's metadata."""
    data = tmp_path / "blocks"
    data.mkdir()
    for n in (12775690, 12914944):
        (data / f"{n}.json.gz").symlink_to(traces_dir / f"{n}.json.gz")
    hashes = []
    for i, threads_env in enumerate(("1", "2")):
        out = tmp_path / f"m{i}.pt"
        env = {**os.environ, "OMP_NUM_THREADS": threads_env, "MKL_NUM_THREADS": threads_env}
        r = subprocess.run([str(Path(sys.executable).with_name("mevwatch")), "--log-level", "WARNING", "train",
                            "--data", str(data), "--out", str(out), "--epochs", "2", "--hidden", "8", "--weak-repeat", "1",
                            "--device", "cpu"], capture_output=True, text=True, timeout=600, env=env)
        assert r.returncode == 0, r.stderr
        _model, meta = artifact.load(out)
        assert meta["threads"] == 1 and meta["torch"] == torch.__version__.split("+")[0]
        hashes.append(meta["model_hash"])
    assert hashes[0] == hashes[1]
