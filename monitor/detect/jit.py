"""JIT liquidity sandwiches (Uniswap V3/V4): liquidity added in a tick range just
before victim swaps in the same pool and removed right after, by the same owner.

Rule: an add in transaction i and a remove in transaction k > i, same pool, same
tick range, same owner (for a shared position manager: same sender), with at least one swap in that pool from another sender in a
transaction strictly between. The profit is per token (fees collected minus
liquidity put in: ``profit.by_token``), valued in ETH over both tokens (null when one has no
price); its headline token is the WETH side when there is one. ``victim_loss`` is null: a JIT fill does not worsen the victim's price,
it takes the fees that passive liquidity providers would have earned.
"""

from __future__ import annotations

from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.detect.common import BlockView
from mevwatch.monitor.money import gas_cost
from mevwatch.monitor.types import LiquidityChange

# Position managers own liquidity on behalf of many users: there the owner is the
# transaction's sender, not the manager.
SHARED_OWNERS = frozenset({"0xc36442b4a4522e871399cd717abdd847ab11fe88"})  # Uniswap V3 NonfungiblePositionManager


def _same_owner(add: LiquidityChange, rem: LiquidityChange) -> bool:
    if add.owner != rem.owner:
        return False
    return add.owner not in SHARED_OWNERS or add.tx_from == rem.tx_from


def detect(view: BlockView) -> list[Alert]:
    adds = [lc for lc in view.db.liquidity if lc.kind == "add" and lc.tick_lower is not None]
    if not adds:
        return []
    removes = [lc for lc in view.db.liquidity if lc.kind == "remove" and lc.tick_lower is not None]
    collects = [lc for lc in view.db.liquidity if lc.kind == "collect"]
    alerts = []
    used: set[int] = set()
    for add in adds:
        for rem in removes:
            if (rem.order in used or rem.pool != add.pool or not _same_owner(add, rem)
                    or rem.transaction_position <= add.transaction_position + 1
                    or (rem.tick_lower, rem.tick_upper) != (add.tick_lower, add.tick_upper)):
                continue
            victims = [s for s in view.swaps_by_pool.get(add.pool, ())
                       if add.transaction_position < s.transaction_position < rem.transaction_position
                       and s.tx_from not in (add.tx_from, rem.tx_from)]
            if not victims:
                continue
            used.add(rem.order)
            alerts.append(_alert(view, add, rem, victims, collects))
            break
    return alerts


def _alert(view: BlockView, add: LiquidityChange, rem: LiquidityChange, victims, collects) -> Alert:
    col = [c for c in collects if c.pool == add.pool and c.transaction_hash == rem.transaction_hash
           and (c.tick_lower, c.tick_upper) == (add.tick_lower, add.tick_upper)]
    out0 = sum(c.amount0 or 0 for c in col) if col else (rem.amount0 or 0)
    out1 = sum(c.amount1 or 0 for c in col) if col else (rem.amount1 or 0)
    delta0, delta1 = out0 - (add.amount0 or 0), out1 - (add.amount1 or 0)
    # Uniswap orders a pool's tokens by address: token0 < token1.
    t0, t1 = sorted({victims[0].token_in, victims[0].token_out})
    eth_like = view.prices.eth_like
    profit = view.prices.amount({t0: delta0, t1: delta1}, t0 if t0 in eth_like else t1 if t1 in eth_like else None)
    txs = [AlertTx(add.transaction_hash, add.transaction_position, "liquidity_add")]
    for h, p in dict.fromkeys((s.transaction_hash, s.transaction_position) for s in victims):
        txs.append(AlertTx(h, p, "victim"))
    txs.append(AlertTx(rem.transaction_hash, rem.transaction_position, "liquidity_remove"))
    attackers = [a for a in dict.fromkeys([add.tx_from, add.owner, rem.tx_from]) if not view.is_infrastructure(a)]
    return Alert(
        kind="jit_sandwich", stage="included", chain_id=view.block.chain_id, block_number=view.block.number,
        block_hash=view.block.hash, txs=txs, attackers=attackers,
        victims=list(dict.fromkeys(s.tx_from for s in victims)), pools=[add.pool], tokens=[t0, t1],
        profit=profit, victim_loss=None,
        gas_cost_wei=gas_cost(view.db, [add.transaction_hash, rem.transaction_hash]),
        evidence={
            "tick_lower": add.tick_lower, "tick_upper": add.tick_upper, "liquidity": f"{add.liquidity}",
            "token0": t0, "token1": t1,
            "added": [f"{add.amount0}", f"{add.amount1}"], "withdrawn": [f"{out0}", f"{out1}"],
            "delta_token0_token1": [f"{delta0}", f"{delta1}"], "victim_swaps": [s.as_evidence() for s in victims],
            "valuation": view.prices.valuation(),
        },
    )
