"""The attested bytes: RFC 8785 canonical alerts and RFC 9162 Merkle proofs, checked against an
independent JavaScript implementation (the `canonicalize` package and js-sha3)."""

from __future__ import annotations

import hashlib
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
               "nums": [0, -0.0, 1, -1, 0.1, 1e-7, 1e-6, 123456789.125, 1e21, 1e20, 2**53 - 1, -(2**53 - 1), 2.0**53, 5e-324,
                        1.7976931348623157e308],
               "nested": {"z": None, "a": [True, False], "\u20ac": 1, "\U0001F600": 2, "\uff5e": 3}}
    for value in (hostile, final_alert(1).to_json(), final_alert(2, hostile).to_json()):
        assert canonical.canonical_json(value) == node_canonicalize(value)


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=12), lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
                    max_leaves=12))
def test_canonical_json_agrees_with_jcs_on_arbitrary_json(value):
    need_node()
    assert canonical.canonical_json(value) == node_canonicalize(value)


DEMO_BUNDLES = REPO / "tests" / "attest" / "data" / "demo-attested-alerts.jsonl"
# sha256 of the canonical bytes of each bundle's alert, computed by the hand-written RFC 8785 encoder
# this module had before it moved to the rfc8785 package (the bundles: every alert attested by a
# `mevwatch demo --blocks 20 --block-time 0` run, with the proof read back from its store)
DEMO_CANONICAL_SHA256 = [
    "dd884d9d1ab93530fcb201240457d3f4e6f9a06e591528d2370f2a3d898f26ab",
    "fe3a872385d65203cff126c64da619d72fa6ae5dd950b93df4eb6844b6e306ec",
    "58c4d4fde8902689365eefe94663f0678e7ec4ddefb82feaff32c195afc050d4",
    "8d33c8f95481390299ea5d94db3a57d0d515af7603a1b0799632ac39fecf3f1f",
    "6496924832bd940fa22c7e0216a43207d42cd5bc07d837949693bb982431c483",
    "26485385db6fc593183e9c83fc5a0f2dc1febb24292ad6459723188dcffa814b",
    "51fe27931c8da754b35592f5b3e9a57dff42b129db6af26f7d0d7edc45ded11c",
    "02e482917818a79e96ee7e5fb3e23b910e4f153433aeb4b4e679a9fd0ac56dc5",
    "1894bb766969ea892fec2a33763de2b138ed656ecdacde05c643467c7beea007",
    "ac75fb52e20b6ee3b50de90ef871584207708e4d8caa089401c120766fa0cd7d",
    "dc9188d7e7c1b626dfb3db161f7041930df9f30d876cdaff242b95efa7fb391a",
    "1f77bba1dba3bf54f475ed8d459da53eab11f275ca2b58f53a8896053f6494c9",
    "6d68c5fdd6fc3e11dccb2e2012e6198b5f17e8e81974e9ea868348bbe66b5255",
    "5860bf922867f88837c1ac4bd06472eb7356f1a536365323313be5d0cfb32ad9",
    "d2d9e13cc29f811a1687213009fca872cd4e4b540d05666e08c9ae0cac6e20e1",
    "7c64ab64a443e6a60078c6563cb6f711c8aad5266184ced98b772b94ea1705ca",
    "5d354c7b4b980c59b143c722f16ca551df5b0c88101a7d486a2addb05e7640ce",
    "0357648bbf321cc86a49345430cd3ef1d28702e2d79742a9e9aa1700b4dc7224",
    "df3b160384194e98c50c039f616f7016044ceeb47cb4eb610b2cb3780ed6beed",
    "edd214e1df569be07dadeb184e0afdfad1ce150121087cf01404bbaa1393ed2b",
    "80f710902a848e7900bfb251ea758eb0bae4ebaae8590f20066d704c1624f714",
    "3993e160ce194f16e17d5751f995c8fd015f1909d843db1f261524a7701ee6cc",
    "784650edb047c9bc5b991abb986f567bc2be2ea42ba7d5a75da953c7c071517a",
    "4ed75ca06b5cd43a32593732274a52c03792f1dbca6ce85f58fc0d54d83bc4ab",
    "e307555cff6b59323832c5d40b961065f455b7f9a6c5c25052628e19bfb94f58",
    "00f31f1e6fc2b5743c8b73828b9bb683dea44193eebb84f207de704a4e2eee0c",
    "dd3a4e2fa2316b14ca70419cd4a01a7c4bcd42db4a767619491f8859b78b1531",
    "668b553e82bde1fce6b720f8abf85db2ddc29d1484b182d95fbdcc1c611d1dc3",
    "957733a8f8f3c5c3ea497100fe5b0d1074ce1f6c529b6575fc9239b5671844c3",
    "d5ac70c0de0064c62f7a849961807637c8fb8baca83d01808d5b4c6909c1bb02",
    "e4a7cacd1df5ca1b6c4aa12df48ae91d11e777b3dcae3494a5d82f923580328d",
]


def test_attested_alerts_of_a_demo_run_keep_their_canonical_bytes():
    bundles = [json.loads(line) for line in DEMO_BUNDLES.read_text().splitlines()]
    assert len(bundles) == len(DEMO_CANONICAL_SHA256) == 31
    assert {b["alert"]["kind"] for b in bundles} >= {"sandwich", "jit_sandwich", "arbitrage", "backrun", "frontrun_displacement"}
    for b, expect in zip(bundles, DEMO_CANONICAL_SHA256):
        data = canonical.alert_bytes(b["alert"])
        assert hashlib.sha256(data).hexdigest() == expect, b["alert"]["alert_id"]
        # and the leaf of these bytes still proves into the root the demo attested on chain
        leaf, proof = merkle.leaf_hash(data), b["proof"]
        assert "0x" + leaf.hex() == proof["leaf"]
        assert merkle.verify_path(leaf, proof["index"], proof["size"], [bytes.fromhex(p[2:]) for p in proof["path"]],
                                  bytes.fromhex(proof["root"][2:]))


def test_attested_alerts_of_a_demo_run_match_the_reference_jcs_implementation():
    need_node()
    for line in DEMO_BUNDLES.read_text().splitlines()[::5]:
        record = json.loads(line)["alert"]
        assert canonical.alert_bytes(record) == node_canonicalize(record)


def test_only_final_alerts_have_a_leaf_and_numbers_must_be_exact():
    a = final_alert(1)
    a.stage = "included"
    with pytest.raises(InputError, match="only final"):
        leaf_of(a)
    with pytest.raises(InputError):
        canonical.canonical_json({"x": float("nan")})
    with pytest.raises(InputError):
        canonical.canonical_json({"x": 2**60})  # 256-bit amounts travel as strings
    # refused as RFC 8785 (3.2.2.2) and I-JSON ask; the hand-written encoder before rfc8785 let these through
    for bad in ({"x": 2**53}, {"x": -(2**53)}, {"x": "\ud800"}, {"\udfff": 1}, {1: "x"}, {"x": b"bytes"}):
        with pytest.raises(InputError):
            canonical.canonical_json(bad)


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


def reference(bundle: dict, tmp_path: Path, *args: str) -> tuple[int, dict]:
    f = tmp_path / "bundle.json"
    f.write_text(json.dumps(bundle))
    r = subprocess.run(["node", str(REPO / "scripts" / "attest_reference.mjs"), str(f), *args], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, json.loads(r.stdout)


def test_reference_script_recomputes_python_proofs_and_says_it_is_self_consistent_only(tmp_path):
    need_node()
    alerts = [(final_alert(i), 8 * i + 3) for i in range(11)]
    plan, leaves = build_plan(alerts, 100, 120)
    order = sorted(a.alert_id for a, _v in alerts)
    for k in (0, 5, 10):
        a = next(x for x, _v in alerts if x.alert_id == order[k])
        bundle = {"alert": a.to_json(), "proof": {"root": plan.root, "index": k, "size": len(leaves),
                                                   "path": ["0x" + p.hex() for p in merkle.path_of(leaves, k)]}}
        rc, out = reference(bundle, tmp_path)
        assert rc == 0 and out["leaf"] == "0x" + leaves[k].hex() and out["root"] == plan.root
        assert out["inclusion"] is True and out["matches"] is True
        assert out["scope"].startswith("self-consistent only"), out  # no chain was read: it says so
        bundle["alert"]["evidence"]["i"] += 1
        rc, out = reference(bundle, tmp_path)
        assert rc == 1 and out["matches"] is False


def test_merkle_index_must_be_an_integer_inside_the_tree_python_and_reference(tmp_path):
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(4)]  # a power of two: -1 once verified the last leaf
    root = merkle.root_of(leaves)
    path = merkle.path_of(leaves, 3)
    assert merkle.verify_path(leaves[3], 3, 4, path, root)
    assert not merkle.verify_path(leaves[3], -1, 4, path, root)
    assert not merkle.verify_path(leaves[1], 1.5, 4, merkle.path_of(leaves, 1), root)  # type: ignore[arg-type]
    assert not merkle.verify_path(leaves[1], True, 4, merkle.path_of(leaves, 1), root)  # type: ignore[arg-type]
    assert not merkle.verify_path(leaves[3], 3, 4, [path[0][:31], path[1]], root)  # a 31-byte path entry
    assert not merkle.verify_path(leaves[3], 3, 4, path, root[:31])

    need_node()
    alerts = [(final_alert(i), 1) for i in range(4)]
    plan, lv = build_plan(alerts, 100, 120)
    a = sorted((x for x, _v in alerts), key=lambda x: x.alert_id)[3]
    good = {"alert": a.to_json(), "proof": {"root": plan.root, "index": 3, "size": 4, "path": ["0x" + p.hex() for p in merkle.path_of(lv, 3)]}}
    assert reference(good, tmp_path)[1]["matches"] is True
    neg = json.loads(json.dumps(good))
    neg["proof"]["index"] = -1
    rc, out = reference(neg, tmp_path)
    assert rc == 1 and out["matches"] is False
    for field, value, why in (("index", 2.5, "index must be an integer"), ("size", "4", "size must be an integer"),
                              ("path", ["0x" + "zz" * 32, good["proof"]["path"][1]], "path entry 0"),
                              ("path", [good["proof"]["path"][0][:-2], good["proof"]["path"][1]], "path entry 0"),
                              ("root", plan.root[:-2], "proof root")):
        bad = json.loads(json.dumps(good))
        bad["proof"][field] = value
        rc, out = reference(bad, tmp_path)
        assert rc == 2 and why in out["error"], (field, out)
