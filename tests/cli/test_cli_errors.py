"""The command line's one error handler: messages on stderr, exit codes, escaping; no SQL in commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from mevwatch.monitor.cli.main import FAILED, USAGE, OptionError, handled
from mevwatch.monitor.errors import ConfigError, InputError, NodeError

pytestmark = pytest.mark.fast

CLI_DIR = Path(__file__).resolve().parents[2] / "monitor" / "cli"


def mevwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", *args], capture_output=True, text=True, timeout=120)


def test_bad_replay_input_is_named(tmp_path):
    missing = tmp_path / "no-such-dir" / "blocks.json.gz"
    r = mevwatch("replay", str(missing), "-q")
    assert r.returncode == 2, r.stderr
    assert "error:" in r.stderr and str(missing) in r.stderr and "no such file or directory" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_untrusted_text_is_printed_verbatim(tmp_path):
    missing = tmp_path / "[bold]x[/bold].json"  # rich markup in a file name is not interpreted
    r = mevwatch("replay", str(missing), "-q")
    assert r.returncode == 2 and "[bold]x[/bold].json" in r.stderr.replace("\n", ""), r.stderr


def test_control_characters_never_reach_the_terminal(tmp_path):
    from mevwatch.monitor.cli.output import esc

    assert esc("a\x1b[31mb\rc\u202ed[/x]") == "a\\x1b[31mb\\x0dc\\u202ed\\[/x]"
    bad = tmp_path / "evil\x1b[2J\x1b]0;pwned\x07\u202e.json"  # an input file whose name clears the screen
    bad.write_text("[]")
    r = mevwatch("replay", str(bad), "--out", str(tmp_path / "out.jsonl"))
    assert r.returncode == 1, r.stderr  # rejected input: the rest goes on, exit 1
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr and "\u202e" not in r.stderr, repr(r.stderr)
    assert "evil\\x1b[2J" in r.stderr.replace("\n", ""), r.stderr


def test_config_errors_exit_2(tmp_path):
    r = mevwatch("--config", str(tmp_path / "missing.yaml"), "version")
    assert r.returncode == 2 and "cannot read config file" in r.stderr, r.stderr
    (tmp_path / "bad.yaml").write_text("- a list, not a mapping\n")
    r = mevwatch("--config", str(tmp_path / "bad.yaml"), "version")
    assert r.returncode == 2 and "must hold a mapping" in r.stderr, r.stderr
    # raised inside a command (bad --clickhouse URL): a config error too
    r = mevwatch("db", "status", "--clickhouse", "http://127.0.0.1:1/db")
    assert r.returncode == 2 and "clickhouse.url must look like" in r.stderr, r.stderr


def test_option_errors_exit_2():
    r = mevwatch("replay", "--rpc", "http://127.0.0.1:1")
    assert r.returncode == 2 and "--rpc needs --from and --to" in r.stderr
    r = mevwatch("run", "--device", "tpu", "--duration", "0")
    assert r.returncode == 2 and "--device must be auto, cpu or cuda" in r.stderr


def _exit_of(fn) -> int:
    with pytest.raises(typer.Exit) as info:
        fn()
    return info.value.exit_code


@pytest.mark.parametrize(("exc", "code", "expected"), [
    (NodeError("node away"), FAILED, 1),
    (NodeError("node away"), USAGE, 2),
    (InputError("bad", source="f.json"), FAILED, 1),
    (OptionError("--x needs --y"), FAILED, 2),
    (ConfigError("bad value"), FAILED, 2),
])
def test_handler_exit_codes(capsys, exc, code, expected):
    @handled(code)
    def command() -> None:
        raise exc

    assert _exit_of(command) == expected
    assert capsys.readouterr().err.strip() == f"error: {exc}"


def test_handler_keeps_the_signature_and_lets_exits_through():
    @handled()
    def command(n: int = 3) -> None:
        """Doc."""
        raise typer.Exit(130)

    assert command.__name__ == "command" and command.__doc__ == "Doc." and command.__wrapped__ is not None
    assert _exit_of(command) == 130


def test_commands_hold_no_sql():
    offenders = [p.name for p in sorted(CLI_DIR.glob("*.py")) if "SELECT " in p.read_text().upper()]
    assert offenders == [], f"SQL belongs in monitor/store/queries.py, found in {offenders}"


def test_an_unreachable_clickhouse_is_one_line_without_the_drivers_traceback():
    r = mevwatch("db", "status", "--clickhouse", "clickhouse://127.0.0.1:1/x")
    assert r.returncode == FAILED, r
    assert "Traceback" not in r.stderr and "Failed to connect" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "127.0.0.1:1" in r.stderr, r.stderr


def test_status_commands_never_create_a_store_and_print_to_stdout(tmp_path):
    """`db status` / `attest status` in a folder without a store: a clean error, and no store made
    (they used to create an empty one); with a store, the whole status goes to stdout."""
    for cmd in (("db", "status"), ("attest", "status")):
        r = subprocess.run([str(Path(sys.executable).with_name("mevwatch")), *cmd], capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
        assert r.returncode == USAGE and "no embedded store" in r.stderr, r
        assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())
    from mevwatch.monitor.store.store import open_store

    open_store(None, tmp_path / ".mevwatch" / "chdb").close()
    r = subprocess.run([str(Path(sys.executable).with_name("mevwatch")), "db", "status"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and "pending migrations: none" in r.stdout and "blocks" in r.stdout, r
    assert r.stderr.strip() == "", r.stderr


@pytest.mark.parametrize("cmd", [("replay",), ("run",), ("record",), ("webhooks", "status"), ()])
def test_help_shows_no_type_beside_flags(cmd):
    r = mevwatch(*cmd, "--help")
    assert r.returncode == 0 and "--help" in r.stdout
    assert "<bool>" not in r.stdout, r.stdout
