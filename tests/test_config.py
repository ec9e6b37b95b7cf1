"""Settings: defaults < YAML file < environment; secrets never printed."""

from __future__ import annotations

import pytest

from mevwatch.monitor.config import load_settings
from mevwatch.monitor.errors import ConfigError

pytestmark = pytest.mark.fast


def test_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("chain_id: 5\nkafka:\n  bootstrap: 10.0.0.1:9092\n  partitions: 3\n")
    s = load_settings(cfg)
    assert (s.chain_id, s.kafka.bootstrap, s.kafka.partitions, s.node.confirmations) == (5, "10.0.0.1:9092", 3, 12)
    monkeypatch.setenv("MEVWATCH_KAFKA__PARTITIONS", "12")
    monkeypatch.setenv("MEVWATCH_CHAIN_ID", "10")
    s = load_settings(cfg)
    assert (s.chain_id, s.kafka.partitions, s.kafka.bootstrap) == (10, 12, "10.0.0.1:9092")


def test_secrets_are_masked(tmp_path, monkeypatch):
    key = tmp_path / "key"
    key.write_text("0x" + "11" * 32 + "\n")
    monkeypatch.setenv("MEVWATCH_ATTEST__PRIVATE_KEY_FILE", str(key))
    s = load_settings()
    assert s.attest.private_key.get_secret_value() == "0x" + "11" * 32
    assert "11111111" not in repr(s) and "11111111" not in str(s.model_dump())


def test_bad_config_names_the_problem(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka:\n  partitions: 0\n")
    with pytest.raises(ConfigError, match="kafka.partitions"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(tmp_path / "list.yaml")
    monkeypatch.setenv("MEVWATCH_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match="log_level"):
        load_settings()


def test_unquoted_contract_address_in_yaml_is_read_exactly(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("attest:\n  contract: 0x005FbDB2315678afecb367f032d93F642f64180a\n")  # YAML reads this as a number
    assert load_settings(f).attest.contract == "0x005fbdb2315678afecb367f032d93f642f64180a"
    f.write_text("attest:\n  contract: 0x1" + "0" * 40 + "\n")  # 21 bytes: not an address
    with pytest.raises(ConfigError, match="attest.contract"):
        load_settings(f)


def test_a_webhook_filter_naming_an_unknown_kind_or_stage_is_refused(tmp_path):
    """A typo in a filter would match nothing and drop every alert silently: refused by name."""
    import json
    from pathlib import Path

    from mevwatch.monitor.kinds import Kind, Stage

    cfg = tmp_path / "c.yaml"
    cfg.write_text("webhooks:\n  - url: http://127.0.0.1:9/h\n    kinds: [liquidation, sandwhich]\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert "sandwhich" in str(e.value) and "liquidation" in str(e.value)
    cfg.write_text("webhooks:\n  - url: http://127.0.0.1:9/h\n    stages: [finall]\n")
    with pytest.raises(ConfigError, match="finall"):
        load_settings(cfg)
    cfg.write_text("webhooks:\n  - url: http://127.0.0.1:9/h\n    kinds: [liquidation]\n    stages: [final]\n")
    assert load_settings(cfg).webhooks[0].kinds == ["liquidation"]
    # the chart's schema offers the same kinds and stages
    schema = json.loads((Path(__file__).parents[1] / "helm" / "mevwatch" / "values.schema.json").read_text())
    item = schema["properties"]["webhooks"]["items"]["properties"]
    assert set(item["kinds"]["items"]["enum"]) == {k.value for k in Kind}
    assert set(item["stages"]["items"]["enum"]) == {s.value for s in Stage}


def test_topic_prefix_names_every_topic_and_is_checked(tmp_path):
    from mevwatch.streams.bus import TOPICS, topic_name

    assert [topic_name(t) for t in TOPICS] == list(TOPICS)  # the default keeps the documented names
    assert [topic_name(t, "mevwatch.base") for t in TOPICS] == [
        "mevwatch.base.mempool.v1", "mevwatch.base.blocks.v1", "mevwatch.base.alerts.v1", "mevwatch.base.deadletter.v1"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  topic_prefix: 'bad prefix!'\n")
    with pytest.raises(ConfigError, match="topic_prefix"):
        load_settings(cfg)
