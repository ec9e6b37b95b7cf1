"""``mevwatch webhooks``: the delivery outbox, dead letters and disabled endpoints."""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mevwatch.monitor.cli.main import err, handled, state
from mevwatch.monitor.cli.output import esc

if TYPE_CHECKING:
    from mevwatch.monitor.sinks.outbox import Outbox

wh_app = typer.Typer(help="Webhook delivery: the outbox, dead letters, disabled endpoints.", no_args_is_help=True)


def _outbox() -> Outbox:
    from mevwatch.monitor.sinks.outbox import Outbox

    s = state.settings
    return Outbox(s.webhook_delivery.outbox or s.data_dir / "outbox.sqlite")


@wh_app.command("status")
@handled()
def webhooks_status(
    limit: Annotated[int, typer.Option("--limit", help="Dead letters to list.")] = 20,
) -> None:
    """Messages per endpoint and status, disabled endpoints, and the newest dead letters."""
    from mevwatch.monitor.cli.output import print_outbox

    with closing(_outbox()) as ob:
        print_outbox(ob.path, ob.summary(), ob.disabled(), ob.dead_letters(limit))


@wh_app.command("enable")
@handled()
def webhooks_enable(url: Annotated[str, typer.Argument(help="Endpoint URL to enable again.")]) -> None:
    """Re-enable an endpoint disabled by 410 Gone; its held messages are sent again."""
    with closing(_outbox()) as ob:
        n = ob.enable(url)
    err.print(f"enabled {esc(url)}; {n} messages queued again")


@wh_app.command("requeue")
@handled()
def webhooks_requeue(url: Annotated[Optional[str], typer.Option("--endpoint", help="Only this endpoint's dead letters.")] = None) -> None:
    """Queue dead letters again (after fixing the receiver)."""
    with closing(_outbox()) as ob:
        n = ob.requeue_dead(url)
    err.print(f"{n} dead letters queued again")
