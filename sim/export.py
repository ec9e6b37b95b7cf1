"""``mevwatch sim export``: run the lab on a fresh anvil and write a labelled dataset.

DIR/recording.jsonl  every pending tx (with first-seen time), block (receipts, logs, traces)
                     and revert, as mevwatch's envelopes; replay with ``mevwatch replay``
DIR/labels.jsonl     one ground-truth attack per line (attack id, kind, variant, roles, outcome)
DIR/manifest.json    seed, blocks, counts, contract addresses, chain id
"""

from __future__ import annotations

import json
from pathlib import Path

from mevwatch.sim.anvil import Anvil
from mevwatch.sim.runner import Lab, LabResult
from mevwatch.streams import envelope

CHAIN_ID = 31337


def export(out: Path, *, blocks: int, seed: int, attacks: bool = True, on_round=None, families: list | None = None,
           ranges: str = "train") -> LabResult:
    """``families`` (sim/families.py): lab v2 with those families, their ``ranges`` (train or heldout),
    and accounts derived from the seed; None: the classic lab."""
    out.mkdir(parents=True, exist_ok=True)
    v2 = bool(families)
    node = Anvil(out / ".anvil", chain_id=CHAIN_ID, accounts=Lab.ACCOUNTS_V2 if v2 else 12,
                 mnemonic_seed=seed + 1 if v2 else None).start()
    try:
        lab = Lab(node.http_url, node.ws_url, seed=seed, attacks=attacks, families=families, ranges=ranges)
        result = lab.run(blocks, on_round=on_round)
        m = lab.market
    finally:
        node.stop()
    with open(out / "recording.jsonl", "wb") as fh:
        for msg in result.messages:
            fh.write(envelope.encode(msg) + b"\n")
    with open(out / "labels.jsonl", "w") as fh:
        for a in result.attacks:
            fh.write(json.dumps(a.to_json(), sort_keys=True) + "\n")
    assert m is not None
    (out / "manifest.json").write_text(json.dumps({
        "seed": seed, "blocks": blocks, "chain_id": CHAIN_ID, "attacks": len(result.attacks),
        "landed": sum(1 for a in result.attacks if a.outcome == "landed"), "honest_txs": result.honest_txs,
        "router": m.router.address.lower(), "factory": m.factory.address.lower(),
        "pair_init_code_hash": m.pair_init_code_hash, "pairs": sorted(p.address.lower() for p in m.pairs.values()),
        "tokens": [t.address.lower() for t in m.tokens],
        "lab": 2 if v2 else 1, "families": [f.name for f in families or []], "ranges": ranges if v2 else None,
        "deployer": m.deployer.lower(),
    }, indent=1, sort_keys=True) + "\n")
    for leftover in (out / ".anvil").glob("*"):
        leftover.unlink()
    (out / ".anvil").rmdir()
    return result
