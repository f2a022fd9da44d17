"""A leader lease in Redis: of several processes that may run a singleton (the scheduler), one does.

The leader holds ``netpulse:leader:<name>`` (``SET ... PX ttl``) and renews it every third of the
ttl; the others try to take it once a second and wait. The key is taken or renewed by one Lua
script: it is set when free or already ours, so a leader whose Redis restarted empty takes it back.

Failure modes:
- the leader dies (kill -9, a lost host): its key expires at most ``ttl`` after its last renewal,
  i.e. within two thirds of a ttl after its death, and a waiting process takes it within a second;
- the leader stops cleanly: it deletes the key (compare-and-delete), and a waiting one takes over
  within a second;
- Redis is unreachable: the leader believes in its lease only until ``ttl`` after its last
  successful renewal began, then stops acting; nobody leads until Redis answers again (with Redis
  away the scheduler could not hand out probe leases either);
- a leader that stalls longer than ``ttl`` (a frozen VM) may find another leader when it wakes; its
  renewal then fails and it stops acting. Between its wake-up and that renewal it may act once more.

:func:`leader_status` reads the lease for health checks.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from workers.outage import OutageLog

__all__ = ["LeaderLease", "LeaderStatus", "leader_status", "SCHEDULER", "PREFIX"]

log = structlog.get_logger("netpulse.workers.leader")

PREFIX = "netpulse:leader:"
SCHEDULER = "scheduler"

# Take the key when it is free or ours; renew it when ours. 1: this token holds it; 0: another does.
_HOLD = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaderLease:
    """``hold()`` before each unit of work: True while this process is the leader."""

    def __init__(self, client: Any, name: str = SCHEDULER, *, ttl_ms: int = 15_000,
                 identity: str | None = None) -> None:
        if ttl_ms < 1000:
            raise ValueError("a leader lease lasts at least 1000 ms")
        self.client = client
        self.key = PREFIX + name
        self.ttl_ms = ttl_ms
        self.token = identity or _identity()
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)
        self._valid_until = 0.0  # monotonic: until when the lease is surely ours
        self._renew_at = 0.0
        self._waiting_for: str | None = None
        self.outage = OutageLog(log, f"redis (leader lease {name})")

    @property
    def held(self) -> bool:
        return time.monotonic() < self._valid_until

    def hold(self) -> bool:
        """Take or renew the lease when due; True while this process may act as the leader."""
        now = time.monotonic()
        if now < self._renew_at:
            return True
        was = self.held
        try:
            ours = bool(self._hold(keys=[self.key], args=[self.token, self.ttl_ms]))
        except Exception as exc:  # Redis unreachable: keep what we surely have, no more
            self.outage.failed(exc)
            if was and not self.held:
                log.warning("netpulse.workers.leader_lost", key=self.key, reason="lease not renewed")
            return self.held
        self.outage.ok()
        if ours:
            # The key expires ttl after Redis set it, which is after ``now``: ours until now + ttl.
            self._valid_until = now + self.ttl_ms / 1000
            self._renew_at = now + self.ttl_ms / 3000
            if not was:
                log.info("netpulse.workers.leader_acquired", key=self.key, holder=self.token, ttl_ms=self.ttl_ms)
            self._waiting_for = None
            return True
        self._valid_until = self._renew_at = 0.0
        if was:
            log.warning("netpulse.workers.leader_lost", key=self.key, reason="another process holds it")
        holder = self._holder()
        if holder != self._waiting_for:
            log.info("netpulse.workers.leader_waiting", key=self.key, holder=holder)
            self._waiting_for = holder
        return False

    def _holder(self) -> str | None:
        try:
            raw = self.client.get(self.key)
        except Exception:
            return None
        return raw.decode() if isinstance(raw, bytes) else raw

    def release(self) -> None:
        """Give the lease up (a clean stop), so a waiting process takes over at once."""
        self._valid_until = self._renew_at = 0.0
        try:
            self._release(keys=[self.key], args=[self.token])
        except Exception as exc:  # it expires by itself
            log.info("netpulse.workers.leader_release_failed", key=self.key, error=str(exc))


@dataclass(frozen=True, slots=True)
class LeaderStatus:
    name: str
    holder: str | None  # "<host>:<pid>:<random>" of the leader; None: nobody leads now
    ttl_ms: int | None  # how long the lease lasts unless renewed

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "leader": self.holder, "lease_ttl_ms": self.ttl_ms,
                "status": "ok" if self.holder else "no_leader"}


def leader_status(client: Any, name: str = SCHEDULER) -> LeaderStatus:
    """Who holds the ``name`` lease, read from Redis (raises the client's error when Redis is away)."""
    pipe = client.pipeline(transaction=False)
    pipe.get(PREFIX + name)
    pipe.pttl(PREFIX + name)
    raw, ttl = pipe.execute()
    holder = raw.decode() if isinstance(raw, bytes) else raw
    return LeaderStatus(name, holder, int(ttl) if holder is not None and ttl is not None and ttl >= 0 else None)
