"""Structured logging via structlog: JSON lines for machines, a console renderer for people.

Formats (``--log-format`` or ``log_format`` / ``MEVWATCH_LOG_FORMAT``):

``auto`` (default)
    ``console`` when stderr is a terminal, ``json`` otherwise (pipes, files, containers).
``json``
    one JSON object per line on stderr: ``event``, ``level``, ``timestamp`` (ISO 8601,
    UTC) and the bound context.
``console``
    structlog's ConsoleRenderer: aligned, coloured when stderr is a terminal (and
    ``NO_COLOR`` is unset), tracebacks without local variables.

Context such as ``block_number`` or ``transaction_hash`` is bound with
``log.bind(...)`` or ``structlog.contextvars.bind_contextvars(...)`` and appears in
every line. Secret values are never passed to the logger; should a pydantic
``SecretStr`` / ``SecretBytes`` slip through, it renders as ``**********`` in both formats.

Rich tables and live displays (``mevwatch demo``): log lines are written to whatever
``sys.stderr`` is *at the time of the call*, never to a stream captured when logging
was configured. While a ``rich.live.Live`` display runs on a terminal it replaces
``sys.stderr`` with a proxy that prints through the display's own Console, above the
live table, so log lines (of every level) are routed through the same rich Console and
never tear the table. Outside a live display they go straight to stderr.

:func:`quiet_third_party_warnings` filters, by message and category, the deprecation
warnings that third-party libraries print on every ``mevwatch`` run; the CLI calls it
at start-up (``configure_logging(..., quiet_warnings=True)``). Nothing else is filtered.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import logging
import os
import sys
import threading
import warnings
from typing import Any, TextIO

import structlog
from pydantic import SecretBytes, SecretStr

FORMATS = ("auto", "json", "console")
MASK = "**********"

# Deprecation warnings raised inside third-party packages, not by mevwatch's code: a
# person running `mevwatch demo` can do nothing about them. (message regex, category)
THIRD_PARTY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # torch_geometric (nn/pool/{connect,select}/base.py) calls torch.jit.script at import,
    # which current torch deprecates; printed when the graph model is loaded
    (r"`torch\.jit\.script` is deprecated", FutureWarning),
)


def quiet_third_party_warnings() -> None:
    """Ignore exactly the third-party warnings listed in :data:`THIRD_PARTY_WARNINGS`."""
    for message, category in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def resolve_format(fmt: str = "auto", stream: TextIO | None = None) -> str:
    """``json`` or ``console``: ``auto`` picks console when ``stream`` (default stderr) is a terminal."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt != "auto":
        return fmt
    return "console" if _isatty(sys.stderr if stream is None else stream) else "json"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def mask_secrets(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """A structlog processor: pydantic secret values (also inside dicts, lists, tuples) render masked."""
    return {k: _masked(v) for k, v in event_dict.items()}


def _masked(value: Any) -> Any:
    if isinstance(value, (SecretStr, SecretBytes)):
        return MASK
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_masked(v) for v in value)
    return value


_write_lock = threading.Lock()


class StderrLogger:
    """Writes each rendered line to the *current* ``sys.stderr`` (see the module docstring)."""

    def __init__(self, *_args: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        with _write_lock:
            stream = sys.stderr
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = error = err = critical = exception = fatal = failure = msg


def configure_logging(level: str = "INFO", fmt: str = "auto", *, stream: TextIO | None = None,
                      quiet_warnings: bool = False) -> str:
    """Configure structlog for the process; returns the resolved format (``json`` or ``console``).

    ``stream`` only decides ``auto`` (default: stderr); lines always go to the current stderr.
    ``quiet_warnings`` (the CLI's start-up) also calls :func:`quiet_third_party_warnings`.
    """
    if quiet_warnings:
        quiet_third_party_warnings()
    resolved = resolve_format(fmt, stream)
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        mask_secrets,
    ]
    if resolved == "console":
        tty = _isatty(sys.stderr if stream is None else stream)
        processors += [
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(
                colors=tty and not os.environ.get("NO_COLOR"),
                # no local variables in tracebacks: they may hold keys or passwords
                exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
            ),
        ]
    else:
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    global _configured
    _configured = True
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=StderrLogger,
        cache_logger_on_first_use=False,
    )
    return resolved


_configured = False


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger; until the application configures logging, INFO and above on stderr (``auto`` format)."""
    global _configured
    if not _configured and not structlog.is_configured():
        configure_logging()
    return structlog.get_logger(name)
