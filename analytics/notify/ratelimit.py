"""Per-channel rate limits shared by every worker process: a sliding-window log in Redis.

Each granted send is a member of a sorted set scored by its time in ms; a send is granted while fewer
than ``limit`` members are younger than the window. The check and the insert run in one Lua script
on Redis's own clock, so workers on several machines (and with skewed clocks) share one count and
two of them can never both take the last slot. Unlike a fixed window, it never lets 2x the limit
through around a window boundary.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["RateLimiter", "WINDOW_MS"]

WINDOW_MS = 60_000  # limits are per minute

# KEYS[1]: the channel's sorted set. ARGV: limit, window ms, a unique member.
# Returns 0 when granted, else the ms until enough old sends leave the window.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local freeing = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return math.max(1, tonumber(freeing[2]) + window - now)
"""


class RateLimiter:
    """``acquire(channel_id, limit)`` takes a slot or says how long to wait. ``client``: a redis.Redis."""

    def __init__(self, client: Any, *, prefix: str = "netpulse:notify:rate", window_ms: int = WINDOW_MS) -> None:
        self.client = client
        self.prefix = prefix
        self.window_ms = window_ms
        self._script = client.register_script(_ACQUIRE)

    def key(self, channel_id: int) -> str:
        return f"{self.prefix}:{channel_id}"

    def acquire(self, channel_id: int, limit: int) -> int:
        """0 when a send may go now (and is counted); otherwise the milliseconds to wait before trying again."""
        return int(self._script(keys=[self.key(channel_id)], args=[limit, self.window_ms, uuid.uuid4().hex]))
