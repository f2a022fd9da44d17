"""HTTP(S) and TCP service checks against real local servers that the tests start; service_checks in the
inventory and the CLI.

The servers are threaded ``http.server`` instances on free 127.0.0.1 ports: one plain, one HTTPS with a
self-signed certificate (made here with ``cryptography``) that expires in 5 days, and a listener that
accepts connections and never answers. No mocks: every check crosses a real socket.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from cli import main
from ingest.http import (
    MAX_BODY_BYTES,
    CheckTargets,
    HttpTarget,
    async_check_many,
    check_many,
    check_rows,
    http_rows,
    load_check_targets,
    run_checks,
)
from ingest.loader import Loader
from ingest.rows import to_micros
from ingest.tcp import TcpTarget, connect_many, connect_rows, tcp_rows
from netpulse.config import get_settings
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.inventory import (
    DeviceSpec,
    ServiceCheckSpec,
    add_service_check,
    create_device,
    get_service_check,
    list_service_checks,
    remove_service_check,
    runnable_service_checks,
)
from netpulse.metrics import MetricKind
from netpulse.schema import CheckKind
from tests.factories import make_devices, make_org

CERT_DAYS = 5.0
CERT_CN = "netpulse-test"
PAGE = b"<html><body>hello netpulse world</body></html>"
SELF_SIGNED = r"certificate verify failed: self[- ]signed certificate"  # OpenSSL 3 spells it with a dash


# --- the servers -------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10                  # a client that hangs up mid-handshake frees its thread

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        path = self.path.partition("?")[0]
        headers: list[tuple[str, str]] = []
        charset = "utf-8"
        if path == "/ok":
            status, body = 200, PAGE
        elif path == "/error":
            status, body = 500, b"internal error"
        elif path == "/redirect":
            status, body = 302, b""
            headers.append(("Location", "/ok"))
        elif path == "/big":     # the text sits past the first MiB
            status, body = 200, b"a" * (2 * MAX_BODY_BYTES) + b"needle"
        elif path == "/latin1":
            status, body, charset = 200, "caf\u00e9 ouvert".encode("latin-1"), "iso-8859-1"
        else:
            status, body = 404, b"not found"
        self.send_response(status)
        self.send_header("Content-Type", f"text/html; charset={charset}")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512      # the concurrency test opens a hundred connections at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass                      # clients hanging up early (body limit, failed verification) are expected


class _TlsServer(_Server):
    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # The handshake happens on the handler's thread (at its first read), not in the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


def _serve(server: _Server) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass(frozen=True)
class Cert:
    cert_pem: Path
    key_pem: Path
    not_after: datetime


def _self_signed(directory: Path, days: float) -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_CN)])
    not_after = now + timedelta(days=days)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem, key_pem = directory / "cert.pem", directory / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return Cert(cert_pem, key_pem, not_after)


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a plain HTTP server."""
    yield from _serve(_Server(("127.0.0.1", 0), _Handler))


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    return _self_signed(tmp_path_factory.mktemp("tls"), CERT_DAYS)


@pytest.fixture(scope="module")
def https_server(cert: Cert) -> Iterator[str]:
    """``127.0.0.1:PORT`` of an HTTPS server whose self-signed certificate expires in 5 days."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert_pem, cert.key_pem)
    yield from _serve(_TlsServer(("127.0.0.1", 0), context))


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts (listen backlog) but nobody ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound for a moment to pick it, then released): connects are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(url: str, check_id: int = 1, **kw: Any) -> HttpTarget:
    return HttpTarget(7, check_id, url, **kw)


def one(target: HttpTarget) -> Any:
    [result] = check_many([target])
    assert result.target is target
    return result


# --- plain HTTP ---------------------------------------------------------------------------------------

def test_200_passes_without_reading_the_body(http_server: str) -> None:
    r = one(http(f"http://{http_server}/ok"))
    assert (r.ok, r.status, r.reason) == (True, 200, None)
    assert r.response_ms is not None and r.response_ms > 0
    assert (r.tls_days_to_expiry, r.tls_subject, r.tls_issuer, r.tls_not_after) == (None, None, None, None)


def test_expected_body_found_and_not_found(http_server: str) -> None:
    found, missing = check_many([http(f"http://{http_server}/ok", 1, expected_body="netpulse world"),
                                 http(f"http://{http_server}/ok", 2, expected_body="xyz")])
    assert (found.ok, found.status, found.reason) == (True, 200, None)
    assert (missing.ok, missing.status) == (False, 200)
    assert missing.reason == "expected body text 'xyz' not found"
    assert missing.response_ms is not None  # the server answered: its time is still recorded


def test_body_is_decoded_with_its_charset(http_server: str) -> None:
    assert one(http(f"http://{http_server}/latin1", expected_body="caf\u00e9")).ok


def test_body_is_read_only_up_to_one_mib(http_server: str) -> None:
    late, early = check_many([http(f"http://{http_server}/big", 1, expected_body="needle"),
                              http(f"http://{http_server}/big", 2, expected_body="aaaa")])
    assert late.reason == "expected body text 'needle' not found in the first MiB of the body"
    assert early.ok


def test_500_fails_unless_expected(http_server: str) -> None:
    default, expected = check_many([http(f"http://{http_server}/error", 1),
                                    http(f"http://{http_server}/error", 2, expected_status=500)])
    assert (default.ok, default.status, default.reason) == (False, 500, "status 500, expected 2xx/3xx")
    assert (expected.ok, expected.status, expected.reason) == (True, 500, None)


def test_redirect_is_the_answer_not_followed(http_server: str) -> None:
    default, strict = check_many([http(f"http://{http_server}/redirect", 1),
                                  http(f"http://{http_server}/redirect", 2, expected_status=200)])
    assert (default.ok, default.status) == (True, 302)
    assert (strict.ok, strict.status, strict.reason) == (False, 302, "status 302, expected 200")


def test_head_request(http_server: str) -> None:
    r = one(http(f"http://{http_server}/ok", method="HEAD"))
    assert (r.ok, r.status) == (True, 200)


def test_refused_port(closed_port: int) -> None:
    r = one(http(f"http://127.0.0.1:{closed_port}/"))
    assert (r.ok, r.status, r.response_ms, r.reason) == (False, None, None, "connection refused")


def test_server_that_never_answers_times_out(silent_port: int) -> None:
    start = time.monotonic()
    r = one(http(f"http://127.0.0.1:{silent_port}/", timeout_s=1.0))
    elapsed = time.monotonic() - start
    assert (r.ok, r.status, r.reason) == (False, None, "timed out after 1.0 s")
    assert 0.9 <= elapsed < 1.0 + 2.0


def test_tls_handshake_that_never_completes_times_out(silent_port: int) -> None:
    start = time.monotonic()
    r = one(http(f"https://127.0.0.1:{silent_port}/", timeout_s=0.5, verify_tls=False))
    assert (r.ok, r.reason, r.tls_days_to_expiry) == (False, "timed out after 0.5 s", None)
    assert time.monotonic() - start < 0.5 + 2.0


def test_https_to_a_plain_http_port_says_so(http_server: str) -> None:
    r = one(http(f"https://{http_server}/ok", verify_tls=False))
    assert not r.ok and r.reason is not None and r.reason.startswith("TLS handshake failed: ")


# --- HTTPS and the certificate ------------------------------------------------------------------------

def test_https_self_signed_fails_verification_but_reports_expiry(https_server: str, cert: Cert) -> None:
    r = one(http(f"https://{https_server}/ok"))
    assert (r.ok, r.status, r.response_ms) == (False, None, None)
    assert r.reason is not None
    assert re.fullmatch(SELF_SIGNED, r.reason), r.reason
    assert r.tls_days_to_expiry == pytest.approx(CERT_DAYS, abs=0.1)
    assert (r.tls_subject, r.tls_issuer, r.tls_not_after) == (f"CN={CERT_CN}", f"CN={CERT_CN}", cert.not_after)


def test_https_without_verification_passes_and_reports_expiry(https_server: str, cert: Cert) -> None:
    r = one(http(f"https://{https_server}/ok", verify_tls=False, expected_body="hello"))
    assert (r.ok, r.status, r.reason) == (True, 200, None)
    assert r.tls_days_to_expiry is not None and abs(r.tls_days_to_expiry - CERT_DAYS) <= 0.1
    assert (r.tls_subject, r.tls_issuer, r.tls_not_after) == (f"CN={CERT_CN}", f"CN={CERT_CN}", cert.not_after)


def test_https_status_failure_still_reports_expiry(https_server: str) -> None:
    r = one(http(f"https://{https_server}/error", verify_tls=False))
    assert (r.ok, r.status, r.reason) == (False, 500, "status 500, expected 2xx/3xx")
    assert r.tls_days_to_expiry == pytest.approx(CERT_DAYS, abs=0.1)


# --- many at once -------------------------------------------------------------------------------------

def test_many_targets_concurrently_in_one_call(http_server: str, https_server: str, closed_port: int) -> None:
    targets = [http(f"http://{http_server}/ok", i + 1) for i in range(150)]
    targets += [http(f"https://{https_server}/ok", 151 + i, verify_tls=False) for i in range(40)]
    targets += [http(f"http://127.0.0.1:{closed_port}/", 191 + i) for i in range(10)]
    results = check_many(targets, concurrency=50)
    assert [r.target.check_id for r in results] == list(range(1, 201))  # target order
    assert all(r.ok and r.status == 200 for r in results[:190]), [r.reason for r in results if not r.ok][:5]
    assert all(r.tls_days_to_expiry is not None for r in results[150:190])
    assert [r.reason for r in results[190:]] == ["connection refused"] * 10


def test_async_entry_point_inside_a_running_loop(http_server: str) -> None:
    import asyncio

    async def inside() -> list[bool]:
        return [r.ok for r in await async_check_many([http(f"http://{http_server}/ok")] * 3, concurrency=2)]

    assert asyncio.run(inside()) == [True, True, True]
    assert check_many([]) == []


# --- validation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "field", "message"), [
    ({"url": "ftp://example.com/"}, "url", "'ftp://example.com/' is not an http:// or https:// URL"),
    ({"url": "https:///path"}, "url", "'https:///path' has no host; write it as https://HOST/PATH"),
    ({"url": "http://example.com:99999/"}, "url",
     "'http://example.com:99999/' is not a valid URL: Port out of range 0-65535"),
    ({"url": "http://bad host/"}, "url",
     "'http://bad host/' contains white space or control characters; percent-encode them (%20)"),
    ({"method": "POST"}, "method", "method 'POST' is not supported; use GET or HEAD"),
    ({"expected_status": 99}, "expected_status", "expected_status 99 is not between 100 and 599"),
    ({"expected_body": ""}, "expected_body", "expected_body is empty; use None to not read the body"),
    ({"method": "HEAD", "expected_body": "x"}, "expected_body",
     "a HEAD response has no body to look for expected_body in; use GET"),
    ({"timeout_s": 0}, "timeout_s", "timeout_s must be above 0, not 0"),
    ({"check_id": 0}, "check_id", "check_id must be 1 or more (0 is the device itself), not 0"),
])
def test_invalid_http_target(kw: dict[str, Any], field: str, message: str) -> None:
    args: dict[str, Any] = {"device_id": 1, "check_id": 1, "url": "http://example.com/", **kw}
    with pytest.raises(ValidationError) as err:
        HttpTarget(**args)
    assert err.value.details == {field: message}
    assert err.value.message.endswith(message)


def test_invalid_tcp_target() -> None:
    with pytest.raises(ValidationError) as err:
        TcpTarget(1, "", 0, timeout_s=-1, check_id=0)
    assert err.value.details == {"address": "address is empty", "port": "port 0 is not between 1 and 65535",
                                 "timeout_s": "timeout_s must be above 0, not -1",
                                 "check_id": "check_id must be 1 or more (0 is the device itself), not 0"}


# --- rows ---------------------------------------------------------------------------------------------

def test_http_rows_carry_the_check_id(https_server: str, closed_port: int) -> None:
    results = check_many([http(f"https://{https_server}/ok", 11, verify_tls=False),
                          http(f"http://127.0.0.1:{closed_port}/", 12)])
    rows = http_rows(results, 1_000)
    got = {(int(m), int(i)): v for m, i, v in zip(rows.metric_id, rows.ifindex, rows.value, strict=True)}
    assert set(got) == {(MetricKind.CHECK_OK, 11), (MetricKind.HTTP_STATUS, 11), (MetricKind.HTTP_RESPONSE_MS, 11),
                        (MetricKind.TLS_CERT_DAYS, 11), (MetricKind.CHECK_OK, 12)}
    assert got[(MetricKind.CHECK_OK, 11)] == 1.0
    assert got[(MetricKind.CHECK_OK, 12)] == 0.0 and got[(MetricKind.HTTP_STATUS, 11)] == 200.0
    assert got[(MetricKind.TLS_CERT_DAYS, 11)] == pytest.approx(CERT_DAYS, abs=0.1)
    assert set(rows.device_id.tolist()) == {7} and set(rows.time_us.tolist()) == {1_000}


def test_tcp_check_rows_and_the_unchanged_fallback(http_server: str, closed_port: int) -> None:
    port = int(http_server.rpartition(":")[2])
    fallback = connect_rows([TcpTarget(3, "127.0.0.1", port), TcpTarget(4, "127.0.0.1", closed_port)], 5)
    assert set(zip(fallback.device_id.tolist(), fallback.metric_id.tolist(), fallback.ifindex.tolist(),
                   strict=True)) == {(3, MetricKind.AVAILABLE, 0), (3, MetricKind.TCP_CONNECT_MS, 0),
                                     (4, MetricKind.AVAILABLE, 0)}
    assert fallback.value[(fallback.device_id == 4)].tolist() == [0.0]

    results = connect_many([TcpTarget(3, "127.0.0.1", port, check_id=21),
                            TcpTarget(3, "127.0.0.1", closed_port, check_id=22)], concurrency=1)
    assert [(r.ok, r.reason) for r in results] == [(True, None), (False, "connection refused")]
    rows = tcp_rows(results, 5)
    assert sorted(zip(rows.metric_id.tolist(), rows.ifindex.tolist(), rows.value.tolist(), strict=True))[:2] == [
        (MetricKind.TCP_CONNECT_MS, 21, results[0].connect_ms), (MetricKind.CHECK_OK, 21, 1.0)]
    assert (MetricKind.CHECK_OK, 22, 0.0) in zip(rows.metric_id.tolist(), rows.ifindex.tolist(),
                                                 rows.value.tolist(), strict=True)
    assert MetricKind.AVAILABLE not in rows.metric_id.tolist()  # one port says nothing of the device


def test_tcp_timeout_reason() -> None:
    # Linux drops the SYNs a listener with a full accept queue receives, so the next connect stalls.
    with socket.socket() as listener, socket.socket() as first:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        first.connect(listener.getsockname())
        start = time.monotonic()
        [r] = connect_many([TcpTarget(1, "127.0.0.1", listener.getsockname()[1], timeout_s=0.3, check_id=1)])
    assert (r.ok, r.connect_ms, r.reason) == (False, None, "timed out after 0.3 s")
    assert time.monotonic() - start < 0.3 + 2.0


# --- the inventory ------------------------------------------------------------------------------------

@pytest.fixture
def org(db: psycopg.Connection) -> uuid.UUID:
    return make_org(db, "acme")


def _device(session: Session, org: uuid.UUID, name: str = "web-1", address: str = "127.0.0.1", **kw: Any) -> int:
    return create_device(session, org, DeviceSpec(name=name, address=address, device_type="server", **kw)).id


def test_service_checks_add_list_remove(session: Session, org: uuid.UUID) -> None:
    dev = _device(session, org)
    web = add_service_check(session, org, dev, ServiceCheckSpec(kind="http", url="https://web-1.example/health/",
                                                                expected_body="ok", verify_tls=False))
    tcp = add_service_check(session, org, dev, ServiceCheckSpec(kind=CheckKind.TCP, port=5432, timeout_s=2))
    named = add_service_check(session, org, dev, ServiceCheckSpec(kind="HTTP", name="home", method="head",
                                                                  url="http://web-1.example:8080"))
    session.commit()
    assert (web.name, web.kind, web.method, web.verify_tls, web.timeout_s) == ("https-443/health", "http", "GET",
                                                                               False, 5.0)
    assert (tcp.name, tcp.port, tcp.url, tcp.timeout_s) == ("tcp-5432", 5432, None, 2.0)
    assert (named.name, named.method, named.expected_status) == ("home", "HEAD", None)
    assert [c.name for c in list_service_checks(session, org)] == ["home", "https-443/health", "tcp-5432"]
    assert [c.id for c in list_service_checks(session, org, dev)] == [named.id, web.id, tcp.id]
    assert get_service_check(session, org, dev, "tcp-5432").id == tcp.id

    with pytest.raises(Conflict) as dup:
        add_service_check(session, org, dev, ServiceCheckSpec(kind="tcp", port=5432))
    assert dup.value.code == "CHECK_ALREADY_EXISTS"
    assert dup.value.message == ("device 'web-1' already has a check named 'tcp-5432'; choose another name "
                                 "(--name) or remove that check first")

    remove_service_check(session, org, dev, "tcp-5432")
    with pytest.raises(NotFound) as missing:
        remove_service_check(session, org, dev, "tcp-5432")
    assert missing.value.message == "device 'web-1' has no check named 'tcp-5432'; its checks: home, https-443/health"
    with pytest.raises(NotFound):
        list_service_checks(session, org, dev + 100)


def test_service_checks_are_per_organization_and_go_with_their_device(session: Session, org: uuid.UUID,
                                                                      db: psycopg.Connection) -> None:
    other = make_org(db, "globex")
    dev = _device(session, org)
    add_service_check(session, org, dev, ServiceCheckSpec(kind="tcp", port=22))
    session.commit()
    with pytest.raises(NotFound):  # another organization's device cannot be given checks, nor listed
        add_service_check(session, other, dev, ServiceCheckSpec(kind="tcp", port=80))
    assert list_service_checks(session, other) == []
    assert runnable_service_checks(db, [dev], org_id=other) == []
    db.execute("DELETE FROM devices WHERE id = %s", (dev,))
    assert db.execute("SELECT count(*) FROM service_checks").fetchone() == (0,)


@pytest.mark.parametrize(("spec", "details"), [
    (ServiceCheckSpec(kind="ftp"), {"kind": "'ftp' is not a kind of service check; use one of: tcp, http"}),
    (ServiceCheckSpec(kind="http", url="ftp://files.example/"),
     {"url": "'ftp://files.example/' is not an http:// or https:// URL"}),
    (ServiceCheckSpec(kind="http"), {"url": "a URL is required, e.g. https://example.com/health"}),
    (ServiceCheckSpec(kind="http", url="http://300.1.1.1/"),
     {"url": "'http://300.1.1.1/': '300.1.1.1' is not a valid IP address or hostname"}),
    (ServiceCheckSpec(kind="http", url="http://web/", port=80),
     {"port": "port is only for tcp checks; give the port in the URL (https://host:8443/)"}),
    (ServiceCheckSpec(kind="http", url="http://web/", method="POST"),
     {"method": "'POST' is not a supported method; use GET or HEAD"}),
    (ServiceCheckSpec(kind="http", url="http://web/", expected_status=99),
     {"expected_status": "99 is out of range; use 100 to 599 (an HTTP status)"}),
    (ServiceCheckSpec(kind="http", url="http://web/", method="HEAD", expected_body="ok"),
     {"expected_body": "a HEAD response has no body to look for 'ok' in; use GET or drop the expected text"}),
    (ServiceCheckSpec(kind="tcp"), {"port": "a tcp check needs a port (1 to 65535)"}),
    (ServiceCheckSpec(kind="tcp", port=70000), {"port": "70000 is out of range; use 1 to 65535 (a TCP port)"}),
    (ServiceCheckSpec(kind="tcp", port=22, url="http://web/", expected_body="x"),
     {"url": "url is only for http checks; remove it from this tcp check",
      "expected_body": "expected_body is only for http checks; remove it from this tcp check"}),
    (ServiceCheckSpec(kind="tcp", port=22, timeout_s=0),
     {"timeout_s": "0 is out of range; use more than 0 and at most 60 seconds"}),
    (ServiceCheckSpec(kind="tcp", port=22, timeout_s=61),
     {"timeout_s": "61 is out of range; use more than 0 and at most 60 seconds"}),
    (ServiceCheckSpec(kind="tcp", port=22, name="n" * 101), {"name": "'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'... "
                                                                     "is longer than 100 characters"}),
])
def test_invalid_service_check(session: Session, org: uuid.UUID, spec: ServiceCheckSpec,
                               details: dict[str, str]) -> None:
    dev = _device(session, org)
    with pytest.raises(ValidationError) as err:
        add_service_check(session, org, dev, spec)
    assert err.value.details == details
    assert err.value.message.startswith("invalid service check")
    assert list_service_checks(session, org) == []


def test_database_refuses_inconsistent_rows(db: psycopg.Connection, org: uuid.UUID, session: Session) -> None:
    dev = _device(session, org)
    session.commit()
    for columns, values, constraint in [
        ("kind, name", "'tcp', 'no-port'", "service_checks_tcp_fields"),
        ("kind, name, port", "'http', 'no-url', 80", "service_checks_http_fields"),
        ("kind, name, port", "'udp', 'u', 53", "service_checks_kind_check"),
        ("kind, name, port, timeout_s", "'tcp', 't', 22, 0", "service_checks_timeout_check"),
    ]:
        with pytest.raises(psycopg.errors.CheckViolation) as err:
            db.execute(f"INSERT INTO service_checks (organization_id, device_id, {columns}) "  # noqa: S608
                       f"VALUES (%s, %s, {values})", (org, dev))
        assert err.value.diag.constraint_name == constraint


# --- from the table to stored rows --------------------------------------------------------------------

def test_checks_from_the_table_run_and_load_with_the_check_id(session: Session, org: uuid.UUID,
                                                              db: psycopg.Connection, http_server: str,
                                                              https_server: str, closed_port: int) -> None:
    dev = _device(session, org)
    sim = _device(session, org, "sim-1", "192.0.2.9", simulated=True)
    ok = add_service_check(session, org, dev, ServiceCheckSpec(kind="http", url=f"http://{http_server}/ok",
                                                               expected_body="hello"))
    tls = add_service_check(session, org, dev, ServiceCheckSpec(kind="http", url=f"https://{https_server}/ok"))
    port = add_service_check(session, org, dev, ServiceCheckSpec(kind="tcp", port=closed_port))
    off = add_service_check(session, org, dev, ServiceCheckSpec(kind="tcp", port=1, enabled=False))
    add_service_check(session, org, sim, ServiceCheckSpec(kind="tcp", port=22))  # simulated: never probed
    session.commit()

    targets = load_check_targets(db, [dev, sim])  # a worker's psycopg connection
    assert [t.check_id for t in targets.http] == [ok.id, tls.id]
    assert [(t.check_id, t.address, t.port) for t in targets.tcp] == [(port.id, "127.0.0.1", closed_port)]
    every = load_check_targets(session, [dev], org_id=org, include_disabled=True)  # or an ORM session
    assert sorted(t.check_id or 0 for t in every.tcp) == [port.id, off.id]

    tick = to_micros(datetime.now(UTC).replace(microsecond=0))
    results = run_checks(targets)
    assert [r.ok for r in results.http] == [True, False] and [r.ok for r in results.tcp] == [False]
    loaded = Loader().load(db, check_rows(results, tick))
    assert loaded.inserted == 3 + 2 + 1  # http: ok, status, ms; https: ok, days; tcp: ok
    stored = {(m, i): v for m, i, v in db.execute(
        "SELECT metric_id, ifindex, value FROM metrics WHERE device_id = %s", (dev,)).fetchall()}
    assert stored[(MetricKind.CHECK_OK, ok.id)] == 1.0
    assert stored[(MetricKind.HTTP_STATUS, ok.id)] == 200.0
    assert stored[(MetricKind.CHECK_OK, tls.id)] == 0.0
    assert stored[(MetricKind.TLS_CERT_DAYS, tls.id)] == pytest.approx(CERT_DAYS, abs=0.1)
    assert stored[(MetricKind.CHECK_OK, port.id)] == 0.0
    assert set(stored) == {(MetricKind.CHECK_OK, ok.id), (MetricKind.HTTP_STATUS, ok.id),
                           (MetricKind.HTTP_RESPONSE_MS, ok.id), (MetricKind.CHECK_OK, tls.id),
                           (MetricKind.TLS_CERT_DAYS, tls.id), (MetricKind.CHECK_OK, port.id)}
    # Failed service checks are not the device's availability.
    assert db.execute("SELECT oper_status FROM devices WHERE id = %s", (dev,)).fetchone() == ("unknown",)
    assert run_checks(CheckTargets([], [])) == ([], [])


# --- the CLI ------------------------------------------------------------------------------------------

@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("NETPULSE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.mark.parametrize("command", [[], ["add"], ["list"], ["remove"], ["run"]])
def test_cli_check_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, ["devices", "check", *command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")


def test_cli_check_add_list_run_remove(cli: CliRunner, org: uuid.UUID, session: Session, db: psycopg.Connection,
                                       http_server: str, https_server: str) -> None:
    _device(session, org)
    session.commit()
    port = http_server.rpartition(":")[2]

    added = cli.invoke(main, ["devices", "check", "add", "web-1", "--http", f"http://{http_server}/ok",
                              "--expect-body", "hello", "--timeout", "2"])
    assert added.exit_code == 0, added.output
    assert added.stdout == f"added http check 'http-{port}/ok' (id 1) to device 'web-1'\n"
    for args in (["--http", f"https://{https_server}/ok", "--no-verify-tls", "--name", "tls"],
                 ["--tcp", port, "--name", "port"]):
        result = cli.invoke(main, ["devices", "check", "add", "web-1", *args])
        assert result.exit_code == 0, result.output

    listed = cli.invoke(main, ["devices", "check", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "DEVICE", "NAME", "KIND", "TARGET", "EXPECT", "TIMEOUT_S", "TLS", "ENABLED"]
    assert lines[2].split() == ["1", "web-1", f"http-{port}/ok", "http", f"http://{http_server}/ok", "GET",
                                "2xx/3xx,", "body", "'hello'", "2", "-", "yes"]
    assert lines[3].split() == ["3", "web-1", "port", "tcp", f"127.0.0.1:{port}", "connect", "5", "-", "yes"]
    assert lines[4].split()[2:] == ["tls", "http", f"https://{https_server}/ok", "GET", "2xx/3xx", "5",
                                    "no-verify", "yes"]
    assert lines[-1] == "3 check(s)"

    ran = cli.invoke(main, ["devices", "check", "run", "web-1"])
    assert ran.exit_code == 0, ran.output
    lines = ran.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "TARGET", "RESULT", "STATUS", "MS", "CERT_DAYS", "REASON"]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:-1]}
    assert rows[f"http-{port}/ok"][3:5] == ["ok", "200"] and rows[f"http-{port}/ok"][6:] == ["-", "-"]
    assert rows["tls"][3:5] == ["ok", "200"] and float(rows["tls"][6]) == pytest.approx(CERT_DAYS, abs=0.1)
    assert rows["port"][3:5] == ["ok", "-"]
    assert lines[-1] == "3 check(s) passed"
    assert db.execute("SELECT count(*) FROM metrics").fetchone() == (0,)  # a run on request stores nothing

    removed = cli.invoke(main, ["devices", "check", "remove", "web-1", "tls"])
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == "removed check 'tls' from device 'web-1'\n"
    assert [r[0] for r in db.execute("SELECT name FROM service_checks ORDER BY id").fetchall()] == [
        f"http-{port}/ok", "port"]


def test_cli_check_run_reports_failures(cli: CliRunner, org: uuid.UUID, session: Session, https_server: str,
                                        closed_port: int) -> None:
    dev = _device(session, org)
    add_service_check(session, org, dev, ServiceCheckSpec(kind="http", url=f"https://{https_server}/ok"))
    add_service_check(session, org, dev, ServiceCheckSpec(kind="tcp", port=closed_port))
    session.commit()
    ran = cli.invoke(main, ["devices", "check", "run", "web-1"])
    assert ran.exit_code == 1
    rows = {ln.split()[0]: ln for ln in ran.stdout.splitlines()[2:]}
    https_row = rows[f"https-{https_server.rpartition(':')[2]}/ok"]
    assert re.search(r"\bFAIL\s+-\s+-\s+\d+\.\d\s+" + SELF_SIGNED + "$", https_row), https_row
    assert rows[f"tcp-{closed_port}"].split()[3:] == ["FAIL", "-", "-", "-", "connection", "refused"]
    assert ran.stderr == "2 of 2 check(s) failed\n"


def test_cli_check_errors(cli: CliRunner, org: uuid.UUID, session: Session) -> None:
    _device(session, org)
    session.commit()
    neither = cli.invoke(main, ["devices", "check", "add", "web-1"])
    assert neither.exit_code == 2
    assert "give either --http URL or --tcp PORT" in neither.stderr
    both = cli.invoke(main, ["devices", "check", "add", "web-1", "--http", "http://x/", "--tcp", "80"])
    assert both.exit_code == 2

    bad = cli.invoke(main, ["devices", "check", "add", "web-1", "--http", "ftp://x/"])
    assert bad.exit_code == 1
    assert bad.stderr == "Error: invalid service check: url: 'ftp://x/' is not an http:// or https:// URL\n"
    tcp_only = cli.invoke(main, ["devices", "check", "add", "web-1", "--tcp", "22", "--expect-status", "200"])
    assert tcp_only.exit_code == 1
    assert tcp_only.stderr == ("Error: invalid service check: expected_status: expected_status is only for http "
                               "checks; remove it from this tcp check\n")
    unknown = cli.invoke(main, ["devices", "check", "add", "web-9", "--tcp", "22"])
    assert unknown.exit_code == 1
    assert unknown.stderr == "Error: no device named 'web-9' in this organization\n"
    missing = cli.invoke(main, ["devices", "check", "remove", "web-1", "nope"])
    assert missing.exit_code == 1
    assert missing.stderr == "Error: device 'web-1' has no check named 'nope'; it has no checks\n"
    empty = cli.invoke(main, ["devices", "check", "run", "web-1"])
    assert empty.exit_code == 0
    assert empty.stdout == "device 'web-1' has no service checks yet; add one with `netpulse devices check add`\n"


def test_the_workers_probe_path_runs_the_devices_service_checks(db_url: str, db: psycopg.Connection,
                                                                  https_server: str, session: Session) -> None:
    """A device's checks run beside its ICMP probe in the workers and land as rows keyed by check id."""
    from ingest.icmp import icmp_permitted
    from netpulse.inventory import ServiceCheckSpec, add_service_check
    from workers.probes import network_rows
    from workers.runtime import Runtime

    org = make_org(db)
    (device,) = make_devices(db, org, 1)
    db.execute("UPDATE devices SET address = '127.0.0.1' WHERE id = %s", (device,))
    check = add_service_check(session, org, device, ServiceCheckSpec(kind="http", url=f"https://{https_server}/ok",
                                                                       verify_tls=False))
    session.commit()
    privileged = icmp_permitted(True)
    rt = Runtime(db_url, icmp_privileged=privileged, icmp_allowed=privileged or icmp_permitted(False))
    rows = network_rows(rt, [{"id": device, "name": "dev-0", "address": "127.0.0.1", "simulated": False,
                              "count": 1, "timeout_s": 1.0, "interval_s": 60}], 1_800_000_000_000_000)
    got = {(int(m), int(i)): v for m, i, v in zip(rows.metric_id, rows.ifindex, rows.value, strict=True)}
    assert got[(MetricKind.AVAILABLE, 0)] == 1.0
    assert got[(MetricKind.CHECK_OK, check.id)] == 1.0
    assert got[(MetricKind.HTTP_STATUS, check.id)] == 200.0
    assert 4.0 < got[(MetricKind.TLS_CERT_DAYS, check.id)] <= 5.0
