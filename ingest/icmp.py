"""ICMP echo probing of real devices (icmplib), as rows of the metric catalogue.

An unreachable device is data: it yields available=0 and loss=100, never an exception.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from icmplib import async_multiping
from icmplib.exceptions import SocketPermissionError

from ingest.rows import MetricRows
from netpulse.errors import ProbeError
from netpulse.metrics import MetricKind


@dataclass(frozen=True, slots=True)
class PingTarget:
    device_id: int
    address: str
    count: int = 3
    timeout_s: float = 2.0


def icmp_permitted(privileged: bool = True) -> bool:
    """Whether this process may open ICMP sockets (root for raw, or ping_group_range for datagram)."""
    kind = socket.SOCK_RAW if privileged else socket.SOCK_DGRAM
    try:
        socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
        return True
    except OSError:
        return False


def ping_rows(targets: Sequence[PingTarget], tick_us: int, *, privileged: bool = True) -> MetricRows:
    """Ping every target concurrently and return its rows stamped with ``tick_us``."""
    if not targets:
        return MetricRows.empty()
    count = max(t.count for t in targets)
    timeout = max(t.timeout_s for t in targets)
    try:
        hosts = asyncio.run(async_multiping([t.address for t in targets], count=count, interval=0.2,
                                            timeout=timeout, privileged=privileged))
    except SocketPermissionError as exc:
        raise ProbeError(f"ICMP sockets are not permitted for this process: {exc}") from exc
    out: list[tuple[int, int, int, int, float]] = []
    for target, host in zip(targets, hosts, strict=True):
        d = target.device_id
        alive = host.is_alive
        out.append((tick_us, d, MetricKind.AVAILABLE, 0, 1.0 if alive else 0.0))
        out.append((tick_us, d, MetricKind.ICMP_LOSS_PCT, 0, round(host.packet_loss * 100.0, 3)))
        if alive:
            rtts = host.rtts
            jitter = statistics.fmean(abs(a - b) for a, b in zip(rtts[1:], rtts[:-1], strict=False)) \
                if len(rtts) > 1 else 0.0
            out += [(tick_us, d, MetricKind.ICMP_RTT_MS, 0, host.avg_rtt),
                    (tick_us, d, MetricKind.ICMP_RTT_MIN_MS, 0, host.min_rtt),
                    (tick_us, d, MetricKind.ICMP_RTT_MAX_MS, 0, host.max_rtt),
                    (tick_us, d, MetricKind.ICMP_JITTER_MS, 0, jitter)]
    return MetricRows.from_tuples(out)
