"""``mevwatch db``: the ClickHouse evidence store (migrations, status)."""

from __future__ import annotations

from contextlib import closing
from typing import Annotated, Optional

import typer

from mevwatch.monitor.cli.main import OptionError, err, handled, open_existing_store, open_store, state
from mevwatch.monitor.errors import StoreError
from mevwatch.monitor.cli.output import esc

db_app = typer.Typer(help="The ClickHouse evidence store (embedded chDB, or a server with --clickhouse).", no_args_is_help=True)


@db_app.command("migrate")
@handled()
def db_migrate(
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
) -> None:
    """Create or upgrade the tables (versioned migrations; safe to run again)."""
    from mevwatch.monitor.store import queries

    with closing(open_store(clickhouse, migrate=False)) as store:
        r = queries.migrate(store)
    err.print(f"{esc(r.where)}: applied {r.applied or 'nothing new'}; schema at version {r.version}")


@db_app.command("status")
@handled()
def db_status(
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
) -> None:
    """Schema version, row counts and the last processed block."""
    from mevwatch.monitor.cli.output import print_db_status
    from mevwatch.monitor.store import queries

    with closing(open_existing_store(clickhouse)) as store:
        status = queries.db_status(store)
    print_db_status(status)


@db_app.command("query")
@handled()
def db_query(
    sql: Annotated[str, typer.Argument(help="One query (read-only); the store's tables by bare name.")],
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table (default), json (one object per row) or tsv.")] = "table",
) -> None:
    """Run SQL against the evidence store, read-only (ClickHouse's readonly setting: no writes, no settings changes).

    The embedded store (chDB) admits one process: while `mevwatch run` holds it, the query goes
    through the daemon (its health server; one SELECT, no SETTINGS clause; docs/store.md)."""
    from mevwatch.monitor.cli.output import print_rows
    from mevwatch.monitor.store import endpoint, queries

    if fmt not in ("table", "json", "tsv"):
        raise OptionError(f"--format must be table, json or tsv, not {fmt!r}")
    names: list[str] | None = None
    if not clickhouse and not state.settings.clickhouse.url:
        held = endpoint.endpoint_file(state.settings.clickhouse.data_dir)
        if held.exists():  # a daemon holds the embedded store: ask it
            try:
                names, rows = endpoint.query(held, sql)
            except StoreError as exc:
                if "does not answer" not in str(exc):
                    raise
                err.print(f"[yellow]{esc(str(exc))}: opening the store directly[/yellow]")
    if names is None:
        with closing(open_existing_store(clickhouse)) as store:
            names, rows = queries.user_query(store, sql)
    print_rows(names, rows, fmt)
