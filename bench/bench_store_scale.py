"""The evidence store at scale (issue 19): dashboard panels, the batcher's queries and the restart
query on embedded ClickHouse (chDB) filled with millions of alerts over two years of blocks, and the
write path's p99 while the batcher polls.

- fill: rows generated inside ClickHouse (``INSERT ... SELECT ... FROM numbers(N)``) through the
  project's schema (all migrations): one block every 12 s for two years up to now, ``--alerts``
  alerts spread evenly over them (95 % sandwiches, 5 % mempool-stage attempts), each with an
  ``included`` and a ``final`` row (the newest 64 blocks' alerts still ``included``), evidence rows
  with a record and, for alerts below the newest 1,000 blocks, an inclusion-proof row and its batch
  (one per 100 blocks), and ``--swaps`` swaps.
- panels: every ClickHouse panel query of dashboards/build.py, macros expanded as Grafana does, for
  the last 24 h and the last 7 days; median and worst of 5 runs after one warm-up.
- batcher: what one round of ``Batcher.step`` and its 15-s gauge query: ``last_block``,
  ``final_alerts(last batch + 1, horizon)``, ``unattested_final_count``, ``unattested_final_range``.
- restart: ``recent_blocks(512)``, ``checkpoint_version`` and ``open_alerts`` (records parsed into
  Python) as ``mevwatch run`` calls them; peak RSS of the process (chDB included) after it.
- write path: ``AlertStore.write`` of batches of 10 new included alerts (with their block row), 300
  batches, alone and then while a thread runs the batcher's queries every 2 s; p50/p99 per batch.

Run: .venv/bin/python bench/bench_store_scale.py [--alerts 5000000] [--swaps 20000000] [--no-report]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from mevwatch.dashboards.build import dashboards, expand_sql, queries  # noqa: E402
from mevwatch.monitor.alerts import Alert, AlertEvent, AlertTx  # noqa: E402
from mevwatch.monitor.lifecycle import event_end  # noqa: E402
from mevwatch.monitor.store.queries import unattested_final_count  # noqa: E402
from mevwatch.monitor.store.store import StoreBatch, open_store  # noqa: E402

YEARS_S = 2 * 365 * 86_400
BLOCK_S = 12
OPEN_BLOCKS = 64  # the finality depth: the newest blocks' alerts are still included
UNATTESTED_BLOCKS = 1000  # alerts of the newest blocks carry no proof yet
BATCH_BLOCKS = 100


def fill(store, n_alerts: int, n_swaps: int) -> dict[str, int]:
    b = store.backend
    now = int(time.time())
    nb = YEARS_S // BLOCK_S
    t0 = now - nb * BLOCK_S
    head = nb - 1
    p = {"nb": nb, "n": n_alerts, "t0": t0, "open": head - OPEN_BLOCKS, "att": head - UNATTESTED_BLOCKS}
    steps = [
        ("blocks", f"""INSERT INTO blocks (block_number, block_hash, parent_hash, block_time, tx_count, canonical, processed_at,
            version, swap_calls_decoded, swap_calls_undecoded, decode_coverage, chain_id)
            SELECT number, concat('0x', lower(hex(SHA256(toString(number))))), '', toDateTime({t0} + number * {BLOCK_S}), 150, 1,
            toDateTime({t0} + number * {BLOCK_S}), ((number + 1) * 8) + 2, 10, 0, 1.0, 1 FROM numbers({nb})"""),
    ]
    alert_sel = """SELECT concat('0x', lower(hex(SHA256(toString(number))))) AS id, intDiv(number * {nb}, {n}) AS blk,
        if(number % 20 = 0, 'sandwich_attempt', 'sandwich') AS kind, {t0} + blk * 12 AS ts, number"""
    cols = ("alert_id, version, stage, kind, chain_id, block_number, block_hash, detector, score, model_hash, attackers, victims, "
            "pools, tokens, profit_token, profit_amount, profit_eth, victim_loss_token, victim_loss_amount, victim_loss_eth, "
            "gas_cost_wei, first_seen_ns, updated_at, order_flow, profit_usd, victim_loss_usd, alert_time")

    def alert_rows(stage: str, ver: str, where: str) -> str:
        return f"""INSERT INTO alerts ({cols}) SELECT id, {ver}, if(kind = 'sandwich', '{stage}', if('{stage}' = 'final', 'retracted', 'pending')),
            kind, 1, if(kind = 'sandwich', blk, NULL), if(kind = 'sandwich', concat('0x', lower(hex(SHA256(toString(blk))))), ''),
            if(number % 7 = 0, 'gnn', 'rules'), 1.0, '', [concat('0xa', toString(number % 5000))], [concat('0xv', toString(number % 100000))],
            [concat('0xp', toString(number % 2000))], ['0xweth'], '0xweth', toString(number * 1000), (number % 1000) / 1000.0,
            '0xweth', toString(number * 10), (number % 300) / 1000.0, '21000', ts * 1000000000, toDateTime(ts),
            if(number % 3 = 0, 'public', 'private'), NULL, NULL, toDateTime(ts)
            FROM ({alert_sel.format(**p)} FROM numbers({n_alerts})) {where}"""

    def record(stage: str) -> str:
        return ("concat('{\"alert_id\":\"', id, '\",\"kind\":\"', kind, '\",\"stage\":\"', " + stage + ", '\",\"chain_id\":1,"
                "\"block_number\":', toString(blk), ',\"block_hash\":\"0x', lower(hex(SHA256(toString(blk)))), '\",\"txs\":[{\"hash\":\"0x', "
                "lower(hex(SHA256(concat('f', id)))), '\",\"position\":0,\"role\":\"frontrun\"},{\"hash\":\"0x', lower(hex(SHA256(concat('b', id)))), "
                "'\",\"position\":2,\"role\":\"backrun\"}],\"attackers\":[\"0xa\"],\"victims\":[\"0xv\"],\"pools\":[\"0xp\"],"
                "\"tokens\":[\"0xweth\"],\"evidence\":{\"swaps\":3}}')")
    ev_cols = "alert_id, version, stage, evidence, record, proof, batch_id, alert_time"
    inc_ver = "(blk + 1) * 8 + 2"
    fin_ver = f"(least(blk + {OPEN_BLOCKS}, {nb}) + 1) * 8 + 3"
    steps += [
        ("alerts included", alert_rows("included", f"if(kind = 'sandwich', {inc_ver}, 1)", "")),
        ("alerts final", alert_rows("final", fin_ver, "WHERE blk < {open}".format(**p))),
        ("evidence included", f"""INSERT INTO evidence ({ev_cols}) SELECT id, if(kind = 'sandwich', {inc_ver}, 1),
            if(kind = 'sandwich', 'included', 'pending'), '{{"swaps":3}}', {record("if(kind = 'sandwich', 'included', 'pending')")}, '', -1, toDateTime(ts)
            FROM ({alert_sel.format(**p)} FROM numbers({n_alerts}))"""),
        ("evidence final", f"""INSERT INTO evidence ({ev_cols}) SELECT id, {fin_ver}, if(kind = 'sandwich', 'final', 'retracted'),
            '{{"swaps":3}}', {record("if(kind = 'sandwich', 'final', 'retracted')")}, '', -1, toDateTime(ts)
            FROM ({alert_sel.format(**p)} FROM numbers({n_alerts})) WHERE blk < {p['open']}"""),
        ("evidence proofs", f"""INSERT INTO evidence ({ev_cols}) SELECT id, {fin_ver} + 2, 'final', '{{"swaps":3}}',
            {record("'final'")}, concat('{{"format":2,"batch_id":', toString(intDiv(blk, {BATCH_BLOCKS}) + 1),
            ',"path":["0x', lower(hex(SHA256(id))), '","0x', lower(hex(SHA256(concat(id, 'x')))), '"],"contract":"0xC"}}'),
            intDiv(blk, {BATCH_BLOCKS}) + 1, toDateTime(ts)
            FROM ({alert_sel.format(**p)} FROM numbers({n_alerts})) WHERE blk < {p['att']} AND kind = 'sandwich'"""),
        ("attestations", f"""INSERT INTO attestations (batch_id, root, contract, attest_chain_id, tx_hash, attest_block, gas_used,
            attester, from_block, to_block, alert_count, model_hash, uri, attested_at, version)
            SELECT number + 1, '0xr', '0xC', 1, '0xt', number, 100000, '0xA', number * {BATCH_BLOCKS}, number * {BATCH_BLOCKS} + {BATCH_BLOCKS - 1},
            10, '0x0', '', toDateTime({t0} + (number + 1) * {BATCH_BLOCKS} * {BLOCK_S}), 1
            FROM numbers(intDiv({p['att']}, {BATCH_BLOCKS}))"""),
        ("swaps", f"""INSERT INTO swaps (block_number, block_hash, block_time, tx_hash, tx_position, ord, protocol, pool, sender,
            recipient, tx_from, token_in, token_out, amount_in, amount_out, version, chain_id)
            SELECT intDiv(number * {nb}, {max(n_swaps, 1)}) AS blk, concat('0x', lower(hex(SHA256(toString(blk))))),
            toDateTime({t0} + blk * {BLOCK_S}), concat('0x', lower(hex(SHA256(concat('s', toString(number)))))), number % 200, number,
            ['uniswap_v2', 'uniswap_v3', 'curve', 'balancer'][number % 4 + 1], concat('0xp', toString(number % 2000)), '0xs', '0xr',
            '0xf', '0xweth', '0xusdc', toString(number), toString(number * 3), (blk + 1) * 8 + 2, 1 FROM numbers({n_swaps})"""),
    ]
    took = {}
    for name, sql in steps:
        t = time.perf_counter()
        b.execute(sql)
        took[name] = time.perf_counter() - t
        print(f"  {name}: {took[name]:.1f} s", flush=True)
    return {**{k: int(v) for k, v in took.items()}, "blocks": nb, "head": head}


def timed(fn, runs: int = 5) -> tuple[float, float]:
    fn()  # warm-up
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), max(ts)


def final_alerts(store) -> int:
    horizon = (store.last_block() or 0) - OPEN_BLOCKS
    rows = store.backend.query("SELECT max(to_block) FROM attestations FINAL")  # stands in for the chain's lastBatchOf
    return len(store.final_alerts(int(rows[0][0]) + 1, horizon))


def batcher_round(store) -> None:
    """One round of Batcher.step (horizon, next batch's alerts) and its waiting gauge."""
    final_alerts(store)
    unattested_final_count(store)


def write_p99(store, start_block: int, n: int, poll: bool) -> tuple[float, float]:
    stop = threading.Event()
    polls = [0]

    def poller() -> None:
        while not stop.is_set():
            batcher_round(store)
            store.unattested_final_range()
            polls[0] += 1
            stop.wait(2.0)

    th = threading.Thread(target=poller, daemon=True)
    if poll:
        th.start()
    ts = []
    now = int(time.time())
    for i in range(n):
        blk = start_block + i
        events = [AlertEvent(Alert(kind="sandwich", stage="included", chain_id=1, block_number=blk, block_hash=f"0xw{blk:x}",
                                   txs=[AlertTx(f"0xw{blk}{j}{poll}a", 0, "frontrun"), AlertTx(f"0xw{blk}{j}{poll}b", 2, "backrun")],
                                   attackers=["0xa"], victims=["0xv"], pools=["0xp"], tokens=["0xweth"], profit=None,
                                   victim_loss=None, gas_cost_wei=None, evidence={"j": j}), ((blk + 1) << 3) | 2)
                  for j in range(10)]
        batch = StoreBatch(alerts=events, blocks=[(blk, f"0xw{blk:x}", "", now, 1, 1, now, ((blk + 1) << 3) | 2, 0, 0, None, 1)])
        t = time.perf_counter()
        store.write(batch)
        ts.append((time.perf_counter() - t) * 1000)
        time.sleep(0.02)
    stop.set()
    if poll:
        th.join()
    ts.sort()
    return statistics.median(ts), ts[int(len(ts) * 0.99) - 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=5_000_000)
    ap.add_argument("--swaps", type=int, default=20_000_000)
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mevwatch-scale-") as tmp:
        store = open_store(None, Path(tmp) / "chdb")
        print(f"filling chDB: {args.alerts:,} alerts, {args.swaps:,} swaps", flush=True)
        t = time.perf_counter()
        info = fill(store, args.alerts, args.swaps)
        fill_s = time.perf_counter() - t
        counts = {tbl: int(store.backend.query(f"SELECT count() FROM {tbl}")[0][0]) for tbl in ("alerts", "evidence", "blocks", "swaps")}
        parts = int(store.backend.query("SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'alerts' AND active")[0][0])
        print(f"filled in {fill_s:.0f} s: {counts}, alerts parts {parts}", flush=True)
        now = int(time.time())
        rows = []
        for d in dashboards().values():
            for title, kind, sql in queries(d):
                if kind == "prometheus":
                    continue
                res = []
                for span in (86_400, 7 * 86_400):
                    q = expand_sql(sql, now - span, now)
                    res.append(timed(lambda q=q: store.backend.query(q)))
                rows.append((f"panel: {title}", res))
                print(f"  {title}: {res}", flush=True)
        batcher = [("batcher: last_block", lambda: store.last_block()),
                   ("batcher: final_alerts(last batch + 1, horizon), with last_block", lambda: final_alerts(store)),
                   ("batcher: unattested_final_count (15-s gauge)", lambda: unattested_final_count(store)),
                   ("batcher: unattested_final_range", lambda: store.unattested_final_range()),
                   ("batcher: one round (the three above)", lambda: batcher_round(store))]
        for name, fn in batcher:
            r = timed(fn)
            rows.append((name, [r]))
            print(f"  {name}: {r}", flush=True)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        blocks = store.recent_blocks(512)
        ckpt = store.checkpoint_version()
        opened = store.open_alerts(event_end(ckpt))
        restart_s = time.perf_counter() - t
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        n_final = final_alerts(store)
        print(f"  restart: {restart_s:.2f} s, {len(opened)} open alerts, {len(blocks)} blocks, peak RSS {rss0 // 1024} -> {rss1 // 1024} MiB")
        base = info["head"] + 10
        alone = write_p99(store, base, 300, poll=False)
        polled = write_p99(store, base + 1000, 300, poll=True)
        print(f"  write p50/p99 alone {alone}, while polling {polled}", flush=True)
        store.close()

    def fmt(r: tuple[float, float]) -> str:
        return f"{r[0]:.1f} / {r[1]:.1f}"

    table = ["| query | last 24 h: median / worst ms | last 7 days: median / worst ms |", "|---|---|---|"]
    for name, res in rows:
        table.append(f"| {name} | {fmt(res[0])} | {fmt(res[1]) if len(res) > 1 else 'n/a'} |")
    body = f"""chDB (embedded ClickHouse, this process), schema 6 (alert_time, monthly partitions: docs/store.md). Filled with
{args.alerts:,} alerts over {info['blocks']:,} blocks (two years, a block every 12 s, up to now) and {args.swaps:,} swaps, in
{fill_s:.0f} s: {counts['alerts']:,} alert rows, {counts['evidence']:,} evidence rows; {parts} active alert parts.

{chr(10).join(table)}

| restart (`recent_blocks(512)`, `checkpoint_version`, `open_alerts`) | result |
|---|---|
| wall time | **{restart_s:.2f} s** ({len(opened):,} open alerts read and parsed) |
| the next batch's final alerts (`final_alerts`) | {n_final:,} alerts |
| peak RSS of the process (chDB included), before -> after | {rss0 // 1024:,} -> {rss1 // 1024:,} MiB |

| write path: `AlertStore.write`, 300 batches of 10 included alerts + block row | p50 / p99 ms |
|---|---|
| alone | {fmt(alone)} |
| while a thread runs the batcher's queries every 2 s | {fmt(polled)} |

Load average (1 min) at the start and the end of the run: {load0:.2f} / {os.getloadavg()[0]:.2f} (other processes on
the machine share its 2 cores).

The store's statements run on up to three chDB sessions of the process (monitor/store/backend.py `_Pool`): the
write does not wait for a batcher query in flight; the two share the machine's two cores.
"""
    print(body)
    if not args.no_report:
        write_section("store at scale", f"python bench/bench_store_scale.py --alerts {args.alerts} --swaps {args.swaps}", body)


if __name__ == "__main__":
    main()
