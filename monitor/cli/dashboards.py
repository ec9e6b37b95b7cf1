"""``mevwatch dashboards``: Grafana dashboards as code (export, push, check)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mevwatch.monitor.cli.main import USAGE, OptionError, err, handled, open_store
from mevwatch.monitor.cli.output import esc

dash_app = typer.Typer(help="Grafana dashboards as code: export, push to Grafana, check every panel's query.", no_args_is_help=True)


@dash_app.command("export")
@handled()
def dashboards_export(out: Annotated[Path, typer.Argument(help="Folder for the dashboard JSON files.")]) -> None:
    """Write the dashboards as Grafana JSON (what dashboards/json/ holds)."""
    from mevwatch.dashboards.build import export

    for p in export(out):
        err.print(f"wrote {esc(p)}")


@dash_app.command("push")
@handled()
def dashboards_push(
    url: Annotated[str, typer.Option("--url", help="Grafana base URL, e.g. https://grafana.example.org.")],
    token: Annotated[Optional[str], typer.Option("--token", help="Grafana service account token (or GRAFANA_TOKEN).", envvar="GRAFANA_TOKEN")] = None,
    folder: Annotated[str, typer.Option("--folder", help="Folder to put them in.")] = "mevwatch",
) -> None:
    """Create or update the dashboards in a Grafana (HTTP API, grafana-client)."""
    from mevwatch.dashboards.grafana import push

    if not token:
        raise OptionError("--token or GRAFANA_TOKEN is required")
    for u in push(url, token, folder=folder):
        err.print(f"pushed {esc(u)}")


@dash_app.command("check")
@handled(USAGE)
def dashboards_check(
    prometheus: Annotated[Optional[str], typer.Option("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090.")] = None,
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db (default: the configured store).")] = None,
    no_clickhouse: Annotated[bool, typer.Option("--no-clickhouse", help="Skip the ClickHouse panels.")] = False,
    days: Annotated[float, typer.Option("--days", help="Time range of the ClickHouse panels, back from now.")] = 7.0,
    chain: Annotated[str, typer.Option("--chain", help="The Prometheus panels' chain: a regex on the `chain` label "
                                                      "(default .*, all; the ClickHouse panels read the store's database).")] = ".*",
) -> None:
    """Run every panel's query against Prometheus and ClickHouse; exit 1 if one fails or returns nothing."""
    import time

    from mevwatch.dashboards.grafana import check
    from mevwatch.monitor.cli.output import print_panel_checks

    store = None
    try:
        if not no_clickhouse:
            store = open_store(clickhouse, migrate=False)
        now = int(time.time())
        results = check(prometheus=prometheus, store=store, from_s=max(0, now - int(days * 86400)), to_s=now, chain=chain)
    finally:
        if store is not None:
            store.close()
    bad = print_panel_checks(results)
    if bad:
        err.print(f"{bad} of {len(results)} panel queries failed or returned nothing")
        raise typer.Exit(1)
