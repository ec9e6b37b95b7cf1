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

    def __init__(self, data_dir: Path, port: int | None = None, libs: Path | None = None):
        super().__init__(data_dir)
        self.libs = Path(libs or SERVICES / "kafka" / "libs")
        self.port = port or free_port()
        self.controller_port = free_port()
        self.logs_dir = self.data_dir / "data"

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
        cfg.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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
            "log.flush.interval.messages=1",
            "",
        ]))
        return cfg

    def start(self, timeout: float = 90.0) -> Kafka:
        if self.running:
            return self
        cfg = self._write_config()
        if not (self.logs_dir / "meta.properties").exists():
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster}", "-c", str(cfg), heap="256m"),
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
    """Debian's clickhouse-server on 127.0.0.1 with its data in ``data_dir`` (kept across restarts)."""

    name = "clickhouse"
    BINARY = Path(os.environ.get("MEVWATCH_CLICKHOUSE_SERVER", "/usr/sbin/clickhouse-server"))

    def __init__(self, data_dir: Path, port: int | None = None):
        super().__init__(data_dir)
        self.port = port or free_port()
        self.http_port = free_port()

    def url(self, database: str = "mevwatch") -> str:
        return f"clickhouse://127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> ClickHouseServer:
        if self.running:
            return self
        if not self.BINARY.exists():
            raise ServiceError(f"clickhouse-server not found at {self.BINARY}; run scripts/services/install.sh "
                               "(apt-get install clickhouse-server)")
        d = self.data_dir.resolve()
        for sub in ("log", "data", "tmp", "user_files", "format_schemas"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "users.xml").write_text(CLICKHOUSE_USERS)
        cfg = d / "config.xml"
        cfg.write_text(CLICKHOUSE_CONFIG.format(d=d, tcp=self.port, http=self.http_port))
        self._spawn([str(self.BINARY), f"--config-file={cfg}"])
        self._wait(self._ready, timeout)
        return self

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            from clickhouse_driver import Client

            Client(host="127.0.0.1", port=self.port, connect_timeout=2).execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - not ready yet
            return False


class Prometheus(LocalProcess):
    """Debian's Prometheus on 127.0.0.1 scraping the given ``targets`` (host:port) every ``interval``."""

    name = "prometheus"
    BINARY = Path(os.environ.get("MEVWATCH_PROMETHEUS", "/usr/bin/prometheus"))

    def __init__(self, data_dir: Path, targets: list[str], *, interval: str = "1s", rule_files: list[Path] | None = None,
                 port: int | None = None):
        super().__init__(data_dir)
        self.port = port or free_port()
        self.targets, self.interval = targets, interval
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
               "scrape_configs": [{"job_name": "mevwatch", "static_configs": [{"targets": self.targets}]}]}
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
