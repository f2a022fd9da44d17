"""ICMP echo probing of real devices, as rows of the metric catalogue.

One socket per address family carries every echo of a call, however many targets there are: raw
sockets (``SOCK_RAW``, root or CAP_NET_RAW) when ``privileged``, ICMP datagram sockets (``SOCK_DGRAM``,
allowed by ``net.ipv4.ping_group_range``) otherwise. Each echo carries a per-call random token and its
echo number in the payload, so replies are matched to their echo whatever the kernel does to the
identifier (datagram sockets rewrite it to the socket's port) and whatever other pingers on the host
receive on their raw sockets. RTTs come from kernel receive timestamps (``SO_TIMESTAMPNS``), so a burst
of replies waiting in the socket queue does not inflate them.

Two drivers run the same state machine: ``ping_many`` (a ``poll`` loop; the faster on this machine,
see bench/probe.py) and ``async_ping_many`` (asyncio readers and timers, for callers already inside an
event loop). ``ping_rows`` turns results into metric rows.

An unreachable device is data: it yields available=0 and loss=100, never an exception. A socket that
cannot be opened raises ``ProbeError`` (the prober cannot run at all).
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import math
import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from ingest.rows import MetricRows
from netpulse.errors import ProbeError, ValidationError
from netpulse.metrics import MetricKind

__all__ = ["PingTarget", "PingResult", "Resolution", "Resolver", "ping_many", "async_ping_many", "ping_rows",
           "icmp_permitted"]

PAYLOAD_SIZE = 56                 # bytes after the 8-byte ICMP header, as ping and fping send
_TOKEN_SIZE = 8
_HEADER = struct.Struct("!BBHHHI")  # type, code, checksum, identifier, sequence, echo number (payload)
_IDSEQ = struct.Struct("!HH")
_REPLY = struct.Struct(f"!BBHHHI{_TOKEN_SIZE}s")   # the header and payload head of an echo reply
_TIMESPEC = struct.Struct("@ll")
_ECHO_REQUEST: dict[int, int] = {socket.AF_INET: 8, socket.AF_INET6: 128}
_ECHO_REPLY: dict[int, int] = {socket.AF_INET: 0, socket.AF_INET6: 129}
_DEST_UNREACH: dict[int, int] = {socket.AF_INET: 3, socket.AF_INET6: 1}
_TIME_EXCEEDED: dict[int, int] = {socket.AF_INET: 11, socket.AF_INET6: 3}
_UNREACH_CODES: dict[int, dict[int, str]] = {
    socket.AF_INET: {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable",
                     3: "port unreachable", 9: "network prohibited", 10: "host prohibited",
                     13: "communication administratively prohibited"},
    socket.AF_INET6: {0: "no route to destination", 1: "communication administratively prohibited",
                      3: "address unreachable", 4: "port unreachable", 5: "source address failed policy",
                      6: "reject route to destination"},
}
_FAMILY_NAME: dict[int, str] = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}
# Linux socket options the socket module does not name.
_SOL_RAW, _ICMP_FILTER, _ICMP6_FILTER = 255, 1, 1
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_RCVBUF = 4 << 20                 # room for the replies of thousands of echoes sent in one burst
_DRAIN_EVERY = 64                 # sends between two reads of the reply queue while bursting
_PENDING, _REPLIED, _LOST = 0, 1, 2


# --- targets and results -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PingTarget:
    """One device to ping: ``count`` echoes, ``interval_s`` apart, each given ``timeout_s`` to answer.

    ``address`` is an IPv4 or IPv6 address or a host name (resolved once per call, see ``Resolver``).
    """

    device_id: int
    address: str
    count: int = 3
    timeout_s: float = 2.0
    interval_s: float = 0.2       # between this target's own echoes (fping's -p)

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}
        if not self.address:
            problems["address"] = "address is empty"
        if self.count < 1:
            problems["count"] = f"count must be at least 1, not {self.count}"
        if not self.timeout_s > 0:
            problems["timeout_s"] = f"timeout_s must be above 0, not {self.timeout_s}"
        if not self.interval_s >= 0:
            problems["interval_s"] = f"interval_s cannot be negative, not {self.interval_s}"
        if problems:
            raise ValidationError(f"invalid ping target {self.address!r} (device {self.device_id}): "
                                  + "; ".join(problems.values()), details=problems)


@dataclass(slots=True)
class PingResult:
    """What one target's echoes found. RTTs in milliseconds, of the answered echoes in send order.

    ``resolve_ms`` is how long the DNS lookup of a host name took (None for an IP address literal);
    an answer reused from the resolver's cache keeps its original figure. ``error`` explains a target
    that could not be probed at all (no address) or the last ICMP error or send failure it met.
    (Not frozen: a frozen dataclass costs ~3x more to build, and a call builds one per target.)
    """

    device_id: int
    address: str
    sent: int
    received: int
    rtts: tuple[float, ...]
    min_ms: float | None
    avg_ms: float | None
    max_ms: float | None
    jitter_ms: float | None       # mean absolute difference of consecutive RTTs
    loss_pct: float
    resolved_address: str | None
    resolve_ms: float | None
    error: str | None = None

    @property
    def alive(self) -> bool:
        return self.received > 0

    @classmethod
    def from_rtts(cls, target: PingTarget, sent: int, rtts: list[float], resolution: Resolution,
                  error: str | None) -> PingResult:
        n = len(rtts)
        if n == sent == 1:
            rtt = rtts[0]
            return cls(target.device_id, target.address, 1, 1, (rtt,), rtt, rtt, rtt, 0.0, 0.0,
                       resolution.address, resolution.ms, error)
        loss = 100.0 if sent == 0 else round(100.0 * (sent - n) / sent, 3)
        if n == 0:
            return cls(target.device_id, target.address, sent, 0, (), None, None, None, None, loss,
                       resolution.address, resolution.ms, error)
        jitter = sum(abs(b - a) for a, b in zip(rtts, rtts[1:], strict=False)) / (n - 1) if n > 1 else 0.0
        return cls(target.device_id, target.address, sent, n, tuple(rtts), min(rtts), sum(rtts) / n, max(rtts),
                   jitter, loss, resolution.address, resolution.ms, error)


# --- name resolution -----------------------------------------------------------------------------------

class Resolution(NamedTuple):
    """A name's address: ``family``/``sockaddr`` to send to, ``address`` in canonical text (no scope);
    ``ms`` the lookup's duration (None for a literal); ``error`` why there is no address."""

    name: str
    family: int | None
    address: str | None
    sockaddr: tuple[Any, ...] | None
    ms: float | None
    error: str | None = None


def _literal(name: str) -> Resolution | None:
    """An IPv4 or IPv6 address literal, without a DNS lookup (inet_pton is ~100x faster than getaddrinfo)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, name)
        text = socket.inet_ntop(socket.AF_INET, packed)
        return Resolution(name, socket.AF_INET, text, (text, 0), None)
    except OSError:
        pass
    if ":" in name and "%" not in name:
        try:
            text = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, name))
            return Resolution(name, socket.AF_INET6, text, (text, 0, 0, 0), None)
        except OSError:
            pass
    return None


def _lookup(name: str) -> Resolution:
    start = time.perf_counter()
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        ms = (time.perf_counter() - start) * 1000.0
        return Resolution(name, None, None, None, ms, f"cannot resolve {name!r}: {exc}")
    ms = (time.perf_counter() - start) * 1000.0
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            return Resolution(name, family, str(sockaddr[0]).partition("%")[0], tuple(sockaddr), ms)
    return Resolution(name, None, None, None, ms, f"cannot resolve {name!r}: no IPv4 or IPv6 address")


class Resolver:
    """Resolves each distinct host name once per call, concurrently, and times each lookup.

    With ``ttl_s`` > 0 answers (and failures) are kept that long, so a worker that keeps one
    ``Resolver`` and passes the probe interval resolves each name once per interval, not per tick.

    Examples:
        >>> Resolver().resolve(["127.0.0.1"])["127.0.0.1"].address
        '127.0.0.1'
    """

    def __init__(self, ttl_s: float = 0.0, *, max_workers: int = 16) -> None:
        self.ttl_s = ttl_s
        self.max_workers = max_workers
        self._cache: dict[str, tuple[float, Resolution]] = {}

    def split(self, names: Iterable[str]) -> tuple[dict[str, Resolution], list[str]]:
        """The names answered without a lookup (literals, cached), and the names that need one."""
        known: dict[str, Resolution] = {}
        todo: list[str] = []
        pending: set[str] = set()
        now = time.monotonic()
        for name in names:
            if name in known or name in pending:
                continue
            res = _literal(name)
            hit = self._cache.get(name) if res is None else None
            if res is not None:
                known[name] = res
            elif hit is not None and hit[0] > now:
                known[name] = hit[1]
            else:
                pending.add(name)
                todo.append(name)
        return known, todo

    def lookup(self, names: Sequence[str]) -> dict[str, Resolution]:
        """Resolve ``names`` by DNS (threads, at most ``max_workers`` at a time) and cache the answers."""
        if len(names) == 1:
            found = [_lookup(names[0])]
        elif names:
            with ThreadPoolExecutor(max_workers=min(self.max_workers, len(names))) as pool:
                found = list(pool.map(_lookup, names))
        else:
            found = []
        if self.ttl_s > 0:
            now = time.monotonic()
            self._cache = {name: hit for name, hit in self._cache.items() if hit[0] > now}
            self._cache.update((r.name, (now + self.ttl_s, r)) for r in found)
        return {r.name: r for r in found}

    def resolve(self, names: Iterable[str]) -> dict[str, Resolution]:
        known, todo = self.split(names)
        known.update(self.lookup(todo))
        return known


# --- sockets -------------------------------------------------------------------------------------------

def _ping_group_range() -> str:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            return " ".join(f.read().split())
    except OSError:
        return "unknown"


class _FamilyUnavailable(OSError):
    """The kernel has no such address family (e.g. IPv6 disabled): its targets fail, the others go on."""


def _open_socket(family: int, privileged: bool) -> socket.socket:
    """One non-blocking ICMP socket of ``family`` with filters, kernel timestamps and a large buffer."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    kind = socket.SOCK_RAW if privileged else socket.SOCK_DGRAM
    fam = _FAMILY_NAME[family]
    try:
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            raise _FamilyUnavailable(f"{fam} is not available on this host: {exc.strerror or exc}") from exc
        if privileged:
            hint = ("run as root or grant CAP_NET_RAW (setcap cap_net_raw+ep on the interpreter), or probe "
                    "unprivileged (privileged=False) where net.ipv4.ping_group_range includes the group")
        else:
            hint = (f"net.ipv4.ping_group_range is '{_ping_group_range()}' and must include group {os.getgid()}: "
                    "sysctl -w net.ipv4.ping_group_range='0 2147483647', or probe privileged as root")
        mode = "raw" if privileged else "datagram (unprivileged)"
        raise ProbeError(f"cannot open an {fam} ICMP {mode} socket: {exc.strerror or exc}; {hint}",
                         details={"family": fam, "privileged": privileged}) from exc
    try:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            pass                  # RTTs then come from the monotonic clock at read time
        if privileged and family == socket.AF_INET:
            # A raw socket sees every ICMP message the host receives: keep echo replies and errors only.
            passed = (1 << 0) | (1 << 3) | (1 << 11)
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", ~passed & 0xFFFFFFFF))
        elif privileged:
            blocked = [0xFFFFFFFF] * 8
            for icmp6_type in (129, 1, 3):
                blocked[icmp6_type >> 5] &= ~(1 << (icmp6_type & 31)) & 0xFFFFFFFF
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *blocked))
    except OSError as exc:
        sock.close()
        raise ProbeError(f"cannot set up the {_FAMILY_NAME[family]} ICMP socket: {exc}") from exc
    return sock


def icmp_permitted(privileged: bool = True) -> bool:
    """Whether this process may open ICMP sockets (root for raw, or ping_group_range for datagram)."""
    kind = socket.SOCK_RAW if privileged else socket.SOCK_DGRAM
    try:
        socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
        return True
    except OSError:
        return False


# --- the echo state machine ----------------------------------------------------------------------------

class _Channel:
    """One socket and how to read it."""

    __slots__ = ("sock", "family", "v4", "ip_header", "raw", "reply_type", "error_types", "request_type")

    def __init__(self, sock: socket.socket, family: int, raw: bool) -> None:
        self.sock = sock
        self.family = family
        self.raw = raw
        self.v4 = family == socket.AF_INET
        self.ip_header = raw and self.v4          # only raw IPv4 sockets read the IP header too
        self.request_type = _ECHO_REQUEST[family]
        self.reply_type = _ECHO_REPLY[family]
        self.error_types = (_DEST_UNREACH[family], _TIME_EXCEEDED[family])


class _Session:
    """Every echo of one call: sending on schedule (and pace), matching replies, expiring the rest.

    Echo ``i`` is the i-th echo sent in this call. Its payload is ``i`` (4 bytes), the call's token and
    padding; on raw sockets its identifier/sequence are ``base_id + i // 65536`` / ``i % 65536`` too, so
    ICMP errors, which may quote only the first 8 bytes of the echo, still name it. The per-echo lists
    are parallel and grow as echoes are sent.
    """

    def __init__(self, targets: Sequence[PingTarget], resolutions: Sequence[Resolution],
                 channels: dict[int, _Channel], pps: float | None) -> None:
        self.targets = targets
        self.res = resolutions
        self.channels = channels
        self.by_fd = {c.sock.fileno(): c for c in channels.values()}
        self.token = os.urandom(_TOKEN_SIZE)
        self.tail = self.token + bytes(PAYLOAD_SIZE - 4 - _TOKEN_SIZE)
        self.base_id = int.from_bytes(os.urandom(2), "big")
        # The words of an IPv4 echo that never change in this call, for the checksum.
        self.csum_base = (_ECHO_REQUEST[socket.AF_INET] << 8) + sum(struct.unpack("!4H", self.token))
        self.gap = 1.0 / pps if pps else 0.0
        self.burst = max(2 * self.gap, 0.002)
        self.slot = 0.0
        # per target
        self.t_channel = [channels[r.family] if r.family is not None else None for r in resolutions]
        self.t_sockaddr = [r.sockaddr for r in resolutions]
        self.t_key = [r.address for r in resolutions]
        self.t_count = [t.count for t in targets]
        self.t_interval = [t.interval_s for t in targets]
        self.t_timeout = [t.timeout_s for t in targets]
        self.sent = [0] * len(targets)
        self.errors: list[str | None] = [r.error for r in resolutions]
        # per echo
        self.echo_target: list[int] = []
        self.echo_mono: list[float] = []
        self.echo_real: list[int] = []
        self.echo_rtt: list[float] = []
        self.state = bytearray()
        self.outstanding = 0
        # Echoes waiting for a reply, one FIFO per distinct timeout: sent in time order, they expire in order.
        self.deadlines: dict[float, deque[tuple[float, int]]] = {}
        start = time.perf_counter()
        self.queue: list[tuple[float, int]] = [(start, t) for t, r in enumerate(resolutions) if r.family]

    @property
    def finished(self) -> bool:
        return not self.queue and not self.outstanding

    # sending ------------------------------------------------------------------------------------------
    def send_due(self, now: float) -> None:
        """Send every echo whose time has come, within the pace; reads replies every few dozen sends."""
        queue = self.queue
        pop, push, perf, wall = heapq.heappop, heapq.heappush, time.perf_counter, time.time_ns
        pack, tail, base_id, csum_base, gap = _HEADER.pack, self.tail, self.base_id, self.csum_base, self.gap
        t_channel, t_sockaddr, t_count, t_interval, t_timeout = (
            self.t_channel, self.t_sockaddr, self.t_count, self.t_interval, self.t_timeout)
        sent, state, deadlines = self.sent, self.state, self.deadlines
        add_target, add_mono, add_real, add_rtt = (self.echo_target.append, self.echo_mono.append,
                                                   self.echo_real.append, self.echo_rtt.append)
        burst = 0
        while queue and queue[0][0] <= now:
            if gap:
                if self.slot > now:
                    break
                self.slot = max(self.slot, now - self.burst) + gap
            t = pop(queue)[1]
            ch = t_channel[t]
            assert ch is not None
            i = len(state)
            ident, seq = (base_id + (i >> 16)) & 0xFFFF, i & 0xFFFF
            if ch.v4:                 # the kernel sums ICMPv6 itself (over a pseudo-header)
                c = csum_base + ident + seq + (i >> 16) + (i & 0xFFFF)
                c = (c & 0xFFFF) + (c >> 16)
                c = ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF
            else:
                c = 0
            packet = pack(ch.request_type, 0, c, ident, seq, i) + tail
            sent_real = wall()
            sent_mono = perf()
            try:
                ch.sock.sendto(packet, t_sockaddr[t])  # type: ignore[arg-type]
                echo_state = _PENDING
            except OSError as exc:
                if isinstance(exc, BlockingIOError) or exc.errno == errno.ENOBUFS:
                    # The socket's or the device's send queue is full: try this echo again soon.
                    push(queue, (sent_mono + 0.001, t))
                    if gap:
                        self.slot -= gap
                    break
                self.errors[t] = f"send failed: {exc.strerror or exc}"
                echo_state = _LOST
            add_target(t)
            add_mono(sent_mono)
            add_real(sent_real)
            add_rtt(-1.0)
            state.append(echo_state)
            sent[t] += 1
            if echo_state == _PENDING:
                self.outstanding += 1
                timeout = t_timeout[t]
                fifo = deadlines.get(timeout)
                if fifo is None:
                    fifo = deadlines[timeout] = deque()
                fifo.append((sent_mono + timeout, i))
            if sent[t] < t_count[t]:
                push(queue, (sent_mono + t_interval[t], t))
            now = sent_mono
            burst += 1
            if burst % _DRAIN_EVERY == 0:
                self.drain(ch)

    # receiving ----------------------------------------------------------------------------------------
    def drain(self, ch: _Channel) -> None:
        """Read every queued message of ``ch``'s socket and match the echo replies."""
        recvmsg, perf, unpack = ch.sock.recvmsg, time.perf_counter, _REPLY.unpack_from
        token, state, t_key, t_timeout = self.token, self.state, self.t_key, self.t_timeout
        echo_target, echo_mono, echo_real, echo_rtt = self.echo_target, self.echo_mono, self.echo_real, self.echo_rtt
        ip_header, reply_type, raw, base_id = ch.ip_header, ch.reply_type, ch.raw, self.base_id
        v6, timespec, size = not ch.v4, _TIMESPEC.unpack_from, _REPLY.size
        n = len(state)
        while True:
            try:
                data, anc, _, addr = recvmsg(2048, 64)
            except OSError:
                return            # BlockingIOError: all read; another error: nothing more to read now
            off = (data[0] & 0x0F) << 2 if ip_header else 0
            if len(data) < off + size:
                continue
            kind, _, _, ident, seq, i, tok = unpack(data, off)
            if kind != reply_type:
                if raw and kind in ch.error_types:
                    self._icmp_error(ch, data, off, addr[0])
                continue
            if (tok != token                   # another pinger's reply (raw sockets see them all)
                    or i >= n or state[i] != _PENDING     # a duplicate, or late after its echo expired
                    or seq != i & 0xFFFF or (raw and ident != (base_id + (i >> 16)) & 0xFFFF)):
                continue
            t = echo_target[i]
            if (addr[0].partition("%")[0] if v6 else addr[0]) != t_key[t]:
                continue
            rtt = (perf() - echo_mono[i]) * 1000.0
            if anc:
                sec, nsec = timespec(anc[0][2])
                kernel_rtt = (sec * 1_000_000_000 + nsec - echo_real[i]) / 1e6
                if 0.0 <= kernel_rtt <= rtt + 1.0:     # else the wall clock stepped: keep the monotonic figure
                    rtt = kernel_rtt
            self.outstanding -= 1
            if rtt > t_timeout[t] * 1000.0:
                state[i] = _LOST
            else:
                state[i] = _REPLIED
                echo_rtt[i] = rtt

    def _icmp_error(self, ch: _Channel, data: bytes, off: int, sender: str) -> None:
        """A destination-unreachable or time-exceeded message (raw sockets) that quotes one of our echoes."""
        inner = off + 8
        if ch.v4:
            if len(data) < inner + 20:
                return
            orig = inner + ((data[inner] & 0x0F) << 2)
            dst = socket.inet_ntop(socket.AF_INET, data[inner + 16:inner + 20])
        else:
            if len(data) < inner + 40 or data[inner + 6] != 58:
                return
            orig = inner + 40
            dst = socket.inet_ntop(socket.AF_INET6, data[inner + 24:inner + 40])
        if len(data) < orig + 8 or data[orig] != ch.request_type:
            return
        ident, seq = _IDSEQ.unpack_from(data, orig + 4)
        i = (((ident - self.base_id) & 0xFFFF) << 16) | seq
        if i >= len(self.state) or self.state[i] != _PENDING:
            return
        if len(data) >= orig + 20 and data[orig + 12:orig + 20] != self.token:
            return
        t = self.echo_target[i]
        if dst != self.t_key[t]:
            return
        kind, code = data[off], data[off + 1]
        sender = sender.partition("%")[0]
        if kind == _DEST_UNREACH[ch.family]:
            reason = _UNREACH_CODES[ch.family].get(code, f"code {code}")
            self.errors[t] = f"destination unreachable ({reason}) from {sender}"
        else:
            self.errors[t] = f"time exceeded in transit at {sender}"
        self.state[i] = _LOST
        self.outstanding -= 1

    # time ---------------------------------------------------------------------------------------------
    def expire(self, now: float) -> float:
        """Give up on echoes past their timeout; the next deadline of one still pending (inf if none)."""
        state = self.state
        nearest = math.inf
        for fifo in self.deadlines.values():
            while fifo and (fifo[0][0] <= now or state[fifo[0][1]] != _PENDING):
                _, i = fifo.popleft()
                if state[i] == _PENDING:
                    state[i] = _LOST
                    self.outstanding -= 1
            if fifo:
                nearest = min(nearest, fifo[0][0])
        return nearest

    def step(self, now: float) -> float | None:
        """Send what is due, read replies, expire echoes; the time to wake up next, or None when done."""
        self.send_due(now)
        for ch in self.channels.values():
            self.drain(ch)
        wake = self.expire(time.perf_counter())
        if self.finished:
            return None
        if self.queue:
            wake = min(wake, max(self.queue[0][0], self.slot) if self.gap else self.queue[0][0])
        return wake

    def results(self) -> list[PingResult]:
        per_target: list[list[float]] = [[] for _ in self.targets]
        echo_target = self.echo_target
        for i, rtt in enumerate(self.echo_rtt):
            if rtt >= 0.0:
                per_target[echo_target[i]].append(rtt)
        build, res, sent, errors = PingResult.from_rtts, self.res, self.sent, self.errors
        return [build(target, sent[t], per_target[t], res[t], errors[t]) for t, target in enumerate(self.targets)]

    # drivers ------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Drive the session with ``poll`` until every echo is answered or expired."""
        poller = select.poll()
        for fd in self.by_fd:
            poller.register(fd, select.POLLIN)
        perf = time.perf_counter
        while True:
            wake = self.step(perf())
            if wake is None:
                return
            timeout_ms = max(0, math.ceil((wake - perf()) * 1000.0))
            for fd, _ in poller.poll(timeout_ms):
                self.drain(self.by_fd[fd])

    async def run_async(self) -> None:
        """Drive the session with the running event loop's readers and timers."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        timer: asyncio.TimerHandle | None = None

        def tick() -> None:
            nonlocal timer
            wake = self.step(time.perf_counter())
            if wake is None:
                if not done.done():
                    done.set_result(None)
                return
            timer = loop.call_later(max(0.0, wake - time.perf_counter()), tick)

        def readable(ch: _Channel) -> None:
            self.drain(ch)
            if self.finished and not done.done():
                done.set_result(None)

        for fd, ch in self.by_fd.items():
            loop.add_reader(fd, readable, ch)
        try:
            tick()
            await done
        finally:
            for fd in self.by_fd:
                loop.remove_reader(fd)
            if timer is not None:
                timer.cancel()


# --- the public API ------------------------------------------------------------------------------------

def _prepare(targets: Sequence[PingTarget], resolved: dict[str, Resolution], privileged: bool,
             pps: float | None) -> _Session:
    if pps is not None and not pps > 0:
        raise ValidationError(f"pps must be above 0, not {pps}", details={"pps": "must be above 0"})
    resolutions = [resolved[t.address] for t in targets]
    channels: dict[int, _Channel] = {}
    try:
        for family in sorted({r.family for r in resolutions if r.family is not None}):
            try:
                channels[family] = _Channel(_open_socket(family, privileged), family, privileged)
            except _FamilyUnavailable as exc:
                resolutions = [r._replace(family=None, sockaddr=None, error=str(exc)) if r.family == family else r
                               for r in resolutions]
    except ProbeError:
        for ch in channels.values():
            ch.sock.close()
        raise
    return _Session(targets, resolutions, channels, pps)


def _close(session: _Session) -> None:
    for ch in session.channels.values():
        ch.sock.close()


def ping_many(targets: Sequence[PingTarget], *, privileged: bool = True, pps: float | None = None,
              resolver: Resolver | None = None) -> list[PingResult]:
    """Ping every target concurrently over one socket per address family; results in target order.

    Parameters:
        targets: what to ping; each target's ``count``, ``interval_s`` and ``timeout_s`` apply to it.
        privileged: raw sockets (root/CAP_NET_RAW) or, if False, ICMP datagram sockets
            (``net.ipv4.ping_group_range`` must include the process's group).
        pps: at most this many echo requests per second over all targets (fping's ``-i`` is
            ``1000 / pps`` ms); None sends as fast as the schedule allows. Use a limit on real networks.
        resolver: resolves host names; by default a fresh one (each name once per call).

    Returns:
        One ``PingResult`` per target. An unreachable or unresolvable target is a result with
        ``received == 0`` and ``loss_pct == 100``, never an exception.

    Raises:
        ProbeError: an ICMP socket cannot be opened (the message says how to allow it).

    Examples:
        >>> [r.received for r in ping_many([PingTarget(1, "127.0.0.1", count=2, interval_s=0.01)])]
        [2]
    """
    if not targets:
        return []
    resolved = (resolver or Resolver()).resolve(t.address for t in targets)
    session = _prepare(targets, resolved, privileged, pps)
    try:
        session.run()
    finally:
        _close(session)
    return session.results()


async def async_ping_many(targets: Sequence[PingTarget], *, privileged: bool = True, pps: float | None = None,
                          resolver: Resolver | None = None) -> list[PingResult]:
    """``ping_many`` for callers inside an event loop: DNS lookups in threads, echoes on loop readers."""
    if not targets:
        return []
    resolver = resolver or Resolver()
    resolved, todo = resolver.split(t.address for t in targets)
    if todo:
        resolved.update(await asyncio.to_thread(resolver.lookup, todo))
    session = _prepare(targets, resolved, privileged, pps)
    try:
        await session.run_async()
    finally:
        _close(session)
    return session.results()


def ping_rows(targets: Sequence[PingTarget], tick_us: int, *, privileged: bool = True, pps: float | None = None,
              resolver: Resolver | None = None) -> MetricRows:
    """Ping every target concurrently and return its rows stamped with ``tick_us``.

    Every target gets available and loss rows; an answering one also gets RTT avg/min/max and jitter;
    one given by host name also gets its DNS lookup time.
    """
    if not targets:
        return MetricRows.empty()
    return ping_result_rows(ping_many(targets, privileged=privileged, pps=pps, resolver=resolver), tick_us)


def ping_result_rows(results: Sequence[PingResult], tick_us: int) -> MetricRows:
    """The rows of ``ping_many``'s results, stamped with ``tick_us`` (see ``ping_rows``)."""
    out: list[tuple[int, int, int, int, float]] = []
    for r in results:
        d = r.device_id
        out.append((tick_us, d, MetricKind.AVAILABLE, 0, 1.0 if r.alive else 0.0))
        out.append((tick_us, d, MetricKind.ICMP_LOSS_PCT, 0, r.loss_pct))
        for kind, value in ((MetricKind.ICMP_RTT_MS, r.avg_ms), (MetricKind.ICMP_RTT_MIN_MS, r.min_ms),
                            (MetricKind.ICMP_RTT_MAX_MS, r.max_ms), (MetricKind.ICMP_JITTER_MS, r.jitter_ms)):
            if value is not None:     # None when nothing answered
                out.append((tick_us, d, kind, 0, value))
        if r.resolve_ms is not None:  # a host name, looked up (at most once per resolver TTL)
            out.append((tick_us, d, MetricKind.DNS_RESOLVE_MS, 0, r.resolve_ms))
    return MetricRows.from_tuples(out)
