"""A local notification sink: an HTTP server on a loopback port that receives what NetPulse's
webhook and Slack channels send, and prints one line per notification.

The demo starts one so its alerts' notifications go somewhere you can see without any account;
it is also handy to try a channel set-up (``netpulse notify test``) against.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (body, timestamp header, signature header) -> whether the webhook signature is valid
Verifier = Callable[[bytes, str, str], bool]


@dataclass
class Received:
    path: str
    payload: dict[str, Any]
    signature_ok: bool | None      # None: not a signed webhook


@dataclass
class NotificationSink:
    echo: Callable[[str], None]
    verify: Verifier | None = None
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> NotificationSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                signature = self.headers.get("X-NetPulse-Signature")
                ok = None
                if signature is not None and sink.verify is not None:
                    ok = sink.verify(body, self.headers.get("X-NetPulse-Timestamp", ""), signature)
                sink.received.append(Received(self.path, payload, ok))
                sink.echo(describe(self.path, payload, ok))
                self.send_response(200 if ok is not False else 401)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the sink prints its own
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, name="notify-sink", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def describe(path: str, payload: dict[str, Any], signature_ok: bool | None) -> str:
    """One line for a received notification: the channel, then what it says."""
    if "text" in payload and "blocks" in payload:   # a Slack incoming-webhook message
        return f"  [notification via slack] {str(payload['text']).splitlines()[0]}"
    inner = payload.get("alert")
    alert: dict[str, Any] = inner if isinstance(inner, dict) else payload
    severity = "RESOLVED" if alert.get("resolved") else str(alert.get("severity", "?")).upper()
    signed = {True: "signature ok", False: "BAD SIGNATURE", None: "unsigned"}[signature_ok]
    return (f"  [notification via webhook, {signed}] {severity} {alert.get('title', '')}: "
            f"{alert.get('message', '')}")
