"""A mevwatch webhook receiver: checks the Standard Webhooks signature, then handles each event once.

    pip install standardwebhooks
    WEBHOOK_SECRET=whsec_... python webhook_receiver.py 8000
"""

import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

SECRET = os.environ["WEBHOOK_SECRET"]  # the same secret as the endpoint's in mevwatch's webhooks: settings
# a whsec_ secret is base64 (the library decodes it); mevwatch signs with any other string's UTF-8 bytes
webhook = Webhook(SECRET if SECRET.startswith("whsec_") else SECRET.encode())
MAX_BODY = 1 << 20
seen: set[str] = set()  # webhook-ids already handled; keep them in your database to survive restarts


def handle(event: dict) -> None:
    """Your code: page, open a ticket, ... `event["data"]` is the alert record (docs/alerts.md)."""
    alert = event["data"]
    print(event["type"], alert["alert_id"], alert["stage"], alert["block_number"], flush=True)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self.answer(413)
        body = self.rfile.read(length)
        try:  # checks the signature (any of the space-separated ones) and that the timestamp is within 5 minutes
            event = webhook.verify(body, dict(self.headers))
        except WebhookVerificationError:
            return self.answer(400)
        msg_id = self.headers["webhook-id"]  # stable per alert stage: a redelivery carries the same id
        if msg_id not in seen:
            try:
                handle(event)
            except Exception:
                return self.answer(500)  # mevwatch retries anything but a 2xx (410 Gone disables the endpoint)
            seen.add(msg_id)
        self.answer(204)  # answer quickly: mevwatch waits timeout_s (10 s) at most, then retries

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:  # keep stdout for events
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    # one request at a time, so `seen` needs no lock; with a threading server, guard it with one
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
