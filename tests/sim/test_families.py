"""Lab v2 on a real anvil: bot families and honest look-alikes with parameters drawn from their
ranges, fresh accounts and contract addresses per seed, held-out ranges outside the training ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mevwatch.models.lab_eval import read
from mevwatch.monitor.decode.pending import decode_pending
from mevwatch.monitor.errors import InputError
from mevwatch.monitor.types import PendingTx
from mevwatch.sim.families import FAMILIES, HELDOUT_FAMILIES, TRAIN_FAMILIES, parse_families

pytestmark = pytest.mark.anvil
GWEI = 10**9


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    from mevwatch.sim.export import export

    base = tmp_path_factory.mktemp("families")
    out = {"train_a": base / "train_a", "train_b": base / "train_b", "heldout": base / "heldout"}
    export(out["train_a"], blocks=16, seed=61, families=parse_families(["train"]), ranges="train")
    export(out["train_b"], blocks=16, seed=62, families=parse_families(["train"]), ranges="train")
    export(out["heldout"], blocks=16, seed=63, families=parse_families(["heldout"]), ranges="heldout")
    return out


@pytest.mark.fast
def test_family_names_are_checked_and_the_default_sets_are_disjoint():
    assert not set(TRAIN_FAMILIES) & set(HELDOUT_FAMILIES)
    assert [f.name for f in parse_families(["abi_bot,packed_bot", "abi_bot"])] == ["abi_bot", "packed_bot"]
    with pytest.raises(InputError, match="unknown lab family 'nope'"):
        parse_families(["nope"])
    for f in FAMILIES.values():  # every held-out range lies outside its training range
        for k, (lo, hi) in f.heldout.items():
            tlo, thi = f.train[k]
            if k != "share":
                assert hi < tlo or lo > thi or k == "tip_gwei" and f.name == "mm_opaque", (f.name, k)


def test_every_seed_gets_fresh_accounts_and_contract_addresses(exports):
    a = json.loads((exports["train_a"] / "manifest.json").read_text())
    b = json.loads((exports["train_b"] / "manifest.json").read_text())
    assert a["lab"] == b["lab"] == 2 and a["families"] == list(TRAIN_FAMILIES) and a["ranges"] == "train"
    assert a["deployer"] != b["deployer"] and a["router"] != b["router"] and not set(a["pairs"]) & set(b["pairs"])
    senders = lambda d: {m.from_address for m in read(d).messages if isinstance(m, PendingTx)}  # noqa: E731
    assert not senders(exports["train_a"]) & senders(exports["train_b"])


def test_attack_families_land_sandwiches_with_their_own_encodings_and_parameters(exports):
    train = read(exports["train_a"])
    fams = {lab["family"] for lab in train.labels if lab["kind"] == "sandwich" and lab["outcome"] == "landed"}
    assert fams == {"abi_bot", "router_eoa"}, fams
    held = read(exports["heldout"])
    pending = {m.hash: m for m in held.messages if isinstance(m, PendingTx)}
    landed = [lab for lab in held.labels if lab["family"] == "packed_bot" and lab["outcome"] == "landed"]
    assert len(landed) >= 3
    for lab in landed:
        legs = {t["role"]: pending[t["hash"]] for t in lab["txs"] if t["role"] in ("frontrun", "backrun")}
        victims = [pending[t["hash"]].max_priority_fee_per_gas for t in lab["txs"] if t["role"] == "victim"]
        front, back = legs["frontrun"], legs["backrun"]
        # packed calldata: no decoder reads a swap in it; held-out ranges: exact fees, large gas limits
        assert decode_pending(front.to_address, front.input, front.value) == [] and not front.input.startswith("0xa9059cbb")
        assert 0 < front.max_priority_fee_per_gas - max(victims) <= GWEI // 2
        assert 0 < min(victims) - back.max_priority_fee_per_gas <= min(victims) * 0.05 + 1
        assert 800_000 <= front.gas <= 1_500_000 and 800_000 <= back.gas <= 1_500_000
    # honest look-alikes: a market maker's opaque calls, never labelled
    labelled = {t["hash"] for lab in held.labels for t in lab["txs"]}
    mm = json.loads((exports["heldout"] / "manifest.json").read_text())
    assert mm["families"] == list(HELDOUT_FAMILIES)
    opaque_honest = [p for p in pending.values() if p.hash not in labelled and len(p.input) > 10
                     and not decode_pending(p.to_address, p.input, p.value) and p.input[2:4] in ("01", "02")]
    assert len(opaque_honest) >= 4


def test_the_export_command_names_bad_families_and_ranges(tmp_path):
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("mevwatch"))
    r = subprocess.run([exe, "sim", "export", "--out", str(tmp_path / "x"), "--family", "bogus"], capture_output=True, text=True)
    assert r.returncode != 0 and "unknown lab family 'bogus'" in r.stderr
    r = subprocess.run([exe, "sim", "export", "--out", str(tmp_path / "x"), "--family", "train", "--ranges", "wide"], capture_output=True, text=True)
    assert r.returncode != 0 and "--ranges must be train or heldout" in r.stderr
