"""TCP connect probing: the fallback when ICMP is not permitted, and a service check of its own.

A target without ``check_id`` is the fallback probe: its rows say whether the device is available
(ifindex 0). A target with ``check_id`` is a tcp service check (``service_checks.id``): its rows are
check_ok and, when it connected, tcp_connect_ms, both with the check id in ifindex; one closed port
says nothing of the device's availability, so it emits no available row.

A refused or timed-out connect is data (a result with ``ok=False`` and a reason), never an exception.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.rows import MetricRows
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind

__all__ = ["TcpTarget", "TcpResult", "connect_many", "async_connect_many", "tcp_rows", "connect_rows",
           "describe_os_error"]


@dataclass(frozen=True, slots=True)
class TcpTarget:
    """One TCP port to connect to; ``check_id`` set makes it a tcp service check."""

    device_id: int
    address: str
    port: int
    timeout_s: float = 2.0
    check_id: int | None = None   # service_checks.id, carried in the rows' ifindex

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}
        if not self.address:
            problems["address"] = "address is empty"
        if not 1 <= self.port <= 65535:
            problems["port"] = f"port {self.port} is not between 1 and 65535"
        if not self.timeout_s > 0:
            problems["timeout_s"] = f"timeout_s must be above 0, not {self.timeout_s}"
        if self.check_id is not None and self.check_id < 1:
            problems["check_id"] = f"check_id must be 1 or more (0 is the device itself), not {self.check_id}"
        if problems:
            raise ValidationError(f"invalid TCP target {self.address!r}:{self.port} (device {self.device_id}): "
                                  + "; ".join(problems.values()), details=problems)


@dataclass(slots=True)
class TcpResult:
    """What one connect found: ``connect_ms`` when it connected, else ``reason``."""

    target: TcpTarget
    ok: bool
    connect_ms: float | None
    reason: str | None = None


def describe_os_error(exc: OSError) -> str:
    """A short lower-case reason for a failed connect ("connection refused", "no route to host")."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if exc.errno:
        return os.strerror(exc.errno).lower()  # asyncio's strerror adds "Connect call failed (...)"
    return str(exc) or type(exc).__name__


async def _connect(t: TcpTarget) -> TcpResult:
    start = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(t.address, t.port), t.timeout_s)
    except TimeoutError:
        return TcpResult(t, False, None, f"timed out after {float(t.timeout_s)} s")
    except OSError as exc:
        return TcpResult(t, False, None, describe_os_error(exc))
    elapsed = (time.perf_counter() - start) * 1000.0
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return TcpResult(t, True, elapsed)


async def async_connect_many(targets: Sequence[TcpTarget], *, concurrency: int | None = None) -> list[TcpResult]:
    """``connect_many`` for callers inside an event loop."""
    if concurrency is None:
        return list(await asyncio.gather(*(_connect(t) for t in targets)))
    if concurrency < 1:
        raise ValidationError(f"concurrency must be at least 1, not {concurrency}",
                              details={"concurrency": "must be at least 1"})
    limit = asyncio.Semaphore(concurrency)

    async def bounded(t: TcpTarget) -> TcpResult:
        async with limit:
            return await _connect(t)

    return list(await asyncio.gather(*(bounded(t) for t in targets)))


def connect_many(targets: Sequence[TcpTarget], *, concurrency: int | None = None) -> list[TcpResult]:
    """Connect to every target concurrently (at most ``concurrency`` at once; None: no limit).

    Returns one ``TcpResult`` per target, in target order.
    """
    if not targets:
        return []
    return asyncio.run(async_connect_many(targets, concurrency=concurrency))


def tcp_rows(results: Sequence[TcpResult], tick_us: int) -> MetricRows:
    """Rows stamped ``tick_us``: the fallback's available (+ tcp_connect_ms, ifindex 0), or a check's
    check_ok (+ tcp_connect_ms), with the check id in ifindex."""
    out: list[tuple[int, int, int, int, float]] = []
    for r in results:
        t = r.target
        if t.check_id is None:
            out.append((tick_us, t.device_id, MetricKind.AVAILABLE, 0, 1.0 if r.ok else 0.0))
        else:
            out.append((tick_us, t.device_id, MetricKind.CHECK_OK, t.check_id, 1.0 if r.ok else 0.0))
        if r.connect_ms is not None:
            out.append((tick_us, t.device_id, MetricKind.TCP_CONNECT_MS, t.check_id or 0, r.connect_ms))
    return MetricRows.from_tuples(out)


def connect_rows(targets: Sequence[TcpTarget], tick_us: int) -> MetricRows:
    """Connect to every target concurrently; a refused or timed-out connect is available=0 (or check_ok=0)."""
    if not targets:
        return MetricRows.empty()
    return tcp_rows(connect_many(targets), tick_us)
