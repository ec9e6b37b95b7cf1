"""KyberSwap pools: Elastic (concentrated liquidity) and DMM/Classic (amplified constant product).

Elastic, ``swap(recipient, swapQty, isToken0, limitSqrtP, data)``, returns the signed pool deltas
``(deltaQty0, deltaQty1)`` (positive: into the pool), as Uniswap V3's swap does; the direction is
the delta that went in (``isToken0`` names the token of ``swapQty``, which may be the output for an
exact-output swap). Elastic's ``Swap`` event has Uniswap V3's signature and is decoded there
(protocol ``uniswap_v3``: one topic for both).

DMM pairs share Uniswap V2's ``swap`` call (monitor/decode/uniswap_v2.py); their ``Swap`` event
adds ``feeInPrecision`` and is decoded here as ``kyber_dmm``, without reserves (the pair prices on
amplified virtual reserves with a dynamic fee, not on its balances).
"""

from __future__ import annotations

from mevwatch.monitor.decode.context import TxContext
from mevwatch.monitor.decode.hexabi import arg, arg_addr, out, signed
from mevwatch.monitor.decode.uniswap_v2 import PROTOCOL_DMM, TOPIC_DMM_SWAP, pair_log_swap
from mevwatch.monitor.decode.uniswap_v3 import swap_from_deltas
from mevwatch.monitor.types import Trace

PROTOCOL_ELASTIC = "kyber_elastic"
SEL_ELASTIC_SWAP = "0x24b31a0c"  # swap(address,int256,bool,uint160,bytes)


def trace_elastic_swap(ctx: TxContext, i: int, t: Trace) -> None:
    arg(t.input, 3)  # the price limit: the call's fixed fields are all present
    d0, d1 = signed(out(t.output, 0)), signed(out(t.output, 1))
    if (d0 > 0) == (d1 > 0):
        ctx.stats.malformed_by_selector[SEL_ELASTIC_SWAP] += 1  # nothing in, or both in: no trade
        return
    swap_from_deltas(ctx, i, t, PROTOCOL_ELASTIC, arg_addr(t.input, 0), d0 > 0, d0, d1)


def log_dmm_swap(ctx: TxContext, i: int) -> None:
    if len(ctx.logs[i].data) != 2 + 5 * 64:
        return  # another event with this signature's topic cannot have other fields; be strict anyway
    pair_log_swap(ctx, i, PROTOCOL_DMM, False)


TRACE_HANDLERS = {SEL_ELASTIC_SWAP: trace_elastic_swap}
LOG_HANDLERS = {TOPIC_DMM_SWAP: log_dmm_swap}
