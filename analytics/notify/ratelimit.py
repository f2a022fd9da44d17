"""Per-channel rate limits shared by every worker process: the core's sliding window in Redis
(:mod:`netpulse.ratelimit`), one key per channel."""

from __future__ import annotations

from typing import Any

from netpulse.ratelimit import WINDOW_MS, SlidingWindow

__all__ = ["RateLimiter", "WINDOW_MS"]


class RateLimiter:
    """``acquire(channel_id, limit)`` takes a slot or says how long to wait. ``client``: a redis.Redis."""

    def __init__(self, client: Any, *, prefix: str = "netpulse:notify:rate", window_ms: int = WINDOW_MS) -> None:
        self.client = client
        self._window = SlidingWindow(client, prefix=prefix, window_ms=window_ms)

    def key(self, channel_id: int) -> str:
        return self._window.key(channel_id)

    def acquire(self, channel_id: int, limit: int) -> int:
        """0 when a send may go now (and is counted); otherwise the milliseconds to wait before trying again."""
        return self._window.acquire([channel_id], limit)
