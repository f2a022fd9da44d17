"""Event counters shared by every worker process: one Redis hash, read by /metrics and operators.

Counted: messages dropped as too old to matter (``expired:<actor>``), messages dead-lettered after
their retries (``dead_lettered:<actor>``), probes dropped because their slot had passed
(``probes_stale``), organizations whose periodic job failed (``organization_failed:<job>``).
Counting is best effort: a Redis outage loses counts, never the work being counted.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KEY", "incr", "snapshot"]

KEY = "netpulse:counters"


def incr(client: Any, name: str, n: int = 1) -> None:
    """Add ``n`` to counter ``name``; a missing client or an unreachable Redis counts nothing."""
    if client is None or n == 0:
        return
    try:
        client.hincrby(KEY, name, n)
    except Exception:  # noqa: S110 - the count is advice; the caller's work must go on
        pass


def snapshot(client: Any) -> dict[str, int]:
    """Every counter, by name."""
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in client.hgetall(KEY).items()}
