"""Structured logging: JSON lines (default) or a console renderer, via structlog.

Context such as ``block_number`` or ``transaction_hash`` is bound with
``log.bind(...)`` or ``structlog.contextvars.bind_contextvars(...)`` and appears in
every line. Secret values are never passed to the logger; SecretStr fields render
masked should one slip through.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    renderer: structlog.typing.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    global _configured
    _configured = True
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


_configured = False


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger; until the application configures logging, INFO and above as JSON on stderr."""
    global _configured
    if not _configured and not structlog.is_configured():
        configure_logging()
    return structlog.get_logger(name)
