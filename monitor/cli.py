"""The ``mevwatch`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from monitor import __version__
from monitor.config import Settings, load_settings
from monitor.errors import MevwatchError
from monitor.log import configure_logging

app = typer.Typer(
    name="mevwatch",
    help="MEV and transaction-threat monitor for Ethereum: decode swaps, detect sandwiches, "
    "front-runs, back-runs, JIT liquidity and arbitrage, live or from recorded history, with exact "
    "rules and a graph neural network; alerts go to ClickHouse, webhooks and Kafka, and final ones "
    "are attested on chain (mevwatch verify).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)


class State:
    settings: Settings


state = State()


@app.callback()
def main(
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML settings file (MEVWATCH_* variables override it).")] = None,
    log_level: Annotated[Optional[str], typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")] = None,
    log_format: Annotated[Optional[str], typer.Option("--log-format", help="json (default) or console.")] = None,
    chain_id: Annotated[Optional[int], typer.Option("--chain-id", help="Chain id stamped on messages and alerts (default 1).")] = None,
) -> None:
    try:
        state.settings = load_settings(config, log_level=log_level.upper() if log_level else None,
                                       log_format=log_format, chain_id=chain_id)
    except MevwatchError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(state.settings.log_level, state.settings.log_format)


@app.command()
def version() -> None:
    """Print the mevwatch version."""
    typer.echo(f"mevwatch {__version__}")


def fail(exc: Exception, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code)


@app.command()
def replay(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or folders: mev-inspect .json/.json.gz blocks, or mevwatch .jsonl/.jsonl.gz recordings.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto (by file name), mev-inspect or jsonl.")] = "auto",
    out: Annotated[str, typer.Option("--out", "-o", help="Where alerts go, one JSON object per line; '-' for stdout.")] = "-",
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="Replay from a node instead of files (http(s):// or ws(s)://).")] = None,
    from_block: Annotated[Optional[int], typer.Option("--from", help="First block to fetch with --rpc.")] = None,
    to_block: Annotated[Optional[int], typer.Option("--to", help="Last block to fetch with --rpc (inclusive).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Processes that decode files in parallel (default: CPU count, at most 8).")] = None,
    dead_letter: Annotated[Optional[Path], typer.Option("--dead-letter", help="Write every rejected input (file, position, reason) here as JSONL.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary table.")] = False,
    store: Annotated[bool, typer.Option("--store", help="Also write alerts (as final), swaps and blocks to the evidence store (embedded chDB unless --clickhouse).")] = False,
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db to write to (implies --store).")] = None,
    gnn: Annotated[bool, typer.Option("--gnn/--no-gnn", help="Score with the graph model (batches of blocks per forward pass); needs the gnn extra.")] = False,
    device: Annotated[str, typer.Option("--device", help="Graph model device: auto, cpu or cuda.")] = "auto",
) -> None:
    """Replay recorded blocks (or a node's block range) through decode and detect; write alerts as JSONL.

    With --store or --clickhouse the alerts, decoded swaps and blocks also go to ClickHouse,
    as the dashboards read them. Exits 1 when some input was rejected (the rest is still
    processed and reported).
    """
    from monitor.replay import replay_files

    alert_store = None
    if store or clickhouse:
        if rpc is not None:
            raise fail(MevwatchError("--store is for file replays; for a node, use mevwatch run"), 2)
        try:
            alert_store = _store(clickhouse, migrate=True)
        except MevwatchError as exc:
            raise fail(exc, 2) from None

    if rpc is not None:
        from monitor.replay_rpc import replay_rpc

        if from_block is None or to_block is None:
            raise fail(MevwatchError("--rpc needs --from and --to"), 2)
        if paths:
            raise fail(MevwatchError("give either files to replay or --rpc, not both"), 2)
        run = lambda sink, cb: replay_rpc(rpc, from_block, to_block, out=sink, on_block=cb, chain_id=state.settings.chain_id)  # noqa: E731
        total = to_block - from_block + 1
    else:
        if not paths:
            raise fail(MevwatchError("give files or folders to replay, or --rpc with --from/--to"), 2)
        from streams.files import discover

        try:
            found = discover(paths, fmt)
        except MevwatchError as exc:
            raise fail(exc, 2) from None
        total = sum(1 for _, f in found if f == "mev-inspect") or None
        scorer = None
        if gnn:
            from models.scorer import Scorer

            try:
                scorer = Scorer(state.settings.gnn.model, _gnn_device(device), state.settings.gnn.threshold)
            except MevwatchError as exc:
                raise fail(exc, 2) from None
        run = lambda sink, cb: replay_files(paths, fmt=fmt, out=sink, workers=workers, on_block=cb,  # noqa: E731
                                            chain_id=state.settings.chain_id, store=alert_store, scorer=scorer)

    sink = sys.stdout.buffer if out == "-" else open(out, "wb")  # noqa: SIM115
    show = not quiet and err.is_terminal
    try:
        with Progress(TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not show, transient=True) as bar:
            task = bar.add_task("replay", total=total)
            summary = run(sink, lambda _n: bar.advance(task))
    except MevwatchError as exc:
        raise fail(exc, 2) from None
    finally:
        if sink is not sys.stdout.buffer:
            sink.close()
        else:
            sink.flush()
        if alert_store is not None:
            where = alert_store.where
            alert_store.close()
            if not quiet:
                err.print(f"stored alerts, swaps and blocks in {where}")
    if dead_letter is not None:
        import orjson

        with open(dead_letter, "wb") as fh:
            for p in summary.problems:
                fh.write(orjson.dumps({"source": p.source, "position": p.position, "reason": p.reason,
                                       "raw": p.raw.decode("utf-8", "replace") if p.raw else None}) + b"\n")
    if not quiet:
        print_summary(summary, None if out == "-" else out)
    if summary.problems:
        raise typer.Exit(1)


@app.command()
def ingest(
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="WebSocket URL of the node (ws:// or wss://).")] = None,
    kafka: Annotated[Optional[str], typer.Option("--kafka", help="Kafka bootstrap host:port (or MEVWATCH_KAFKA__BOOTSTRAP).")] = None,
    no_pending: Annotated[bool, typer.Option("--no-pending", help="Follow blocks only, not the mempool.")] = False,
    no_traces: Annotated[bool, typer.Option("--no-traces", help="Do not ask the node for call traces.")] = False,
    max_messages: Annotated[Optional[int], typer.Option("--max-messages", help="Stop after this many messages (default: run until Ctrl-C).")] = None,
) -> None:
    """Follow a node's mempool and chain head and publish every pending tx, block and revert event to Kafka.

    Mempool messages are keyed by sender (one sender's nonces stay ordered), blocks and
    reverts by block hash on the single-partition blocks topic. Messages that cannot be
    normalised go to mevwatch.deadletter.v1. Reconnects and backfills on its own.
    """
    from streams.ingest import run_ingest

    s = state.settings
    rpc = rpc or s.node.rpc
    kafka = kafka or s.kafka.bootstrap
    if not rpc:
        raise fail(MevwatchError("--rpc is required (a ws:// URL), or set MEVWATCH_NODE__RPC"), 2)
    if not kafka:
        raise fail(MevwatchError("ingest publishes to Kafka: give --kafka host:port or MEVWATCH_KAFKA__BOOTSTRAP "
                                 "(the in-process bus lives inside `mevwatch run`)"), 2)
    try:
        n = run_ingest(rpc, kafka, settings=s, pending=not no_pending, traces=not no_traces, max_messages=max_messages)
    except MevwatchError as exc:
        raise fail(exc) from None
    err.print(f"published {n} messages")


@app.command()
def record(
    rpc: Annotated[str, typer.Option("--rpc", help="WebSocket URL of the node.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write (one envelope per line).")],
    blocks: Annotated[Optional[int], typer.Option("--blocks", help="Stop after this many blocks.")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Stop after this many seconds.")] = None,
    no_pending: Annotated[bool, typer.Option("--no-pending", help="Record blocks only.")] = False,
    append: Annotated[bool, typer.Option("--append", help="Add to an existing recording instead of refusing to touch it.")] = False,
) -> None:
    """Record a live node's pending txs, blocks and reverts to JSONL, replayable with `mevwatch replay`."""
    from streams.ingest import run_record

    if out.exists() and out.stat().st_size > 0 and not append:
        raise fail(MevwatchError(f"{out} already holds a recording; pass --append to add to it, or choose another file"), 2)
    try:
        counts = run_record(rpc, out, settings=state.settings, max_blocks=blocks, duration_s=duration, pending=not no_pending)
    except MevwatchError as exc:
        raise fail(exc) from None
    err.print(f"recorded {counts['blocks']} blocks, {counts['pending']} pending txs, {counts['reverts']} reverts to {out}")


@app.command()
def tail(
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic to read, e.g. mevwatch.blocks.v1.")],
    kafka: Annotated[Optional[str], typer.Option("--kafka", help="Kafka bootstrap host:port.")] = None,
    max_messages: Annotated[Optional[int], typer.Option("--max", help="Stop after this many messages.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Stop after this many seconds without a message.")] = 10.0,
    raw: Annotated[bool, typer.Option("--raw", help="Print each message's JSON as it is.")] = False,
) -> None:
    """Pretty-print the messages of a topic, from the beginning (reads without committing offsets)."""
    from streams.ingest import tail_topic

    kafka = kafka or state.settings.kafka.bootstrap
    if not kafka:
        raise fail(MevwatchError("--kafka host:port is required"), 2)
    try:
        tail_topic(kafka, topic, max_messages=max_messages, idle_timeout_s=timeout, raw=raw, console=Console())
    except MevwatchError as exc:
        raise fail(exc) from None


@app.command()
def demo(
    blocks: Annotated[int, typer.Option("--blocks", help="Blocks to simulate.", min=1)] = 60,
    block_time: Annotated[float, typer.Option("--block-time", help="Seconds per block (0: as fast as the lab can go).", min=0)] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the lab's market and traders.")] = 5,
    out: Annotated[Path, typer.Option("--out", help="Folder for alerts, the recording, the ground truth, the chDB store and the embedded chain.")] = Path(".mevwatch/demo"),
    no_attest: Annotated[bool, typer.Option("--no-attest", help="Do not attest final alerts on the embedded chain.")] = False,
) -> None:
    """Run the simulation lab on a local anvil and monitor it live; then score the alerts against the ground truth.

    Honest traders, a sandwich bot (some attacks split over two accounts), an arbitrageur
    between two venues and a copier that front-runs bounty claims act on the real mempool; mevwatch follows the node, raises pending alerts (exposed swaps, sandwich
    attempts) and included sandwiches, stores every stage in embedded chDB, attests the
    final alerts on an embedded chain, and finally prints precision and recall. Ctrl-C
    stops it cleanly; anvil is always shut down.
    """
    from monitor.demo import run_demo

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # piped or logged: no wrapping of table rows
    try:
        result = run_demo(blocks=blocks, seed=seed, out_dir=out, console=console, block_time=block_time, attest=not no_attest)
    except MevwatchError as exc:
        raise fail(exc) from None
    if result.interrupted:
        console.print("[yellow]interrupted[/yellow]; anvil stopped, partial results written")
    t = Table(title="detection against the lab's ground truth", title_justify="left")
    for col in ("alert kind", "landed attacks", "found", "recall", "alerts", "false positives", "precision"):
        t.add_column(col)
    for kind, sc in result.scores.items():
        label = {"either": "sandwich, pending or included", "sandwich": "sandwich (included)",
                 "sandwich_attempt": "sandwich_attempt (pending)", "arbitrage": "arbitrage or backrun",
                 "displacement": "frontrun_displacement", "jit": "jit_sandwich (CL pool)"}[kind]
        t.add_row(label, str(sc.attacks), str(sc.found), f"{sc.recall:.2f}", str(sc.alerts), str(sc.false_positives), f"{sc.precision:.2f}")
    console.print(t)
    kinds: dict[str, int] = {}
    for a in result.alerts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    console.print("alerts by kind: " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"))
    if result.model is not None:
        det: dict[str, int] = {}
        for a in result.alerts:
            det[a.detector] = det.get(a.detector, 0) + 1
        console.print(f"graph model {result.model[0]} on {result.model[1]}: {det.get('both', 0)} alerts confirmed by "
                      f"rules and model, {det.get('gnn', 0)} attempts only the model saw, {det.get('rules', 0)} rules only",
                      soft_wrap=True)
    else:
        console.print("graph model off (install the gnn extra): exact rules only", soft_wrap=True)
    console.print(f"written to {out}/: alerts.jsonl (every alert), recording.jsonl (the node's messages), labels.jsonl (ground truth)", soft_wrap=True)
    if result.store_path is not None:
        st = result.stored
        console.print(f"stored in chDB at {result.store_path}: {st.get('alerts', 0)} alerts (newest stage each), "
                      f"{st.get('swaps', 0)} swaps, {st.get('pending_txs', 0)} pending transactions, {st.get('blocks', 0)} blocks",
                      soft_wrap=True)
    cfg = out / "mevwatch.yaml"
    if result.registry:
        console.print(f"attested {result.attested} final alerts in {result.batches} batches on the embedded chain "
                      f"(registry {result.registry})", soft_wrap=True)
    console.print(f"replay it:  mevwatch --chain-id 31337 replay {out}/recording.jsonl --out replayed.jsonl", soft_wrap=True)
    console.print(f"query it:   mevwatch --config {cfg} db status", soft_wrap=True)
    console.print(f"            jq -c 'select(.kind==\"sandwich\") | {{block_number, profit, victim_loss}}' {out}/alerts.jsonl", soft_wrap=True)
    if result.example_attested:
        console.print(f"verify one: mevwatch --config {cfg} verify {result.example_attested}", soft_wrap=True)
    if result.interrupted:
        raise typer.Exit(130)


@app.command()
def run(
    role: Annotated[str, typer.Option("--role", help="all (one process), ingest (node -> Kafka), detect (Kafka -> detect -> sinks) or attest (store -> chain).")] = "all",
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="WebSocket URL of the node (or MEVWATCH_NODE__RPC).")] = None,
    kafka: Annotated[Optional[str], typer.Option("--kafka", help="Kafka bootstrap host:port; default: in-process bus (role all only).")] = None,
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB under data_dir.")] = None,
    confirmations: Annotated[Optional[int], typer.Option("--confirmations", help="Blocks deep before an alert is final (default 12).")] = None,
    health_port: Annotated[Optional[int], typer.Option("--health-port", help="Port of /healthz, /readyz, /metrics (default 8080; 0 = any free port).")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Stop after this many seconds (default: until SIGTERM).")] = None,
    max_blocks: Annotated[Optional[int], typer.Option("--max-blocks", help="Stop after this many new blocks.")] = None,
    drain: Annotated[float, typer.Option("--drain-s", help="On shutdown, seconds to finish consumed work and due webhooks.")] = 10.0,
    attest_rpc: Annotated[Optional[str], typer.Option("--attest-rpc", help="http(s) node of the attestation chain; default: embedded py-evm chain.")] = None,
    attest_contract: Annotated[Optional[str], typer.Option("--attest-contract", help="AttestationRegistry address on --attest-rpc.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="Graph model device: auto (default), cpu or cuda.")] = None,
    no_attest: Annotated[bool, typer.Option("--no-attest", help="Do not attest final alerts on chain.")] = False,
) -> None:
    """The daemon: follow a node, detect, and write every alert stage to ClickHouse, webhooks and Kafka.

    With no --kafka and no --clickhouse everything runs in this process (in-process bus,
    embedded chDB, attestation on an embedded chain). Restarts resume after the last
    processed block with no gap and no duplicate. SIGTERM drains, delivers and commits
    before exiting. With Kafka, run exactly one --role attest process next to the
    detect ones.
    """
    from monitor.daemon import run_daemon

    s = state.settings
    if kafka:
        s.kafka.bootstrap = kafka
    if clickhouse:
        s.clickhouse.url = clickhouse
    if confirmations is not None:
        s.node.confirmations = confirmations
    if health_port is not None:
        s.health_port = health_port
    if attest_rpc:
        s.attest.rpc = attest_rpc
    if attest_contract:
        s.attest.contract = attest_contract
    if no_attest:
        s.attest.enabled = False
    if device:
        if device not in ("auto", "cpu", "cuda"):
            raise fail(MevwatchError("--device must be auto, cpu or cuda"), 2)
        s.device = device
    try:
        result = run_daemon(s, role=role, rpc=rpc, duration_s=duration, max_blocks=max_blocks, drain_s=drain)
    except MevwatchError as exc:
        raise fail(exc) from None
    err.print(f"processed {result.blocks} blocks and {result.pending} pending transactions; {result.alerts} alert events")


db_app = typer.Typer(help="The ClickHouse evidence store (embedded chDB, or a server with --clickhouse).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _store(clickhouse: str | None, migrate: bool):
    from monitor.store.store import settings_store

    s = state.settings
    if clickhouse:
        s.clickhouse.url = clickhouse
    return settings_store(s, migrate=migrate)


@db_app.command("migrate")
def db_migrate(
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
) -> None:
    """Create or upgrade the tables (versioned migrations; safe to run again)."""
    try:
        store = _store(clickhouse, migrate=False)
        applied = store.migrate()
        have = store.applied_migrations()
    except MevwatchError as exc:
        raise fail(exc) from None
    err.print(f"{store.where}: applied {applied or 'nothing new'}; schema at version {max(have) if have else 0}")
    store.close()


@db_app.command("status")
def db_status(
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
) -> None:
    """Schema version, row counts and the last processed block."""
    try:
        store = _store(clickhouse, migrate=False)
        pending = store.pending_migrations()
        t = Table(title=f"{store.where}", title_justify="left")
        t.add_column("table")
        t.add_column("rows (FINAL)", justify="right")
        if not pending:
            for name in ("alerts", "alert_txs", "evidence", "swaps", "pending_txs", "pending_fates", "blocks", "attestations"):
                t.add_row(name, f"{store.count(name):,}")
        Console(soft_wrap=True).print(t)
        err.print(f"pending migrations: {pending or 'none'}; last processed block: {store.last_block() if not pending else '-'}")
        store.close()
    except MevwatchError as exc:
        raise fail(exc) from None


wh_app = typer.Typer(help="Webhook delivery: the outbox, dead letters, disabled endpoints.", no_args_is_help=True)
app.add_typer(wh_app, name="webhooks")


def _outbox():
    from monitor.sinks.outbox import Outbox

    s = state.settings
    return Outbox(s.webhook_delivery.outbox or s.data_dir / "outbox.sqlite")


@wh_app.command("status")
def webhooks_status(
    limit: Annotated[int, typer.Option("--limit", help="Dead letters to list.")] = 20,
) -> None:
    """Messages per endpoint and status, disabled endpoints, and the newest dead letters."""
    ob = _outbox()
    out = Console(soft_wrap=True, width=200)
    t = Table(title=f"webhook outbox {ob.path}", title_justify="left")
    for col in ("endpoint", "pending", "delivered", "dead", "disabled"):
        t.add_column(col, justify="right" if col != "endpoint" else "left")
    disabled = ob.disabled()
    for url, counts in sorted(ob.summary().items()):
        t.add_row(url + (" [red](disabled)[/red]" if url in disabled else ""),
                  *(f"{counts.get(k, 0):,}" for k in ("pending", "delivered", "dead", "disabled")))
    out.print(t)
    dead = ob.dead_letters(limit)
    if dead:
        d = Table(title="dead letters (newest first)", title_justify="left")
        for col in ("event id", "endpoint", "type", "attempts", "last status", "last error"):
            d.add_column(col)
        for e, u, ty, n, st, le in dead:
            d.add_row(e, u, ty, str(n), str(st or "-"), le or "")
        out.print(d)
    for url, why in disabled.items():
        out.print(f"[red]disabled[/red] {url}: {why}; resume with: mevwatch webhooks enable {url}")
    ob.close()


@wh_app.command("enable")
def webhooks_enable(url: Annotated[str, typer.Argument(help="Endpoint URL to enable again.")]) -> None:
    """Re-enable an endpoint disabled by 410 Gone; its held messages are sent again."""
    ob = _outbox()
    n = ob.enable(url)
    err.print(f"enabled {url}; {n} messages queued again")
    ob.close()


@wh_app.command("requeue")
def webhooks_requeue(url: Annotated[Optional[str], typer.Option("--endpoint", help="Only this endpoint's dead letters.")] = None) -> None:
    """Queue dead letters again (after fixing the receiver)."""
    ob = _outbox()
    n = ob.requeue_dead(url)
    err.print(f"{n} dead letters queued again")
    ob.close()


@app.command()
def verify(
    alert: Annotated[str, typer.Argument(help="An alert id (0x...) from the store, or a file: a bundle from `mevwatch attest proof` or an alert record.")],
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="http(s) node of the attestation chain; default: attest.rpc, else the embedded chain.")] = None,
    contract: Annotated[Optional[str], typer.Option("--contract", help="AttestationRegistry address; default: the proof's, else attest.contract.")] = None,
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db to read the alert and proof from; default: embedded chDB.")] = None,
) -> None:
    """Check an alert against its on-chain attestation; exit 0 only when it verifies.

    Recomputes the alert's leaf from its canonical encoding (evidence included), walks the
    proof to the root, checks that root in the registry and the model hash against the
    shipped model. Exit 1: does not verify (or not attested yet); 2: could not check.
    """
    import orjson

    from monitor.attest.chain import open_chain
    from monitor.attest.verify import verify_alert

    s = state.settings
    record: dict | None = None
    proof = None
    try:
        path = Path(alert)
        if path.exists():
            try:
                doc = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise typer.BadParameter(f"{path} is not JSON: {exc}") from None
            record, proof = (doc["alert"], doc.get("proof")) if isinstance(doc, dict) and "alert" in doc else (doc, None)
            if not isinstance(record, dict) or "alert_id" not in record:
                raise typer.BadParameter(f"{path} holds neither an alert record nor a proof bundle")
        elif not alert.startswith("0x"):
            raise typer.BadParameter(f"{alert} is neither a file nor an alert id (0x...)")
        if proof is None:
            store = _store(clickhouse, migrate=False)
            found = store.proof(record["alert_id"] if record else alert.lower())
            store.close()
            if found is None:
                err.print(f"[red]unknown alert[/red] {alert} in {s.clickhouse.url or 'the embedded store'}")
                raise typer.Exit(2)
            stored, proof = found
            if record is None:
                record = stored.to_json()
        chain = open_chain(s, rpc=rpc, contract=contract or (proof or {}).get("contract"))
        verdict = verify_alert(record, proof, chain)
    except MevwatchError as exc:
        raise fail(exc, 2) from None
    out = Console(soft_wrap=True)
    out.print(f"alert {verdict.alert_id}")
    for c in verdict.checks:
        out.print(f"  {'[green]ok  [/green]' if c.ok else '[red]FAIL[/red]'} {c.name}: {c.detail}")
    if verdict.ok:
        out.print("[bold green]VERIFIED[/bold green]: this alert, byte for byte, is in a batch attested on chain")
    else:
        out.print("[bold red]NOT VERIFIED[/bold red]")
        raise typer.Exit(1)


attest_app = typer.Typer(help="On-chain attestation of final alerts: the registry, batches, proofs.", no_args_is_help=True)
app.add_typer(attest_app, name="attest")


@attest_app.command("deploy")
def attest_deploy(
    rpc: Annotated[str, typer.Option("--rpc", help="http(s) node of the attestation chain.")],
    attester: Annotated[Optional[str], typer.Option("--attester", help="First attester (default: the deploying key).")] = None,
) -> None:
    """Deploy an AttestationRegistry with the configured key (its owner); prints its address."""
    from web3 import HTTPProvider, Web3

    from monitor.attest.chain import deploy_registry, load_account

    try:
        account = load_account(state.settings)
        if account is None:
            raise MevwatchError("no key: set MEVWATCH_ATTEST__PRIVATE_KEY_FILE, attest.private_key or attest.keystore")
        address = deploy_registry(Web3(HTTPProvider(rpc)), account, attester)
    except MevwatchError as exc:
        raise fail(exc) from None
    err.print(f"registry deployed by {account.address}")
    typer.echo(address)


@attest_app.command("flush")
def attest_flush(
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="http(s) node of the attestation chain; default: attest.rpc or embedded.")] = None,
    contract: Annotated[Optional[str], typer.Option("--contract", help="AttestationRegistry address.")] = None,
) -> None:
    """Attest every final alert not attested yet now (finishing a batch left in flight first)."""
    from monitor.attest.batcher import make_batcher

    try:
        store = _store(clickhouse, migrate=True)
        b = make_batcher(state.settings, store, rpc=rpc, contract=contract)
        n = 0
        while (r := b.step(force=True)) is not None:
            n += 1
            err.print(f"batch {r.attested.batch_id}: {r.plan.count} alerts, blocks {r.plan.from_block}..{r.plan.to_block}, "
                      f"root {r.plan.root}" + (f", tx {r.attested.tx_hash}" if r.attested.tx_hash else " (already on chain)"))
        store.close()
    except MevwatchError as exc:
        raise fail(exc) from None
    err.print(f"{n} batch(es) attested; horizon: final blocks up to {b.horizon()}")


@attest_app.command("proof")
def attest_proof(
    alert_id: Annotated[str, typer.Argument(help="Alert id (0x...).")],
    out: Annotated[str, typer.Option("--out", "-o", help="File for the bundle; '-' for stdout.")] = "-",
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
) -> None:
    """Write an alert and its inclusion proof as one JSON bundle, checkable by `mevwatch verify FILE` anywhere."""
    import orjson

    try:
        store = _store(clickhouse, migrate=False)
        found = store.proof(alert_id.lower())
        store.close()
    except MevwatchError as exc:
        raise fail(exc) from None
    if found is None:
        err.print(f"[red]unknown alert[/red] {alert_id}")
        raise typer.Exit(2)
    alert, proof = found
    if proof is None:
        err.print(f"alert {alert_id} is {alert.stage} and not attested yet")
        raise typer.Exit(1)
    body = orjson.dumps({"alert": alert.to_json(), "proof": proof}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if out == "-":
        sys.stdout.buffer.write(body)
    else:
        Path(out).write_bytes(body)
        err.print(f"wrote {out}; check it with: mevwatch verify {out}")


@attest_app.command("status")
def attest_status(
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Batches to list.")] = 20,
) -> None:
    """Attested batches (newest first) and the final alerts still waiting for one."""
    try:
        store = _store(clickhouse, migrate=True)
        rows = store.attestations(limit)
        waiting = store.unattested_final_range()
        n_wait = store.count("alerts", where="stage = 'final' AND alert_id NOT IN (SELECT alert_id FROM evidence FINAL WHERE batch_id >= 0)")
        store.close()
    except MevwatchError as exc:
        raise fail(exc) from None
    t = Table(title="attested batches", title_justify="left")
    for col in ("batch", "blocks", "alerts", "root", "tx", "gas", "chain", "registry"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["batch_id"]), f"{r['from_block']}..{r['to_block']}", str(r["alert_count"]), r["root"],
                  r["tx_hash"] or "(adopted)", str(r["gas_used"] or "-"), str(r["attest_chain_id"]), r["contract"])
    Console(soft_wrap=True, width=250).print(t)
    err.print(f"final alerts not attested yet: {n_wait}" + (f" (blocks {waiting[0]}..{waiting[1]})" if waiting else ""))


dash_app = typer.Typer(help="Grafana dashboards as code: export, push to Grafana, check every panel's query.", no_args_is_help=True)
app.add_typer(dash_app, name="dashboards")


@dash_app.command("export")
def dashboards_export(out: Annotated[Path, typer.Argument(help="Folder for the dashboard JSON files.")]) -> None:
    """Write the dashboards as Grafana JSON (what dashboards/json/ holds)."""
    from dashboards.build import export

    for p in export(out):
        err.print(f"wrote {p}")


@dash_app.command("push")
def dashboards_push(
    url: Annotated[str, typer.Option("--url", help="Grafana base URL, e.g. https://grafana.example.org.")],
    token: Annotated[Optional[str], typer.Option("--token", help="Grafana service account token (or GRAFANA_TOKEN).", envvar="GRAFANA_TOKEN")] = None,
    folder: Annotated[str, typer.Option("--folder", help="Folder to put them in.")] = "mevwatch",
) -> None:
    """Create or update the dashboards in a Grafana (HTTP API, grafana-client)."""
    from dashboards.grafana import push

    if not token:
        raise fail(MevwatchError("--token or GRAFANA_TOKEN is required"), 2)
    try:
        for u in push(url, token, folder=folder):
            err.print(f"pushed {u}")
    except MevwatchError as exc:
        raise fail(exc) from None


@dash_app.command("check")
def dashboards_check(
    prometheus: Annotated[Optional[str], typer.Option("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090.")] = None,
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db (default: the configured store).")] = None,
    no_clickhouse: Annotated[bool, typer.Option("--no-clickhouse", help="Skip the ClickHouse panels.")] = False,
    days: Annotated[float, typer.Option("--days", help="Time range of the ClickHouse panels, back from now.")] = 7.0,
) -> None:
    """Run every panel's query against Prometheus and ClickHouse; exit 1 if one fails or returns nothing."""
    import time as _time

    from dashboards.grafana import check

    store = None
    try:
        if not no_clickhouse:
            store = _store(clickhouse, migrate=False)
        now = int(_time.time())
        results = check(prometheus=prometheus, store=store, from_s=max(0, now - int(days * 86400)), to_s=now)
    except MevwatchError as exc:
        raise fail(exc, 2) from None
    finally:
        if store is not None:
            store.close()
    t = Table(title="dashboard panels", title_justify="left")
    for col in ("dashboard", "panel", "source", "series / rows"):
        t.add_column(col)
    bad = 0
    for r in results:
        ok = r.results > 0
        bad += not ok
        t.add_row(r.dashboard, r.panel, r.source, str(r.results) if r.error is None else f"[red]{r.error}[/red]",
                  style=None if ok else "yellow")
    Console(soft_wrap=True, width=200).print(t)
    if bad:
        err.print(f"{bad} of {len(results)} panel queries failed or returned nothing")
        raise typer.Exit(1)


def _gnn_device(device: str) -> str:
    try:
        import torch
    except ImportError:
        raise fail(MevwatchError("the graph model needs the gnn extra: pip install 'mevwatch[gnn]'"), 2) from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise fail(MevwatchError("--device cuda: no CUDA device here"), 2)
    return device


def _describe(d: Path) -> str:
    """A data source as the model's metadata records it (not a temporary path)."""
    import json as _json

    m = Path(d) / "manifest.json"
    if m.exists():
        man = _json.loads(m.read_text())
        return f"lab seed {man['seed']}, {man['blocks']} blocks, {man['landed']} landed attacks"
    files = sorted(Path(d).glob("*.json.gz")) if Path(d).is_dir() else [Path(d)]
    return f"recorded blocks {Path(d).name} ({len(files)} files, weak labels from the rules)"


@app.command()
def train(
    data: Annotated[list[Path], typer.Option("--data", help="Lab exports (mevwatch sim export) and/or folders of recorded mainnet blocks (weak labels from the rules).")],
    out: Annotated[Path, typer.Option("--out", help="Model file to write (a .ckpt beside it while training).")] = Path("model.pt"),
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data: the same model.")] = 0,
    hidden: Annotated[int, typer.Option("--hidden", min=4)] = 48,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    weak_repeat: Annotated[int, typer.Option("--weak-repeat", min=1, help="Times each recorded (weakly labelled) block is seen per epoch.")] = 20,
) -> None:
    """Train the graph model on labelled transaction graphs; resumes from the checkpoint if one is there."""
    from models.dataset import load
    from models.train import train as run_train

    dev = _gnn_device(device)
    try:
        samples = load(data, weak_repeat=weak_repeat)
    except MevwatchError as exc:
        raise fail(exc, 2) from None
    err.print(f"{len(samples)} graphs from {len(data)} sources; training on {dev}")
    with Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs {task.fields[loss]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not err.is_terminal) as bar:
        task = bar.add_task("train", total=epochs, loss="")
        _model, meta = run_train(samples, out, epochs=epochs, seed=seed, hidden=hidden, device=dev,
                                 data=[_describe(d) for d in data],
                                 on_epoch=lambda e, loss: bar.update(task, completed=e + 1, loss=f"loss {loss:.4f}"))
    err.print(f"wrote {out} (model hash {meta['model_hash']}); evaluate it with: mevwatch eval --model {out} --data ...")


@app.command("eval")
def evaluate_cmd(
    model: Annotated[Optional[Path], typer.Option("--model", help="Model file (default: the shipped one).")] = None,
    data: Annotated[list[Path], typer.Option("--data", help="Held-out lab exports and/or recorded blocks.")] = [],  # noqa: B006
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, pr_curves.png, confusion.png.")] = Path("eval"),
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Precision, recall and F1 per role and per attack type, the model and the exact rules side by side."""
    import io

    import orjson

    from models import artifact
    from models.dataset import load
    from models.evaluate import evaluate, predict, write_report
    from monitor.replay import replay_files

    dev = _gnn_device(device)
    if not data:
        raise fail(MevwatchError("give held-out data with --data"), 2)
    try:
        m, meta = artifact.load(model or artifact.DEFAULT, dev)
        samples = load(data)
    except MevwatchError as exc:
        raise fail(exc, 2) from None
    labs = [Path(d) for d in data if (Path(d) / "labels.jsonl").exists()]
    rules: dict[str, list[dict]] = {}
    for d in labs:
        buf = io.BytesIO()
        replay_files([d / "recording.jsonl"], out=buf, chain_id=31337)
        rules[d.name] = [orjson.loads(x) for x in buf.getvalue().splitlines()]
    rep = evaluate(samples, predict(m, samples, dev), labs, rules)
    rep.meta = {"model": str(model or artifact.DEFAULT), "model hash": meta["model_hash"], "data": ", ".join(map(str, data)),
                "graphs": len(samples), "device": dev}
    path = write_report(rep, out)
    t = Table(title="attacks found (landed, lab ground truth)", title_justify="left")
    for col in ("variant", "stage", "landed", "model recall", "rules recall"):
        t.add_column(col)
    for v, st, n, mf, rf in rep.per_variant:
        t.add_row(v, st, str(n), f"{mf / n if n else 1:.3f}", f"{rf / n if n else 1:.3f}")
    Console(soft_wrap=True).print(t)
    err.print("model precision on attacker legs: " + ", ".join(f"{k} {v:.3f}" for k, v in rep.attacker_precision.items()))
    err.print(f"report: {path}")


sim_app = typer.Typer(help="The simulation lab: real AMM contracts and attack bots on anvil, with ground truth.",
                      no_args_is_help=True)
app.add_typer(sim_app, name="sim")


@sim_app.command("export")
def sim_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for recording.jsonl, labels.jsonl and manifest.json.")],
    blocks: Annotated[int, typer.Option("--blocks", help="Blocks to simulate.", min=1)] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same transactions and labels.")] = 0,
    honest_only: Annotated[bool, typer.Option("--honest-only", help="No attack bots (a control run).")] = False,
) -> None:
    """Run the lab on a fresh anvil and export a labelled dataset, replayable with `mevwatch replay`."""
    from sim.export import export

    try:
        with Progress(TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
                      TimeElapsedColumn(), console=err, disable=not err.is_terminal, transient=True) as bar:
            task = bar.add_task("sim", total=blocks)
            result = export(out, blocks=blocks, seed=seed, attacks=not honest_only,
                            on_round=lambda _r, _m: bar.advance(task))
    except MevwatchError as exc:
        raise fail(exc) from None
    landed = sum(1 for a in result.attacks if a.outcome == "landed")
    err.print(f"exported {blocks} blocks, {result.honest_txs} honest swaps, {len(result.attacks)} attacks "
              f"({landed} landed) to {out}; replay with: mevwatch replay {out / 'recording.jsonl'}")


def print_summary(summary, out_path: str | None) -> None:
    s = summary
    rate = s.blocks / s.elapsed_s if s.elapsed_s else 0.0
    t = Table(title="mevwatch replay", show_header=False, title_justify="left")
    t.add_row("blocks", f"{s.blocks}" + (f" ({s.first_block}..{s.last_block})" if s.blocks else ""))
    t.add_row("transactions", str(s.transactions))
    if s.pending or s.reverts:
        t.add_row("pending / reverts", f"{s.pending} / {s.reverts}")
    t.add_row("swaps by protocol", ", ".join(f"{k} {v}" for k, v in sorted(s.stats.swaps_by_protocol.items())) or "none")
    t.add_row("alerts by kind", ", ".join(f"{k} {v}" for k, v in sorted(s.alerts_by_kind.items())) or "none")
    t.add_row("undecoded swap-like calls", ", ".join(f"{k} {v}" for k, v in s.stats.undecoded_by_selector.most_common(10)) or "none")
    t.add_row("malformed known calls", ", ".join(f"{k} {v}" for k, v in s.stats.malformed_by_selector.most_common(10)) or "none")
    t.add_row("reverted calls skipped", str(s.stats.reverted_calls))
    t.add_row("time", f"{s.elapsed_s:.2f} s ({rate:,.0f} blocks/s)")
    if out_path:
        t.add_row("alerts written to", out_path)
    err.print(t)
    for p in s.problems[:10]:
        err.print(f"[yellow]rejected:[/yellow] {p.source}" + (f" at {p.position}" if p.position else "") + f": {p.reason}")
    if len(s.problems) > 10:
        err.print(f"[yellow]... and {len(s.problems) - 10} more rejected inputs (see --dead-letter)[/yellow]")


if __name__ == "__main__":  # pragma: no cover
    app()
