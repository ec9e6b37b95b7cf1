"""Querying the embedded store while ``mevwatch run`` holds it.

chDB admits one process per store folder, so a second process cannot open the store the daemon
writes to. The daemon offers ``POST /query`` on its health server instead (monitor/health.py:
one SELECT, read-only, on its own session) and writes where it listens, with a random token, to a
file beside the store (``<clickhouse.data_dir>.query.json``, mode 0600: only its OS user can read
it). ``mevwatch db query`` reads that file when the store is held, and sends the SQL there.
The file is removed when the daemon stops; a stale one (the daemon was killed) reads as "not
answering".
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from mevwatch.monitor.errors import StoreError


def endpoint_file(chdb_dir: Path) -> Path:
    chdb_dir = Path(chdb_dir)
    return chdb_dir.with_name(chdb_dir.name + ".query.json")


def new_token() -> str:
    return secrets.token_hex(16)


def local_url(host: str, port: int) -> str | None:
    """The URL a local client reaches the health server at; None when it listens on an address
    that is neither loopback nor every address (``/query`` answers loopback clients only)."""
    if host in ("", "0.0.0.0", "::", "127.0.0.1", "localhost"):
        return f"http://127.0.0.1:{port}/query"
    if host == "::1":
        return f"http://[::1]:{port}/query"
    return None


def write(path: Path, url: str, token: str) -> None:
    """Atomically, through a new temporary file only this user can read (never a name planted in
    the folder: a symlink or a world-readable file there is not followed or reused)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps({"url": url, "token": token, "pid": os.getpid()}))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove(path: Path, token: str) -> None:
    """Remove the file if it is still this process's (a newer daemon may have replaced it)."""
    try:
        if orjson.loads(path.read_bytes()).get("token") == token:
            path.unlink()
    except (OSError, ValueError):
        pass


def query(path: Path, sql: str, timeout: float = 60.0) -> tuple[list[str], list[list[Any]]]:
    """Run ``sql`` through the daemon whose endpoint file is ``path``: (column names, rows).
    StoreError when there is none, it does not answer, or it refuses the query (with its reason)."""
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            # another account's file (or one others can write or read) could send the SQL to its own server
            raise StoreError(f"daemon endpoint file {path} is not a private file of this user (mode "
                             f"{stat.S_IMODE(st.st_mode):o}, owner {st.st_uid}): not trusted")
        info = orjson.loads(path.read_bytes())
        url, token = str(info["url"]), str(info["token"])
        if not url.startswith(("http://127.0.0.1:", "http://[::1]:")):
            raise StoreError(f"daemon endpoint file {path} names {url!r}, not a loopback address: not trusted")
    except FileNotFoundError:
        raise StoreError("no running daemon offers queries on it (no endpoint file "
                         f"{path}: its health server is off, or it is another kind of process)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"unreadable daemon endpoint file {path}: {exc}") from None
    req = urllib.request.Request(url, data=sql.encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            doc = orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = orjson.loads(exc.read()).get("error", "")
        except ValueError:
            reason = ""
        raise StoreError(f"the running daemon refused the query: {reason or exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StoreError(f"the daemon named in {path} does not answer ({getattr(exc, 'reason', exc)}); "
                         "if it was killed, remove that file") from None
    return list(doc.get("columns", [])), list(doc.get("rows", []))
