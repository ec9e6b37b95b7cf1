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

URLs carry credentials (``wss://user:secret@host/v3/APIKEY``): :func:`redact_url` masks
the userinfo, key-like path segments and key-like query values, and every rendered log
line passes through :func:`redact_text`, which applies it to each URL in the line (a URL
inside an exception message included). Error messages, metric labels and stored rows that
name a node use :func:`redact_url` themselves.

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
import re
import sys
import threading
import warnings
from typing import Any, TextIO

import structlog
from pydantic import SecretBytes, SecretStr

FORMATS = ("auto", "json", "console")
MASK = "**********"
URL_MASK = "***"  # what a credential in a URL becomes (short: it stays readable inside the URL)

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


# --- credentials in URLs ----------------------------------------------------------------------
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`\x1b\\]+")
_TRAILING = ".,;:!?)]}"
_TOKEN = re.compile(r"[A-Za-z0-9_\-+=~]+")
_KEY_PARAM = re.compile(
    r"(?i)^(?:.*[-_])?(?:api[-_]?key|apikey|key|dkey|token|access[-_]?token|auth|authorization|secret|"
    r"client[-_]?secret|password|passwd|pass|pwd|jwt|signature|sig|credentials?)$")


def _keylike(part: str) -> bool:
    """A path segment or query value that looks like an API key: a long token of letters and
    digits (hex, base64url, UUIDs), at least 16 characters with a digit, or 24 without."""
    return len(part) >= 16 and _TOKEN.fullmatch(part) is not None and (len(part) >= 24 or any(c.isdigit() for c in part))


def redact_url(url: str) -> str:
    """``url`` with its credentials masked: userinfo (``user:secret@``), key-like path segments
    (``/v3/<32 hex>``) and query values (``apikey=``, ``key=``, ``token=`` ... or any key-like
    value). A URL without credentials comes back unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = len(rest)
    for ch in "?#":
        i = rest.find(ch)
        if i >= 0:
            cut = min(cut, i)
    at = rest.rfind("@", 0, cut)
    userinfo = ""
    if at >= 0:  # the last '@' before the query: a password may hold '/' or '@'
        userinfo, rest = URL_MASK + "@", rest[at + 1:]
    rest, hsep, fragment = rest.partition("#")
    rest, qsep, query = rest.partition("?")
    host, psep, path = rest.partition("/")
    if path:
        path = "/".join(URL_MASK if _keylike(seg) else seg for seg in path.split("/"))
    if query:
        params = []
        for item in query.split("&"):
            k, eq, v = item.partition("=")
            if eq and (_KEY_PARAM.match(k) or _keylike(v)):
                params.append(f"{k}={URL_MASK}")
            elif not eq and _keylike(k):
                params.append(URL_MASK)
            else:
                params.append(item)
        query = "&".join(params)
    if fragment and (_keylike(fragment) or "=" in fragment):
        fragment = URL_MASK
    return f"{scheme}://{userinfo}{host}{psep}{path}{qsep}{query}{hsep}{fragment}"


_BARE_PATH = re.compile(r"(with url: )(/[^\s'\"<>`\x1b\\]*)")  # urllib3 (requests) names the path alone


def redact_text(text: str) -> str:
    """``text`` with :func:`redact_url` applied to every URL in it (log lines, exception messages),
    and to the bare path urllib3's errors name (``Max retries exceeded with url: /v3/KEY``)."""
    if "://" in text:
        def sub(m: re.Match[str]) -> str:
            found = m.group(0)
            core = found.rstrip(_TRAILING)
            return redact_url(core) + found[len(core):]

        text = _URL.sub(sub, text)
    if "with url: /" in text:
        text = _BARE_PATH.sub(lambda m: m.group(1) + redact_url("x://h" + m.group(2))[len("x://h"):], text)
    return text


def _redacting(renderer: Any) -> Any:
    """A renderer whose every line passes through :func:`redact_text` (the last processor)."""

    def render(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> Any:
        out = renderer(logger, name, event_dict)
        return redact_text(out) if isinstance(out, str) else out

    return render


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
    # clickhouse-driver logs every failed connection attempt as a warning with its traceback (through
    # Python's last-resort handler, unformatted); mevwatch reports the failure itself, in one line
    logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
    # kafka-python logs its whole client config at DEBUG, SASL password included: never below WARNING
    # (streams/bus.py reads its WARNING/ERROR records to name why a connection was refused)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # the detect reader's librdkafka logs (connections, at info) likewise: warnings and errors only
    logging.getLogger("mevwatch.kafka.reader").setLevel(logging.WARNING)
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
            _redacting(structlog.dev.ConsoleRenderer(
                colors=tty and not os.environ.get("NO_COLOR"),
                # no local variables in tracebacks: they may hold keys or passwords
                exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
            )),
        ]
    else:
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redacting(structlog.processors.JSONRenderer()),
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
