"""The chain's wrapped native token (monitor/chains.py, `native_wrapper`): on a chain whose wrapper
lives at another address (Base, Optimism: 0x4200...0006), detection values amounts in it as mainnet
values WETH. Checked on the real mainnet blocks with WETH moved to Base's address everywhere (calls,
traces, events): replayed as chain 8453 they raise the same alerts with the same ETH and USD values;
replayed as mainnet (whose WETH is elsewhere) those values are lost."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from mevwatch.monitor import chains
from mevwatch.monitor.replay import replay_files
from mevwatch.monitor.types import WETH_ADDRESS

BASE = 8453
BASE_WETH = "0x4200000000000000000000000000000000000006"


def summary(lines: list[bytes]) -> list[tuple]:
    out = []
    for line in lines:
        a = json.loads(line)
        p, loss = a["profit"] or {}, a["victim_loss"] or {}
        out.append((a["kind"], a["stage"], tuple((t["hash"], t["role"]) for t in a["txs"]), p.get("amount"), p.get("eth"),
                    p.get("usd"), loss.get("eth"), tuple(sorted((p.get("by_token") or {}).values()))))
    return sorted(out, key=repr)


class Lines(list):
    def write(self, b: bytes) -> None:
        self.extend(b.splitlines())


@pytest.fixture(scope="module")
def moved(traces_dir, tmp_path_factory):
    """The shared mainnet blocks with WETH's address replaced by Base's wrapper everywhere."""
    out = tmp_path_factory.mktemp("base")
    weth = re.compile(WETH_ADDRESS.removeprefix("0x"), re.IGNORECASE)
    for p in sorted(traces_dir.glob("*.json.gz")):
        text = gzip.decompress(p.read_bytes()).decode()
        (out / p.name.removesuffix(".gz")).write_text(weth.sub(BASE_WETH.removeprefix("0x"), text))
    return out


def test_known_chains():
    assert chains.native_wrapper(1) == WETH_ADDRESS and chains.native_wrapper(BASE) == BASE_WETH
    assert chains.native_wrapper(999_999) == WETH_ADDRESS  # unknown: mainnet's address (the daemon warns)
    assert chains.native_wrapper(1, "0xABCDEF0000000000000000000000000000000001") == "0xabcdef0000000000000000000000000000000001"
    assert chains.head_timeout_s(chains.block_time_s(1)) == 120.0 and chains.head_timeout_s(chains.block_time_s(42161)) == 60.0
    assert chains.block_time_s(31337) is None and chains.head_timeout_s(None) is None  # dev chains mine on demand


def test_a_chain_with_its_wrapper_elsewhere_values_alerts_as_mainnet_does(traces_dir, moved):
    mainnet, base, base_as_mainnet = Lines(), Lines(), Lines()
    replay_files([traces_dir], out=mainnet, workers=1, chain_id=1)  # type: ignore[arg-type]
    replay_files([moved], out=base, workers=1, chain_id=BASE)  # type: ignore[arg-type]
    want, got = summary(mainnet), summary(base)
    assert len(want) >= 30
    assert got == want
    assert sum(1 for w in want if w[4] is not None) >= 25  # ETH values, the same on Base
    assert sum(1 for w in want if w[5] is not None) >= 20  # and USD values (stablecoin pools against the wrapper)
    # the wrapper's deposits/withdrawals are transfers there, too: the profits' token breakdowns match (above)
    # the same blocks read as mainnet: the wrapper is not mainnet's WETH, so those values are gone
    replay_files([moved], out=base_as_mainnet, workers=1, chain_id=1, native_wrapper=None)  # type: ignore[arg-type]
    lost = summary(base_as_mainnet)
    assert sum(1 for w in lost if w[4] is not None) < sum(1 for w in want if w[4] is not None) // 2
    # a setting names the wrapper for a chain mevwatch does not know
    custom = Lines()
    replay_files([moved], out=custom, workers=2, chain_id=999_999, native_wrapper=BASE_WETH)  # type: ignore[arg-type]
    assert summary(custom) == want


@pytest.mark.fast
def test_the_wrapper_setting_reaches_the_mempool_rules_and_the_model_before_any_block():
    """The native_wrapper setting (a chain mevwatch does not know) is what the mempool rules value pending
    amounts in, and what the graph model's pending graphs call the native token, from the first pending
    transaction on: not mainnet's WETH until a block names the setting."""
    from mevwatch.monitor.engine import Engine

    custom = "0x" + "ab" * 20
    eng = Engine(chain_id=777_777, native_wrapper=custom)
    assert eng.watcher._eth(custom, 2 * 10**18) == 2.0 and eng.watcher._eth(WETH_ADDRESS, 10**18) is None
    scorer_mod = pytest.importorskip("mevwatch.models.scorer")
    scorer = scorer_mod.Scorer.__new__(scorer_mod.Scorer)  # no model file needed: only the wrapper's path
    scorer.native_wrapper = None
    eng.scorers = [scorer]  # the engine shares its wrapper with scorers set after it was built
    assert scorer.native_wrapper == custom
    assert chains.native_wrapper(777_777, scorer.native_wrapper) == custom
    # a known chain without the setting keeps its own wrapper
    assert Engine(chain_id=BASE).watcher._eth(BASE_WETH, 10**18) == 1.0
