"""``mevwatch webhooks``: the delivery outbox, dead letters, disabled endpoints, and test deliveries."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rich.console import Console

from mevwatch.monitor.cli.main import OptionError, err, handled, state
from mevwatch.monitor.cli.output import esc
from mevwatch.monitor.errors import DeliveryError

if TYPE_CHECKING:
    from mevwatch.monitor.config import WebhookSubscriber
    from mevwatch.monitor.sinks.outbox import Outbox

wh_app = typer.Typer(help="Webhook delivery: the outbox, dead letters, disabled endpoints, test events.", no_args_is_help=True)


def _outbox_path() -> Path:
    s = state.settings
    return Path(s.webhook_delivery.outbox or s.data_dir / "outbox.sqlite")


def _outbox() -> Outbox:
    from mevwatch.monitor.sinks.outbox import Outbox

    return Outbox(_outbox_path())


def _configured(url: str) -> WebhookSubscriber | None:
    return next((w for w in state.settings.webhooks if w.url == url), None)


out = Console(soft_wrap=True)


def _not_configured(url: str) -> OptionError:
    return OptionError(f"{url} is not a configured webhook endpoint (not among the webhooks[].url of --config FILE "
                       "or MEVWATCH_WEBHOOKS)")


def _known_endpoint(url: str) -> Outbox | None:
    """The outbox, when ``url`` is configured or the outbox has heard of it; else a clean error. None: no
    outbox file yet (it is never created here)."""
    path = _outbox_path()
    if not path.exists():
        if _configured(url) is None:
            raise _not_configured(url)
        return None
    ob = _outbox()
    if _configured(url) is None and not ob.knows(url):
        ob.close()
        raise _not_configured(url)
    return ob


def _no_outbox() -> None:
    out.print(f"no webhook outbox at {esc(_outbox_path())}: nothing has been queued yet (`mevwatch run` creates it)")


@wh_app.command("status")
@handled()
def webhooks_status(
    limit: Annotated[int, typer.Option("--limit", help="Dead letters to list.")] = 20,
) -> None:
    """Messages per endpoint and status, disabled endpoints, and the newest dead letters."""
    from mevwatch.monitor.cli.output import print_outbox

    if not _outbox_path().exists():
        _no_outbox()
        return
    with closing(_outbox()) as ob:
        print_outbox(ob.path, ob.summary(), ob.disabled(), ob.dead_letters(limit))


@wh_app.command("enable")
@handled()
def webhooks_enable(url: Annotated[str, typer.Argument(help="Endpoint URL to enable again.")]) -> None:
    """Re-enable an endpoint disabled by 410 Gone or `webhooks disable`; its held messages are sent again."""
    ob = _known_endpoint(url)
    if ob is None:
        err.print(f"{esc(url)} is not disabled (no outbox yet); nothing to do")
        return
    with closing(ob):
        if url not in ob.disabled():
            err.print(f"{esc(url)} is not disabled; nothing to do")
            return
        n = ob.enable(url)
    err.print(f"enabled {esc(url)}; {n} messages queued again")


@wh_app.command("disable")
@handled()
def webhooks_disable(url: Annotated[str, typer.Argument(help="Endpoint URL to stop sending to.")]) -> None:
    """Hold an endpoint's messages (nothing is sent to it) until `webhooks enable URL`."""
    ob = _known_endpoint(url) or _outbox()  # a configured endpoint with no outbox yet: record it, so `run` holds it
    with closing(ob):
        ob.disable(url, "disabled with mevwatch webhooks disable")
    err.print(f"disabled {esc(url)}; its messages are held until: mevwatch webhooks enable {esc(url)}")


@wh_app.command("requeue")
@handled()
def webhooks_requeue(url: Annotated[Optional[str], typer.Option("--endpoint", help="Only this endpoint's dead letters.")] = None) -> None:
    """Queue dead letters again (after fixing the receiver)."""
    if url is not None:
        ob = _known_endpoint(url)
    elif _outbox_path().exists():
        ob = _outbox()
    else:
        ob = None
    if ob is None:
        err.print("0 dead letters queued again (no outbox yet)")
        return
    with closing(ob):
        n = ob.requeue_dead(url)
    err.print(f"{n} dead letters queued again")


@wh_app.command("test")
@handled()
def webhooks_test(url: Annotated[str, typer.Argument(help="A configured endpoint URL (webhooks[].url).")]) -> None:
    """Send one signed test event (type mev.test, a sample alert as data) to a configured endpoint now and print its answer.

    Signed and sent exactly as deliveries are (its secrets, the SSRF guard, timeout_s); not queued,
    not retried. Exit 0 on a 2xx, 1 otherwise, 2 for an endpoint that is not configured."""
    from mevwatch.monitor.sinks.webhooks import TEST_EVENT_TYPE, send_test

    sub = _configured(url)
    if sub is None:
        raise _not_configured(url)
    msg_id, a = send_test(sub, state.settings.webhook_delivery)
    if not a.ok:
        raise DeliveryError(f"{url} did not accept the test event {msg_id}: {a.error}")
    out.print(f"{esc(url)} answered HTTP {a.status} in {a.seconds * 1000:.0f} ms to {TEST_EVENT_TYPE} event {msg_id}")
