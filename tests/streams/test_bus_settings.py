"""The detect reader's librdkafka settings carry kafka-python's connection settings over (the SASL_SSL
and mutual-TLS round trips on a real broker: tests/daemon/test_kafka_security.py)."""

from __future__ import annotations

import pytest

from mevwatch.monitor.errors import BusError
from mevwatch.streams.bus import librdkafka_settings


def test_a_sasl_ssl_login_is_carried_over():
    conf = librdkafka_settings("broker:9093", "mevwatch", {
        "security_protocol": "SASL_SSL", "ssl_check_hostname": False, "ssl_cafile": "/ca.pem",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "det", "sasl_plain_password": "pw"})
    assert conf == {"bootstrap.servers": "broker:9093", "client.id": "mevwatch", "security.protocol": "sasl_ssl",
                    "ssl.endpoint.identification.algorithm": "none", "ssl.ca.location": "/ca.pem",
                    "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "det", "sasl.password": "pw"}


def test_plaintext_needs_nothing_and_tls_checks_the_host_by_default():
    assert librdkafka_settings("b:9092", "c", None)["security.protocol"] == "plaintext"
    conf = librdkafka_settings("b:9093", "c", {"security_protocol": "SSL", "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"})
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert (conf["ssl.certificate.location"], conf["ssl.key.location"]) == ("/c.pem", "/k.pem")


def test_a_setting_it_cannot_carry_is_refused_naming_the_setting_not_its_value():
    with pytest.raises(BusError, match="ssl_password") as err:
        librdkafka_settings("b:9093", "c", {"security_protocol": "SSL", "ssl_password": "s3cret-value"})
    assert "s3cret-value" not in str(err.value)
