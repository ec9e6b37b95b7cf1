"""What mevwatch knows about EVM chains it may follow: the native token's wrapper (WETH on Ethereum)
and the block time, by chain id.

The wrapper is the chain's ETH-like token: amounts in it are valued 1:1 in the native coin (as WETH
is in ETH on mainnet), its deposit/withdraw events are transfers, and token prices come from its
pools (monitor/money.py). The block time sets how long the node follower waits for a new block before
it takes the connection for dead and reconnects (streams/node.py, ten blocks, at least a minute).

Settings override both (``native_wrapper``, ``node.block_time_s``; docs/operations.md, "Several
chains"). A chain not listed here takes mainnet's WETH address (a contract most chains do not have:
no amount is then valued in the native coin until ``native_wrapper`` is set; the daemon says so at
start) and no block time (the follower's stall watchdog is off).
"""

from __future__ import annotations

from dataclasses import dataclass

from mevwatch.monitor.types import WETH_ADDRESS


@dataclass(frozen=True)
class Chain:
    name: str
    native_wrapper: str  # lower-case address
    block_time_s: float | None  # None: no regular block time (dev chains mine on demand)


# addresses as the chains' own documentation gives them; block times as of 2025
KNOWN: dict[int, Chain] = {
    1: Chain("ethereum", WETH_ADDRESS, 12.0),
    11155111: Chain("sepolia", "0xfff9976782d46cc05630d1f6ebab18b2324d6b14", 12.0),
    10: Chain("optimism", "0x4200000000000000000000000000000000000006", 2.0),
    8453: Chain("base", "0x4200000000000000000000000000000000000006", 2.0),
    42161: Chain("arbitrum", "0x82af49447d8a07e3bd95bd0d56f35241523fbab1", 0.25),
    137: Chain("polygon", "0x0d500b1d8e8ef31e21c99d1db9a6444d3adf1270", 2.0),
    56: Chain("bsc", "0xbb4cdb9cbd36b01bd1cbaebf2de08d9173bc095c", 0.75),
    # local development nodes (anvil, hardhat, ganache): the lab deploys WETH at mainnet's address
    31337: Chain("anvil", WETH_ADDRESS, None),
    1337: Chain("dev", WETH_ADDRESS, None),
}


def known(chain_id: int) -> bool:
    return chain_id in KNOWN


def native_wrapper(chain_id: int, override: str | None = None) -> str:
    """The chain's wrapped native token (lower case): ``override`` when set, else the known one, else
    mainnet's WETH address."""
    if override:
        return override.lower()
    chain = KNOWN.get(chain_id)
    return chain.native_wrapper if chain is not None else WETH_ADDRESS


def block_time_s(chain_id: int, override: float | None = None) -> float | None:
    """Seconds between blocks: ``override`` when set, else the known one, else None (unknown)."""
    if override is not None:
        return override
    chain = KNOWN.get(chain_id)
    return chain.block_time_s if chain is not None else None


MIN_HEAD_TIMEOUT_S = 60.0  # a follower never gives up on a node sooner (a few missed slots are normal)


def head_timeout_s(block_time: float | None) -> float | None:
    """How long the node follower waits for a new block before it reconnects: ten block times, at
    least MIN_HEAD_TIMEOUT_S; None (no watchdog) without a block time."""
    return None if block_time is None else max(MIN_HEAD_TIMEOUT_S, 10.0 * block_time)
