"""`mevwatch demo`, the README's main command, as a user runs it (fast pace)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.anvil


def anvils(under: Path) -> int:
    """anvil processes working in ``under`` (the demo starts its node in <out>/anvil)."""
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _is_anvil(p, under))


def _is_anvil(p: Path, under: Path) -> bool:
    try:
        return (p / "comm").read_text().strip() == "anvil" and Path(os.readlink(p / "cwd")).is_relative_to(under)
    except OSError:
        return False


def test_demo_runs_scores_and_cleans_up(tmp_path):
    exe = str(Path(sys.executable).with_name("mevwatch"))
    out = tmp_path / "demo"
    r = subprocess.run([exe, "demo", "--blocks", "20", "--block-time", "0", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "detection against the lab's ground truth" in r.stdout and "precision" in r.stdout
    row = next(line for line in r.stdout.splitlines() if "sandwich (included)" in line)
    assert "1.00" in row  # recall and precision of included sandwiches on the lab
    for name in ("alerts.jsonl", "recording.jsonl", "labels.jsonl"):
        assert (out / name).stat().st_size > 0
    kinds = {json.loads(x)["kind"] for x in (out / "alerts.jsonl").read_text().splitlines()}
    assert {"sandwich", "sandwich_attempt", "exposed_swap"} <= kinds and kinds & {"arbitrage", "backrun"}
    for name in ("arbitrage or backrun", "frontrun_displacement"):
        row = next(line for line in r.stdout.splitlines() if name in line)
        assert "1.00" in row, row
    model = next(line for line in r.stdout.splitlines() if line.startswith("graph model "))
    assert (" on cpu: " in model or " on cuda: " in model) and "attempts only the model saw" in model, model
    # every stage went to the embedded chDB store, and the final alerts were attested on the embedded chain
    stored = next(line for line in r.stdout.splitlines() if line.startswith("stored in chDB"))
    assert int(stored.split(": ")[1].split()[0]) > 0
    attested = next(line for line in r.stdout.splitlines() if line.startswith("attested "))
    assert int(attested.split()[1]) > 0, attested
    verify = next(line for line in r.stdout.splitlines() if line.startswith("verify one:")).split(": ", 1)[1].split()
    v = subprocess.run([exe, *verify[1:]], capture_output=True, text=True, timeout=120)
    assert v.returncode == 0 and "VERIFIED" in v.stdout, v.stdout + v.stderr
    assert anvils(tmp_path.resolve()) == 0  # no stray node
