"""ICMP probing (ingest.icmp) against real targets, cross-checked with fping.

Loopback: the whole of 127.0.0.0/8 answers on Linux, and so does ::1. The test network is
``tests/netlab.py``'s: network namespaces joined to this host by veth pairs, one host each (fast; slow,
20 +- 5 ms; lossy, 10 %; down; unreachable, answered with ICMP host-unreachable). Every address is
checked to route into its link before anything is sent (no probe can leave the machine), and everything
is removed at teardown, also on failure. The test network needs root and ``ip netns``: without them its
tests skip locally and fail in CI. ``bench/probe.py`` reuses ``NetnsLab`` and ``fping_summary`` from here.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ingest.icmp import PingTarget, Resolver, async_ping_many, icmp_permitted, ping_many, ping_rows
from netpulse.errors import ProbeError, ValidationError
from netpulse.metrics import MetricKind
from tests.netlab import NetnsLab, ip, needs_root, netns_exec, netns_lab, unavailable

ROOT = Path(__file__).resolve().parent.parent
RAW_OK = icmp_permitted(True)
needs_raw = pytest.mark.skipif(not RAW_OK, reason="raw ICMP sockets need root or CAP_NET_RAW")

# --- fping ---------------------------------------------------------------------------------------------

FPING_SUMMARY = re.compile(r"^(\S+)\s+:\s+xmt/rcv/%loss = (\d+)/(\d+)/(\d+)%"
                           r"(?:, min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+))?", re.MULTILINE)


@dataclass(frozen=True)
class FpingSummary:
    sent: int
    received: int
    loss_pct: float
    avg_ms: float | None


def fping_summary(stderr: str) -> dict[str, FpingSummary]:
    """fping -q -c N's per-host summary lines, by address."""
    return {m[1]: FpingSummary(int(m[2]), int(m[3]), float(m[4]), float(m[6]) if m[6] else None)
            for m in FPING_SUMMARY.finditer(stderr)}


def start_fping(target: PingTarget) -> subprocess.Popen[str]:
    """fping with the target's count, period and timeout (-t, or slow echoes count as lost)."""
    return subprocess.Popen(["fping", "-q", "-c", str(target.count), "-p", str(round(target.interval_s * 1000)),
                             "-t", str(round(target.timeout_s * 1000)), target.address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def lab() -> Iterator[NetnsLab]:
    with netns_lab("fping") as built:
        yield built


# --- loopback ------------------------------------------------------------------------------------------

@needs_raw
def test_loopback_v4_and_v6_answer() -> None:
    addresses = ["127.0.0.1", "127.0.0.2", "127.1.2.3", "127.255.255.254", "::1"]
    results = ping_many([PingTarget(i, a, count=3, interval_s=0.01, timeout_s=1.0) for i, a in enumerate(addresses)])
    assert [r.address for r in results] == addresses
    for r in results:
        assert (r.sent, r.received, r.loss_pct, r.error) == (3, 3, 0.0, None), r
        assert r.alive and len(r.rtts) == 3
        assert r.min_ms is not None and r.avg_ms is not None and r.max_ms is not None and r.jitter_ms is not None
        assert 0 < r.min_ms <= r.avg_ms <= r.max_ms < 5.0
        assert r.jitter_ms >= 0 and r.resolved_address == r.address and r.resolve_ms is None


@needs_raw
def test_two_hundred_loopback_targets_in_one_call() -> None:
    """IPv4 across 127/8, ::1, repeats of one address and a host name: each echo finds its own target."""
    v4 = [f"127.{i * 37 % 256}.{i * 11 % 256}.{i % 254 + 1}" for i in range(170)]
    addresses = v4 + ["::1"] * 15 + ["127.0.0.1"] * 10 + ["localhost"] * 5
    assert len(addresses) == 200 and len(set(v4)) == 170
    targets = [PingTarget(i, a, count=2, interval_s=0.02, timeout_s=1.0) for i, a in enumerate(addresses)]
    start = time.perf_counter()
    results = ping_many(targets)
    elapsed = time.perf_counter() - start
    assert [r.device_id for r in results] == list(range(200))
    assert all(r.alive and r.received == 2 and r.loss_pct == 0.0 for r in results), \
        [r for r in results if r.loss_pct][:3]
    assert max(r.max_ms or 0.0 for r in results) < 5.0
    assert 0.02 <= elapsed < 1.0, "two echoes 20 ms apart; all answered, so no waiting for timeouts"
    by_name = [r for r in results if r.address == "localhost"]
    assert {r.resolved_address for r in by_name} <= {"127.0.0.1", "::1"}
    assert all(r.resolve_ms is not None and r.resolve_ms > 0 for r in by_name)
    assert len({r.resolve_ms for r in by_name}) == 1, "a name is looked up once per call"


@needs_raw
def test_count_interval_and_pace_are_kept() -> None:
    start = time.perf_counter()
    [r] = ping_many([PingTarget(1, "127.0.0.1", count=5, interval_s=0.05, timeout_s=1.0)])
    assert r.received == 5 and time.perf_counter() - start >= 0.2   # 4 intervals between 5 echoes
    targets = [PingTarget(i, f"127.3.0.{i + 1}", count=1, timeout_s=1.0) for i in range(200)]
    start = time.perf_counter()
    results = ping_many(targets, pps=1000)
    paced = time.perf_counter() - start
    assert all(r.received == 1 for r in results)
    assert 0.18 <= paced < 0.6, f"200 echoes at 1000/s took {paced:.3f} s"
    with pytest.raises(ValidationError, match="pps must be above 0"):
        ping_many(targets, pps=0)


ROLLOVER = textwrap.dedent("""\
    from ingest.icmp import PingTarget, ping_many
    targets = [PingTarget(i, f"127.9.{i // 250}.{i % 250 + 1}", count=100, interval_s=0.0, timeout_s=2.0)
               for i in range(700)]
    results = ping_many(targets)
    print(sum(r.sent for r in results), sum(r.received for r in results))
""")


@needs_root
def test_identifier_and_sequence_roll_over_past_65536_echoes() -> None:
    """70,000 echoes in one call (sequence numbers wrap, identifiers move on), as fast as they go. Run
    in a namespace of its own: every raw ICMP socket of a namespace receives every reply, and this
    burst would crowd those of other tests running at the same time (fping's, in the test network)."""
    ns = f"np-{os.getpid() % 1000:03d}{random.randrange(36 ** 3):03x}-roll"
    try:
        ip("netns", "add", ns)
    except RuntimeError as exc:
        unavailable(f"network namespaces are not available here (`ip netns add` failed): {exc}")
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", ROLLOVER], capture_output=True,
                                text=True, timeout=60, cwd=ROOT)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["70000", "70000"]


@needs_raw
def test_asyncio_driver_gives_the_same_answers() -> None:
    targets = [PingTarget(i, a, count=2, interval_s=0.01, timeout_s=1.0)
               for i, a in enumerate(["127.0.0.1", "127.0.0.7", "::1", "localhost"])]

    async def both() -> tuple[list[int], list[int]]:
        together = await asyncio.gather(async_ping_many(targets), async_ping_many(targets))
        return [r.received for r in together[0]], [r.received for r in together[1]]

    assert asyncio.run(both()) == ([2, 2, 2, 2], [2, 2, 2, 2])


@needs_raw
def test_a_send_failure_is_data_not_an_exception() -> None:
    """The limited broadcast address: the kernel refuses the send (no SO_BROADCAST), nothing leaves."""
    live, refused = ping_many([PingTarget(1, "127.0.0.1", count=1), PingTarget(2, "255.255.255.255", count=2)])
    assert live.alive
    assert (refused.sent, refused.received, refused.loss_pct, refused.alive) == (2, 0, 100.0, False)
    assert refused.error is not None and refused.error.startswith("send failed")
    assert refused.min_ms is None and refused.jitter_ms is None


@needs_raw
def test_ping_rows_are_the_metric_catalogue() -> None:
    rows = ping_rows([PingTarget(7, "127.0.0.1", count=2, interval_s=0.01),
                      PingTarget(8, "255.255.255.255", count=1)], 1_700_000_000_000_000)
    got = {(int(d), MetricKind(m)): v for d, m, v in zip(rows.device_id, rows.metric_id, rows.value, strict=True)}
    assert set(got) == {(7, k) for k in (MetricKind.AVAILABLE, MetricKind.ICMP_LOSS_PCT, MetricKind.ICMP_RTT_MS,
                                         MetricKind.ICMP_RTT_MIN_MS, MetricKind.ICMP_RTT_MAX_MS,
                                         MetricKind.ICMP_JITTER_MS)} | {(8, MetricKind.AVAILABLE),
                                                                        (8, MetricKind.ICMP_LOSS_PCT)}
    assert got[7, MetricKind.AVAILABLE] == 1.0 and got[7, MetricKind.ICMP_LOSS_PCT] == 0.0
    assert got[8, MetricKind.AVAILABLE] == 0.0 and got[8, MetricKind.ICMP_LOSS_PCT] == 100.0
    assert np.all(rows.time_us == 1_700_000_000_000_000)
    assert len(ping_rows([], 0)) == 0
    # A device given by name (localhost is in /etc/hosts: no DNS traffic) also records its lookup time.
    named = ping_rows([PingTarget(9, "localhost", count=1)], 1_700_000_000_000_000)
    lookup = named.value[named.metric_id == MetricKind.DNS_RESOLVE_MS]
    assert len(lookup) == 1 and lookup[0] >= 0.0


def test_targets_are_validated_with_field_keyed_messages() -> None:
    with pytest.raises(ValidationError) as info:
        PingTarget(3, "127.0.0.1", count=0, timeout_s=0, interval_s=-1)
    assert set(info.value.details) == {"count", "timeout_s", "interval_s"}
    assert "count must be at least 1, not 0" in info.value.message


def test_resolver_looks_names_up_once_per_ttl() -> None:
    resolver = Resolver(ttl_s=60)
    first = resolver.resolve(["localhost", "localhost", "127.0.0.1", "::1"])
    assert first["localhost"].address in ("127.0.0.1", "::1") and first["localhost"].ms is not None
    assert first["127.0.0.1"].ms is None and first["::1"].family is not None
    assert resolver.resolve(["localhost"])["localhost"] is first["localhost"], "cached for the ttl"
    assert Resolver().resolve(["localhost"])["localhost"] is not first["localhost"]


def test_a_socket_that_cannot_be_opened_raises_probe_error() -> None:
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        low, high = (int(x) for x in f.read().split())
    if low <= os.getgid() <= high:
        pytest.skip("ping_group_range lets this group open ICMP datagram sockets here")
    with pytest.raises(ProbeError, match="ping_group_range"):
        ping_many([PingTarget(1, "127.0.0.1")], privileged=False)
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return
    script = ("from ingest.icmp import PingTarget, ping_many\n"
              "try:\n    ping_many([PingTarget(1, '127.0.0.1')])\n"
              "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run(["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
    assert out.startswith("ProbeError cannot open an IPv4 ICMP raw socket") and "CAP_NET_RAW" in out, out


# --- the test network ----------------------------------------------------------------------------------

@needs_root
def test_network_hosts_agree_with_fping(lab: NetnsLab) -> None:
    """All five hosts in one call, while fping probes the same hosts with the same counts, periods and
    timeouts (its replies reach our raw socket too, and must not be taken for ours)."""
    h = lab.hosts
    targets = [PingTarget(1, h["fast"], count=20, interval_s=0.01, timeout_s=1.0),
               PingTarget(2, h["slow"], count=50, interval_s=0.02, timeout_s=1.0),
               PingTarget(3, h["lossy"], count=100, interval_s=0.01, timeout_s=0.5),
               PingTarget(4, h["down"], count=3, interval_s=0.1, timeout_s=0.5),
               PingTarget(5, h["unreachable"], count=3, interval_s=0.1, timeout_s=1.0)]
    fpings = [start_fping(t) for t in targets]
    start = time.perf_counter()
    fast, slow, lossy, down, unreachable = ping_many(targets)
    elapsed = time.perf_counter() - start
    theirs: dict[str, FpingSummary] = {}
    for proc in fpings:
        _, err = proc.communicate(timeout=30)
        theirs.update(fping_summary(err))
    assert elapsed < 2.0, "the hosts are probed concurrently"

    assert fast.received == 20 and fast.avg_ms is not None and fast.avg_ms < 5.0
    assert slow.loss_pct == 0.0 and slow.avg_ms is not None and 15.0 <= slow.avg_ms <= 30.0, slow
    assert slow.jitter_ms is not None and 2.0 <= slow.jitter_ms <= 12.0, slow   # expected 2*5/sqrt(pi) = 5.6
    assert lossy.alive and 2.0 <= lossy.loss_pct <= 25.0, lossy
    assert (down.sent, down.received, down.loss_pct, down.alive) == (3, 0, 100.0, False)
    assert (unreachable.received, unreachable.loss_pct) == (0, 100.0)
    assert unreachable.error == f"destination unreachable (host unreachable) from {h['fast']}"

    f = {role: theirs[h[role]] for role in ("fast", "slow", "lossy", "down", "unreachable")}
    # fping's raw socket (default buffer, no ICMP filter) also receives every other ICMP message of the
    # host, and drops replies when another run floods loopback at the same time: allow it a little loss.
    assert f["fast"].received >= 18 and f["slow"].received >= 45, (f["fast"], f["slow"])
    assert f["slow"].avg_ms is not None and 15.0 <= f["slow"].avg_ms <= 30.0
    assert abs(f["slow"].avg_ms - slow.avg_ms) < 5.0, (f["slow"], slow)
    assert 2.0 <= f["lossy"].loss_pct <= 25.0 and abs(f["lossy"].loss_pct - lossy.loss_pct) <= 18.0
    assert f["down"].loss_pct == 100.0 and f["unreachable"].loss_pct == 100.0


@needs_root
def test_network_rows_for_a_down_host(lab: NetnsLab) -> None:
    rows = ping_rows([PingTarget(41, lab.hosts["down"], count=2, interval_s=0.05, timeout_s=0.3),
                      PingTarget(42, lab.hosts["fast"], count=2, interval_s=0.05, timeout_s=0.3)], 0)
    by_device = {d: {MetricKind(m): v for dd, m, v in zip(rows.device_id, rows.metric_id, rows.value, strict=True)
                     if dd == d} for d in (41, 42)}
    assert by_device[41] == {MetricKind.AVAILABLE: 0.0, MetricKind.ICMP_LOSS_PCT: 100.0}
    assert by_device[42][MetricKind.AVAILABLE] == 1.0 and len(by_device[42]) == 6


UNPRIVILEGED = textwrap.dedent("""\
    import dataclasses, json, sys
    from ingest.icmp import PingTarget, icmp_permitted, ping_many
    addresses = ["127.0.0.1", "127.0.0.1", "127.0.0.9", "::1", sys.argv[1], "no-such-host.invalid"]
    targets = [PingTarget(i, a, count=3, interval_s=0.01, timeout_s=0.5) for i, a in enumerate(addresses)]
    print(json.dumps({"raw": icmp_permitted(True), "dgram": icmp_permitted(False),
                      "results": [dataclasses.asdict(r) for r in ping_many(targets, privileged=False)]}))
""")


@needs_root
def test_unprivileged_datagram_sockets_in_a_namespace(lab: NetnsLab) -> None:
    """In a namespace whose ping_group_range admits every group, a process without CAP_NET_RAW pings
    over ICMP datagram sockets: its loopback, ::1 and this host across the link. The kernel rewrites
    the identifier, so the repeated address is told apart by the payload. The namespace has no route
    to a name server, so the unknown name fails there without a packet leaving."""
    if shutil.which("setpriv") is None:
        unavailable("setpriv (util-linux) is needed to drop CAP_NET_RAW")
    ns = lab.ns["fast"]
    netns_exec(ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    result = subprocess.run(["ip", "netns", "exec", ns, "setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw",
                             sys.executable, "-c", UNPRIVILEGED, lab.gateway["fast"]],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["raw"] is False and out["dgram"] is True
    *answered, unknown = out["results"]
    for r in answered:
        assert (r["sent"], r["received"], r["loss_pct"], r["error"]) == (3, 3, 0.0, None), r
        assert r["max_ms"] < 5.0
    assert answered[3]["resolved_address"] == "::1" and answered[4]["address"] == lab.gateway["fast"]
    assert unknown["sent"] == 0 and unknown["loss_pct"] == 100.0 and unknown["resolved_address"] is None
    assert unknown["error"].startswith("cannot resolve 'no-such-host.invalid'") and unknown["resolve_ms"] >= 0
