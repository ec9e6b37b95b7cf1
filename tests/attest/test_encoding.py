"""The attested bytes: RFC 8785 canonical alerts and RFC 9162 Merkle proofs, checked against an
independent JavaScript implementation (the `canonicalize` package and js-sha3)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mevwatch.monitor.alerts import Alert, AlertTx, Amount
from mevwatch.monitor.attest import canonical, merkle
from mevwatch.monitor.attest.batcher import build_plan, leaf_of
from mevwatch.monitor.errors import InputError

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.fast


def final_alert(i: int, evidence: dict | None = None) -> Alert:
    return Alert(kind="sandwich", stage="final", chain_id=1, block_number=100 + i, block_hash=f"0x{i:064x}",
                 txs=[AlertTx(f"0x{i:063x}a", 3, "frontrun"), AlertTx(f"0x{i:063x}b", 4, "victim"), AlertTx(f"0x{i:063x}c", 5, "backrun")],
                 attackers=["0xattacker"], victims=["0xvictim"], pools=["0xpool"], tokens=["0xtoken"],
                 profit=Amount("0xweth", 2**200 + i, 0.012345678901234567), victim_loss=Amount("0xtoken", 7, None),
                 gas_cost_wei=21000 * 10**9, evidence=evidence if evidence is not None else {"i": i, "ratio": 1e-7 * (i + 1)})


def node_canonicalize(value) -> bytes:
    script = "const c=require(process.argv[1]);let s='';process.stdin.on('data',d=>s+=d).on('end',()=>process.stdout.write(c(JSON.parse(s))))"
    r = subprocess.run(["node", "-e", script, str(REPO / "contracts" / "node_modules" / "canonicalize")],
                       input=json.dumps(value, ensure_ascii=False).encode(), capture_output=True, check=True)
    return r.stdout


def need_node() -> None:
    if shutil.which("node") is None or not (REPO / "contracts" / "node_modules" / "canonicalize").exists():
        pytest.fail("node packages missing: run scripts/setup.sh --all (npm ci in contracts/)")


def test_canonical_bytes_match_the_reference_jcs_implementation():
    need_node()
    hostile = {"symbol": "'); DROP TABLE alerts; --", "ctl": "\x00\x1f\b\f\n\r\t\"\\", "uni": "é€😀\u2028\uff5e",
               "nums": [0, -0.0, 1, -1, 0.1, 1e-7, 1e-6, 123456789.125, 1e21, 1e20, 2**53, 5e-324, 1.7976931348623157e308],
               "nested": {"z": None, "a": [True, False], "\u20ac": 1, "\U0001F600": 2, "\uff5e": 3}}
    for value in (hostile, final_alert(1).to_json(), final_alert(2, hostile).to_json()):
        assert canonical.canonical_json(value) == node_canonicalize(value)


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=12), lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
                    max_leaves=12))
def test_canonical_json_agrees_with_jcs_on_arbitrary_json(value):
    need_node()
    assert canonical.canonical_json(value) == node_canonicalize(value)


def test_only_final_alerts_have_a_leaf_and_numbers_must_be_exact():
    a = final_alert(1)
    a.stage = "included"
    with pytest.raises(InputError, match="only final"):
        leaf_of(a)
    with pytest.raises(InputError):
        canonical.canonical_json({"x": float("nan")})
    with pytest.raises(InputError):
        canonical.canonical_json({"x": 2**60})  # 256-bit amounts travel as strings


def test_one_changed_byte_changes_the_leaf():
    a, b = final_alert(1), final_alert(1)
    b.evidence["i"] = 2
    assert leaf_of(a) != leaf_of(b)
    c = final_alert(1)
    c.evidence = {"ratio": a.evidence["ratio"], "i": 1}  # key order is not part of the encoding
    assert leaf_of(a) == leaf_of(c)


@given(st.integers(1, 70), st.data())
@settings(max_examples=80, deadline=None)
def test_every_leaf_proves_into_the_root_and_nothing_else_does(n, data):
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    root = merkle.root_of(leaves)
    i = data.draw(st.integers(0, n - 1))
    path = merkle.path_of(leaves, i)
    assert merkle.verify_path(leaves[i], i, n, path, root)
    assert len(path) <= max(1, (n - 1).bit_length())
    if n > 1:
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        assert not merkle.verify_path(leaves[j], i, n, path, root)  # another leaf at this position
        bad = list(path)
        bad[data.draw(st.integers(0, len(bad) - 1))] = b"\x11" * 32
        assert not merkle.verify_path(leaves[i], i, n, bad, root)
    assert not merkle.verify_path(leaves[i], n, n, path, root)  # index outside the tree


def test_rfc9162_shape_and_domain_separation():
    a, b, c = (merkle.leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert merkle.root_of([a]) == a
    assert merkle.root_of([a, b, c]) == merkle.node_hash(merkle.node_hash(a, b), c)  # split at the largest power of two
    # a node's preimage reread as a leaf gives a different hash: no second preimage across levels
    assert merkle.leaf_hash(b"\x01" + a + b) != merkle.node_hash(a, b)


def test_reference_script_recomputes_python_proofs(tmp_path):
    need_node()
    alerts = [(final_alert(i), 8 * i + 3) for i in range(11)]
    plan, leaves = build_plan(alerts, 100, 120)
    order = sorted(a.alert_id for a, _v in alerts)
    for k in (0, 5, 10):
        a = next(x for x, _v in alerts if x.alert_id == order[k])
        bundle = {"alert": a.to_json(), "proof": {"root": plan.root, "index": k, "size": len(leaves),
                                                   "path": ["0x" + p.hex() for p in merkle.path_of(leaves, k)]}}
        f = tmp_path / f"b{k}.json"
        f.write_text(json.dumps(bundle))
        r = subprocess.run(["node", str(REPO / "scripts" / "attest_reference.mjs"), str(f)], capture_output=True, text=True, check=True)
        out = json.loads(r.stdout)
        assert out == {"leaf": "0x" + leaves[k].hex(), "root": plan.root, "matches": True}
        bundle["alert"]["evidence"]["i"] += 1
        f.write_text(json.dumps(bundle))
        r = subprocess.run(["node", str(REPO / "scripts" / "attest_reference.mjs"), str(f)], capture_output=True, text=True, check=True)
        assert json.loads(r.stdout)["matches"] is False
