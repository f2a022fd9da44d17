"""Sliding-window rate limits shared by every process: a log of granted events per key in Redis.

Each granted event is a member of a sorted set scored by its time in ms; an event is granted while
fewer than ``limit`` members of *every* key it counts against are younger than the window, and is
then recorded in all of them. The check and the insert run in one Lua script on Redis's own clock,
so processes on several machines (and with skewed clocks) share one count and two of them can never
both take the last slot. Unlike a fixed window, it never lets 2x the limit through around a window
boundary. Used for notification channels (one key each) and logins (one key per user and one per
client address).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

__all__ = ["SlidingWindow", "WINDOW_MS"]

WINDOW_MS = 60_000  # limits are per minute

# KEYS: the sorted sets the event counts against. ARGV: limit, window ms, a unique member.
# Returns 0 when granted (recorded in every key), else the ms until every key has a free slot.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local freeing = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    wait = math.max(wait, 1, tonumber(freeing[2]) + window - now)
  end
end
if wait > 0 then
  return wait
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return 0
"""


class SlidingWindow:
    """``acquire([name, ...], limit)`` records an event against every name, or says how long to wait.

    ``client``: a redis.Redis. Keys are ``<prefix>:<name>``.
    """

    def __init__(self, client: Any, *, prefix: str, window_ms: int = WINDOW_MS) -> None:
        self.client = client
        self.prefix = prefix
        self.window_ms = window_ms
        self._script = client.register_script(_ACQUIRE)

    def key(self, name: object) -> str:
        return f"{self.prefix}:{name}"

    def acquire(self, names: Sequence[object], limit: int) -> int:
        """0 when the event may happen now (and is counted against every name); otherwise the
        milliseconds to wait before trying again (nothing is counted)."""
        keys = [self.key(n) for n in names]
        return int(self._script(keys=keys, args=[limit, self.window_ms, uuid.uuid4().hex]))
