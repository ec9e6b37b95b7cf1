"""Configuration errors are clean and never print secrets; unknown keys are refused at every depth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mevwatch.monitor.config import load_settings
from mevwatch.monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SECRET = "whsec_TOPSECRETvalue0123456789abcdefXYZ"
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def _cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))


@pytest.mark.parametrize("text", [
    f"webhooks:\n  - url: http://127.0.0.1/hook\n    secrets: [{SECRET}\n",  # unclosed flow sequence
    f"attest:\n  private_key: {KEY}\n   bad: indentation: here\n",
    f"webhooks: [{{url: http://x, secrets: [{SECRET}]}}\n  x: : {SECRET}\n",
])
def test_yaml_parse_errors_never_echo_secret_values(tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    msg = str(e.value)
    assert "not valid YAML" in msg and "line" in msg
    assert SECRET not in msg and KEY[2:20] not in msg
    r = _cli(["--config", str(cfg), "version"])
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert SECRET not in r.stdout + r.stderr and KEY[2:20] not in r.stdout + r.stderr


@pytest.mark.parametrize("text,path", [
    ("attest:\n  bogus_key: 1\n", "attest.bogus_key"),
    ("node:\n  confirmation: 3\n", "node.confirmation"),
    ("webhooks:\n  - url: http://x\n    secret: abc\n", "webhooks.0.secret"),
    ("kafka:\n  bootstrapp: x:9092\n", "kafka.bootstrapp"),
    ("bogus: 1\n", "bogus"),
])
def test_unknown_keys_are_refused_at_every_depth_with_their_path(tmp_path, text, path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert path in str(e.value)


def test_malformed_webhooks_environment_is_a_clean_error():
    bad = f'[{{"url": "http://x", "secrets": ["{SECRET}"]'
    old = os.environ.get("MEVWATCH_WEBHOOKS")
    os.environ["MEVWATCH_WEBHOOKS"] = bad
    try:
        with pytest.raises(ConfigError) as e:
            load_settings()
        assert "MEVWATCH_WEBHOOKS" in str(e.value) and SECRET not in str(e.value)
    finally:
        if old is None:
            del os.environ["MEVWATCH_WEBHOOKS"]
        else:
            os.environ["MEVWATCH_WEBHOOKS"] = old
    r = _cli(["version"], env={"MEVWATCH_WEBHOOKS": bad})
    assert r.returncode == 2 and "Traceback" not in r.stderr and "MEVWATCH_WEBHOOKS" in r.stderr, r.stderr
    assert SECRET not in r.stdout + r.stderr
