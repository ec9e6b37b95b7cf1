"""mevwatch monitor: decoding, MEV detection, scoring and alert sinks."""

__version__ = "0.1.0"
