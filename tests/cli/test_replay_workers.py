"""`mevwatch replay --workers N`: a worker process that dies (SIGKILL, as the out-of-memory killer
sends it) costs the file it was on, never the run. The parent sees the process end, sends that file
once more to a fresh worker and dead-letters it only when it kills that one too; the other files are
replayed, in input order, with the same output as without the fault. A parent never waits forever.

The kill comes from the test-only hook MEVWATCH_REPLAY_FAULT (monitor/replay.py), inside the real
worker process, between receiving a file and analysing it."""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mevwatch.monitor import replay as replay_mod
from mevwatch.monitor.replay import FAULT_ENV, ReplayWorkerError, replay_files

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[2]
VICTIM = "12775690"  # the block with the sandwich: its alerts must go missing, and only its


@pytest.fixture(scope="module")
def blocks(traces_dir, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("workers")
    for p in sorted(traces_dir.glob("*.json.gz"))[:10]:
        shutil.copy(p, d / p.name)
    assert (d / f"{VICTIM}.json.gz").exists()
    return d


@pytest.fixture(scope="module")
def without_victim(blocks, tmp_path_factory) -> bytes:
    """What a replay of every file but the victim writes (one process, no fault)."""
    d = tmp_path_factory.mktemp("rest")
    for p in blocks.iterdir():
        if VICTIM not in p.name:
            shutil.copy(p, d / p.name)
    buf = io.BytesIO()
    replay_files([d], out=buf, workers=1)
    return buf.getvalue()


@pytest.fixture(scope="module")
def everything(blocks) -> bytes:
    buf = io.BytesIO()
    replay_files([blocks], out=buf, workers=1)
    return buf.getvalue()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # --no-gnn: worker processes decode rules-only replays (with the model a replay scores in one process)
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "--log-level", "WARNING", "replay", "--no-gnn", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def test_a_worker_killed_on_every_try_costs_its_file_and_the_run_goes_on(blocks, without_victim, tmp_path):
    out, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
    r = _cli(str(blocks), "--workers", "3", "--out", str(out), "--dead-letter", str(dead),
             env={FAULT_ENV: f"kill:{VICTIM}"})
    assert r.returncode == 1, r.stderr  # finished (no hang, timeout 180 s), one input rejected
    assert "Traceback" not in r.stderr
    letters = [json.loads(x) for x in dead.read_text().splitlines()]
    assert len(letters) == 1, letters
    assert letters[0]["source"] == str(blocks / f"{VICTIM}.json.gz")
    why = letters[0]["reason"]
    assert "worker process died" in why and "SIGKILL" in why and "sent once more" in why, why
    assert out.read_bytes() == without_victim  # every other file, in order, as without the fault
    assert "rejected inputs" in r.stderr and "1 (all in" in r.stderr.replace("\n", " "), r.stderr
    assert r.stderr.count("a replay worker died") == 2  # the first death (retry) and the second (rejected)


def test_a_worker_killed_once_is_retried_and_nothing_is_lost(blocks, everything, tmp_path):
    out, marker = tmp_path / "alerts.jsonl", tmp_path / "killed-once"
    r = _cli(str(blocks), "--workers", "2", "--out", str(out), "-q", env={FAULT_ENV: f"kill-once:{VICTIM}:{marker}"})
    assert marker.exists(), "the hook fired"
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == everything
    assert "a replay worker died; its file goes once more to a fresh worker" in r.stderr


def test_in_process_kill_many_files_and_no_process_is_left(blocks, without_victim, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, f"kill:{VICTIM}")
    paths = sorted(blocks.iterdir()) * 3  # the victim three times: each costs itself
    buf = io.BytesIO()
    summary = replay_files(paths, out=buf, workers=4)
    assert [p.source for p in summary.problems] == [str(blocks / f"{VICTIM}.json.gz")] * 3
    assert summary.blocks == len(paths) - 3
    assert mp.active_children() == []  # every worker ended with the replay


def test_workers_that_die_as_they_start_stop_the_replay_with_a_message(blocks, monkeypatch):
    def dies(*_args: object) -> None:
        os._exit(3)

    monkeypatch.setattr(replay_mod, "_worker_init", dies)  # the fork inherits it
    with pytest.raises(ReplayWorkerError, match="die as they start .exit code 3.; try --workers 1"):
        replay_files([blocks], workers=2)
    assert mp.active_children() == []


def test_order_and_output_match_one_process_with_many_workers(blocks, everything):
    paths = sorted(blocks.iterdir()) * 4  # 40 files: several chunks per worker, results out of order
    one, many = io.BytesIO(), io.BytesIO()
    replay_files(paths, out=one, workers=1)
    s = replay_files(paths, out=many, workers=3)
    assert many.getvalue() == one.getvalue() and s.problems == []
