"""Logging: console renderer on a terminal, JSON lines otherwise, secrets masked, live displays intact."""

from __future__ import annotations

import io
import json
import sys
import warnings

import pytest
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live
from typer.testing import CliRunner

from mevwatch.monitor.config import load_settings
from mevwatch.monitor.log import MASK, configure_logging, get_logger, quiet_third_party_warnings, resolve_format

pytestmark = pytest.mark.fast


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    configure_logging()  # the default again (auto: JSON under pytest's captured stderr)


def test_auto_resolution():
    assert resolve_format("auto", FakeTTY()) == "console"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", FakeTTY()) == "json"
    assert resolve_format("console", io.StringIO()) == "console"
    closed = io.StringIO()
    closed.close()
    assert resolve_format("auto", closed) == "json"
    with pytest.raises(ValueError, match="log format"):
        resolve_format("xml")


def test_json_when_not_a_terminal(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert configure_logging("INFO", "auto") == "json"
    log = get_logger("mevwatch.test")
    log.debug("hidden")
    log.info("block done", block_number=19_000_000, password=SecretStr("hunter2"),
             nested={"keys": [SecretStr("k1"), "public"]})
    lines = err.getvalue().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert (rec["event"], rec["level"], rec["block_number"]) == ("block done", "info", 19_000_000)
    assert rec["timestamp"].endswith("Z")
    assert rec["password"] == MASK and rec["nested"] == {"keys": [MASK, "public"]}
    assert "hunter2" not in err.getvalue() and "k1" not in err.getvalue()


def test_console_on_a_terminal(monkeypatch):
    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("NO_COLOR", "1")
    assert configure_logging("INFO", "auto") == "console"
    get_logger("mevwatch.test").warning("node lagging", block_number=7, password=SecretStr("hunter2"))
    out = err.getvalue()
    assert "node lagging" in out and "block_number=7" in out and "warning" in out
    assert "\x1b[" not in out  # NO_COLOR
    assert "hunter2" not in out and MASK in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


def test_forced_format_beats_the_terminal(monkeypatch):
    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)
    assert configure_logging("INFO", "json") == "json"
    get_logger("t").info("x")
    assert json.loads(err.getvalue())["event"] == "x"


def test_logs_print_above_a_live_display(monkeypatch):
    """During a rich Live display on a terminal, log lines go through the display's Console."""
    original = io.StringIO()
    monkeypatch.setattr(sys, "stderr", original)
    configure_logging("INFO", "console")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    log = get_logger("mevwatch.test")  # bound before the display starts, as modules do
    with Live("live table", console=console, auto_refresh=False):
        log.info("during the live display")
    assert "during the live display" in screen.getvalue()
    assert original.getvalue() == ""


def test_settings_log_format():
    assert load_settings().log_format == "auto"
    assert load_settings(log_format="console").log_format == "console"
    from mevwatch.monitor.errors import ConfigError

    with pytest.raises(ConfigError, match="log_format"):
        load_settings(log_format="xml")


def test_cli_option(monkeypatch):
    from mevwatch.monitor.cli import app

    monkeypatch.delenv("MEVWATCH_LOG_FORMAT", raising=False)
    assert CliRunner().invoke(app, ["--log-format", "json", "version"]).exit_code == 0
    assert CliRunner().invoke(app, ["--log-format", "console", "version"]).exit_code == 0
    res = CliRunner().invoke(app, ["--log-format", "xml", "version"])
    assert res.exit_code == 2


def test_third_party_warnings_filtered_precisely():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_third_party_warnings()
        warnings.warn("`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`.",
                      FutureWarning, stacklevel=1)
        warnings.warn("`torch.jit.script` is deprecated", DeprecationWarning, stacklevel=1)  # other category: kept
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)  # other message: kept
    assert sorted(str(w.message) for w in seen) == ["`torch.jit.script` is deprecated", "something else is deprecated"]
