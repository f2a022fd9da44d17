"""Probe results as outcomes (``netpulse.probe_status``): what each prober found, failures included.

Each prober keeps its own result type; these turn them into one shape the loader stores beside the
metric rows, stamped with the batch's tick::

    outcomes = [*from_pings(pings, tick_us), *from_snmp(polls, tick_us), *from_checks(checks, tick_us)]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ingest.http import CheckResults, HttpResult
from ingest.icmp import PingResult
from ingest.rows import MetricRows
from ingest.snmp import SnmpPoll
from ingest.tcp import TcpResult
from netpulse.metrics import MetricKind
from netpulse.probe_status import ProbeKind, ProbeOutcome

__all__ = ["from_pings", "from_tcp", "from_http", "from_checks", "from_snmp", "from_availability"]


def from_pings(results: Iterable[PingResult], tick_us: int) -> list[ProbeOutcome]:
    """ICMP: ok when any echo was answered; otherwise the ICMP error met, or no reply."""
    out = []
    for r in results:
        if r.alive:
            out.append(ProbeOutcome(r.device_id, ProbeKind.ICMP, tick_us, True))
        else:
            reason = r.error or (f"no reply to {r.sent} echo request{'s' if r.sent != 1 else ''}" if r.sent
                                 else "not sent")
            out.append(ProbeOutcome(r.device_id, ProbeKind.ICMP, tick_us, False, reason))
    return out


def from_tcp(results: Iterable[TcpResult], tick_us: int) -> list[ProbeOutcome]:
    """TCP connects: the fallback probe (check 0) or a tcp service check."""
    return [ProbeOutcome(r.target.device_id, ProbeKind.TCP, tick_us, r.ok, None if r.ok else r.reason,
                         check_id=r.target.check_id or 0) for r in results]


def from_http(results: Iterable[HttpResult], tick_us: int) -> list[ProbeOutcome]:
    return [ProbeOutcome(r.target.device_id, ProbeKind.HTTP, tick_us, r.ok, None if r.ok else r.reason,
                         check_id=r.target.check_id) for r in results]


def from_checks(results: CheckResults, tick_us: int) -> list[ProbeOutcome]:
    return [*from_http(results.http, tick_us), *from_tcp(results.tcp, tick_us)]


def from_snmp(polls: Iterable[SnmpPoll], tick_us: int) -> list[ProbeOutcome]:
    """SNMP: the poller's reason ("auth_failed", "timeout", ...) and the agent's words as detail."""
    return [ProbeOutcome(p.device_id, ProbeKind.SNMP, tick_us, p.ok, None if p.ok else (p.error or "error"),
                         None if p.ok else p.detail) for p in polls]


def from_availability(rows: MetricRows) -> list[ProbeOutcome]:
    """ICMP outcomes from availability rows (the simulated fleet, which has no prober results)."""
    mask = (rows.metric_id == MetricKind.AVAILABLE) & (rows.ifindex == 0)
    if not mask.any():
        return []
    return [ProbeOutcome(int(d), ProbeKind.ICMP, int(t), bool(v > 0), None if v > 0 else "no reply")
            for d, t, v in zip(rows.device_id[mask].tolist(), rows.time_us[mask].tolist(),
                               np.asarray(rows.value[mask]).tolist(), strict=True)]
