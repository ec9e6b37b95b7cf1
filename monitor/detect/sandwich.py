"""Sandwiches: an attacker buys before one or more victims in a pool and sells after.

Rule, per pool in execution order: a front-run swap X->Y, the nearest later swap
Y->X in another transaction by the *same attacker*, and at least one swap X->Y in
between by someone else. Two legs have the same attacker when one account signed
both, or when the account that ended up holding the front-run's output (following
its onward transfers) is the one whose tokens paid the back-run, directly or through
one transfer inside the block (an attacker split over several accounts or a bot
contract). Routers, aggregators and pools are never taken as the attacker.
Candidates sharing a back-run transaction merge into one alert: several front-runs,
several pools, several victims; each attack is reported once. A swap belongs to the account
whose call performs it: a fee-on-transfer token that sells its fees inside the attacker's
transfer (``Swap.actor``) makes its own swap, which is never taken for the attacker's leg.
"""

from __future__ import annotations

from collections import defaultdict

from mevwatch.monitor.alerts import Alert, AlertTx
from mevwatch.monitor.detect.common import BlockView
from mevwatch.monitor.money import V3_EXACT, gas_cost, pro_rata_profit, v2_victim_losses, v3_victim_losses
from mevwatch.monitor.types import Swap


def _linked(view: BlockView, f: Swap, b: Swap, hops: dict[str, set[str]]) -> bool:
    if f.tx_from == b.tx_from:
        return True
    h, s = view.holder(f), view.source(b)
    if view.is_infrastructure(h) or view.is_infrastructure(s):
        return False
    return h == s or s in hops.get(h, ())


def _hops(view: BlockView) -> dict[str, set[str]]:
    """Direct token transfers between non-infrastructure accounts in the block."""
    out: dict[str, set[str]] = defaultdict(set)
    for tr in view.db.transfers:
        if not view.is_infrastructure(tr.from_address) and not view.is_infrastructure(tr.to_address):
            out[tr.from_address].add(tr.to_address)
    return out


def detect(view: BlockView) -> list[Alert]:
    hops = _hops(view)
    # (back tx) -> list of (front swap, back swap, victims, pool swaps window)
    groups: dict[str, list[tuple[Swap, Swap, list[Swap], list[Swap]]]] = defaultdict(list)
    for pool, ss in view.swaps_by_pool.items():
        if len(ss) < 3:
            continue
        for i, f in enumerate(ss):
            if f.actor:
                continue  # a token's own fee sale inside a transfer is no one's attack leg
            for k in range(i + 1, len(ss)):
                b = ss[k]
                if b.transaction_hash == f.transaction_hash or b.actor:
                    continue
                if b.token_in != f.token_out or b.token_out != f.token_in or not _linked(view, f, b, hops):
                    continue
                victims = [
                    v for v in ss[i + 1 : k]
                    if v.token_in == f.token_in and v.token_out == f.token_out
                    and v.transaction_hash not in (f.transaction_hash, b.transaction_hash)
                    and v.tx_from not in (f.tx_from, b.tx_from)
                    and not _linked(view, f, v, hops)
                ]
                if victims:
                    groups[b.transaction_hash].append((f, b, victims, ss[i : k + 1]))
                break
    return [_alert(view, legs) for legs in groups.values()]


def _reexecute(view: BlockView, legs: list[tuple[Swap, Swap, list[Swap], list[Swap]]], loss_by_order: dict[int, int],
               methods: dict[str, str], details: dict[str, dict], loss_token: dict[int, str]) -> None:
    """Victim loss by re-executing each victim transaction on the node without the front-runs before
    it (streams/simulate.py), where a pool it swapped on has no exact model (or everywhere when the
    oracle says so; the models' numbers are then kept in the detail, to cross-check).

    The whole route is re-executed, so the loss is measured once per victim transaction, at its
    last swap (what it finally received, in that swap's output token): a victim routed through two
    sandwiched pools loses once, not at each hop (its intermediate token is no loss of its own). The
    number goes on its last sandwiched swap (its ``loss``; 0 on its earlier hops), in the final
    token (``loss_token``)."""
    oracle = view.oracle
    assert oracle is not None
    fronts = frozenset(f.transaction_hash for f, _, _, _ in legs)  # every front-run of the sandwich
    wanted = {f.pool for f, _, _, _ in legs if oracle.every_pool or methods.get(f.pool) == "unavailable"}
    by_tx: dict[str, dict[int, Swap]] = {}
    for _, _, vs, _ in legs:
        for v in vs:
            by_tx.setdefault(v.transaction_hash, {})[v.order] = v
    done_pools: dict[str, dict] = {}
    for h, mine in by_tx.items():
        if not {v.pool for v in mine.values()} & wanted:
            continue
        first = min(mine.values(), key=lambda v: v.order)
        final = max(view.swaps_by_tx[h], key=lambda s: s.order)  # what the victim finally received
        drop = frozenset(x for x in fronts if _before(view, x, first))
        out, why = oracle.victim_output(view.block, drop, h, final.pool, final.token_out)
        if out is None:
            for v in mine.values():
                if methods.get(v.pool) == "unavailable":
                    details[v.pool] = {**details.get(v.pool, {}), "reexecution": why}
            continue
        last = max(mine.values(), key=lambda v: v.order)
        # like with like: what the pool paid out in that token in the real transaction (every payment,
        # as the re-execution counts them), else the final swap's own amount
        real = sum(tr.amount for tr in view.transfers_by_tx.get(h, ())
                   if tr.token == final.token_out and tr.from_address == final.pool) or final.amount_out
        for v in mine.values():
            d = done_pools.setdefault(v.pool, {"method": oracle.method, "node_method": "eth_simulateV1", "left_out": set(),
                                               "measured_at": {}, "model_method": methods.get(v.pool, "unavailable"),
                                               "model_losses": {}})
            d["left_out"] |= drop
            d["measured_at"][h] = final.pool
            if v.order in loss_by_order:
                d["model_losses"][h] = f"{loss_by_order[v.order]}"
            loss_by_order[v.order] = out - real if v is last else 0
            if v is last and final.token_out != v.token_out:
                loss_token[v.order] = final.token_out
    for pool, d in done_pools.items():
        before = details.get(pool, {})
        if "reason" in before:
            d["model_reason"] = before["reason"]
        d["left_out"] = sorted(d["left_out"])
        details[pool] = d
        methods[pool] = oracle.method


def _before(view: BlockView, tx_hash: str, victim: Swap) -> bool:
    tx = view.tx_by_hash.get(tx_hash)
    return tx is not None and tx.position < victim.transaction_position


def _alert(view: BlockView, legs: list[tuple[Swap, Swap, list[Swap], list[Swap]]]) -> Alert:
    block = view.block
    fronts = {f.order: f for f, _, _, _ in legs}
    backs = {b.order: b for _, b, _, _ in legs}
    victims = {v.order: v for _, _, vs, _ in legs for v in vs}
    attackers: list[str] = []
    for f, b, _, _ in legs:
        for a in (f.tx_from, view.holder(f), view.source(b), b.tx_from):
            if a not in attackers and not view.is_infrastructure(a):
                attackers.append(a)

    # profit per pool by the pro-rata rule, summed per start token
    per_token: dict[str, int] = defaultdict(int)
    for pool in {f.pool for f in fronts.values()}:
        pf = [f for f in fronts.values() if f.pool == pool]
        pb = [b for b in backs.values() if b.pool == pool]
        cost, bought = sum(f.amount_in for f in pf), sum(f.amount_out for f in pf)
        sold, received = sum(b.amount_in for b in pb), sum(b.amount_out for b in pb)
        per_token[pf[0].token_in] += pro_rata_profit(cost, bought, sold, received)
    profit = view.prices.amount(dict(per_token))

    # victim loss: constant-product pools reconstructed from the block; V3 pools exactly inside one tick range
    loss_by_order: dict[int, int] = {}
    methods: dict[str, str] = {}
    details: dict[str, dict] = {}
    for f, _, vs, window in legs:
        front_orders = {x.order for x in window if x.order in fronts}
        if f.protocol == "uniswap_v2":
            got = v2_victim_losses(window, front_orders, {v.order for v in vs})
            if got is not None:
                loss_by_order.update(got)
                methods[f.pool] = "constant_product_replay"
                continue
            details[f.pool] = {"method": "unavailable", "reason": "no reserves (Sync) recorded for the pool"}
        elif f.protocol == "uniswap_v3":
            ss = view.swaps_by_pool[f.pool]
            i = ss.index(f)
            v3, detail = v3_victim_losses(window, front_orders, {v.order for v in vs}, ss[i - 1] if i > 0 else None)
            if v3 is not None:
                loss_by_order.update(v3)
                methods[f.pool] = V3_EXACT
                details[f.pool] = {"method": V3_EXACT, **detail}
                continue
            details[f.pool] = {"method": "unavailable", **detail}
        else:
            details[f.pool] = {"method": "unavailable", "reason": f"no exact model for {f.protocol} pools"}
        methods[f.pool] = "unavailable"
    loss_token: dict[int, str] = {}  # a victim's loss in another token than its swap's output (a route's last hop)
    if view.oracle is not None:
        _reexecute(view, legs, loss_by_order, methods, details, loss_token)
    victim_loss = None
    if loss_by_order:
        by_token: dict[str, int] = defaultdict(int)
        for o, loss in loss_by_order.items():
            by_token[loss_token.get(o, victims[o].token_out)] += loss
        victim_loss = view.prices.amount(dict(by_token))

    front_txs = sorted({f.transaction_hash: f.transaction_position for f in fronts.values()}.items(), key=lambda x: x[1])
    back_txs = sorted({b.transaction_hash: b.transaction_position for b in backs.values()}.items(), key=lambda x: x[1])
    victim_txs = sorted({v.transaction_hash: v.transaction_position for v in victims.values()}.items(), key=lambda x: x[1])
    txs = [AlertTx(h, p, "frontrun") for h, p in front_txs]
    txs += [AlertTx(h, p, "victim") for h, p in victim_txs]
    txs += [AlertTx(h, p, "backrun") for h, p in back_txs]
    attack_hashes = [h for h, _ in front_txs + back_txs]
    pools = sorted({f.pool for f in fronts.values()})
    tokens = sorted({t for f in fronts.values() for t in (f.token_in, f.token_out)})
    victim_accounts = []
    for v in sorted(victims.values(), key=lambda s: s.order):
        if v.tx_from not in victim_accounts:
            victim_accounts.append(v.tx_from)
    miner_paid = sum(view.db.miner_payments.get(h, 0) for h in attack_hashes)
    return Alert(
        kind="sandwich",
        stage="included",
        chain_id=block.chain_id,
        block_number=block.number,
        block_hash=block.hash,
        txs=txs,
        attackers=attackers,
        victims=victim_accounts,
        pools=pools,
        tokens=tokens,
        profit=profit,
        victim_loss=victim_loss,
        gas_cost_wei=gas_cost(view.db, attack_hashes),
        evidence={
            "frontrun_swaps": [f.as_evidence() for f in sorted(fronts.values(), key=lambda s: s.order)],
            "backrun_swaps": [b.as_evidence() for b in sorted(backs.values(), key=lambda s: s.order)],
            "victim_swaps": [
                {**v.as_evidence(), "loss": f"{loss_by_order[v.order]}" if v.order in loss_by_order else None,
                 **({"loss_token": loss_token[v.order]} if v.order in loss_token else {})}
                for v in sorted(victims.values(), key=lambda s: s.order)
            ],
            "valuation": view.prices.valuation(),
            "victim_loss_method": methods,
            "victim_loss_detail": details,
            "miner_payments_wei": f"{miner_paid}",
        },
    )
