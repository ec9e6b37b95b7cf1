"""Local services for tests and benchmarks: a Kafka broker, a ClickHouse server, Prometheus, helm.

Each service is installed by ``scripts/services/install.sh`` under ``$MEVWATCH_SERVICES``
(default ``~/.cache/mevwatch/services``, shared by every checkout as a download cache) and
run here on 127.0.0.1 with its data in a folder of the caller's choosing, so a
restart on the same folder keeps its data. ``start`` waits until the service answers;
``stop`` ends it (SIGTERM, then SIGKILL); ``kill`` is SIGKILL, for fault tests.
Starting a running service is a no-op; every failure is a :class:`ServiceError`
that names the log file to read.

This is a test and development harness, not part of the installed package: tests import
it as ``from services import ...`` (tests/ is on ``sys.path`` through tests/conftest.py),
bench/ scripts put tests/ on ``sys.path`` themselves. The anvil launcher is a runtime
feature (``mevwatch demo``, ``mevwatch sim export``) and lives in :mod:`sim.anvil`; it is
re-exported here.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from mevwatch.monitor.errors import ServiceError
from mevwatch.sim.anvil import SERVICES, Anvil, LocalProcess, free_port, port_open

__all__ = ["HELM_VERSION", "SERVICES", "Anvil", "ClickHouseServer", "Kafka", "LocalProcess", "Prometheus",
           "ServiceError", "free_port", "helm_binary", "port_open"]

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.clients.name = org.apache.kafka
logger.clients.level = warn
"""


HELM_VERSION = "v3.19.0"  # built from the Go module proxy by scripts/services/install.sh


def helm_binary() -> Path:
    """The helm binary scripts/services/install.sh built (helm ships no binary to any registry here)."""
    path = SERVICES / "helm" / HELM_VERSION / "helm"
    if not path.exists():
        raise ServiceError(f"helm is not installed at {path}; run scripts/services/install.sh")
    return path


class Kafka(LocalProcess):
    """Apache Kafka 4.x, KRaft single node (broker + controller), from Maven Central jars."""

    name = "kafka"

    def __init__(self, data_dir: Path, port: int | None = None, libs: Path | None = None, *, certs: Any = None,
                 users: dict[str, str] | None = None, fsync_each: bool = False):
        super().__init__(data_dir)
        # fsync_each: write every message to disk before acknowledging it (the crash tests' broker, which
        # they kill -9). Off, the broker keeps Kafka's defaults (the OS writes the log back; durability
        # comes from replication), as a production broker runs: the session broker and the benches.
        self.fsync_each = fsync_each
        self.libs = Path(libs or SERVICES / "kafka" / "libs")
        self.port = port or free_port()
        self.controller_port = free_port()
        self.logs_dir = self.data_dir / "data"
        # with ``certs`` (tests/tlscerts.py) two more listeners: SASL_SSL (PLAIN and SCRAM-SHA-512 for
        # ``users``, name -> password) and SSL with client certificates required (mutual TLS)
        self.certs, self.users = certs, dict(users or {})
        self.sasl_ssl_port = free_port() if certs is not None else None
        self.ssl_port = free_port() if certs is not None else None

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"

    def _secure_config(self) -> list[str]:
        if self.certs is None:
            return []
        c = self.certs
        plain_users = " ".join(f'user_{u}="{pw}"' for u, pw in self.users.items())
        lines = [
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.ssl.ssl.client.auth=required",
        ]
        for listener in ("sasl_ssl", "ssl"):
            lines += [f"listener.name.{listener}.ssl.keystore.type=PEM", f"listener.name.{listener}.ssl.keystore.location={c.server_pem}",
                      f"listener.name.{listener}.ssl.truststore.type=PEM", f"listener.name.{listener}.ssl.truststore.location={c.ca}"]
        return lines

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, main: str, *args: str, heap: str = "512m") -> list[str]:
        if not (self.libs / ".complete").exists():
            raise ServiceError(f"Kafka is not installed in {self.libs}; run scripts/services/install.sh")
        log4j = self.data_dir / "log4j2.properties"
        if not log4j.exists():
            log4j.write_text(LOG4J2)
        return ["java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", f"-Dlog4j2.configurationFile={log4j}",
                "-cp", str(self.libs / "*"), main, *args]

    def _write_config(self) -> Path:
        cfg = self.data_dir / "server.properties"
        extra = f",SASL_SSL://127.0.0.1:{self.sasl_ssl_port},SSL://127.0.0.1:{self.ssl_port}" if self.certs is not None else ""
        cfg.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}{extra}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}{extra}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
            *self._secure_config(),
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.logs_dir}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            *(["log.flush.interval.messages=1"] if self.fsync_each else []),
            "",
        ]))
        return cfg

    def start(self, timeout: float = 90.0) -> Kafka:
        if self.running:
            return self
        cfg = self._write_config()
        if not (self.logs_dir / "meta.properties").exists():
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            scram = [a for u, pw in self.users.items() for a in ("--add-scram", f"SCRAM-SHA-512=[name={u},password={pw}]")]
            fmt = subprocess.run(self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster}", "-c", str(cfg), *scram,
                                            heap="256m"),
                                 capture_output=True, text=True, cwd=self.data_dir)
            if fmt.returncode != 0:
                raise ServiceError(f"kafka storage format failed: {fmt.stderr.strip()[-500:] or fmt.stdout.strip()[-500:]}")
        self._spawn(self._java("kafka.Kafka", str(cfg)))
        self._wait(self._ready, timeout)
        return self

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            from kafka import KafkaAdminClient

            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            try:
                admin.list_topics()
            finally:
                admin.close()
            return True
        except Exception:  # noqa: BLE001 - any client error means: not ready yet
            return False


CLICKHOUSE_CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp}</tcp_port>
  <http_port>{http}</http_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
"""
CLICKHOUSE_USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows>
    <read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"""


class ClickHouseServer(LocalProcess):
    """Debian's clickhouse-server on 127.0.0.1 with its data in ``data_dir`` (kept across restarts).

    ``tls`` (a :class:`tlscerts.Certs`): also listen with TLS on :attr:`secure_port` (the server's
    ``tcp_port_secure``) with that server certificate. ``users``: more users, name -> password, besides
    the password-less ``default`` (which the readiness check uses)."""

    name = "clickhouse"
    BINARY = Path(os.environ.get("MEVWATCH_CLICKHOUSE_SERVER", "/usr/sbin/clickhouse-server"))
    # 18.16's Poco reads the same <openSSL><server> keys as today's ClickHouse; the client does not
    # present a certificate (verificationMode none), so server certificate and key are all it needs
    TLS_CONFIG = """  <tcp_port_secure>{port}</tcp_port_secure>
  <openSSL><server>
    <certificateFile>{cert}</certificateFile><privateKeyFile>{key}</privateKeyFile>
    <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>
    <cacheSessions>true</cacheSessions><disableProtocols>sslv2,sslv3</disableProtocols><preferServerCiphers>true</preferServerCiphers>
  </server></openSSL>
"""
    USER = """<{name}><password>{password}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></{name}>"""

    def __init__(self, data_dir: Path, port: int | None = None, *, tls: object | None = None,
                 users: dict[str, str] | None = None):
        super().__init__(data_dir)
        self.port = port or free_port()
        self.http_port = free_port()
        self.tls = tls
        self.secure_port = free_port() if tls is not None else None
        self.users = dict(users or {})

    def url(self, database: str = "mevwatch", *, secure: bool = False, user: str | None = None) -> str:
        """``clickhouse://[user@]127.0.0.1:port/database``: the TLS port when ``secure`` (no password in it)."""
        port = self.secure_port if secure else self.port
        if secure and port is None:
            raise ServiceError("this ClickHouseServer was started without tls")
        return f"clickhouse://{user + '@' if user else ''}127.0.0.1:{port}/{database}"

    def start(self, timeout: float = 60.0) -> ClickHouseServer:
        if self.running:
            return self
        if not self.BINARY.exists():
            raise ServiceError(f"clickhouse-server not found at {self.BINARY}; run scripts/services/install.sh "
                               "(apt-get install clickhouse-server)")
        from xml.sax.saxutils import escape

        d = self.data_dir.resolve()
        for sub in ("log", "data", "tmp", "user_files", "format_schemas"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        users = "".join(self.USER.format(name=name, password=escape(pw)) for name, pw in self.users.items())
        (d / "users.xml").write_text(CLICKHOUSE_USERS.replace("</default></users>", f"</default>{users}</users>"))
        config = CLICKHOUSE_CONFIG.format(d=d, tcp=self.port, http=self.http_port)
        if self.tls is not None:
            tls = self.TLS_CONFIG.format(port=self.secure_port, cert=Path(self.tls.server_cert).resolve(),  # type: ignore[attr-defined]
                                         key=Path(self.tls.server_key).resolve())  # type: ignore[attr-defined]
            config = config.replace("</yandex>", tls + "</yandex>")
        cfg = d / "config.xml"
        cfg.write_text(config)
        self._spawn([str(self.BINARY), f"--config-file={cfg}"])
        self._wait(self._ready, timeout)
        return self

    def _ready(self) -> bool:
        if not port_open(self.port) or (self.secure_port is not None and not port_open(self.secure_port)):
            return False
        try:
            from clickhouse_driver import Client

            Client(host="127.0.0.1", port=self.port, connect_timeout=2).execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - not ready yet
            return False


class Prometheus(LocalProcess):
    """Debian's Prometheus on 127.0.0.1 scraping the given ``targets`` (host:port) every ``interval``, with
    ``labels`` as target labels (as the chart's ServiceMonitor adds ``chain``)."""

    name = "prometheus"
    BINARY = Path(os.environ.get("MEVWATCH_PROMETHEUS", "/usr/bin/prometheus"))

    def __init__(self, data_dir: Path, targets: list[str], *, interval: str = "1s", rule_files: list[Path] | None = None,
                 port: int | None = None, labels: dict[str, str] | None = None):
        super().__init__(data_dir)
        self.port = port or free_port()
        self.targets, self.interval, self.labels = targets, interval, dict(labels or {})
        self.rule_files = [Path(p).resolve() for p in rule_files or []]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Prometheus:
        if self.running:
            return self
        if not self.BINARY.exists():
            raise ServiceError(f"prometheus not found at {self.BINARY}; run scripts/services/install.sh "
                               "(apt-get install prometheus)")
        import yaml

        d = self.data_dir.resolve()
        cfg = {"global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
               "rule_files": [str(p) for p in self.rule_files],
               "scrape_configs": [{"job_name": "mevwatch", "static_configs": [{"targets": self.targets, **({"labels": self.labels} if self.labels else {})}]}]}
        (d / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        self._spawn([str(self.BINARY), f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"])
        self._wait(self._ready, timeout)
        return self

    def _ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False
