"""Fixtures for the daemon's tests: fresh Kafka brokers and a lab dataset (the ClickHouse server
fixture is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from monitor.services import Kafka
from streams import envelope


@pytest.fixture
def fresh_kafka(tmp_path):
    """A broker of this test's own: fault tests kill it, and stage versions follow blocks-topic offsets."""
    k = Kafka(tmp_path / "kafka").start()
    yield k
    k.stop()


@pytest.fixture(scope="session")
def lab_messages(tmp_path_factory) -> list:
    """A real lab run (anvil, contracts, bots): pending transactions, blocks with sandwiches."""
    from sim.export import export

    out = tmp_path_factory.mktemp("lab")
    export(out, blocks=30, seed=5)
    return [envelope.decode(line, source="recording") for line in (out / "recording.jsonl").read_bytes().splitlines()]


