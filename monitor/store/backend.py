"""Two ways to reach ClickHouse with one small interface.

- :class:`ChdbBackend`: embedded chDB in this process (the default; data in a directory).
- :class:`ServerBackend`: a ClickHouse server over the native protocol (``clickhouse-driver``),
  plain or TLS (``secure``: the server's ``tcp_port_secure``, 9440 by default).

SQL is written once with ClickHouse's ``{name:Type}`` placeholders. chDB binds them
server-side; for the server backend (which may predate query parameters, e.g.
Debian's 18.16) they become clickhouse-driver's ``%(name)s``, escaped by the driver.
Inserts never splice values into SQL: the server backend sends native blocks, chDB
gets ``FORMAT JSONCompactEachRow`` data after the statement, which ClickHouse parses
as data, never as SQL. So attacker-chosen strings (token names, symbols) are stored
verbatim.
"""

from __future__ import annotations

import os
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import unquote, urlparse

import orjson

from mevwatch.monitor.errors import ConfigError, InputError, StoreError

_PARAM = re.compile(r"\{(\w+):[^}]+\}")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Backend(Protocol):
    name: str
    database: str

    def execute(self, sql: str) -> None: ...
    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[list[Any]]: ...
    def read_only(self, sql: str) -> tuple[list[str], list[list[Any]]]: ...
    def insert(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None: ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...


C = TypeVar("C")

# Connections (chDB sessions, server clients) a backend opens at most: the detect path's writes, the
# attestation batcher's queries and one more (the health server's /query) each run on their own, so a
# write never waits for a batcher query in flight (issue 19: with one lock, the write p99 rose from 70 to
# 102 ms while the batcher polled at 5 million alerts)
CONNECTIONS = 3


class _Pool(Generic[C]):
    """Connections handed out one to a statement: a thread takes a free one, or opens one while fewer
    than ``size`` are open, or waits for one to come back. The first is opened at once (its errors are
    the backend's open errors); where a later one cannot be opened the pool stays at what it has and
    the threads take turns, as with one lock."""

    def __init__(self, make: Callable[[], C], size: int):
        self._make, self._size = make, size
        self._cv = threading.Condition()
        self._free: list[C] = [make()]
        self.opened: list[C] = list(self._free)
        self._opening = 0

    @contextmanager
    def take(self, retire: Callable[[C], None] | None = None) -> Iterator[C]:
        """A connection for one statement (or a few in a row). ``retire``: the connection is not given
        back but closed with it (one a statement left changed, such as read-only), unless it is the
        only one open."""
        conn = None
        with self._cv:
            while not self._free and len(self.opened) + self._opening >= self._size:
                self._cv.wait()
            if self._free:
                conn = self._free.pop()
            else:
                self._opening += 1
        if conn is None:
            made = False
            try:
                conn = self._make()
                made = True
            except Exception:  # noqa: BLE001 - cannot open another: share the ones open (below)
                pass
            finally:  # whatever happened (KeyboardInterrupt included), the slot is no longer being opened
                with self._cv:
                    self._opening -= 1
                    if conn is not None:  # made
                        self.opened.append(conn)
                    else:
                        self._size = len(self.opened)
                    self._cv.notify_all()
            if not made:
                with self.take(retire) as shared:
                    yield shared
                return
        assert conn is not None
        try:
            yield conn
        finally:
            retired = False
            with self._cv:
                if retire is not None and len(self.opened) > 1:
                    self.opened.remove(conn)
                    retired = True
                else:
                    self._free.append(conn)
                self._cv.notify_all()
            if retire is not None and retired:
                retire(conn)

    def close_all(self, close: Callable[[C], None]) -> None:
        """Close every connection once none is in use (a statement in flight ends first), the first last."""
        with self._cv:
            while len(self._free) < len(self.opened) or self._opening:
                self._cv.wait()
            conns = list(self.opened)
        for conn in reversed(conns):
            close(conn)


def _ident(name: str, what: str) -> str:
    if not _IDENT.match(name):
        raise ConfigError(f"invalid ClickHouse {what} name {name!r}")
    return name


def _tsv_escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r").replace("\0", "\\0")


# POST /query through the daemon (ChdbBackend.read_only_shared): functions that reach outside the store
# (files, the network, processes, other databases), refused by name wherever they appear in the query
OUTSIDE_FUNCTIONS = frozenset({
    "file", "url", "urlcluster", "s3", "s3cluster", "gcs", "azureblobstorage", "azureblobstoragecluster", "hdfs",
    "hdfscluster", "remote", "remotesecure", "cluster", "clusterallreplicas", "executable", "mysql", "postgresql",
    "jdbc", "odbc", "python", "input", "sqlite", "mongodb", "redis", "deltalake", "iceberg", "hudi", "filecluster",
})
# ... and the limits it runs under (readonly last: it forbids changing settings after it)
SHARED_QUERY_SETTINGS = ("max_execution_time = 30, max_rows_to_read = 100000000, max_result_rows = 100000, "
                         "max_result_bytes = 64000000, result_overflow_mode = 'throw', readonly = 1")


def _close_quietly(s: Any) -> None:
    try:
        s.close()
    except Exception:  # noqa: BLE001 - closing twice is harmless
        pass


def _chdb_sessions_apart() -> bool:
    """Whether chDB gives each session on one store its own connection (chDB 4: statements of two
    sessions run side by side, each with its own settings and its own partial output after an error).
    chDB 3 hands every session on a folder the one global connection, so the pool keeps one session."""
    import chdb

    try:
        return int(str(chdb.__version__).split(".")[0]) >= 4
    except ValueError:
        return False


class ChdbBackend:
    """Embedded ClickHouse (chDB). One per process (chDB opens one store a process), with up to
    :data:`CONNECTIONS` sessions on it, so that statements of different threads run side by side."""

    name = "chdb"

    def __init__(self, path: Path, database: str = "mevwatch"):
        try:
            from chdb import session
        except ImportError:
            raise ConfigError("the embedded store (chDB) is not installed: install the extra (pip install 'mevwatch[embedded]') "
                              "or give a ClickHouse server (clickhouse.url, --clickhouse)") from None

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.database = _ident(database, "database")

        def make() -> Any:
            s = session.Session(str(self.path))
            try:
                s.query(f"CREATE DATABASE IF NOT EXISTS {self.database}")
                s.query(f"USE {self.database}")
            except BaseException:
                _close_quietly(s)
                raise
            return s

        try:
            self._pool: _Pool[Any] = _Pool(make, CONNECTIONS if _chdb_sessions_apart() else 1)
        except Exception as exc:  # noqa: BLE001 - chDB raises its own error types
            hint = ""
            if "EmbeddedServer" in str(exc):  # what chDB says when another process holds the folder
                hint = (" (is another process, such as `mevwatch run`, using this store? chDB admits one; "
                        "`mevwatch db query` reaches a running daemon through its health server)")
            raise StoreError(f"cannot open chDB at {self.path}: {exc}{hint}") from None

    def execute(self, sql: str) -> None:
        self._run(sql, "CSV", None)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        if params:  # ClickHouse reads parameter values in its escaped text format
            params = {k: _tsv_escape(v) if isinstance(v, str) else v for k, v in params.items()}
        out = self._run(sql, "JSONCompact", params)
        return orjson.loads(out)["data"] if out else []

    def read_only(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """A user's statement (``mevwatch db query``) with ClickHouse's ``readonly`` on: column names and
        rows. The session it ran on is closed afterwards; where it is the process's only one, it stays
        read-only (the command's process ends there)."""
        with self._pool.take(retire=_close_quietly) as s:  # closed afterwards (unless it is the only one)
            self._on(s, "SET readonly = 1", "CSV", None)
            out = self._on(s, sql, "JSONCompact", None)
        if not out:
            return [], []
        doc = orjson.loads(out)
        return [c["name"] for c in doc.get("meta", [])], doc.get("data", [])

    def read_only_shared(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """A user's SELECT on this process's session while the process keeps writing to it: the
        daemon's ``/query`` endpoint (``mevwatch db query`` while ``mevwatch run`` holds the embedded
        store). The session cannot be made read-only for one statement and writable again, so the
        statement is checked and then run with the query-level ``readonly`` setting:

        - one statement: no ``;`` but a trailing one (chDB runs every statement of a multi-statement
          string; a ``;`` inside a string literal is refused too);
        - ClickHouse's parser (``EXPLAIN AST``, which runs nothing) must read it as one SELECT
          (``WITH``/``UNION`` included) without a ``SETTINGS`` clause of its own;
        - no function that reaches outside the store (:data:`OUTSIDE_FUNCTIONS`: ``file`` as a
          scalar function reads files even under ``readonly``; ``url``, ``remote``, ...);
        - it runs as ``SELECT * FROM (<statement>) SETTINGS ..., readonly = 1`` with limits
          (:data:`SHARED_QUERY_SETTINGS`: 30 s, 100 million rows read, 100,000 rows or 64 MB
          returned) so that one query cannot hold the daemon's store for long: a complete
          statement cannot close the parentheses early, and ``readonly`` refuses writes and
          changing those limits.
        """
        stmt = sql.strip().rstrip(";").strip()
        if not stmt:
            raise InputError("empty query")
        if ";" in stmt:
            raise InputError("one statement only, without ';' (through the running daemon)")
        try:
            ast = self._run(f"EXPLAIN AST {stmt}", "TSVRaw", None).decode()
        except StoreError as exc:
            raise InputError(f"the query does not parse: {str(exc)[len('chDB query failed: '):]}") from None
        lines = [ln.strip().split(" ") for ln in ast.splitlines() if ln.strip()]
        nodes = [parts[0] for parts in lines]
        outside = [parts[1] for parts in lines if parts[0] == "Function" and len(parts) > 1
                   and parts[1].lower() in OUTSIDE_FUNCTIONS]
        if outside:
            raise InputError(f"function {outside[0]} reaches outside the store: not accepted through the daemon")
        if not nodes or nodes[0] != "SelectWithUnionQuery":
            raise InputError(f"only SELECT queries run through the daemon (this is {nodes[0] if nodes else 'empty'}); "
                             "stop it, or use a ClickHouse server (docs/store.md), for others")
        if "Set" in nodes:
            raise InputError("SETTINGS clauses are not accepted through the daemon")
        out = self._run(f"SELECT * FROM (\n{stmt}\n) SETTINGS {SHARED_QUERY_SETTINGS}", "JSONCompact", None)
        if not out:
            return [], []
        doc = orjson.loads(out)
        return [c["name"] for c in doc.get("meta", [])], doc.get("data", [])

    def insert(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        data = b"\n".join(orjson.dumps(list(r)) for r in rows).decode()
        self._run(f"INSERT INTO {_ident(table, 'table')} ({', '.join(columns)}) FORMAT JSONCompactEachRow\n{data}", "CSV", None)

    def _run(self, sql: str, fmt: str, params: dict[str, Any] | None) -> bytes:
        with self._pool.take() as s:
            return self._on(s, sql, fmt, params)

    @staticmethod
    def _on(s: Any, sql: str, fmt: str, params: dict[str, Any] | None) -> bytes:
        try:
            res = s.query(sql, fmt, params=params) if params else s.query(sql, fmt)
        except Exception as exc:  # noqa: BLE001
            # chDB keeps the partial output of a query that fails while running (a JSON header) and
            # prepends it to the next answer: drain it, or the next query (the daemon's own) reads garbage
            try:
                s.query("SELECT 1", "CSV")
            except Exception:  # noqa: BLE001 - the session itself is gone: the next query says so
                pass
            raise StoreError(f"chDB query failed: {str(exc)[:500]}") from None
        return res.bytes() if res is not None else b""

    def ping(self) -> bool:
        try:
            self.query("SELECT 1")
            return True
        except StoreError:
            return False

    def close(self) -> None:
        self._pool.close_all(_close_quietly)


# TLS failures that retrying cannot mend: a certificate the client does not trust (or for another
# host), or a server port that does not speak TLS at all
_TLS_CONFIG_ERRORS = {"CERTIFICATE_VERIFY_FAILED": "check clickhouse.ca_file (the CA the server's certificate chains to) "
                                                   "and the host name in clickhouse.url",
                      "WRONG_VERSION_NUMBER": "clickhouse.secure is on: is this the server's TLS port (tcp_port_secure, "
                                              "usually 9440)?"}


def _tls_options(secure: bool, ca_file: Path | str | None, verify: bool) -> dict[str, Any]:
    """clickhouse-driver's TLS keywords. Without ``ca_file`` the system's trust store (what
    :func:`ssl.get_default_verify_paths` names, ``SSL_CERT_FILE`` included), or certifi's bundle where
    there is no system bundle file: the driver picks certifi's whenever it is given none."""
    if not secure:
        return {}
    opts: dict[str, Any] = {"secure": True, "verify": verify}
    if ca_file is not None:
        path = Path(ca_file).expanduser()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ConfigError(f"clickhouse.ca_file {path} is not a readable file")
        opts["ca_certs"] = str(path)
    elif verify:
        system = ssl.get_default_verify_paths().cafile
        if system:
            opts["ca_certs"] = system
    return opts


class ServerBackend:
    """A ClickHouse server through the native TCP protocol. URL: ``clickhouse://[user[:pw]@]host[:port]/db``;
    the port defaults to 9000, or 9440 with ``secure`` (TLS, the server's ``tcp_port_secure``). ``ca_file``:
    the PEM CA the server's certificate must chain to (None: the system's trust store); ``verify`` off
    accepts any certificate and host name (tests only)."""

    name = "server"

    def __init__(self, url: str, password: str | None = None, *, connect_timeout: float = 5.0,
                 send_receive_timeout: float = 30.0, secure: bool = False, ca_file: Path | str | None = None,
                 verify: bool = True):
        u = urlparse(url)
        if u.scheme not in ("clickhouse", "tcp") or not u.hostname:
            raise ConfigError(f"clickhouse.url must look like clickhouse://host:9000/db, got {u.scheme}://{u.hostname or ''}")
        try:
            port = u.port
        except ValueError:
            raise ConfigError(f"clickhouse.url has an invalid port: {u.scheme}://{u.hostname}") from None
        self.secure = secure
        self.host, self.port = u.hostname, port or (9440 if secure else 9000)
        self.database = _ident((u.path or "/mevwatch").strip("/") or "mevwatch", "database")
        self._user = unquote(u.username) if u.username else "default"
        self._password = password if password is not None else (unquote(u.password) if u.password else "")
        self._kw: dict[str, Any] = {"connect_timeout": connect_timeout, "send_receive_timeout": send_receive_timeout,
                                    **_tls_options(secure, ca_file, verify)}
        self._pool: _Pool[Any] = _Pool(lambda: self._connect(None), 1)  # clients connect at their first statement
        self._call(f"CREATE DATABASE IF NOT EXISTS {self.database}", None, None)
        self._pool.opened[0].disconnect()
        self._pool = _Pool(lambda: self._connect(self.database), CONNECTIONS)

    @property
    def _client(self) -> Any:
        """The first client (the one a lone thread uses)."""
        return self._pool.opened[0]

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.database}{' (TLS)' if self.secure else ''}"  # never the password

    def _connect(self, database: str | None):
        from clickhouse_driver import Client

        return Client(host=self.host, port=self.port, user=self._user, password=self._password,
                      database=database or "default", **self._kw)

    def _wrap(self, exc: Exception) -> StoreError:
        from clickhouse_driver import errors as chde

        retriable = isinstance(exc, (chde.NetworkError, chde.SocketTimeoutError, OSError, EOFError))
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        message = getattr(exc, "message", None)
        if isinstance(exc, chde.ServerException) and isinstance(message, str) and message.strip():
            text = f"Code: {exc.code}. {message.strip().splitlines()[0]}"  # the server's reason, not only its code
            text = text.removesuffix(" Stack trace:")  # old servers (18.16) end the line with it
        if len(self._password) >= 6:
            text = text.replace(self._password, "***")  # belt and braces: no driver message should carry it
        text = text[:300]
        for reason, hint in _TLS_CONFIG_ERRORS.items():
            if f"[SSL: {reason}]" in text:
                return StoreError(f"ClickHouse at {self.where} failed: TLS: {text}; {hint}", retriable=False)
        if retriable and not self.secure and self.port == 9440:
            text += "; 9440 is ClickHouse's TLS port: set clickhouse.secure"
        return StoreError(f"ClickHouse at {self.where} failed: {text}", retriable=retriable)

    def execute(self, sql: str) -> None:
        self._call(sql, None, None)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        if params:
            sql = _PARAM.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%"))
        return [list(r) for r in self._call(sql, params or None, None)]

    def read_only(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """A user's statement (``mevwatch db query``) with ClickHouse's ``readonly`` on: column names and rows."""
        with self._pool.take() as client:
            try:
                rows, types = client.execute(sql, with_column_types=True, settings={"readonly": 1})
            except Exception as exc:  # noqa: BLE001
                client.disconnect()
                raise self._wrap(exc) from None
        return [name for name, _t in types], [list(r) for r in rows]

    def insert(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        if rows:
            self._call(f"INSERT INTO {_ident(table, 'table')} ({', '.join(columns)}) VALUES", None, rows)

    def _call(self, sql: str, params: dict | None, rows: list | None) -> Any:
        with self._pool.take() as client:
            try:
                if rows is not None:
                    return client.execute(sql, rows)
                return client.execute(sql, params) if params else client.execute(sql)
            except Exception as exc:  # noqa: BLE001 - the driver raises many types; all become StoreError
                client.disconnect()
                raise self._wrap(exc) from None

    def ping(self) -> bool:
        try:
            self._call("SELECT 1", None, None)
            return True
        except StoreError:
            return False

    def close(self) -> None:
        self._pool.close_all(lambda c: c.disconnect())


def open_backend(url: str | None, data_dir: Path, password: str | None = None, *, secure: bool = False,
                 ca_file: Path | str | None = None, verify: bool = True) -> Backend:
    """``url`` None: embedded chDB under ``data_dir``; else a ClickHouse server (over TLS when ``secure``;
    ``ca_file`` and ``verify`` as :class:`ServerBackend`; all three are ignored for chDB)."""
    if url is None:
        return ChdbBackend(data_dir)
    return ServerBackend(url, password, secure=secure, ca_file=ca_file, verify=verify)
