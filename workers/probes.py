"""One probe tick for a batch of devices: simulated ones from the fleet, real ones over the network.

Real devices get ICMP (or a TCP connect when ICMP is not permitted) and, when they have SNMP
settings, an SNMP poll, both on one event loop. SNMP counters become rates against the previous
poll's counters, which live in Redis (one key per device), so any worker can take the next poll.
Besides the metric rows, every probe's outcome (its failure reason included) goes to the loader,
which stores it with the rows (``netpulse.probe_status``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from ingest import outcomes as outcome_of
from ingest.counters import CounterState, snmp_rows
from ingest.http import CheckResults, async_run_checks, check_rows, load_check_targets
from ingest.icmp import PingTarget, async_ping_many, ping_result_rows
from ingest.interfaces import upsert_interfaces
from ingest.rows import MetricRows
from ingest.snmp import SnmpPoll, SnmpTarget
from ingest.tcp import TcpTarget, async_connect_many, tcp_rows
from netpulse import crypto
from netpulse.probe_status import ProbeOutcome
from workers.runtime import Runtime

log = structlog.get_logger("netpulse.workers.probes")

COUNTER_PREFIX = "netpulse:snmp-counters:"
COUNTER_TTL_S = 86_400   # a device unpolled for a day starts over (its first poll yields no rate)

_SNMP_TARGETS = """
SELECT d.id, d.address, d.snmp_port, coalesce(c.version, d.snmp_version) AS version,
       coalesce(c.community, d.snmp_community) AS community, c.username, c.auth_protocol, c.auth_password,
       c.priv_protocol, c.priv_password, coalesce(d.probe_timeout_s, %s) AS timeout_s
FROM devices d LEFT JOIN snmp_credentials c ON c.id = d.snmp_credential_id
WHERE d.id = ANY(%s) AND NOT d.simulated AND coalesce(c.version, d.snmp_version) IS NOT NULL
"""


def stale(devices: list[dict[str, Any]], tick_us: int, now_us: int | None = None) -> list[dict[str, Any]]:
    """The devices whose probe for ``tick_us`` is already older than their interval (the queue was
    behind): probing them now would overlap the next slot's probe."""
    now_us = now_us if now_us is not None else time.time_ns() // 1000
    return [d for d in devices if now_us - tick_us > d.get("interval_s", 60) * 1_000_000]


@dataclass
class Probed:
    """A tick's metric rows and the outcome of every probe that made them."""

    rows: MetricRows = field(default_factory=MetricRows.empty)
    outcomes: list[ProbeOutcome] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: list[Probed]) -> Probed:
        return cls(MetricRows.concat([p.rows for p in parts]), [o for p in parts for o in p.outcomes])


def simulated_rows(rt: Runtime, devices: list[dict[str, Any]], tick_us: int) -> MetricRows:
    if not devices or rt.fleet is None:
        return MetricRows.empty()
    index = rt.fleet_index
    known = [d for d in devices if d["name"] in index]
    if not known:
        return MetricRows.empty()
    ids = np.zeros(len(rt.fleet.devices), np.int32)
    for d in known:
        ids[index[d["name"]]] = d["id"]
    return rt.fleet.sample(np.array([tick_us], np.int64), device_indices=np.array([index[d["name"]] for d in known]),
                           device_ids=ids)


def snmp_targets(rt: Runtime, device_ids: list[int]) -> list[SnmpTarget]:
    """SNMP targets of the devices that have SNMP settings (inline or a credential profile); the
    secrets are stored encrypted and decrypted here, in memory only."""
    if not device_ids:
        return []
    targets = []
    with rt.connection() as conn:
        for r in conn.execute(_SNMP_TARGETS, (rt.probe_timeout_s, device_ids)).fetchall():
            try:
                targets.append(SnmpTarget(r[0], r[1], port=r[2], version=r[3], community=crypto.decrypt(r[4]),
                                          username=r[5], auth_protocol=r[6], auth_password=crypto.decrypt(r[7]),
                                          priv_protocol=r[8], priv_password=crypto.decrypt(r[9]),
                                          timeout_s=float(r[10])))
            except Exception as exc:  # a device with unusable settings must not stop the batch
                log.warning("netpulse.workers.snmp_target_invalid", device_id=r[0], error=str(exc))
    return targets


def load_counters(client: Any, device_ids: list[int]) -> CounterState:
    state = CounterState()
    if client is None or not device_ids:
        return state
    for raw in client.mget([f"{COUNTER_PREFIX}{d}" for d in device_ids]):
        if raw is None:
            continue
        try:
            part = CounterState.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            continue  # another version's state: start over for that device
        for (d, i, c), s in part.items():
            state.put(d, i, c, s)
    return state


def save_counters(client: Any, state: CounterState, device_ids: list[int]) -> None:
    if client is None or not device_ids:
        return
    by_device: dict[int, list[list[Any]]] = {d: [] for d in device_ids}
    for entry in state.to_dict()["counters"]:
        if entry[0] in by_device:
            by_device[entry[0]].append(entry)
    pipe = client.pipeline(transaction=False)
    for d, counters in by_device.items():
        if counters:
            pipe.set(f"{COUNTER_PREFIX}{d}", json.dumps({"version": state.to_dict()["version"], "counters": counters}),
                     ex=COUNTER_TTL_S)
    pipe.execute()


def network_probe(rt: Runtime, devices: list[dict[str, Any]], tick_us: int) -> Probed:
    """ICMP (or TCP), SNMP and the devices' service checks (TCP, HTTP(S)), all concurrently on one
    event loop; interfaces upserted, counters kept; every probe's outcome."""
    if not devices:
        return Probed()
    ids = [d["id"] for d in devices]
    snmp = snmp_targets(rt, ids)
    with rt.connection() as conn:
        checks = load_check_targets(conn, ids)

    async def reachability() -> Probed:
        if rt.icmp_allowed:
            targets = [PingTarget(d["id"], d["address"], d.get("count", 3), d.get("timeout_s", 2.0)) for d in devices]
            results = await async_ping_many(targets, privileged=rt.icmp_privileged, pps=rt.icmp_pps,
                                            resolver=rt.resolver)
            return Probed(ping_result_rows(results, tick_us), outcome_of.from_pings(results, tick_us))
        tcp = [TcpTarget(d["id"], d["address"], rt.tcp_fallback_port, d.get("timeout_s", 2.0)) for d in devices]
        connected = await async_connect_many(tcp)
        return Probed(tcp_rows(connected, tick_us), outcome_of.from_tcp(connected, tick_us))

    async def everything() -> tuple[Probed, list[SnmpPoll], CheckResults]:
        return await asyncio.gather(reachability(), rt.snmp_poller.poll_async(snmp), async_run_checks(checks))

    reached, polls, results = asyncio.run(everything())
    probed = Probed(MetricRows.concat([reached.rows, check_rows(results, tick_us)]),
                    [*reached.outcomes, *outcome_of.from_checks(results, tick_us),
                     *outcome_of.from_snmp(polls, tick_us)])
    if not snmp:
        return probed
    snmp_ids = [t.device_id for t in snmp]
    state = load_counters(rt.redis, snmp_ids)
    probed.rows = MetricRows.concat([probed.rows, snmp_rows(polls, state, tick_us=tick_us)])
    save_counters(rt.redis, state, snmp_ids)
    with rt.connection() as conn:
        upsert_interfaces(conn, polls)
    # Failures are logged by the loader once per change of state (netpulse.ingest.probe_failing).
    return probed


def network_rows(rt: Runtime, devices: list[dict[str, Any]], tick_us: int) -> MetricRows:
    """The metric rows of :func:`network_probe`."""
    return network_probe(rt, devices, tick_us).rows


def probe(rt: Runtime, devices: list[dict[str, Any]], tick_us: int) -> Probed:
    """Rows and outcomes of one tick for a batch of devices (simulated devices: ICMP outcomes from
    their availability rows)."""
    simulated = simulated_rows(rt, [d for d in devices if d["simulated"]], tick_us)
    return Probed.concat([Probed(simulated, outcome_of.from_availability(simulated)),
                          network_probe(rt, [d for d in devices if not d["simulated"]], tick_us)])
