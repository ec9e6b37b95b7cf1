"""Standard Webhooks signatures (https://www.standardwebhooks.com/), made by the reference
``standardwebhooks`` library.

``webhook-signature`` is a space-separated list of ``v1,<base64 HMAC-SHA256>`` over
``"{webhook-id}.{webhook-timestamp}.{body}"``, one per active secret, so a receiver can
rotate secrets with no gap. A secret is ``whsec_<base64 bytes>`` (the reference
libraries' form); any other string is used as raw UTF-8 bytes.

The HMAC and its ``v1,`` form are the library's ``Webhook.sign``. It signs with one secret
and reads every string as ``whsec_``/base64, so this module wraps it minimally: one
``Webhook`` per secret, their signatures joined with spaces (rotation); secrets decoded
here (``whsec_`` strictly as base64, where the library would pad and accept anything;
anything else as raw UTF-8 bytes, which the library takes when given ``bytes``; an empty key,
``whsec_`` alone, is refused as the library refuses it); the body passed as the UTF-8 text the
library signs (webhook bodies are JSON; a body that is not UTF-8 is refused with
:class:`DeliveryError`). For every other input the headers are byte-for-byte those of the
hand-written HMAC signer this replaced (tests/sinks/test_webhooks_unit.py).
"""

from __future__ import annotations

import base64
import hmac
from datetime import datetime, timezone

from standardwebhooks import Webhook

from mevwatch.monitor.errors import DeliveryError


def secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except ValueError:
            raise DeliveryError("webhook secret starts with whsec_ but is not valid base64") from None
    if not secret:
        raise DeliveryError("empty webhook secret")
    return secret.encode()


def _signature(secret: str, msg_id: str, timestamp: int, text: str) -> str:
    key = secret_bytes(secret)
    if not key:
        raise DeliveryError("empty webhook secret")
    return Webhook(key).sign(msg_id, datetime.fromtimestamp(timestamp, tz=timezone.utc), text)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise DeliveryError("webhook body is not UTF-8 text; Standard Webhooks signs JSON bodies") from None


def sign(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    text = _text(body)
    return " ".join(_signature(s, msg_id, timestamp, text) for s in secrets)


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": f"{timestamp}", "webhook-signature": sign(secrets, msg_id, timestamp, body),
            "content-type": "application/json", "user-agent": "mevwatch-webhooks/1"}


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, signature_header: str) -> bool:
    """True when any ``v1`` signature in the header matches ``secret`` (no timestamp tolerance:
    a receiver should use ``standardwebhooks.Webhook(secret).verify``, which also checks it)."""
    expected = sign([secret], msg_id, timestamp, body).split(",", 1)[1]
    return any(hmac.compare_digest(part.split(",", 1)[1], expected)
               for part in signature_header.split() if part.startswith("v1,"))
