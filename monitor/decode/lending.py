"""Lending protocols' liquidation calls and events, marked while the block is decoded.

The decoder already reads every call's selector and every log's first topic; it marks the
transactions that hold a liquidation (``DecodedBlock.lending_txs``) so that the liquidation rule
(monitor/detect/liquidation.py) reads those transactions only, instead of every trace of the block
again. Selectors and topics:

- Aave V1, V2, V3: ``liquidationCall(address,address,address,uint256,bool)`` and the
  ``LiquidationCall`` events (V1's layout and V2/V3's);
- Compound: ``liquidateBorrow(address,uint256,address)`` (cERC20), ``liquidateBorrow(address,address)``
  (cETH) and the ``LiquidateBorrow`` event.
"""

from __future__ import annotations

from eth_hash.auto import keccak

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.types import Trace

SEL_AAVE = "0x00a718a9"
SEL_COMPOUND = "0xf5e3c462"
SEL_COMPOUND_ETH = "0xaae40a2a"


def _topic(signature: str) -> str:
    return "0x" + keccak(signature.encode()).hex()


TOPIC_AAVE_V1 = _topic("LiquidationCall(address,address,address,uint256,uint256,uint256,address,bool,uint256)")
TOPIC_AAVE_V2 = _topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)")
TOPIC_COMPOUND = _topic("LiquidateBorrow(address,address,uint256,address,uint256)")


def mark_trace(ctx: TxContext, i: int, t: Trace) -> None:
    ctx.lending = True


def mark_log(ctx: TxContext, i: int) -> None:
    ctx.lending = True


TRACE_HANDLERS = {SEL_AAVE: mark_trace, SEL_COMPOUND: mark_trace, SEL_COMPOUND_ETH: mark_trace}
LOG_HANDLERS = {TOPIC_AAVE_V1: mark_log, TOPIC_AAVE_V2: mark_log, TOPIC_COMPOUND: mark_log}
