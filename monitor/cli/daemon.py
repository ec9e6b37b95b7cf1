"""``mevwatch run``: the daemon (ingest, detect, attest roles, or all in one process)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mevwatch.monitor.cli.main import OptionError, err, handled, state


@handled()
def run(
    role: Annotated[str, typer.Option("--role", help="all (one process), ingest (node -> Kafka), detect (Kafka -> detect -> sinks) or attest (store -> chain).")] = "all",
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="WebSocket URL of the node, ws:// or wss:// (or MEVWATCH_NODE__RPC); what it must offer: docs/node.md, `mevwatch doctor`.")] = None,
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
    from mevwatch.monitor.daemon import run_daemon
    from mevwatch.streams.node import check_ws_url

    s = state.settings
    url = rpc or s.node.rpc
    if url and role in ("all", "ingest"):
        check_ws_url(url, "mevwatch run")  # refused before anything starts: subscriptions need a WebSocket
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
            raise OptionError("--device must be auto, cpu or cuda")
        s.device = device
    result = run_daemon(s, role=role, rpc=rpc, duration_s=duration, max_blocks=max_blocks, drain_s=drain)
    err.print(f"processed {result.blocks} blocks and {result.pending} pending transactions; {result.alerts} alert events")
