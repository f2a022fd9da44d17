"""HTTP(S) service checks: status, response time, expected body text and the TLS certificate's expiry.

All targets of a call run concurrently in one event loop (at most ``concurrency`` at once) over httpx,
each on a fresh connection (no keep-alive), so ``response_ms`` always counts connect and TLS handshake:
it is the time until the response headers arrived. Redirects are not followed: a 3xx is the answer,
and it passes the default expectation (any 2xx or 3xx); to check the page behind it, check its URL.
Certificates are verified against the system trust store, where operators add their internal CAs.

The server certificate is read from the connection (DER, parsed with ``cryptography``) whether or not
it was verified. With ``verify_tls`` off the check runs as usual; when verification fails, the check
fails with the reason and one more handshake, without verification, fetches the certificate, so an
expiring self-signed certificate still reports its days to expiry.

A refused connection, a timeout, an unexpected status or a missing text is data (an ``HttpResult``
with ``ok=False`` and a reason), never an exception. Each check, certificate fetch included, is bounded
by its ``timeout_s``.

``load_check_targets`` turns the ``service_checks`` rows of some devices into http and tcp targets,
``run_checks`` runs both kinds in one loop and ``check_rows`` turns the results into metric rows,
whose ifindex is the check id (see netpulse.metrics).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

import httpx
import psycopg
import structlog
from cryptography import x509

from ingest.rows import MetricRows
from ingest.tcp import TcpResult, TcpTarget, async_connect_many, describe_os_error, tcp_rows
from netpulse.errors import ValidationError
from netpulse.inventory import HTTP_METHODS, RunnableCheck, http_url_problem, runnable_service_checks
from netpulse.metrics import MetricKind
from netpulse.schema import CheckKind

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["HttpTarget", "HttpResult", "check_many", "async_check_many", "http_rows", "CheckTargets",
           "CheckResults", "targets_for", "load_check_targets", "run_checks", "async_run_checks", "check_rows",
           "MAX_BODY_BYTES", "DEFAULT_CONCURRENCY"]

log = structlog.get_logger("netpulse.ingest.http")

MAX_BODY_BYTES = 1 << 20          # the expected text is looked for in this much of the body, no more
DEFAULT_CONCURRENCY = 100         # checks in flight at once: TLS handshakes cost CPU on both ends
USER_AGENT = "NetPulse service check"


# --- targets and results -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HttpTarget:
    """One URL to check. It passes when the status is ``expected_status`` (None: any 2xx or 3xx) and,
    if ``expected_body`` is set, that text is in the first ``MAX_BODY_BYTES`` of the body."""

    device_id: int
    check_id: int                 # service_checks.id, carried in the rows' ifindex
    url: str
    method: str = "GET"           # GET or HEAD
    expected_status: int | None = None
    expected_body: str | None = None
    timeout_s: float = 5.0        # for the whole check: connect, TLS, response, body
    verify_tls: bool = True

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}
        if self.check_id < 1:
            problems["check_id"] = f"check_id must be 1 or more (0 is the device itself), not {self.check_id}"
        url_problem = http_url_problem(self.url)
        if url_problem is not None:
            problems["url"] = url_problem
        if self.method not in HTTP_METHODS:
            problems["method"] = f"method {self.method!r} is not supported; use GET or HEAD"
        if self.expected_status is not None and not 100 <= self.expected_status <= 599:
            problems["expected_status"] = f"expected_status {self.expected_status} is not between 100 and 599"
        if self.expected_body is not None and not self.expected_body:
            problems["expected_body"] = "expected_body is empty; use None to not read the body"
        elif self.expected_body is not None and self.method == "HEAD":
            problems["expected_body"] = "a HEAD response has no body to look for expected_body in; use GET"
        if not self.timeout_s > 0:
            problems["timeout_s"] = f"timeout_s must be above 0, not {self.timeout_s}"
        if problems:
            raise ValidationError(f"invalid HTTP target {self.url!r} (check {self.check_id}, device "
                                  f"{self.device_id}): " + "; ".join(problems.values()), details=problems)


@dataclass(slots=True)
class HttpResult:
    """What one check found. ``status``/``response_ms`` are None when no response came; the tls_*
    fields describe the server certificate of an https URL (also when it failed verification)."""

    target: HttpTarget
    ok: bool
    status: int | None
    response_ms: float | None
    reason: str | None = None     # why the check failed; None when ok
    tls_days_to_expiry: float | None = None   # negative once expired
    tls_subject: str | None = None            # RFC 4514, e.g. "CN=example.com"
    tls_issuer: str | None = None
    tls_not_after: datetime | None = None


class _Cert(NamedTuple):
    subject: str
    issuer: str
    not_after: datetime


def _parse_cert(der: bytes | None) -> _Cert | None:
    if not der:
        return None
    try:
        cert = x509.load_der_x509_certificate(der)
        return _Cert(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_after_utc)
    except ValueError:            # a certificate cryptography cannot parse: the check result still stands
        return None


# --- one check -----------------------------------------------------------------------------------------

def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes: httpx wraps httpcore's error, which wraps the socket's or ssl's."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        yield node
        node = node.__cause__ or node.__context__


def _describe(exc: httpx.HTTPError) -> str:
    causes = list(_chain(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {cause.verify_message}"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}"
    # The innermost OS error says the most ("connection refused" under "All connection attempts failed").
    os_errors = [c for c in causes if isinstance(c, OSError) and (c.errno or isinstance(c, socket.gaierror))]
    detail = describe_os_error(os_errors[-1]) if os_errors else str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return detail
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"bad response: {exc}"
    if isinstance(exc, httpx.NetworkError):
        return f"connection lost: {detail}"
    return detail


def _status_problem(t: HttpTarget, status: int) -> str | None:
    if t.expected_status is None:
        return None if 200 <= status < 400 else f"status {status}, expected 2xx/3xx"
    return None if status == t.expected_status else f"status {status}, expected {t.expected_status}"


async def _body_problem(response: httpx.Response, text: str) -> str | None:
    """None when ``text`` is in the first MAX_BODY_BYTES of the body (read no further than that)."""
    encoding = response.charset_encoding or "utf-8"
    try:
        needle: bytes | None = text.encode(encoding)
    except (LookupError, UnicodeEncodeError):
        needle = None
    body = bytearray()
    async for chunk in response.aiter_bytes():
        start = max(0, len(body) - len(needle) + 1) if needle else 0
        body += chunk
        if needle and body.find(needle, start) >= 0:
            return None
        if len(body) >= MAX_BODY_BYTES:
            break
    truncated = len(body) >= MAX_BODY_BYTES
    try:
        decoded = bytes(body[:MAX_BODY_BYTES]).decode(encoding, errors="replace")
    except LookupError:           # a charset Python does not know
        decoded = bytes(body[:MAX_BODY_BYTES]).decode("utf-8", errors="replace")
    if text in decoded:
        return None
    return f"expected body text {text!r} not found" + (" in the first MiB of the body" if truncated else "")


def _peer_der(response: httpx.Response) -> bytes | None:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


async def _fetch_der(url: str, insecure: ssl.SSLContext, timeout_s: float) -> bytes | None:
    """The server certificate, from a handshake that does not verify it (after verification failed)."""
    parts = urlsplit(url)
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(parts.hostname, parts.port or 443, ssl=insecure)
    except (OSError, TimeoutError):
        return None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.transport.abort()  # no close_notify exchange: the certificate is all this connection was for


async def _check(t: HttpTarget, client: httpx.AsyncClient, insecure: ssl.SSLContext) -> HttpResult:
    start = time.perf_counter()
    status: int | None = None
    response_ms: float | None = None
    der: bytes | None = None
    reason: str | None = None
    try:
        async with asyncio.timeout(t.timeout_s):
            async with client.stream(t.method, t.url, timeout=t.timeout_s) as response:
                response_ms = (time.perf_counter() - start) * 1000.0
                status = response.status_code
                der = _peer_der(response)
                reason = _status_problem(t, status)
                if reason is None and t.expected_body is not None:
                    reason = await _body_problem(response, t.expected_body)
    except (TimeoutError, httpx.TimeoutException):
        reason = f"timed out after {float(t.timeout_s)} s" + (" reading the body" if status is not None else "")
    except httpx.HTTPError as exc:
        reason = _describe(exc)
        if der is None and any(isinstance(c, ssl.SSLCertVerificationError) for c in _chain(exc)):
            remaining = t.timeout_s - (time.perf_counter() - start)
            if remaining > 0:
                der = await _fetch_der(t.url, insecure, remaining)
    cert = _parse_cert(der)
    result = HttpResult(t, ok=reason is None and status is not None, status=status, response_ms=response_ms,
                        reason=reason)
    if cert is not None:
        result.tls_days_to_expiry = (cert.not_after - datetime.now(UTC)).total_seconds() / 86400.0
        result.tls_subject, result.tls_issuer, result.tls_not_after = cert
    return result


# --- the public API ------------------------------------------------------------------------------------

def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA store to load: nothing is verified with it
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE   # the certificate is still sent, and read, in binary form
    return ctx


def _client(verify: ssl.SSLContext, concurrency: int) -> httpx.AsyncClient:
    # trust_env=False: a check goes straight to its URL, whatever proxy the worker's environment names.
    return httpx.AsyncClient(verify=verify, trust_env=False, follow_redirects=False,
                             headers={"User-Agent": USER_AGENT},
                             limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=0))


async def async_check_many(targets: Sequence[HttpTarget], *,
                           concurrency: int = DEFAULT_CONCURRENCY) -> list[HttpResult]:
    """``check_many`` for callers inside an event loop."""
    if concurrency < 1:
        raise ValidationError(f"concurrency must be at least 1, not {concurrency}",
                              details={"concurrency": "must be at least 1"})
    if not targets:
        return []
    insecure = _insecure_context()
    limit = asyncio.Semaphore(concurrency)
    async with (_client(ssl.create_default_context(), concurrency) as verifying,
                _client(insecure, concurrency) as trusting):

        async def one(t: HttpTarget) -> HttpResult:
            async with limit:     # the timeout starts once the check may run, not while it queues
                return await _check(t, verifying if t.verify_tls else trusting, insecure)

        return list(await asyncio.gather(*(one(t) for t in targets)))


def check_many(targets: Sequence[HttpTarget], *, concurrency: int = DEFAULT_CONCURRENCY) -> list[HttpResult]:
    """Check every target concurrently, at most ``concurrency`` at once; results in target order.

    Returns:
        One ``HttpResult`` per target. A failed check is a result with ``ok=False`` and a ``reason``,
        never an exception.

    Raises:
        ValidationError: ``concurrency`` is below 1.
    """
    if not targets:
        return []
    return asyncio.run(async_check_many(targets, concurrency=concurrency))


def http_rows(results: Sequence[HttpResult], tick_us: int) -> MetricRows:
    """Rows stamped ``tick_us`` with the check id in ifindex: check_ok for every result, http_status and
    http_response_ms when a response came, tls_cert_days when a certificate was seen."""
    out: list[tuple[int, int, int, int, float]] = []
    for r in results:
        d, c = r.target.device_id, r.target.check_id
        out.append((tick_us, d, MetricKind.CHECK_OK, c, 1.0 if r.ok else 0.0))
        if r.status is not None:
            out.append((tick_us, d, MetricKind.HTTP_STATUS, c, float(r.status)))
        if r.response_ms is not None:
            out.append((tick_us, d, MetricKind.HTTP_RESPONSE_MS, c, r.response_ms))
        if r.tls_days_to_expiry is not None:
            out.append((tick_us, d, MetricKind.TLS_CERT_DAYS, c, r.tls_days_to_expiry))
    return MetricRows.from_tuples(out)


# --- service checks from the inventory -----------------------------------------------------------------

class CheckTargets(NamedTuple):
    http: list[HttpTarget]
    tcp: list[TcpTarget]


class CheckResults(NamedTuple):
    http: list[HttpResult]
    tcp: list[TcpResult]


def targets_for(checks: Iterable[RunnableCheck]) -> CheckTargets:
    """Probe targets for service-check rows; a row the targets refuse is logged and skipped, so one
    hand-edited row cannot stop the others."""
    http: list[HttpTarget] = []
    tcp: list[TcpTarget] = []
    for c in checks:
        try:
            if c.kind is CheckKind.HTTP:
                http.append(HttpTarget(c.device_id, c.id, c.url or "", c.method, c.expected_status,
                                       c.expected_body, c.timeout_s, c.verify_tls))
            else:
                tcp.append(TcpTarget(c.device_id, c.address, c.port or 0, c.timeout_s, check_id=c.id))
        except ValidationError as exc:
            log.warning("netpulse.ingest.check_skipped", check_id=c.id, device_id=c.device_id, error=exc.message)
    return CheckTargets(http, tcp)


def load_check_targets(db: Session | psycopg.Connection, device_ids: Iterable[int], *,
                       org_id: uuid.UUID | None = None, include_disabled: bool = False) -> CheckTargets:
    """The targets of these devices' service checks (see ``netpulse.inventory.runnable_service_checks``)."""
    return targets_for(runnable_service_checks(db, device_ids, org_id=org_id, include_disabled=include_disabled))


async def async_run_checks(targets: CheckTargets, *, concurrency: int = DEFAULT_CONCURRENCY) -> CheckResults:
    """``run_checks`` for callers inside an event loop."""
    http, tcp = await asyncio.gather(async_check_many(targets.http, concurrency=concurrency),
                                     async_connect_many(targets.tcp, concurrency=concurrency))
    return CheckResults(http, tcp)


def run_checks(targets: CheckTargets, *, concurrency: int = DEFAULT_CONCURRENCY) -> CheckResults:
    """Run http and tcp checks together in one event loop, each kind at most ``concurrency`` at once."""
    if not targets.http and not targets.tcp:
        return CheckResults([], [])
    return asyncio.run(async_run_checks(targets, concurrency=concurrency))


def check_rows(results: CheckResults, tick_us: int) -> MetricRows:
    """The metric rows of both kinds of check, stamped ``tick_us``."""
    return MetricRows.concat([http_rows(results.http, tick_us), tcp_rows(results.tcp, tick_us)])
