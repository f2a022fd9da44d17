"""TCP connect probing: the fallback when ICMP is not permitted, and a check of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.rows import MetricRows
from netpulse.metrics import MetricKind


@dataclass(frozen=True, slots=True)
class TcpTarget:
    device_id: int
    address: str
    port: int
    timeout_s: float = 2.0


async def _connect(t: TcpTarget) -> float | None:
    start = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(t.address, t.port), t.timeout_s)
    except (OSError, TimeoutError):
        return None
    elapsed = (time.perf_counter() - start) * 1000.0
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return elapsed


def connect_rows(targets: Sequence[TcpTarget], tick_us: int) -> MetricRows:
    """Connect to every target concurrently; a refused or timed-out connect is available=0."""
    if not targets:
        return MetricRows.empty()

    async def run() -> list[float | None]:
        return await asyncio.gather(*(_connect(t) for t in targets))

    out: list[tuple[int, int, int, int, float]] = []
    for t, ms in zip(targets, asyncio.run(run()), strict=True):
        out.append((tick_us, t.device_id, MetricKind.AVAILABLE, 0, 0.0 if ms is None else 1.0))
        if ms is not None:
            out.append((tick_us, t.device_id, MetricKind.TCP_CONNECT_MS, 0, ms))
    return MetricRows.from_tuples(out)
