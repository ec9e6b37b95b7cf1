"""Helpers for the daemon's tests: the fault-free baseline, a paced Kafka feeder, the daemon as a
real subprocess, and a webhook receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import yaml

from mevwatch.monitor.alerts import AlertEvent
from mevwatch.monitor.pipeline import DetectWorker
from mevwatch.monitor.sinks.base import SinkChain
from services import free_port
from mevwatch.streams import bus as busmod
from mevwatch.monitor.types import PendingTx
from mevwatch.streams.ingest import publish

REPO = Path(__file__).resolve().parents[2]


def baseline(messages: list, confirmations: int) -> list[AlertEvent]:
    """The stage events of a fault-free run: the same pipeline on the in-process bus, no sinks."""
    bus = busmod.InProcessBus()
    for m in messages:
        publish(bus, m)
    return DetectWorker(bus, SinkChain([]), chain_id=31337, confirmations=confirmations).drain()


class Feeder:
    """Publishes messages to the broker at a pace (a block every ``block_s``), surviving broker restarts."""

    def __init__(self, bootstrap: str, messages: list, block_s: float = 0.15):
        self.bus = busmod.KafkaBus(bootstrap)
        self.messages, self.block_s = messages, block_s
        self.sent = 0
        self.blocks = 0  # blocks published so far
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> Feeder:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for m in self.messages:
                publish(self.bus, m)
                self.sent += 1
                if not isinstance(m, PendingTx):
                    self.bus.flush(120)
                    self.blocks += 1
                    time.sleep(self.block_s)
            self.bus.flush(120)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def join(self, timeout: float = 180) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "feeder did not finish"
        assert self.error is None, repr(self.error)
        self.bus.close()


class Daemon:
    """``mevwatch run --role detect`` as a real process (killable, restartable)."""

    def __init__(self, tmp: Path, *, kafka: str | None, clickhouse: str | None, confirmations: int, webhooks: list[dict] | None = None,
                 role: str = "detect", rpc: str | None = None, group: str = "mevwatch", extra: dict | None = None,
                 env: dict | None = None, kafka_settings: dict | None = None):
        self.tmp = tmp
        self.health_port = free_port()
        cfg = {"chain_id": 31337, "data_dir": str(tmp / "data"), "kafka": {"bootstrap": kafka, "group_id": group, **(kafka_settings or {})},
               "clickhouse": {"url": clickhouse, "data_dir": str(tmp / "data" / "chdb")}, "node": {"confirmations": confirmations},
               "health_port": self.health_port, "webhooks": webhooks or [],
               "webhook_delivery": {"allow_private": True, "backoff_base_s": 0.05, "backoff_max_s": 1.0, "max_attempts": 50}}
        cfg.update(extra or {})
        self.env = env or {}
        self.config = tmp / f"mevwatch-{uuid.uuid4().hex[:6]}.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.role, self.rpc = role, rpc
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "daemon.log"

    def start(self) -> Daemon:
        cmd = [sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(self.config), "run", "--role", self.role]
        if self.rpc:
            cmd += ["--rpc", self.rpc]
        env = dict(os.environ, PYTHONPATH=str(REPO), **self.env)
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def get(self, path: str) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except (urllib.error.URLError, OSError):
            return 0, {}  # not listening (yet, or any more)


def start_on_lab(daemon: Daemon, lab, rpc, ready=None) -> int:
    """Set up the lab's market, start the daemon, mine one block and wait until the daemon
    follows the node (``ready()``, default /readyz); returns the block number before that block."""
    lab.setup()
    daemon.start()
    start = int(rpc("eth_blockNumber"), 16)
    wait_until(lambda: daemon.get("/healthz")[0] == 200, 60, "the daemon's health endpoint", daemon.tail)
    rpc("evm_mine")
    wait_until(ready or (lambda: daemon.get("/readyz")[0] == 200), 60, "the daemon to follow the node", daemon.tail)
    return start


def wait_until(cond, timeout: float, what: str, tail=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{tail()}")


class Receiver:
    """A webhook receiver on 127.0.0.1 (aiohttp) answering 500 to every other request when ``flaky``."""

    def __init__(self, secret: str, *, flaky: bool = False):
        self.secret, self.flaky = secret, flaky
        self.requests: list[tuple[dict, bytes]] = []
        self.port = free_port()
        self.n = 0
        self._loop = None
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _serve(self) -> None:
        import asyncio

        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            self.n += 1
            if self.flaky and self.n % 2 == 1:
                return web.Response(status=500, text="try again")
            self.requests.append(({k.lower(): v for k, v in request.headers.items()}, body))
            return web.Response(status=204)

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            while True:
                await asyncio.sleep(3600)

        asyncio.run(main())

    def events(self) -> list[tuple[Event, str]]:
        """Every delivery answered 2xx, duplicates kept: ((alert id, stage, version), webhook-id), the
        version from the webhook-id ``{alert_id}-{version}``."""
        out = []
        for headers, body in list(self.requests):
            obj, wid = json.loads(body), headers["webhook-id"]
            out.append(((obj["data"]["alert_id"], obj["data"]["stage"], int(wid.rsplit("-", 1)[1])), wid))
        return out

    def verified(self) -> list[dict]:
        """Bodies whose Standard Webhooks signature the reference library accepts (raises otherwise)."""
        from standardwebhooks import Webhook

        wh = Webhook(self.secret)
        return [wh.verify(body, headers) for headers, body in self.requests]


# --- what every sink holds, raw: no de-duplication anywhere -----------------------------------------
Event = tuple[str, str, int]  # (alert_id, stage, version)
MERGE_FREE_TABLES = ("alerts", "evidence", "alert_txs")
_expected: dict[tuple[int, int], set[Event]] = {}


def expected_events(messages: list, confirmations: int) -> set[Event]:
    """The fault-free run's block-stage ``(alert_id, stage, version)`` events (computed once per
    recording). Pending-stage events are left out: they depend on how the mempool partitions
    interleave, which Kafka does not fix; the sinks' pending events are compared with each other."""
    key = (id(messages), confirmations)
    if key not in _expected:
        _expected[key] = {(e.alert.alert_id, e.alert.stage, e.version) for e in baseline(messages, confirmations)
                          if e.alert.stage != "pending"}
    return _expected[key]


def stop_merges(store, tables: tuple[str, ...] = MERGE_FREE_TABLES) -> None:
    """Keep every raw row of ``tables`` on clickhouse-server (``SYSTEM STOP MERGES``; a restarted
    server forgets it: call again), so a duplicate or a second version is never merged away behind
    the test's back. :func:`merged_parts` proves it held."""
    db = store.backend.query("SELECT currentDatabase()")[0][0]
    for table in tables:
        store.backend.execute(f"SYSTEM STOP MERGES {db}.{table}")


def merged_parts(store, tables: tuple[str, ...] = MERGE_FREE_TABLES) -> int:
    """Active parts of ``tables`` that came out of a merge (level > 0): 0 while merges stayed stopped."""
    names = ", ".join(f"'{t}'" for t in tables)
    rows = store.backend.query("SELECT count() FROM system.parts WHERE active AND level > 0 AND database = currentDatabase() "
                               f"AND table IN ({names})")
    return int(rows[0][0])


def folded_rows(store, raw: list[Event]) -> set[Event]:
    """Rows a merge may have folded away: for each alert with a row in a merged part (level > 0),
    every (stage, version) below its newest row's version stands for itself (ReplacingMergeTree keeps
    the newest version per alert). Only for a test that restarts the server, which merges parts at
    start-up before merges can be stopped again; a merge drops rows, it never adds a version."""
    rows = store.backend.query("SELECT alert_id, max(version) FROM alerts WHERE _part IN (SELECT name FROM system.parts "
                               "WHERE active AND level > 0 AND database = currentDatabase() AND table = 'alerts') "
                               "GROUP BY alert_id")
    return {(aid, "*", int(v)) for aid, v in rows}


def present(raw: list[Event], want: set[Event], folded: set[Event]) -> set[Event]:
    """``raw`` as a set, plus the wanted events a merge folded into a newer version of their alert."""
    newest = {aid: v for aid, _s, v in folded}
    return set(raw) | {e for e in want if e[0] in newest and e[2] < newest[e[0]]}


def raw_alert_rows(store) -> list[Event]:
    """Every row of the alerts table, without FINAL (merges stopped: see :func:`stop_merges`)."""
    return [(r[0], r[1], int(r[2])) for r in store.backend.query("SELECT alert_id, stage, version FROM alerts")]


def topic_events(bootstrap: str, topic: str = "mevwatch.alerts.v1") -> list[Event]:
    """Every message on the alerts topic, from the start: (alert id, stage, version), duplicates kept.
    Each message's key must be its alert id."""
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"check-{uuid.uuid4().hex[:6]}",
                      auto_offset_reset="earliest", enable_auto_commit=False)
    out: list[Event] = []
    idle = 0
    try:
        while idle < 4:
            batch = c.poll(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for msgs in batch.values():
                for m in msgs:
                    obj = json.loads(m.value)
                    aid = obj["data"]["alert_id"]
                    assert m.key.decode() == aid, f"topic message keyed {m.key!r} carries alert {aid}"
                    out.append((aid, obj["data"]["stage"], int(obj["version"])))
    finally:
        c.close()
    return out


def event_problems(where: str, events: list[Event], want: set[Event], *, once: bool = False) -> list[str]:
    """What is wrong with one sink's raw events against the fault-free run's block-stage events:
    an ``(alert_id, stage)`` under more than one version (any stage), a block-stage event missing
    or extra, and with ``once`` any event more than once. Empty when the sink is exact."""
    problems = []
    versions: dict[tuple[str, str], set[int]] = {}
    for aid, stage, ver in events:
        versions.setdefault((aid, stage), set()).add(ver)
    multi = {k: sorted(v) for k, v in versions.items() if len(v) > 1}
    if multi:
        problems.append(f"{where}: {len(multi)} (alert, stage) under several versions, e.g. {sorted(multi.items())[:3]}")
    got = {e for e in events if e[1] != "pending"}
    if want - got:
        problems.append(f"{where}: {len(want - got)} of {len(want)} events missing, e.g. {sorted(want - got)[:3]}")
    if got - want:
        problems.append(f"{where}: {len(got - want)} events a fault-free run has not, e.g. {sorted(got - want)[:3]}")
    if once:
        twice = {e: n for e, n in Counter(events).items() if n > 1}
        if twice:
            problems.append(f"{where}: {len(twice)} events more than once, e.g. {sorted(twice.items())[:3]}")
    return problems


def sink_problems(store, bootstrap: str, rx: Receiver, want: set[Event], *, webhooks_once: bool = True,
                  merged_ok: int = 0, stored_before: set[Event] = frozenset()) -> list[str]:
    """:func:`event_problems` for each sink: raw ClickHouse rows, every alerts-topic message, every
    webhook delivery (each webhook-id always with one body, ``{alert_id}-{version}`` of it); and
    the sinks' pending events agree. ``webhooks_once=False`` (the daemon was SIGKILLed: a delivery
    whose 2xx was not recorded is sent again, docs/operations.md) allows a repeat with the same
    webhook-id and body. ``merged_ok``: merged parts the caller accounts for (a restarted server
    merges before merges can be stopped again; the rows in them were checked before the stop).
    ``stored_before``: rows read before such a restart; a merge at start-up may have folded them
    into newer versions, so they count as stored (a merge can drop rows, never add versions)."""
    raw, topic, hooks = raw_alert_rows(store), topic_events(bootstrap), rx.events()
    raw = raw + sorted(stored_before - set(raw))
    if merged_ok:  # the server restarted: count what its start-up merges folded away as stored
        raw = raw + sorted(present(raw, want, folded_rows(store, raw)) - set(raw))
    problems = event_problems("ClickHouse rows", raw, want)
    if merged_parts(store) > merged_ok:
        problems.append("ClickHouse: parts were merged, so the raw rows may hide duplicates")
    problems += event_problems("alerts topic", topic, want)
    problems += event_problems("webhook deliveries", [e for e, _w in hooks], want, once=webhooks_once)
    bodies: dict[str, set[bytes]] = {}
    for headers, body in rx.requests:
        bodies.setdefault(headers["webhook-id"], set()).add(body)
    if any(len(b) > 1 for b in bodies.values()):
        problems.append("webhook deliveries: one webhook-id with different bodies")
    if any(w != f"{aid}-{ver}" for (aid, _s, ver), w in hooks):
        problems.append("webhook deliveries: a webhook-id that is not {alert_id}-{version} of its body")
    pending = [{e for e in evs if e[1] == "pending"} for evs in (raw, topic, [e for e, _w in hooks])]
    if not pending[0] == pending[1] == pending[2]:
        problems.append(f"pending events differ between sinks: ClickHouse {len(pending[0])}, topic {len(pending[1])}, "
                        f"webhooks {len(pending[2])}")
    return problems


def settle(store, rx: Receiver, want: set[Event], messages: list, daemon: Daemon, timeout: float = 90,
           give_up_s: float | None = None, stored_before: set[Event] = frozenset(), restarted: bool = False) -> None:
    """Wait until ClickHouse has every block of ``messages`` and the block-stage events ``want``, and
    the receiver has them too. With ``give_up_s``: return (without failing) that long after the
    last block reached ClickHouse, whatever is missing (a broken variant loses events for good)."""
    from mevwatch.monitor.types import Block

    numbers = [m.number for m in messages if isinstance(m, Block)]
    t_last: list[float] = []

    state: dict[str, object] = {}

    def done() -> bool:
        try:
            state["last_block"] = last = store.last_block()
            if (last or -1) < max(numbers):
                return False
            if not t_last:
                t_last.append(time.monotonic())
            if give_up_s is not None and time.monotonic() - t_last[0] > give_up_s:
                return True
            state["blocks"] = n = store.count("blocks")
            raw = raw_alert_rows(store)
            seen = present(raw, want, folded_rows(store, raw)) if restarted else set(raw)
            rows = {e for e in seen | stored_before if e[1] != "pending"}
            hooks = {e for e, _w in rx.events() if e[1] != "pending"}
            state["missing in ClickHouse"] = sorted(want - rows)[:5]
            state["missing at the receiver"] = sorted(want - hooks)[:5]
            return n >= len(numbers) and rows >= want and hooks >= want
        except Exception as exc:  # noqa: BLE001 - ClickHouse restarting
            state["error"] = repr(exc)[:300]
            return False

    def report() -> str:
        return f"want {len(want)} events, blocks up to {max(numbers)}; {state}\n{daemon.tail()}"
    wait_until(done, timeout, "every block and every alert stage in ClickHouse and at the webhook receiver", report)


def wait_assigned(bootstrap: str, group: str, timeout: float = 60, tail=lambda: "") -> None:
    """Wait until ``group`` is stable with the blocks partition assigned to a member."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        def assigned() -> bool:
            g = admin.describe_groups([group]).get(group, {})
            return str(g.get("group_state", g.get("state", ""))) == "Stable" and "mevwatch.blocks.v1" in str(g.get("members"))
        wait_until(assigned, timeout, f"consumer group {group} to get the blocks partition", tail)
    finally:
        admin.close()


def start_detect(daemon: Daemon, bootstrap: str, group: str = "mevwatch-detect") -> None:
    """Start the detect daemon and return once /readyz is OK and its consumer holds the blocks partition."""
    daemon.start()
    wait_until(lambda: daemon.get("/readyz")[0] == 200, 90, "the detect daemon ready", daemon.tail)
    wait_assigned(bootstrap, group, 60, daemon.tail)


def metric(daemon: Daemon, name: str) -> float:
    """Sum of a metric's samples (all labels) on the daemon's /metrics; 0 when absent or not serving."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.health_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"))


def stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP: state T)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except OSError:
        return False
