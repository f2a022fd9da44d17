"""Probe failures are data: the latest outcome of each probe of each device, and its last error.

The probe path turns every probe it runs into a :class:`ProbeOutcome` (ICMP, SNMP, the TCP
fallback, TCP and HTTP service checks); the loader stores a batch's outcomes with :func:`record` in
the transaction that stores its metric rows. One row per (device, kind, check), ``check_id`` 0 for
the device itself as in the metrics' ifindex. A row only moves forward in time, so a redelivered
batch changes nothing and ``fail_streak`` counts each probe once.

Readers: :func:`probe_states` (every row of some devices, for ``netpulse devices show`` and the API)
and :func:`probe_health` (one state per device and kind, for a device grid)::

    health = probe_health(session, org_id, [device.id])
    snmp = health[device.id].get("snmp")
    if snmp is not None and not snmp.ok:
        print(snmp.reason, snmp.failing_since)   # "auth_failed (wrongDigest)", 2026-11-20 12:00 UTC
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["ProbeKind", "ProbeOutcome", "ProbeState", "Change", "record", "probe_states", "probe_health",
           "outcomes_to_message", "outcomes_from_message", "reason_text"]


class ProbeKind(StrEnum):
    ICMP = "icmp"
    SNMP = "snmp"
    TCP = "tcp"      # the TCP fallback when ICMP is not permitted (check 0), or a tcp service check
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What one probe of a device found at scheduled time ``time_us`` (epoch microseconds)."""

    device_id: int
    kind: str
    time_us: int
    ok: bool
    error: str | None = None     # why it failed: "timeout", "auth_failed", "connection refused", ...
    detail: str | None = None    # the agent's or library's words, e.g. "wrongDigest: ..."
    check_id: int = 0            # 0: the device itself; else service_checks.id

    @property
    def key(self) -> tuple[int, str, int]:
        return self.device_id, self.kind, self.check_id


def outcomes_to_message(outcomes: Iterable[ProbeOutcome]) -> list[list[Any]]:
    """A JSON-ready form for a Dramatiq message."""
    return [[o.device_id, o.kind, o.check_id, o.time_us, o.ok, o.error, o.detail] for o in outcomes]


def outcomes_from_message(items: Iterable[Sequence[Any]]) -> list[ProbeOutcome]:
    try:
        return [ProbeOutcome(int(d), str(k), int(t), bool(ok), e, x, int(c)) for d, k, c, t, ok, e, x in items]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed probe outcomes in message: {exc}") from None


@dataclass(frozen=True, slots=True)
class Change:
    """A probe whose state changed with this batch: it started failing, failed differently, or recovered."""

    device_id: int
    device: str
    kind: str
    check_id: int
    ok: bool
    error: str | None
    detail: str | None
    fail_streak: int
    previous_error: str | None    # the failure before this one (None: it was ok, or never probed)

    @property
    def recovered(self) -> bool:
        return self.ok


_TS = "'epoch'::timestamptz + {0} * interval '1 microsecond'"

_RECORD = f"""
WITH v AS (
    SELECT device_id, kind, check_id, {_TS.format('t_us')} AS at, ok, error, detail
    FROM unnest(%s::integer[], %s::text[], %s::integer[], %s::bigint[], %s::boolean[], %s::text[], %s::text[])
         AS u(device_id, kind, check_id, t_us, ok, error, detail)
), prev AS (
    SELECT p.device_id, p.kind, p.check_id, p.ok, p.error FROM probe_status p
    JOIN v ON (v.device_id, v.kind, v.check_id) = (p.device_id, p.kind, p.check_id)
), up AS (
    INSERT INTO probe_status AS p (device_id, kind, check_id, checked_at, ok, error, detail, last_error_at,
                                   last_success_at, failing_since, fail_streak)
    SELECT v.device_id, v.kind, v.check_id, v.at, v.ok, v.error, v.detail,
           CASE WHEN v.ok THEN NULL ELSE v.at END, CASE WHEN v.ok THEN v.at END,
           CASE WHEN v.ok THEN NULL ELSE v.at END, CASE WHEN v.ok THEN 0 ELSE 1 END
    FROM v JOIN devices d ON d.id = v.device_id       -- a device deleted since it was probed: nothing to record
    ORDER BY v.device_id, v.kind, v.check_id          -- one lock order for concurrent batches
    ON CONFLICT (device_id, kind, check_id) DO UPDATE SET
        checked_at = EXCLUDED.checked_at,
        ok = EXCLUDED.ok,
        error = CASE WHEN EXCLUDED.ok THEN p.error ELSE EXCLUDED.error END,
        detail = CASE WHEN EXCLUDED.ok THEN p.detail ELSE EXCLUDED.detail END,
        last_error_at = CASE WHEN EXCLUDED.ok THEN p.last_error_at ELSE EXCLUDED.checked_at END,
        last_success_at = CASE WHEN EXCLUDED.ok THEN EXCLUDED.checked_at ELSE p.last_success_at END,
        failing_since = CASE WHEN EXCLUDED.ok THEN NULL ELSE coalesce(p.failing_since, EXCLUDED.checked_at) END,
        fail_streak = CASE WHEN EXCLUDED.ok THEN 0 ELSE p.fail_streak + 1 END
    WHERE p.checked_at < EXCLUDED.checked_at          -- redelivered or older: no change
    RETURNING p.device_id, p.kind, p.check_id, p.ok, p.error, p.detail, p.fail_streak
)
SELECT up.device_id, d.name, up.kind, up.check_id, up.ok, up.error, up.detail, up.fail_streak, prev.ok, prev.error
FROM up JOIN devices d ON d.id = up.device_id
LEFT JOIN prev ON (prev.device_id, prev.kind, prev.check_id) = (up.device_id, up.kind, up.check_id)
"""


def record(conn: psycopg.Connection, outcomes: Iterable[ProbeOutcome]) -> list[Change]:
    """Store outcomes (the latest per probe wins) and return the probes whose state changed.

    Call it inside the transaction that stores the batch's metric rows.
    """
    latest: dict[tuple[int, str, int], ProbeOutcome] = {}
    for o in outcomes:
        if o.key not in latest or latest[o.key].time_us < o.time_us:
            latest[o.key] = o
    if not latest:
        return []
    os = list(latest.values())
    rows = conn.execute(_RECORD, (
        [o.device_id for o in os], [str(o.kind) for o in os], [o.check_id for o in os], [o.time_us for o in os],
        [o.ok for o in os], [None if o.ok else o.error for o in os], [None if o.ok else o.detail for o in os],
    )).fetchall()
    changes = []
    for device_id, name, kind, check_id, ok, error, detail, streak, was_ok, was_error in rows:
        if ok and was_ok is not False:
            continue   # still ok, or ok at its first probe
        if not ok and was_ok is False and was_error == error:
            continue   # failing as before
        changes.append(Change(device_id, name, kind, check_id, ok, error, detail, streak,
                              was_error if was_ok is False else None))
    return sorted(changes, key=lambda c: (c.device_id, c.kind, c.check_id))


# --- reads --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProbeState:
    """The stored state of one probe of one device."""

    device_id: int
    kind: str
    check_id: int
    check_name: str | None       # the service check's name; None for the device's own probes
    ok: bool
    error: str | None            # the latest failure (also after a success since)
    detail: str | None
    checked_at: datetime
    last_error_at: datetime | None
    last_success_at: datetime | None
    failing_since: datetime | None
    fail_streak: int

    @property
    def reason(self) -> str | None:
        """The latest failure in a few words: ``auth_failed (wrongDigest)``, ``connection refused``."""
        return reason_text(self.kind, self.error, self.detail)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (times as ISO 8601 with 'Z')."""
        def iso(ts: datetime | None) -> str | None:
            return ts.isoformat().replace("+00:00", "Z") if ts is not None else None

        return {"kind": self.kind, "check_id": self.check_id or None, "check": self.check_name,
                "status": "ok" if self.ok else "failing", "error": self.error, "reason": self.reason,
                "detail": self.detail, "checked_at": iso(self.checked_at), "last_error_at": iso(self.last_error_at),
                "last_success_at": iso(self.last_success_at), "failing_since": iso(self.failing_since),
                "consecutive_failures": self.fail_streak}


def reason_text(kind: str, error: str | None, detail: str | None) -> str | None:
    """A failure in a few words; an SNMP one names the agent's report (``auth_failed (wrongDigest)``).

        >>> reason_text("snmp", "auth_failed", "wrongDigest: Wrong SNMP PDU digest")
        'auth_failed (wrongDigest)'
        >>> reason_text("http", "connection refused", None)
        'connection refused'
    """
    if error is None:
        return None
    if detail and kind == ProbeKind.SNMP:
        word = detail.split(":", 1)[0].strip()
        if word and " " not in word and word != error:
            return f"{error} ({word})"
    return error


_STATES = """
SELECT p.device_id, p.kind, p.check_id, c.name, p.ok, p.error, p.detail, p.checked_at, p.last_error_at,
       p.last_success_at, p.failing_since, p.fail_streak
FROM probe_status p
JOIN devices d ON d.id = p.device_id
LEFT JOIN service_checks c ON c.id = p.check_id AND c.device_id = p.device_id
WHERE d.organization_id = %(org)s
  AND (%(ids)s::integer[] IS NULL OR p.device_id = ANY(%(ids)s::integer[]))
  AND (p.check_id = 0 OR c.id IS NOT NULL)           -- a removed check's last state goes with it
ORDER BY p.device_id, array_position(ARRAY['icmp', 'tcp', 'snmp', 'http']::varchar[], p.kind), p.check_id
"""


def probe_states(db: Session | psycopg.Connection, org_id: uuid.UUID,
                 device_ids: Iterable[int] | None = None) -> dict[int, list[ProbeState]]:
    """Every stored probe state of the organization's devices (or of ``device_ids`` among them), by
    device; ICMP and the TCP fallback first, then SNMP, then the service checks."""
    params = {"org": org_id, "ids": sorted({int(d) for d in device_ids}) if device_ids is not None else None}
    if isinstance(db, psycopg.Connection):
        rows: Iterable[Any] = db.execute(_STATES, params).fetchall()
    else:
        rows = db.connection().exec_driver_sql(_STATES, params).all()
    out: dict[int, list[ProbeState]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(ProbeState(*r))
    return out


def probe_health(db: Session | psycopg.Connection, org_id: uuid.UUID,
                 device_ids: Iterable[int] | None = None) -> dict[int, dict[str, ProbeState]]:
    """One state per device and probe kind, for a device grid: per kind, a failing probe (the one
    failing longest) wins over the ones that pass; otherwise the most recently checked."""
    out: dict[int, dict[str, ProbeState]] = {}
    for device_id, states in probe_states(db, org_id, device_ids).items():
        per_kind: dict[str, ProbeState] = {}
        for s in states:
            held = per_kind.get(s.kind)
            if held is None or _worse(s, held):
                per_kind[s.kind] = s
        out[device_id] = per_kind
    return out


def _worse(a: ProbeState, b: ProbeState) -> bool:
    if a.ok != b.ok:
        return not a.ok
    if not a.ok:
        return (a.failing_since or a.checked_at) < (b.failing_since or b.checked_at)
    return a.checked_at > b.checked_at
