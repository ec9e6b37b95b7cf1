"""Kafka over TLS and SASL, against the real broker (tests/services.py) with two more listeners:
SASL_SSL (PLAIN and SCRAM-SHA-512 users) and SSL with client certificates required (mutual TLS,
as Strimzi's TLS KafkaUsers), certificates made for the test (tests/tlscerts.py). The settings
come the way an operator gives them: a YAML ``kafka`` section and the password in a file named by
``MEVWATCH_KAFKA__SASL_PASSWORD_FILE``. A wrong password or an untrusted broker certificate is a
clean error naming the broker and never the password; the detect daemon runs end to end over
SASL_SSL."""

from __future__ import annotations

import time
import uuid

import pytest
import yaml

from services import Kafka
from tlscerts import make_certs
from mevwatch.monitor.config import load_settings
from mevwatch.monitor.errors import BusError, ConfigError, KafkaAccessError
from mevwatch.streams import bus as busmod

pytestmark = pytest.mark.kafka
USER, PASSWORD = "mevwatch-app", "pw-Zq7Xc9Lk2Vb5"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kafka-tls")
    certs = make_certs(folder / "certs")
    k = Kafka(folder / "broker", certs=certs, users={USER: PASSWORD}).start()
    yield k
    k.stop()


def _settings(tmp_path, monkeypatch, kafka: dict, password: str | None = PASSWORD):
    cfg = tmp_path / f"cfg-{uuid.uuid4().hex[:6]}.yaml"
    cfg.write_text(yaml.safe_dump({"kafka": kafka}))
    if password is not None:
        pw = tmp_path / "kafka-password"
        pw.write_text(password + "\n")
        monkeypatch.setenv("MEVWATCH_KAFKA__SASL_PASSWORD_FILE", str(pw))
    return load_settings(cfg)


def _round_trip(bootstrap: str, security: dict) -> None:
    """Produce on one connection, read back in a consumer group and commit, on another."""
    bus = busmod.KafkaBus(bootstrap, security=security)
    value = uuid.uuid4().hex.encode()
    bus.produce(busmod.DEADLETTER, b"k", value)
    bus.flush(30)
    c = bus.consumer([busmod.DEADLETTER], f"g-{uuid.uuid4().hex[:6]}")
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while value not in got and time.monotonic() < deadline:
        got += [r.value for r in c.poll(timeout_ms=500)]
    assert value in got
    c.commit()
    c.close()
    bus.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_sasl_ssl_round_trip(secure_kafka, tmp_path, monkeypatch, mechanism):
    s = _settings(tmp_path, monkeypatch, {"bootstrap": secure_kafka.sasl_ssl_bootstrap, "security_protocol": "SASL_SSL",
                                          "sasl_mechanism": mechanism, "sasl_username": USER,
                                          "ssl_ca_file": str(secure_kafka.certs.ca)})
    assert PASSWORD not in repr(s.kafka)  # a secret in the settings prints masked
    _round_trip(s.kafka.bootstrap, s.kafka.client_kwargs())


def test_mutual_tls_round_trip(secure_kafka, tmp_path, monkeypatch):
    c = secure_kafka.certs
    s = _settings(tmp_path, monkeypatch, {"bootstrap": secure_kafka.ssl_bootstrap, "security_protocol": "SSL",
                                          "ssl_ca_file": str(c.ca), "ssl_cert_file": str(c.client_cert),
                                          "ssl_key_file": str(c.client_key)}, password=None)
    _round_trip(s.kafka.bootstrap, s.kafka.client_kwargs())


def test_wrong_password_is_a_clean_error_without_the_password(secure_kafka, tmp_path, monkeypatch):
    wrong = "not-the-pw-Hh3Jk8"
    s = _settings(tmp_path, monkeypatch, {"bootstrap": secure_kafka.sasl_ssl_bootstrap, "security_protocol": "SASL_SSL",
                                          "sasl_username": USER, "ssl_ca_file": str(secure_kafka.certs.ca)}, password=wrong)
    # kafka-python names the refusal only in its log; an attempt whose connections all broke off before
    # the broker answered the login reads as unreachable (retried by the daemon): try up to three times
    errors = []
    for _ in range(3):
        with pytest.raises(BusError) as err:
            busmod.KafkaBus(s.kafka.bootstrap, security=s.kafka.client_kwargs())
        errors.append(err.value)
        if isinstance(err.value, KafkaAccessError):
            break
    assert isinstance(errors[-1], KafkaAccessError) and "SaslAuthenticationFailedError" in str(errors[-1]), errors
    assert all(secure_kafka.sasl_ssl_bootstrap in str(e) and wrong not in str(e) and PASSWORD not in str(e) for e in errors) and PASSWORD not in str(err.value)


def test_the_daemon_with_a_wrong_password_stops_at_once_naming_the_reason(secure_kafka, tmp_path):
    """Refused credentials are not waited for (waiting cannot mend them): exit 1 with one line that
    says why, and no password in anything printed. (kafka-python reports the reason of a failed
    connection only in its log; an attempt whose connections all broke off before the broker
    answered the login looks like an unreachable broker and is retried once more.)"""
    from harness import Daemon

    wrong = "not-the-pw-Qw8Er4"
    pw = tmp_path / "kafka-password"
    pw.write_text(wrong)
    d = Daemon(tmp_path, kafka=secure_kafka.sasl_ssl_bootstrap, clickhouse=None, confirmations=3,
               env={"MEVWATCH_KAFKA__SASL_PASSWORD_FILE": str(pw)}, extra={"gnn": {"enabled": False}},
               kafka_settings={"security_protocol": "SASL_SSL", "sasl_username": USER, "ssl_ca_file": str(secure_kafka.certs.ca)})
    d.start()
    try:
        assert d.proc.wait(120) == 1, d.tail()
    finally:
        if d.proc.poll() is None:
            d.kill()
    out = d.log.read_text()
    assert "SaslAuthenticationFailedError" in out and secure_kafka.sasl_ssl_bootstrap in out, out[-2000:]
    assert out.count("Kafka unavailable at start; retrying") <= 2  # an attempt may end before the broker said why
    assert wrong not in out and PASSWORD not in out


def test_an_untrusted_broker_certificate_is_refused(secure_kafka, tmp_path, monkeypatch):
    other = make_certs(tmp_path / "other-ca")  # a CA that did not sign the broker's certificate
    s = _settings(tmp_path, monkeypatch, {"bootstrap": secure_kafka.sasl_ssl_bootstrap, "security_protocol": "SASL_SSL",
                                          "sasl_username": USER, "ssl_ca_file": str(other.ca)})
    with pytest.raises(KafkaAccessError, match="CERTIFICATE_VERIFY_FAILED") as err:
        busmod.KafkaBus(s.kafka.bootstrap, security=s.kafka.client_kwargs())
    assert secure_kafka.sasl_ssl_bootstrap in str(err.value) and PASSWORD not in str(err.value)


def test_incomplete_security_settings_are_refused_up_front(tmp_path, monkeypatch):
    monkeypatch.delenv("MEVWATCH_KAFKA__SASL_PASSWORD_FILE", raising=False)
    # loads (roles that never talk to Kafka share the config, not the password); refused where a role connects
    s = _settings(tmp_path, monkeypatch, {"bootstrap": "127.0.0.1:1", "security_protocol": "SASL_SSL", "sasl_username": USER},
                  password=None)
    with pytest.raises(ConfigError, match="needs kafka.sasl_username and kafka.sasl_password"):
        s.kafka.client_kwargs()
    with pytest.raises(ConfigError, match="ssl_cert_file and ssl_key_file go together"):
        _settings(tmp_path, monkeypatch, {"bootstrap": "127.0.0.1:1", "security_protocol": "SSL", "ssl_cert_file": "/x.pem"},
                  password=None)
    s = _settings(tmp_path, monkeypatch, {"bootstrap": "127.0.0.1:1", "security_protocol": "SSL", "ssl_ca_file": "/no/such/ca.pem"},
                  password=None)
    with pytest.raises(ConfigError, match="kafka.ssl_ca_file: /no/such/ca.pem is not a readable file"):
        s.kafka.client_kwargs()


def test_the_daemon_runs_over_sasl_ssl(secure_kafka, tmp_path, monkeypatch, lab_messages):
    """`mevwatch run --role detect` reads the lab over SASL_SSL (SCRAM) and publishes its alerts there;
    nothing it prints holds the password."""
    from harness import Daemon, Feeder, expected_events, start_detect, topic_events, wait_until

    pw = tmp_path / "kafka-password"
    pw.write_text(PASSWORD)
    group = f"tls-{uuid.uuid4().hex[:6]}"
    d = Daemon(tmp_path, kafka=secure_kafka.sasl_ssl_bootstrap, clickhouse=None, confirmations=3, group=group, extra={"gnn": {"enabled": False}},
               env={"MEVWATCH_KAFKA__SASL_PASSWORD_FILE": str(pw)},
               kafka_settings={"security_protocol": "SASL_SSL", "sasl_username": USER, "ssl_ca_file": str(secure_kafka.certs.ca)})
    try:
        start_detect(d, secure_kafka.bootstrap, group=f"{group}-detect")
        Feeder(secure_kafka.bootstrap, lab_messages, block_s=0.05).start().join()
        want = expected_events(lab_messages, 3)
        wait_until(lambda: want <= set(topic_events(secure_kafka.bootstrap)), 120, "the alerts on the topic", d.tail)
        assert d.terminate() == 0, d.tail()
    finally:
        if d.proc and d.proc.poll() is None:
            d.kill()
    assert PASSWORD not in d.log.read_text()
