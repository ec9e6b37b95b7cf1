"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

``webhook-signature`` is a space-separated list of ``v1,<base64 HMAC-SHA256>`` over
``"{webhook-id}.{webhook-timestamp}.{body}"``, one per active secret, so a receiver can
rotate secrets with no gap. A secret is ``whsec_<base64 bytes>`` (the reference
libraries' form); any other string is used as raw UTF-8 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

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


def sign(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    sigs = [base64.b64encode(hmac.new(secret_bytes(s), signed, hashlib.sha256).digest()).decode() for s in secrets]
    return " ".join(f"v1,{s}" for s in sigs)


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": f"{timestamp}", "webhook-signature": sign(secrets, msg_id, timestamp, body),
            "content-type": "application/json", "user-agent": "mevwatch-webhooks/1"}


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, signature_header: str) -> bool:
    """True when any ``v1`` signature in the header matches ``secret``."""
    expected = sign([secret], msg_id, timestamp, body).split(",", 1)[1]
    return any(hmac.compare_digest(part.split(",", 1)[1], expected)
               for part in signature_header.split() if part.startswith("v1,"))
