"""Credentials in node URLs never leave the process: the redaction itself, every rendered log line,
and the real command line (`mevwatch run`, `record`, `ingest` as subprocesses) against a closed port
and a real anvil behind a cuttable proxy, with every byte of stdout and stderr searched for the
secret parts and the stored ``source_node`` column checked. Also: http(s):// refused up front, and
a run that never reached its node exits non-zero."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mevwatch.monitor.log import configure_logging, get_logger, redact_text, redact_url

USER, PASSWORD, KEY = "watcher", "pa55word-Zq9", "9aa3d95b3bc440fa88ea12eaa4456161"
SECRETS = (USER, PASSWORD, KEY)
EXE = str(Path(sys.executable).with_name("mevwatch"))


def assert_clean(text: str) -> None:
    for s in SECRETS:
        assert s not in text, f"{s!r} leaked:\n{text[-3000:]}"


# --- the redaction ----------------------------------------------------------------------------------
@pytest.mark.fast
@pytest.mark.parametrize("url, shown", [
    ("ws://127.0.0.1:8546", "ws://127.0.0.1:8546"),
    ("wss://node.example/ws", "wss://node.example/ws"),
    ("ws://h/mainnet-archive-node/ws?chain=1", "ws://h/mainnet-archive-node/ws?chain=1"),
    (f"wss://{USER}:{PASSWORD}@mainnet.infura.io/v3/{KEY}", "wss://***@mainnet.infura.io/v3/***"),
    (f"wss://:{PASSWORD}@h/ws", "wss://***@h/ws"),
    ("https://eth-mainnet.g.alchemy.com/v2/AbCdEfGhIjKlMnOpQrStUvWxYz_-", "https://eth-mainnet.g.alchemy.com/v2/***"),
    ("https://name.quiknode.pro/0123456789abcdef0123456789abcdef01234567/", "https://name.quiknode.pro/***/"),
    ("wss://h/ws/4f3c2a10-9d7e-4b1a-8c3f-2e1d0c9b8a76", "wss://h/ws/***"),
    ("wss://h/ws?apikey=short&chain=1", "wss://h/ws?apikey=***&chain=1"),
    ("https://h/rpc?key=abc&token=def&access_token=x&chain=mainnet", "https://h/rpc?key=***&token=***&access_token=***&chain=mainnet"),
    (f"https://h/rpc?id={KEY}", "https://h/rpc?id=***"),
    ("wss://us@r:p/ss@w0rd@h:8546/x", "wss://***@h:8546/x"),  # '@' and '/' inside a password
    ("not a url", "not a url"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


@pytest.mark.fast
def test_urls_inside_text_and_every_log_line(monkeypatch):
    url = f"wss://{USER}:{PASSWORD}@h.example/v3/{KEY}"
    text = f"ProviderConnectionError('Could not connect to: {url}. Retries exceeded max of 1.')"
    assert redact_text(text) == "ProviderConnectionError('Could not connect to: wss://***@h.example/v3/***. Retries exceeded max of 1.')"
    urllib3 = f"HTTPSConnectionPool(host='h.example', port=443): Max retries exceeded with url: /v3/{KEY} (Caused by X)"
    assert redact_text(urllib3) == "HTTPSConnectionPool(host='h.example', port=443): Max retries exceeded with url: /v3/*** (Caused by X)"
    for fmt in ("json", "console"):
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        configure_logging("INFO", fmt)
        log = get_logger("mevwatch.test")
        log.warning("node connection lost; reconnecting", url=url, error=repr(RuntimeError(text)))
        try:
            raise ValueError(f"bad answer from {url}")
        except ValueError:
            log.exception("failed")
        out = err.getvalue()
        assert_clean(out)
        assert "wss://***@h.example/v3/***" in out
        if fmt == "json":
            assert all(json.loads(line) for line in out.splitlines() if line.startswith("{"))
    configure_logging()


# --- the real command line --------------------------------------------------------------------------
def mevwatch(*args: str, cwd: Path, timeout: float = 120, **kw) -> subprocess.Popen:
    env = {**os.environ, "MEVWATCH_GNN__ENABLED": "false", "NO_COLOR": "1"}
    env.pop("MEVWATCH_NODE__RPC", None)
    return subprocess.Popen([EXE, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(p: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out + err


@pytest.mark.anvil
def test_a_run_that_never_reaches_its_node_exits_1_without_leaking(tmp_path):
    from services import free_port

    port = free_port()
    url = f"wss://{USER}:{PASSWORD}@127.0.0.1:{port}/v3/{KEY}"
    rc, out = finish(mevwatch("--log-level", "DEBUG", "run", "--rpc", url, "--duration", "4", "--no-attest",
                              "--health-port", "0", cwd=tmp_path))
    assert rc == 1, out
    assert f"never reached the node at wss://***@127.0.0.1:{port}/v3/***" in out and "connection refused" in out
    assert "cannot reach the node; retrying" in out
    assert_clean(out)
    rc, out = finish(mevwatch("record", "--rpc", url, "--out", str(tmp_path / "r.jsonl"), "--duration", "2", cwd=tmp_path))
    assert rc == 1 and "never reached the node" in out, out
    assert_clean(out)


@pytest.mark.fast
def test_http_urls_are_refused_up_front_with_the_reason(tmp_path):
    url = f"https://{USER}:{PASSWORD}@mainnet.example/v3/{KEY}"
    t0 = time.monotonic()
    for args in (("run", "--rpc", url, "--no-attest", "--health-port", "0"),
                 ("run", "--role", "ingest", "--rpc", url, "--kafka", "127.0.0.1:1"),
                 ("ingest", "--rpc", url, "--kafka", "127.0.0.1:1"),
                 ("record", "--rpc", url, "--out", str(tmp_path / "r.jsonl"))):
        rc, out = finish(mevwatch(*args, cwd=tmp_path))
        assert rc == 2, (args, out)
        assert "WebSocket URL" in out and "eth_subscribe" in out and "https://***@mainnet.example/v3/***" in out
        assert "Traceback" not in out
        assert_clean(out)
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / ".mevwatch").exists()  # refused before the store was opened


@pytest.mark.anvil
def test_a_run_with_credentials_never_writes_them_anywhere(anvil, rpc, tmp_path):
    from live import CuttableProxy

    from mevwatch.monitor.store.store import open_store

    cut = CuttableProxy(anvil.port)
    url = f"ws://{USER}:{PASSWORD}@127.0.0.1:{cut.port}/?apikey={KEY}"
    shown = f"ws://***@127.0.0.1:{cut.port}/?apikey=***"
    me, to = rpc("eth_accounts")[:2]
    try:
        p = mevwatch("--log-level", "DEBUG", "--log-format", "json", "run", "--rpc", url, "--duration", "25",
                     "--no-attest", "--health-port", "0", "--confirmations", "1", cwd=tmp_path)
        time.sleep(8)  # started and following
        for i in range(3):
            rpc("eth_sendTransaction", {"from": me, "to": to, "value": hex(i + 1)})
            time.sleep(0.5)
            rpc("evm_mine")
        time.sleep(2)
        cut.cut()  # the connection drops: "node connection lost; reconnecting" lines name the node
        time.sleep(2)
        cut.restore()
        time.sleep(3)
        rpc("eth_sendTransaction", {"from": me, "to": to, "value": "0x9"})
        time.sleep(0.5)
        rpc("evm_mine")
        rc, out = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
        cut.close()
    assert rc == 0, out[-3000:]
    assert "node connection lost; reconnecting" in out and shown in out
    assert_clean(out)
    store = open_store(None, tmp_path / ".mevwatch" / "chdb")
    try:
        nodes = {r[0] for r in store.backend.query("SELECT DISTINCT source_node FROM pending_txs")}
    finally:
        store.close()
    assert nodes == {shown}


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_replay_rpc_with_credentials_to_a_closed_port_names_the_node_without_them(tmp_path, scheme):
    """`mevwatch replay --rpc` that cannot reach its node: one clean line (exit 2), no traceback, and
    none of the URL's credentials on stdout or stderr."""
    url = f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:1/v3/{KEY}"
    r = subprocess.run([EXE, "replay", "--rpc", url, "--from", "1", "--to", "2", "--out", str(tmp_path / "a.jsonl")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out and "127.0.0.1:1" in out, out
    assert_clean(out)
