"""`mevwatch replay` output paths: checked before any work, and never read back as input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRACES = Path(os.environ.get("MEVWATCH_DATA", REPO.parent / "shared" / "data")) / "mainnet-traces"


def _replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "--log-level", "WARNING", "replay", "--quiet", *args],
                          capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_out_inside_an_input_folder_is_not_read_back(tmp_path):
    for f in sorted(TRACES.glob("*.json.gz"))[:2]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "r.jsonl").write_bytes(b"")  # a JSONL input too, so .jsonl files are read from the folder
    out, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
    first = _replay(str(tmp_path), "--out", str(out), "--dead-letter", str(dead))
    assert first.returncode == 0, first.stderr
    assert out.read_bytes(), "the mainnet blocks raise alerts"
    again = _replay(str(tmp_path), "--out", str(out), "--dead-letter", str(dead))
    assert again.returncode == 0, again.stderr  # alerts.jsonl (not an envelope) would be rejected line by line


def test_unwritable_output_paths_are_refused_before_any_work(tmp_path):
    src = sorted(TRACES.glob("*.json.gz"))[0]
    for args in (["--dead-letter", str(tmp_path / "no" / "such" / "dead.jsonl")], ["--out", str(tmp_path)],
                 ["--out", str(tmp_path / "missing" / "a.jsonl")]):
        r = _replay(str(src), *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and ("--dead-letter" in r.stderr or "--out" in r.stderr), r.stderr
        assert not r.stdout.strip(), "work was done before the path was checked"
