"""ICMP probing (ingest.icmp) against real targets, cross-checked with fping.

Loopback: the whole of 127.0.0.0/8 answers on Linux, and so does ::1. The test network: network
namespaces joined to this host by veth pairs, each link a /30 of 10.231.X.0/24 (X picked among the
/24s this host does not route) with addresses on its two ends only, and one host per namespace:

- fast:        the namespace's kernel answers;
- slow:        the kernel is silenced (icmp_echo_ignore_all) and a small raw-socket responder answers
               each echo after gauss(20, 5) ms (tc netem is not available in this kernel);
- lossy:       an nftables rule drops one echo request in ten (``numgen random mod 10 0``);
- down:        the namespace's end of the link is down: nothing answers, not even ARP;
- unreachable: an address routed into the fast namespace, whose ``unreachable`` route answers
               with ICMP host-unreachable.

Every address is checked to route into its link before anything is sent (no probe can leave the
machine), and the namespaces (with their links) are deleted at teardown, also on failure. The test
network needs root and ``ip netns``: without them its tests skip locally and fail in CI.
``bench/probe.py`` reuses ``NetnsLab`` and ``fping_summary``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import select
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ingest.icmp import PingTarget, Resolver, async_ping_many, icmp_permitted, ping_many, ping_rows
from netpulse.errors import ProbeError, ValidationError
from netpulse.metrics import MetricKind
from tests.conftest import CI

ROOT = Path(__file__).resolve().parent.parent
RAW_OK = icmp_permitted(True)
needs_raw = pytest.mark.skipif(not RAW_OK, reason="raw ICMP sockets need root or CAP_NET_RAW")
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="the namespace test network needs root and iproute2 (`ip netns`)")

SLOW_MS, SLOW_SD_MS, LOSS_ONE_IN = 20.0, 5.0, 10

# A user-space echo responder for a namespace whose kernel ignores echo requests: answers each after
# gauss(mean, sd) ms; exits when its stdin closes.
RESPONDER = textwrap.dedent("""\
    import heapq, os, random, select, socket, struct, sys, time
    mean_ms, sd_ms = float(sys.argv[1]), float(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(255, 1, struct.pack("=I", ~(1 << 8) & 0xFFFFFFFF))  # ICMP_FILTER: echo requests only

    def checksum(b):
        b += b"\\0" * (len(b) % 2)
        s = sum(struct.unpack(f"!{len(b) // 2}H", b))
        s = (s & 0xFFFF) + (s >> 16)
        return ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF

    print("ready", flush=True)
    pending, n = [], 0
    while True:
        wait = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        readable, _, _ = select.select([sock, 0], [], [], wait)
        if 0 in readable and not os.read(0, 64):
            break
        if sock in readable:
            data, addr = sock.recvfrom(65535)
            icmp = data[(data[0] & 15) * 4:]
            if len(icmp) >= 8 and icmp[0] == 8:
                body = icmp[4:]
                reply = struct.pack("!BBH", 0, 0, checksum(b"\\0\\0\\0\\0" + body)) + body
                due = time.monotonic() + max(0.0, random.gauss(mean_ms, sd_ms)) / 1000.0
                heapq.heappush(pending, (due, n, addr[0], reply))
                n += 1
        while pending and pending[0][0] <= time.monotonic():
            _, _, dst, reply = heapq.heappop(pending)
            sock.sendto(reply, (dst, 0))
""")


# --- the test network ----------------------------------------------------------------------------------

class NetnsUnavailable(RuntimeError):
    """This machine (or user) cannot create network namespaces."""


def _ip(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _in_ns(ns: str, *cmd: str, stdin: str | None = None) -> None:
    result = subprocess.run(["ip", "netns", "exec", ns, *cmd], input=stdin, capture_output=True, text=True,
                            timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {ns} failed: {result.stderr.strip()}")


def _free_prefix() -> str:
    """A 10.231.X /24 that nothing on this host routes or addresses (parallel runs pick others)."""
    used = _ip("-4", "route", "show", "table", "all") + _ip("-4", "addr")
    free = [x for x in range(256) if f"10.231.{x}." not in used]
    if not free:
        raise RuntimeError("every 10.231.X.0/24 is in use on this host")
    return f"10.231.{random.choice(free)}"


@dataclass
class NetnsLab:
    """Namespaces, one host each, joined to this host by veth pairs; ``close()`` removes everything."""

    tag: str
    prefix: str
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)       # role -> address to ping
    ns: dict[str, str] = field(default_factory=dict)          # role -> namespace
    gateway: dict[str, str] = field(default_factory=dict)     # role -> this host's end of the role's link
    links: dict[str, str] = field(default_factory=dict)       # role -> this host's veth

    ROLES = ("fast", "slow", "lossy", "down")

    @classmethod
    def build(cls) -> NetnsLab:
        tag = f"{os.getpid() % 1000:03d}{random.randrange(36 ** 3):03x}"[:6]
        lab = cls(tag, _free_prefix())
        try:
            lab._build()
        except BaseException:
            lab.close()
            raise
        return lab

    def _build(self) -> None:
        p = self.prefix
        first = f"np-{self.tag}-{self.ROLES[0]}"
        try:
            _ip("netns", "add", first)
        except RuntimeError as exc:
            raise NetnsUnavailable(str(exc)) from exc
        self.namespaces.append(first)
        host_cmds = []
        for k, role in enumerate(self.ROLES):
            ns, veth, peer = f"np-{self.tag}-{role}", f"np{self.tag}{k}h", f"np{self.tag}{k}n"
            if k:
                host_cmds.append(f"netns add {ns}")
                self.namespaces.append(ns)
            host_cmds += [f"link add {veth} type veth peer name {peer} netns {ns}",
                          f"addr add {p}.{4 * k + 1}/30 dev {veth}", f"link set {veth} up"]
            self.ns[role], self.links[role] = ns, veth
            self.gateway[role], self.hosts[role] = f"{p}.{4 * k + 1}", f"{p}.{4 * k + 2}"
        _ip("-batch", "-", stdin="\n".join(host_cmds) + "\n")
        for k, role in enumerate(self.ROLES):
            _ip("-n", self.ns[role], "-batch", "-",
                stdin=f"addr add {self.hosts[role]}/30 dev np{self.tag}{k}n\nlink set np{self.tag}{k}n up\n"
                      "link set lo up\n")
        # slow: the kernel stays silent, the responder answers late
        _in_ns(self.ns["slow"], "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns["slow"], sys.executable, "-c", RESPONDER,
                                 str(SLOW_MS), str(SLOW_SD_MS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.processes.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        if not ready or proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the echo responder did not start: {proc.stderr.read1() if proc.stderr else ''!r}")
        # lossy: drop one echo request in ten
        _in_ns(self.ns["lossy"], "nft", "-f", "-", stdin=textwrap.dedent(f"""\
            table inet netpulse_test {{
                chain input {{
                    type filter hook input priority 0; policy accept;
                    icmp type echo-request numgen random mod {LOSS_ONE_IN} 0 drop
                }}
            }}
            """))
        # down: the far end of the link goes down
        _ip("-n", self.ns["down"], "link", "set", f"np{self.tag}{self.ROLES.index('down')}n", "down")
        # unreachable: routed into the fast namespace, which rejects it with ICMP host unreachable
        self.hosts["unreachable"] = f"{p}.250"
        self.ns["unreachable"], self.links["unreachable"] = self.ns["fast"], self.links["fast"]
        self.gateway["unreachable"] = self.gateway["fast"]
        _in_ns(self.ns["fast"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _ip("-n", self.ns["fast"], "route", "add", "unreachable", f"{p}.250/32")
        _ip("route", "add", f"{p}.250/32", "via", self.hosts["fast"], "dev", self.links["fast"])
        self.check_routes()

    def check_routes(self) -> None:
        """Every test address must leave through its own veth, never through a real interface."""
        for role, address in self.hosts.items():
            route = _ip("route", "get", address)
            if f"dev {self.links[role]} " not in route + " ":
                raise RuntimeError(f"{role} host {address} does not route into its test link: {route.strip()}")

    def close(self) -> None:
        for proc in self.processes:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        for ns in self.namespaces:        # deleting a namespace deletes its veth pair and their routes
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for veth in set(self.links.values()):
            subprocess.run(["ip", "link", "del", veth], capture_output=True)   # already gone, normally


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


def _unavailable(what: str) -> None:
    if CI:
        pytest.fail(f"{what} is required in CI")
    pytest.skip(what)


@pytest.fixture(scope="module")
def lab() -> Iterator[NetnsLab]:
    missing = [tool for tool in ("fping", "nft") if shutil.which(tool) is None]
    if missing:
        _unavailable(f"{' and '.join(missing)} not installed (apt-get install fping nftables)")
    try:
        built = NetnsLab.build()
    except NetnsUnavailable as exc:
        pytest.skip(f"network namespaces are not available here (`ip netns add` failed): {exc}")
    try:
        yield built
    finally:
        built.close()


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
        _ip("netns", "add", ns)
    except RuntimeError as exc:
        pytest.skip(f"network namespaces are not available here (`ip netns add` failed): {exc}")
    try:
        _ip("-n", ns, "link", "set", "lo", "up")
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
        _unavailable("setpriv (util-linux) is needed to drop CAP_NET_RAW")
    ns = lab.ns["fast"]
    _in_ns(ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
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
