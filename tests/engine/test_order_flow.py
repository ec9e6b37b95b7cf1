"""Order-flow labels: every transaction of an included alert seen in our mempool before its block (with
the lead), only after, or never (private); the alert's attack legs summed up. Through ``mevwatch
replay`` of a JSONL recording that carries pending transactions, and of mev-inspect files (no
mempool: ``unknown``)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from mevwatch.monitor.replay import replay_files
from mevwatch.monitor.types import PendingTx
from mevwatch.streams import envelope

pytestmark = pytest.mark.fast

T1, T2 = 1_700_000_000, 1_700_000_012  # block times given to the two recorded blocks (s)
S = 1_000_000_000


def _pending(h: str, frm: str, seen_ns: int) -> PendingTx:
    return PendingTx(1, h, frm, None, 0, "0x", 0, 21000, 10**9, None, None, 0, seen_ns, "test")


def _legs(block, positions):
    return [next(t for t in block.transactions if t.position == p) for p in positions]


@pytest.fixture(scope="module")
def recording(load_block, tmp_path_factory) -> tuple[Path, dict]:
    """Block A (11935012: sandwich 65/66/68): its front-run and victim seen pending before the block,
    its back-run never. Block B (13370850: sandwich 0/1/2): none of its legs seen before; its back-run
    shows up in the mempool only after the block."""
    a, b = copy.copy(load_block(11935012)), copy.copy(load_block(13370850))
    a.timestamp, b.timestamp = T1, T2
    fa, va, ba = _legs(a, (65, 66, 68))
    fb, vb, bb = _legs(b, (0, 1, 2))
    msgs = [
        _pending("0x" + "01" * 32, "0x" + "02" * 20, T1 * S - 30 * S),  # the mempool is watched from here
        _pending(fa.hash, fa.from_address, T1 * S - 1_500_000_000),
        _pending(va.hash, va.from_address, T1 * S - 800_000_000),
        a,
        b,
        _pending(bb.hash, bb.from_address, T2 * S + 2 * S),
    ]
    path = tmp_path_factory.mktemp("rec") / "recording.jsonl"
    path.write_bytes(b"".join(envelope.encode(m) + b"\n" for m in msgs))
    return path, {"fa": fa.hash, "va": va.hash, "ba": ba.hash, "fb": fb.hash, "vb": vb.hash, "bb": bb.hash}


def _sandwich(alerts: list[dict], front: str) -> dict:
    return next(x for x in alerts if x["kind"] == "sandwich" and any(t["hash"] == front for t in x["txs"]))


def test_replay_of_a_recording_labels_public_and_private_legs(recording, tmp_path):
    path, h = recording
    out = tmp_path / "alerts.jsonl"
    exe = Path(sys.executable).with_name("mevwatch")
    r = subprocess.run([str(exe), "replay", str(path), "-o", str(out), "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    alerts = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    a, b = _sandwich(alerts, h["fa"]), _sandwich(alerts, h["fb"])
    ta = {t["hash"]: t for t in a["txs"]}
    assert (ta[h["fa"]]["mempool"], ta[h["fa"]]["lead_ms"]) == ("before", 1500)
    assert (ta[h["va"]]["mempool"], ta[h["va"]]["lead_ms"]) == ("before", 800)
    assert (ta[h["ba"]]["mempool"], ta[h["ba"]]["lead_ms"]) == ("never", None)
    assert a["order_flow"] == "partly_private"  # front-run public, back-run private
    assert {t["mempool"] for t in b["txs"]} == {"never"} and b["order_flow"] == "private"
    # every transaction of every included alert is labelled
    assert all(t["mempool"] in ("before", "after", "never") for x in alerts for t in x["txs"])


def test_a_leg_seen_only_after_its_block_is_labelled_after_when_final(recording):
    path, h = recording
    events = []
    replay_files([path], on_event=events.append)
    final = next(e.alert for e in events if e.alert.stage == "final" and any(t.hash == h["fb"] for t in e.alert.txs))
    back = next(t for t in final.txs if t.hash == h["bb"])
    assert back.mempool == "after" and back.lead_ms == -2000
    assert final.order_flow == "private"  # seen only after inclusion is no public order flow
    included = next(e.alert for e in events if e.alert.stage == "included" and e.alert.alert_id == final.alert_id)
    assert next(t for t in included.txs if t.hash == h["bb"]).mempool == "never"


def test_mev_inspect_files_have_no_mempool_so_labels_are_unknown(traces_dir):
    events = []
    replay_files([traces_dir / "11935012.json.gz", traces_dir / "13370850.json.gz"], on_event=events.append, workers=1)
    included = [e.alert for e in events if e.alert.stage == "included"]
    assert included
    for a in included:
        assert a.order_flow == "unknown" and {t.mempool for t in a.txs} == {"unknown"}
