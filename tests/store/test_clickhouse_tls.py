"""The evidence store on a ClickHouse server over TLS (the native protocol's secure port) with a
password user, against Debian's real clickhouse-server (tests/services.py) started with a
``tcp_port_secure`` and certificates made for the test (tests/tlscerts.py). The settings come the
way an operator gives them: a YAML ``clickhouse`` section (url, secure, ca_file) and the password in
a file named by ``MEVWATCH_CLICKHOUSE__PASSWORD_FILE``. An untrusted certificate, the plain port
spoken to with TLS and a wrong password are clean one-line errors naming host and port and never
the password."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import uuid

import pytest
import yaml

from mevwatch.monitor.alerts import Alert, AlertEvent, AlertTx, with_stage
from mevwatch.monitor.config import load_settings
from mevwatch.monitor.errors import ConfigError, StoreError
from mevwatch.monitor.lifecycle import version_of
from mevwatch.monitor.store.backend import ServerBackend, open_backend
from mevwatch.monitor.store.schema import MIGRATIONS
from mevwatch.monitor.store.store import open_store, settings_store
from services import ClickHouseServer, free_port
from tlscerts import make_certs

pytestmark = pytest.mark.kafka  # needs the services installed by scripts/services/install.sh
USER, PASSWORD = "mevwatch_app", "pw-Ch7Qx2Lm9Tz4<&"  # XML-special characters: users.xml escapes them


@pytest.fixture(scope="module")
def tls_ch(tmp_path_factory):
    """A clickhouse-server of this module's own (its own folder and free ports) with a TLS port and a password user."""
    folder = tmp_path_factory.mktemp("clickhouse-tls")
    certs = make_certs(folder / "certs")
    ch = ClickHouseServer(folder / "server", tls=certs, users={USER: PASSWORD}).start()
    yield ch, certs
    ch.stop()


def _db() -> str:
    return f"tls_{uuid.uuid4().hex[:8]}"


def _alert(n: int) -> Alert:
    return Alert(kind="sandwich", stage="included", chain_id=1, block_number=500 + n, block_hash=f"0x{n:02x}",
                 txs=[AlertTx(f"0x{n}1", 0, "frontrun"), AlertTx(f"0x{n}2", 1, "victim"), AlertTx(f"0x{n}3", 2, "backrun")],
                 attackers=["0xa"], victims=["0xv"], pools=["0xp"], tokens=["0xt"], profit=None, victim_loss=None,
                 gas_cost_wei=None, evidence={"n": n})


def _write_and_read(store) -> None:
    assert store.applied_migrations() == [m.version for m in MIGRATIONS]
    a, b = _alert(1), _alert(2)
    store.write_alerts([AlertEvent(a, version_of(10, "included")), AlertEvent(b, version_of(11, "included"))])
    store.write_alerts([AlertEvent(with_stage(a, "final"), version_of(40, "final"))])
    assert store.count("alerts") == 2
    assert store.alert_versions()[a.alert_id] == (version_of(40, "final"), "final")
    back = store.alert(b.alert_id)
    assert back is not None and back.evidence == {"n": 2}


def _assert_clean(message: str, port: int) -> None:
    assert f"127.0.0.1:{port}" in message
    assert "\n" not in message
    assert PASSWORD not in message and "Ch7Qx2" not in message


def test_open_store_over_tls_with_password(tls_ch, tmp_path):
    ch, certs = tls_ch
    store = open_store(ch.url(_db(), secure=True, user=USER), tmp_path, PASSWORD, secure=True, ca_file=certs.ca)
    try:
        conn = store.backend._client.connection  # type: ignore[attr-defined]
        assert isinstance(conn.socket, ssl.SSLSocket)  # really TLS, not the plain port
        assert conn.socket.getpeercert()["subject"] == ((("commonName", "localhost"),),)
        assert f"127.0.0.1:{ch.secure_port}" in store.where and "TLS" in store.where
        _write_and_read(store)
        assert store.backend.query("SELECT DISTINCT user FROM system.processes") == [[USER]]  # 18.16 has no currentUser()
    finally:
        store.close()


def test_settings_store_from_yaml_and_password_file(tls_ch, tmp_path, monkeypatch):
    ch, certs = tls_ch
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"clickhouse": {"url": ch.url(_db(), secure=True, user=USER), "secure": True,
                                                  "ca_file": str(certs.ca)}}))
    pw = tmp_path / "clickhouse-password"
    pw.write_text(PASSWORD + "\n")
    monkeypatch.setenv("MEVWATCH_CLICKHOUSE__PASSWORD_FILE", str(pw))
    settings = load_settings(cfg)
    assert settings.clickhouse.secure and settings.clickhouse.verify
    store = settings_store(settings)
    try:
        _write_and_read(store)
    finally:
        store.close()


def test_untrusted_certificate_is_a_clean_error(tls_ch, tmp_path):
    ch, _certs = tls_ch
    other = make_certs(tmp_path / "other-ca")  # a CA that did not sign the server's certificate
    with pytest.raises(StoreError) as e:
        open_store(ch.url(_db(), secure=True, user=USER), tmp_path, PASSWORD, secure=True, ca_file=other.ca)
    _assert_clean(str(e.value), ch.secure_port)
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value) and "clickhouse.ca_file" in str(e.value)
    assert not e.value.retriable  # a configuration fault: the daemon must not wait for it forever
    with pytest.raises(StoreError) as e:  # no ca_file: the system's trust store does not know the test CA either
        open_store(ch.url(_db(), secure=True, user=USER), tmp_path, PASSWORD, secure=True)
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)


def test_verify_off_accepts_the_certificate(tls_ch, tmp_path):
    ch, _certs = tls_ch
    store = open_store(ch.url(_db(), secure=True, user=USER), tmp_path, PASSWORD, secure=True, verify=False, migrate=False)
    try:
        assert store.ping()
    finally:
        store.close()


def test_wrong_password_is_a_clean_error(tls_ch, tmp_path):
    ch, certs = tls_ch
    wrong = "not-the-password-" + PASSWORD[::-1]
    with pytest.raises(StoreError) as e:
        open_store(ch.url(_db(), secure=True, user=USER), tmp_path, wrong, secure=True, ca_file=certs.ca)
    _assert_clean(str(e.value), ch.secure_port)
    assert wrong not in str(e.value)
    assert "password" in str(e.value).lower()  # the server's reason (18.16: "Wrong password for user ...")
    assert not e.value.retriable


def test_tls_to_the_plain_port_is_a_clean_error(tls_ch, tmp_path):
    ch, certs = tls_ch
    with pytest.raises(StoreError) as e:
        open_store(ch.url(_db(), user=USER), tmp_path, PASSWORD, secure=True, ca_file=certs.ca)
    _assert_clean(str(e.value), ch.port)
    assert "tcp_port_secure" in str(e.value) and not e.value.retriable


def test_secure_default_port_and_bad_ca_file(tmp_path):
    with pytest.raises(StoreError) as e:  # nothing listens there; the message names the port tried
        ServerBackend("clickhouse://127.0.0.1/x", "pw", secure=True, verify=False, connect_timeout=1)
    assert "127.0.0.1:9440" in str(e.value)
    with pytest.raises(ConfigError, match="ca_file"):
        open_backend(f"clickhouse://127.0.0.1:{free_port()}/x", tmp_path, "pw", secure=True, ca_file=tmp_path / "missing.pem")


def _cli(cfg, pw, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEVWATCH_CLICKHOUSE__")}
    env["MEVWATCH_CLICKHOUSE__PASSWORD_FILE"] = str(pw)
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(cfg), "--log-level", "WARNING", *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=cfg.parent)


def test_cli_db_commands_over_tls(tls_ch, tmp_path):
    """`mevwatch db migrate` / `db status` with the TLS settings in the YAML and the password in a file;
    `--clickhouse URL` keeps the YAML's TLS options and password; nothing prints the password."""
    ch, certs = tls_ch
    db = _db()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"clickhouse": {"url": ch.url(db, secure=True, user=USER), "secure": True,
                                                  "ca_file": str(certs.ca)}}))
    pw = tmp_path / "clickhouse-password"
    pw.write_text(PASSWORD + "\n")

    r = _cli(cfg, pw, "db", "migrate")
    assert r.returncode == 0, r.stderr
    assert f"127.0.0.1:{ch.secure_port}/{db}" in r.stderr
    r = _cli(cfg, pw, "db", "status")
    assert r.returncode == 0, r.stderr
    assert db in r.stdout + r.stderr and PASSWORD not in r.stdout + r.stderr

    other_db = _db()  # --clickhouse: another database on the same TLS port, same password and CA
    r = _cli(cfg, pw, "db", "migrate", "--clickhouse", ch.url(other_db, secure=True, user=USER))
    assert r.returncode == 0, r.stderr
    assert f"/{other_db}" in r.stderr and PASSWORD not in r.stdout + r.stderr

    bad = tmp_path / "bad-password"
    bad.write_text("wrong-" + PASSWORD + "\n")
    r = _cli(cfg, bad, "db", "status")
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and f"127.0.0.1:{ch.secure_port}" in lines[0], r.stderr
    assert PASSWORD not in r.stdout + r.stderr
