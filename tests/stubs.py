"""Local stand-ins for notification providers: a scripted HTTP server (SendGrid, Africa's Talking, Slack,
webhook receivers) and an SMTP server (aiosmtpd), each recording what it received."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Stub:
    """A threaded HTTP server on 127.0.0.1 that records requests and plays scripted answers."""

    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)
    # (status, body, headers) or (status, body, headers, seconds to wait first) per request in order; the
    # last one repeats. A wait longer than the client's timeout is a provider that times out (after
    # having received the request).
    answers: list[tuple[Any, ...]] = field(default_factory=lambda: [(200, "ok", {})])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, *answers: tuple[Any, ...]) -> None:
        self.answers = list(answers)


@pytest.fixture
def http_stub() -> Iterator[Callable[[], Stub]]:
    started: list[Stub] = []

    def start() -> Stub:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.seen.append(Seen("POST", self.path, dict(self.headers.items()), body, time.time()))
                status, text, headers, *wait = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                if wait:
                    time.sleep(wait[0])
                raw = text.encode()
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a provider that timed out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        stub = Stub(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        threading.Thread(target=stub.server.serve_forever, daemon=True).start()
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.server.shutdown()
        stub.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    box = Mailbox(free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            msg = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
            return "250 Message accepted for delivery"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        box.logins.append((data.login, data.password))
        return AuthResult(success=(data.login, data.password) == (b"noc", b"pw"), handled=False)

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    yield box
    controller.stop()
