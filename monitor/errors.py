"""The one exception root of mevwatch and its specific subclasses.

Every error raised on purpose by mevwatch derives from :class:`MevwatchError`, so a
caller can catch all of them at once; the subclasses say what went wrong and name
the input (file, offset, message key) so the user can find it.
"""

from __future__ import annotations


class MevwatchError(Exception):
    """Root of every error mevwatch raises on purpose."""


class ConfigError(MevwatchError):
    """Invalid configuration: a bad value, an unreadable config file, a missing secret."""


class InputError(MevwatchError):
    """Bad input data. ``source`` names the file or topic, ``position`` the line, offset or index."""

    def __init__(self, message: str, *, source: str | None = None, position: int | str | None = None):
        self.source = source
        self.position = position
        where = ""
        if source is not None:
            where = f"{source}"
            if position is not None:
                where += f" at {position}"
            where += ": "
        super().__init__(f"{where}{message}")
        self.reason = message


class EnvelopeError(InputError):
    """A bus message or recorded line that does not match its versioned schema."""


class NodeError(MevwatchError):
    """The Ethereum node is unreachable or answered with an error."""


class ReorgTooDeepError(NodeError):
    """A reorganisation deeper than the configured maximum depth."""


class BusError(MevwatchError):
    """The message bus (Kafka or in-process) failed."""


class KafkaAccessError(BusError):
    """The brokers refused this client's credentials or the client refused their certificate:
    trying again cannot help (a wrong SASL password, an untrusted CA, TLS to a plain listener)."""

    retriable = False


class FlushTimeout(BusError):
    """Produced records were not acknowledged in time; they stay buffered and are still being sent."""


class ServiceError(MevwatchError):
    """A local service (Kafka, anvil, ClickHouse, Prometheus) could not be installed or started."""


class StoreError(MevwatchError):
    """The evidence store (chDB or a ClickHouse server) failed. ``retriable``: worth trying again."""

    def __init__(self, message: str, *, retriable: bool = False):
        super().__init__(message)
        self.retriable = retriable


class DeliveryError(MevwatchError):
    """A webhook subscriber is misconfigured or refused (SSRF guard, bad secret, bad URL)."""


class AttestError(MevwatchError):
    """Attesting a batch failed: the chain refused it, fees above the cap, no key.

    ``retriable`` is True when trying again later can succeed (node away, fees high).
    """

    def __init__(self, message: str, *, retriable: bool = False):
        super().__init__(message)
        self.retriable = retriable
