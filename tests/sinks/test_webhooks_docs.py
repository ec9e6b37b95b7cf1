"""docs/webhooks.md's receiver, run as documented, against real signed deliveries from mevwatch: the
`webhooks test` command and the deliverer sending real alert stages from the outbox. The code block in
the doc must be docs/examples/webhook_receiver.py, byte for byte, so neither can rot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mevwatch.monitor.alerts import Alert, AlertEvent, AlertTx
from mevwatch.monitor.config import WebhookDelivery, WebhookSubscriber
from mevwatch.monitor.sinks import signing
from mevwatch.monitor.sinks.outbox import Outbox
from mevwatch.monitor.sinks.webhooks import Deliverer, outbox_items, payload
from services import free_port

pytestmark = pytest.mark.fast
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "webhooks.md"
EXAMPLE = REPO / "docs" / "examples" / "webhook_receiver.py"
MARKER = "<!-- included: docs/examples/webhook_receiver.py -->"


def documented_receiver() -> str:
    doc = DOC.read_text()
    assert MARKER in doc
    m = re.match(r"\s*```python\n(.*?)\n```", doc.split(MARKER, 1)[1], re.S)
    assert m, "the marker must be followed by a ```python block"
    return m.group(1) + "\n"


def test_the_doc_shows_the_example_file_exactly():
    assert documented_receiver() == EXAMPLE.read_text(), \
        "docs/webhooks.md's receiver differs from docs/examples/webhook_receiver.py: copy the file into the doc"


def _alert(stage: str) -> Alert:
    return Alert(kind="sandwich", stage=stage, chain_id=1, block_number=7, block_hash="0x07",
                 txs=[AlertTx("0x01", 0, "frontrun"), AlertTx("0x02", 1, "victim"), AlertTx("0x03", 2, "backrun")],
                 attackers=["0xaa"], victims=["0xbb"], pools=["0xcc"], tokens=["0xdd"], profit=None, victim_loss=None,
                 gas_cost_wei=None, evidence={}, score=1.0)


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a raw passphrase, not base64: ok too"],
                         ids=["whsec", "raw"])
def test_the_documented_receiver_accepts_mevwatch_deliveries_once_and_refuses_forgeries(tmp_path, secret):
    code = tmp_path / "webhook_receiver.py"
    code.write_text(documented_receiver())
    port = free_port()
    rx = subprocess.Popen([sys.executable, str(code), str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "WEBHOOK_SECRET": secret})
    try:
        assert rx.stdout is not None and rx.stdout.readline().startswith("listening on"), rx.stderr.read() if rx.stderr else ""
        base = f"http://127.0.0.1:{port}"
        cfg = tmp_path / "hook.yaml"  # JSON is YAML
        cfg.write_text(json.dumps({"webhooks": [{"url": f"{base}/a", "secrets": [secret]}],
                                   "webhook_delivery": {"allow_private": True}}))

        # 1. `mevwatch webhooks test`, as the doc's "Try it locally" runs it
        r = subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "--config", str(cfg), "webhooks", "test", f"{base}/a"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert r.returncode == 0 and f"{base}/a answered HTTP 204" in r.stdout, (r.stdout, r.stderr)

        # 2. real alert stages from the outbox, each to two endpoints on this receiver: the same
        #    webhook-id reaches it twice (as a redelivery would) and is handled once
        subs = [WebhookSubscriber(url=f"{base}/a", secrets=[secret]), WebhookSubscriber(url=f"{base}/b", secrets=[secret])]
        events = [AlertEvent(_alert("included"), 10), AlertEvent(_alert("final"), 11), AlertEvent(_alert("retracted"), 12)]
        ob = Outbox(tmp_path / "outbox.sqlite")
        ob.enqueue(outbox_items(subs, events))
        d = Deliverer(ob, subs, WebhookDelivery(allow_private=True)).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(c.get("delivered", 0) for c in ob.summary().values()) < 6:
            time.sleep(0.05)
        d.stop(1)
        assert ob.summary() == {f"{base}/a": {"delivered": 3}, f"{base}/b": {"delivered": 3}}

        # 3. forgeries: another secret, a changed body, an old timestamp
        body = payload(AlertEvent(_alert("included"), 99))
        now = int(time.time())
        assert _post(f"{base}/a", body, signing.headers(["whsec_b3RoZXItc2VjcmV0LWtleS1ieXRlcw=="], "forged-1", now, body)) == 400
        good = signing.headers([secret], "forged-2", now, body)
        assert _post(f"{base}/a", body.replace(b"sandwich", b"sandwicH"), good) == 400
        assert _post(f"{base}/a", body, signing.headers([secret], "forged-3", now - 3600, body)) == 400
        assert _post(f"{base}/a", body, good) == 204  # the same, untouched: accepted
    finally:
        rx.terminate()
        out, err = rx.communicate(timeout=10)
    lines = out.splitlines()
    aid = events[0].alert.alert_id
    assert lines[0].startswith("mev.test 0x") and lines[0].endswith(" included 1"), lines
    assert sorted(lines[1:4]) == sorted([f"mev.sandwich.included {aid} included 7", f"mev.sandwich.final {aid} final 7",
                                         f"mev.alert.retracted {aid} retracted 7"]), lines
    assert lines[4:] == [f"mev.sandwich.included {aid} included 7"], lines  # forged-2 untouched; no forgery handled
    assert "Traceback" not in err, err


def test_the_docs_state_the_delivery_guarantees_the_code_has():
    from mevwatch.monitor.sinks.webhooks import RESPONSE_BODY_CAP, RESPONSE_BODY_S

    d = WebhookDelivery()
    ops = (REPO / "docs" / "operations.md").read_text()
    hooks = DOC.read_text()
    row = next(line for line in ops.splitlines() if line.startswith("| webhooks |"))
    for words in ("exactly once per `(alert, stage)` per endpoint in the outbox", "at least once", "same `webhook-id`",
                  "64 KiB", "`endpoint_concurrency`"):
        assert words in row, words
    assert RESPONSE_BODY_CAP == 64 * 1024 and RESPONSE_BODY_S == 2.0  # the figures both docs give
    assert f"at most `endpoint_concurrency` ({d.endpoint_concurrency})" in ops and f"`concurrency` ({d.concurrency}) in all" in ops
    assert f"endpoint_concurrency: {d.endpoint_concurrency} " in hooks and f"concurrency: {d.concurrency} " in hooks
    assert "at most 64 KiB of a response body, for at most 2 s" in hooks and "**At least once, with a stable id.**" in hooks
