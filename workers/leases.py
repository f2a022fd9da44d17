"""Probe leases in Redis: at most one probe of a device in flight, across every worker process.

The scheduler takes a lease per device when it enqueues the device's probe (``SET NX`` with an
expiry) and the probe actor gives it back when the rows are handed to the loader. A device whose
lease is still held at its next slot (its last probe is queued or running: workers are behind) is
not enqueued again; the slot is counted as late instead, so a backlog never grows. The expiry
bounds the damage of a lost message or a killed worker: the device is probed again after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PREFIX = "netpulse:probe-lease:"

# Delete only the keys still holding this tick's token: a lease that expired and was taken again
# for a later tick belongs to that later probe.
_RELEASE = """
local n = 0
for i, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        n = n + redis.call('DEL', key)
    end
end
return n
"""


class ProbeLeases:
    def __init__(self, client: Any, prefix: str = PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._release = client.register_script(_RELEASE)

    def _key(self, device_id: int) -> str:
        return f"{self.prefix}{device_id}"

    def acquire(self, device_ids: Sequence[int], tick_us: int, ttl_ms: int) -> list[bool]:
        """Take the lease of each device for ``tick_us``; False where it is held already."""
        if not device_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for d in device_ids:
            pipe.set(self._key(d), str(tick_us), nx=True, px=max(1, int(ttl_ms)))
        return [bool(ok) for ok in pipe.execute()]

    def release(self, device_ids: Sequence[int], tick_us: int) -> int:
        """Give back the leases taken for ``tick_us``; returns how many were still held."""
        if not device_ids:
            return 0
        return int(self._release(keys=[self._key(d) for d in device_ids], args=[str(tick_us)]))

    def held(self, device_ids: Sequence[int]) -> list[bool]:
        if not device_ids:
            return []
        return [v is not None for v in self.client.mget([self._key(d) for d in device_ids])]
