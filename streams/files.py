"""File sources: recorded blocks in mev-inspect-py JSON and mevwatch's own JSONL.

- mev-inspect format: one block per ``.json`` or ``.json.gz`` file (as in
  ``shared/data/mainnet-traces``).
- JSONL: one envelope per line (``streams.envelope``), ``.jsonl`` or ``.jsonl.gz``, as
  written by ``mevwatch record`` and ``mevwatch sim export``.
- cryo: parquet datasets as https://github.com/paradigmxyz/cryo writes them (``.parquet`` files
  named ``NETWORK__DATASET__START_to_END.parquet``), read by ``streams.cryo`` (needs pyarrow).

Directories are expanded to the files they hold, sorted by name. A file that cannot
be read raises :class:`InputError` naming it; a bad JSONL line is yielded as an
:class:`EnvelopeError` (naming file and line) so the caller can dead-letter it and go on.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import orjson

from mevwatch.monitor.errors import EnvelopeError, InputError
from mevwatch.monitor.types import Block, Message
from mevwatch.streams import envelope
from mevwatch.streams.mevinspect import parse_block

_inflate: ModuleType
try:  # ISA-L inflates gzip ~2.7x faster than zlib (1.3 -> 0.5 ms a recorded block); same API
    from isal import isal_zlib as _inflate

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _inflate.error)
except ImportError:  # no wheel for this platform: the standard library
    _inflate = zlib
    _INFLATE_ERRORS = (zlib.error,)

FORMATS = ("auto", "mev-inspect", "jsonl", "cryo")
MAX_DECOMPRESSED = 1 << 30  # bytes a .gz input may expand to (a mainnet block is a few MB): a gzip bomb stops here
MAX_LINE = 64 << 20  # bytes of one JSONL line
_SUFFIXES = {".json": "mev-inspect", ".json.gz": "mev-inspect", ".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".parquet": "cryo"}


def _suffix_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in sorted(_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return fmt
    return None


def discover(paths: list[Path], fmt: str = "auto") -> list[tuple[Path, str]]:
    """Expand directories and tell each file's format. Raises InputError for a missing path."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    found: list[tuple[Path, str]] = []
    for p in paths:
        if not p.exists():
            raise InputError("no such file or directory", source=str(p))
        if p.is_dir():
            members = sorted(c for c in p.iterdir() if c.is_file() and _suffix_format(c) is not None)
            if not members:
                raise InputError("directory holds no .json, .json.gz, .jsonl, .jsonl.gz or cryo .parquet files", source=str(p))
        else:
            members = [p]
        for m in members:
            f = fmt if fmt != "auto" else _suffix_format(m)
            if f is None:
                raise InputError("cannot tell the format from the name; pass --format", source=str(m))
            found.append((m, f))
    return found


def recording_chain_id(found: list[tuple[Path, str]]) -> int | None:
    """The chain id of the first message of the first readable JSONL recording among ``found``
    (files and formats from :func:`discover`); None when there is none (mev-inspect files carry no
    chain id); for a cryo dataset, its first blocks row's chain_id. A replay without ``--chain-id``
    takes the recording's, as the live run had it."""
    for path, fmt in found:
        if fmt == "cryo":
            from mevwatch.streams.cryo import blocks_chain_id

            try:
                cid = blocks_chain_id(path)
            except InputError:
                continue  # the replay names this file's problem
            if cid is not None:
                return cid
            continue
        if fmt != "jsonl":
            continue
        try:
            for _n, msg in iter_jsonl(path):
                cid = None if isinstance(msg, EnvelopeError) else getattr(msg, "chain_id", None)
                if isinstance(cid, int):
                    return cid
        except InputError:
            continue  # the replay names this file's problem
    return None


def read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    return _gunzip(raw, str(path))


def _gunzip(raw: bytes, source: str, limit: int | None = None) -> bytes:
    """Decompress gzip data (every member) up to ``limit`` bytes (default MAX_DECOMPRESSED); beyond: an InputError."""
    limit = MAX_DECOMPRESSED if limit is None else limit
    out: list[bytes] = []
    size = 0
    data = raw
    try:
        while data:  # one member at a time; one call each (chunked calls would copy the input tail every time)
            d = _inflate.decompressobj(wbits=31)
            chunk = d.decompress(data, limit - size + 1)
            size += len(chunk)
            if size > limit:
                raise InputError(f"decompresses to more than {limit:,} bytes (the cap on a gzip input)", source=source)
            out.append(chunk)
            if not d.eof:
                raise InputError("corrupt gzip data: truncated", source=source)
            data = d.unused_data.lstrip(b"\x00")
    except _INFLATE_ERRORS as exc:
        raise InputError(f"corrupt gzip data: {exc}", source=source) from None
    return b"".join(out)


def read_mev_inspect(path: Path, chain_id: int = 1) -> Block:
    data = read_bytes(path)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}", source=str(path)) from None
    if not isinstance(obj, dict):
        raise InputError("expected a JSON object (one mev-inspect block)", source=str(path))
    return parse_block(obj, source=str(path), chain_id=chain_id)


def iter_jsonl(path: Path) -> Iterator[tuple[int, Message | EnvelopeError]]:
    """(line number, message or the error that line raised), for every non-empty line."""
    gz = path.name.lower().endswith(".gz")
    opener = gzip.open if gz else open
    total = 0
    try:
        if gz and path.stat().st_size == 0:  # gzip reads an empty file as no data; it is a cut-off .gz
            raise InputError("corrupt gzip data: the file is empty (not even a gzip header)", source=str(path))
        with opener(path, "rb") as fh:
            n = 0
            while True:
                line = fh.readline(MAX_LINE + 1)
                if not line:
                    break
                n += 1
                total += len(line)
                if total > MAX_DECOMPRESSED:
                    raise InputError(f"more than {MAX_DECOMPRESSED:,} bytes (the cap on one input), at line {n}", source=str(path))
                if len(line) > MAX_LINE:
                    raise InputError(f"line {n} is longer than {MAX_LINE:,} bytes", source=str(path))
                if not line.strip():
                    continue
                try:
                    yield n, envelope.decode(line, source=str(path), position=f"line {n}")
                except EnvelopeError as exc:
                    exc.raw = line  # type: ignore[attr-defined]
                    yield n, exc
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"corrupt gzip data: {exc}", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
