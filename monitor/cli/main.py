"""The root of the ``mevwatch`` command line: the app, its global options and the one error handler.

Every command is wrapped by :func:`handled`: a :class:`~monitor.errors.MevwatchError` it lets out
is printed as ``error: <message>`` on stderr (markup escaped: messages carry file names, URLs
and node or receiver answers) and the process exits with

- 2 for :class:`OptionError` (options missing or not fitting together) and
  :class:`~monitor.errors.ConfigError` (bad settings), whatever the command;
- otherwise the command's own code: 2 for commands whose errors mean "could not even start"
  (replay, verify, train, eval, dashboards check), 1 for the others (a failed run).

Commands exit 1 themselves for a result that is not good (rejected input, NOT VERIFIED).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from typer.core import TyperOption
from rich.console import Console
from rich.markup import escape

from mevwatch.monitor import __version__
from mevwatch.monitor.config import Settings, load_settings
from mevwatch.monitor.errors import ConfigError, MevwatchError
from mevwatch.monitor.log import configure_logging, redact_text

if TYPE_CHECKING:
    from mevwatch.monitor.store.store import AlertStore

FAILED = 1  # the command ran and failed
USAGE = 2  # bad options or settings, or the command could not check what it was asked

def _flag_type(self: Any, ctx: Any) -> str | None:
    """Typer's rich help shows ``<bool>`` beside every flag (``--quiet <bool>``), as if it took a value;
    a flag takes none, so its type column stays empty."""
    return None if getattr(self, "is_flag", False) else _typer_display_type(self, ctx)


_typer_display_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

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


class OptionError(MevwatchError):
    """Command-line options that are missing or do not fit together (exit 2)."""


class State:
    settings: Settings


state = State()

F = TypeVar("F", bound=Callable[..., Any])


def exit_code(exc: MevwatchError, code: int) -> int:
    """The exit code for ``exc`` raised by a command whose failures exit ``code``."""
    return USAGE if isinstance(exc, (OptionError, ConfigError)) else code


def handled(code: int = FAILED) -> Callable[[F], F]:
    """The error handler of every command: MevwatchError -> a message on stderr and an exit code."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except MevwatchError as exc:
                err.print(f"[red]error:[/red] {escape(redact_text(str(exc)))}")  # node URLs: credentials masked
                raise typer.Exit(exit_code(exc, code)) from None

        return command  # type: ignore[return-value]

    return wrap


@app.callback()
@handled(USAGE)
def main(
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML settings file (MEVWATCH_* variables override it).")] = None,
    log_level: Annotated[Optional[str], typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")] = None,
    log_format: Annotated[Optional[str], typer.Option("--log-format", help="auto (default: console on a terminal, else json), json or console.")] = None,
    chain_id: Annotated[Optional[int], typer.Option("--chain-id", help="Chain id stamped on messages and alerts (default 1).")] = None,
) -> None:
    state.settings = load_settings(config, log_level=log_level.upper() if log_level else None,
                                   log_format=log_format, chain_id=chain_id)
    configure_logging(state.settings.log_level, state.settings.log_format, quiet_warnings=True)


def version() -> None:
    """Print the mevwatch version."""
    typer.echo(f"mevwatch {__version__}")


# --- option helpers shared by the command groups ------------------------------------------------

def open_store(clickhouse: str | None, migrate: bool) -> AlertStore:
    """The evidence store of the settings, or of ``--clickhouse`` when given."""
    from mevwatch.monitor.store.store import settings_store

    s = state.settings
    if clickhouse:
        s.clickhouse.url = clickhouse
    return settings_store(s, migrate=migrate)


def open_existing_store(clickhouse: str | None, *, migrate: bool = False) -> AlertStore:
    """:func:`open_store` for commands that only read (status): never creates an embedded store. A
    folder without one gets a clean error instead of a new, empty store."""
    s = state.settings
    if not clickhouse and not s.clickhouse.url and not Path(s.clickhouse.data_dir).exists():
        raise OptionError(f"no embedded store at {s.clickhouse.data_dir} (nothing recorded from this folder yet: "
                          "`mevwatch run` or `mevwatch replay --store` create one); give --clickhouse URL for a server")
    return open_store(clickhouse, migrate=migrate)


def gnn_device(device: str) -> str:
    """``--device`` (auto, cpu or cuda) as a torch device; needs the gnn extra."""
    try:
        import torch
    except ImportError:
        raise OptionError("the graph model needs the gnn extra: pip install 'mevwatch[gnn]'") from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda: no CUDA device here")
    return device
