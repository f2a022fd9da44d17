"""SNMP polling (pysnmp 7, asyncio): system group, IF-MIB interfaces, HOST-RESOURCES CPU and memory.

One ``SnmpEngine`` per poll run serves every target of the run (plus one per extra set of keys
that a v3 user name comes with, see ``_engine_slots``); targets are polled concurrently up to a
limit. An unreachable device or a wrong credential is data, ``SnmpPoll(ok=False, error=...)``,
never an exception. Reasons (``SnmpPoll.error``):

- ``"timeout"``: no answer. A v2c agent stays silent for a wrong community, and a v3 agent for a
  wrong privacy password (it cannot decrypt the request), so both read as timeouts.
- ``"auth_failed"``: the v3 agent reported a USM failure (wrongDigest: wrong auth password;
  unknownUserName; unsupportedSecLevel; ...). ``SnmpPoll.detail`` names which.
- ``"no_such_name"``: the agent answered but shows nothing we poll (a view without the system group
  and the interface table).
- ``"unresolvable"``: the address does not resolve; otherwise the PDU error status in snake case
  (``"gen_err"``, ``"authorization_error"``, ...) or ``"error"`` with the detail.

Only numeric OIDs are used: pysnmp resolves names only for its bundled MIBs (IF-MIB is not one).

Requests per device: the first poll sends one GETBULK with the system scalars as non-repeaters that
walks the IF-MIB columns side by side, and a concurrent one that walks the HOST-RESOURCES tables.
A ``SnmpPoller`` remembers each device's layout (interface rows, processors, which hrStorage rows
are RAM), so later polls are a single GETBULK: system scalars, processor loads and RAM size/used as
non-repeaters (GETNEXT of each instance's predecessor), the interface columns one row past the
table's known size. The 32-bit octet counters, ifSpeed and ifDescr are walked in a follow-up
request only for agents that lack the ifXTable values for some interface. pysnmp spends its time
decoding varbinds, so asking for little is what makes polling fast (bench/snmp.py).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmAesCfb192Protocol,
    usmAesCfb256Protocol,
    usmDESPrivProtocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto import errind
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from netpulse.errors import ValidationError

__all__ = [
    "SnmpTarget", "InterfaceSample", "SnmpPoll", "SnmpPoller", "poll", "poll_async", "get_system",
    "get_system_async", "AUTH_PROTOCOLS", "PRIV_PROTOCOLS", "OPER_STATUS",
]

log = structlog.get_logger("netpulse.ingest.snmp")

Oid = tuple[int, ...]


def _oid(dotted: str) -> Oid:
    return tuple(int(x) for x in dotted.strip(".").split("."))


# System group scalars, asked for as GETNEXT non-repeaters of the object (the reply is instance .0).
SYS_DESCR = _oid("1.3.6.1.2.1.1.1")
SYS_OBJECT_ID = _oid("1.3.6.1.2.1.1.2")
SYS_UPTIME = _oid("1.3.6.1.2.1.1.3")
SYS_NAME = _oid("1.3.6.1.2.1.1.5")
SYSTEM = (SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME)

# IF-MIB ifTable (.2.2.1.x) and ifXTable (.31.1.1.1.x) columns.
IF_DESCR = _oid("1.3.6.1.2.1.2.2.1.2")
IF_TYPE = _oid("1.3.6.1.2.1.2.2.1.3")
IF_SPEED = _oid("1.3.6.1.2.1.2.2.1.5")
IF_OPER_STATUS = _oid("1.3.6.1.2.1.2.2.1.8")
IF_IN_OCTETS = _oid("1.3.6.1.2.1.2.2.1.10")
IF_IN_DISCARDS = _oid("1.3.6.1.2.1.2.2.1.13")
IF_IN_ERRORS = _oid("1.3.6.1.2.1.2.2.1.14")
IF_OUT_OCTETS = _oid("1.3.6.1.2.1.2.2.1.16")
IF_OUT_DISCARDS = _oid("1.3.6.1.2.1.2.2.1.19")
IF_OUT_ERRORS = _oid("1.3.6.1.2.1.2.2.1.20")
IF_NAME = _oid("1.3.6.1.2.1.31.1.1.1.1")
IF_HC_IN_OCTETS = _oid("1.3.6.1.2.1.31.1.1.1.6")
IF_HC_OUT_OCTETS = _oid("1.3.6.1.2.1.31.1.1.1.10")
IF_HIGH_SPEED = _oid("1.3.6.1.2.1.31.1.1.1.15")
IF_COLUMNS = (IF_NAME, IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS, IF_HIGH_SPEED, IF_TYPE, IF_OPER_STATUS,
              IF_IN_ERRORS, IF_OUT_ERRORS, IF_IN_DISCARDS, IF_OUT_DISCARDS)

# HOST-RESOURCES-MIB.
HR_PROCESSOR_LOAD = _oid("1.3.6.1.2.1.25.3.3.1.2")
HR_STORAGE_TYPE = _oid("1.3.6.1.2.1.25.2.3.1.2")
HR_STORAGE_SIZE = _oid("1.3.6.1.2.1.25.2.3.1.5")
HR_STORAGE_USED = _oid("1.3.6.1.2.1.25.2.3.1.6")
HR_STORAGE_RAM = _oid("1.3.6.1.2.1.25.2.1.2")
HR_COLUMNS = (HR_PROCESSOR_LOAD, HR_STORAGE_TYPE, HR_STORAGE_SIZE, HR_STORAGE_USED)

OPER_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "not_present",
               7: "lower_layer_down"}

AUTH_PROTOCOLS = {
    "MD5": usmHMACMD5AuthProtocol, "SHA": usmHMACSHAAuthProtocol, "SHA224": usmHMAC128SHA224AuthProtocol,
    "SHA256": usmHMAC192SHA256AuthProtocol, "SHA384": usmHMAC256SHA384AuthProtocol,
    "SHA512": usmHMAC384SHA512AuthProtocol,
}
# AES192/AES256 are net-snmp's (Blumenthal key extension); AES192C/AES256C are Cisco's (Reeder).
PRIV_PROTOCOLS = {
    "DES": usmDESPrivProtocol, "AES": usmAesCfb128Protocol,
    "AES192": usmAesBlumenthalCfb192Protocol, "AES256": usmAesBlumenthalCfb256Protocol,
    "AES192C": usmAesCfb192Protocol, "AES256C": usmAesCfb256Protocol,
}

# USM reports that mean "these credentials are not accepted".
_AUTH_FAILURES = (errind.WrongDigest, errind.UnknownUserName, errind.AuthenticationFailure,
                  errind.AuthenticationError, errind.UnknownSecurityName, errind.UnsupportedSecurityLevel,
                  errind.NotInTimeWindow, errind.DecryptionError, errind.UnsupportedAuthProtocol,
                  errind.UnsupportedPrivProtocol)


@dataclass(frozen=True, slots=True)
class SnmpTarget:
    """One device to poll. v2c needs ``community``; v3 needs ``username`` and, for authNoPriv or
    authPriv, ``auth_protocol``/``auth_password`` (and ``priv_protocol``/``priv_password``)."""

    device_id: int
    address: str
    port: int = 161
    version: Literal["2c", "3"] = "2c"
    community: str | None = None
    username: str | None = None
    auth_protocol: str | None = None
    auth_password: str | None = None
    priv_protocol: str | None = None
    priv_password: str | None = None
    timeout_s: float = 2.0
    retries: int = 1

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        if self.version not in ("2c", "3"):
            errors["version"] = f"SNMP version {self.version!r} is not supported; use '2c' or '3'"
        elif self.version == "2c" and not self.community:
            errors["community"] = "SNMP v2c needs a community"
        elif self.version == "3":
            if not self.username:
                errors["username"] = "SNMP v3 needs a username"
            if self.auth_protocol is not None and self.auth_protocol.upper() not in AUTH_PROTOCOLS:
                errors["auth_protocol"] = (f"unknown auth protocol {self.auth_protocol!r}; "
                                           f"known: {', '.join(AUTH_PROTOCOLS)}")
            if self.priv_protocol is not None and self.priv_protocol.upper() not in PRIV_PROTOCOLS:
                errors["priv_protocol"] = (f"unknown privacy protocol {self.priv_protocol!r}; "
                                           f"known: {', '.join(PRIV_PROTOCOLS)}")
            if self.priv_protocol is not None and self.auth_protocol is None:
                errors["priv_protocol"] = "privacy (authPriv) needs an auth protocol too"
            for proto, pw in (("auth", self.auth_password), ("priv", self.priv_password)):
                if getattr(self, f"{proto}_protocol") is not None and (pw is None or len(pw) < 8):
                    errors[f"{proto}_password"] = f"the {proto} password must have at least 8 characters"
        if not 1 <= self.port <= 65535:
            errors["port"] = f"port {self.port} is not between 1 and 65535"
        if self.timeout_s <= 0:
            errors["timeout_s"] = f"timeout {self.timeout_s} s must be positive"
        if self.retries < 0:
            errors["retries"] = f"retries {self.retries} cannot be negative"
        if errors:
            raise ValidationError(f"invalid SNMP target for device {self.device_id}: "
                                  + "; ".join(f"{k}: {v}" for k, v in errors.items()), details=errors)

    @property
    def security_level(self) -> str:
        if self.version == "2c":
            return "community"
        if self.auth_protocol is None:
            return "noAuthNoPriv"
        return "authNoPriv" if self.priv_protocol is None else "authPriv"

    def auth_data(self) -> CommunityData | UsmUserData:
        if self.version == "2c":
            return CommunityData(self.community or "", mpModel=1)
        assert self.username is not None
        if self.auth_protocol is None:
            return UsmUserData(self.username)
        auth = AUTH_PROTOCOLS[self.auth_protocol.upper()]
        if self.priv_protocol is None:
            return UsmUserData(self.username, self.auth_password, authProtocol=auth)
        return UsmUserData(self.username, self.auth_password, self.priv_password, authProtocol=auth,
                           privProtocol=PRIV_PROTOCOLS[self.priv_protocol.upper()])


@dataclass(slots=True)
class InterfaceSample:
    """One interface as one poll saw it. Counters are raw (cumulative) values; None: not exposed."""

    ifindex: int
    name: str | None = None
    speed_bps: int | None = None
    oper_status: str | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    counter_bits: int = 64            # 64: ifHCIn/OutOctets; 32: ifIn/OutOctets (no HC counters)
    in_errors: int | None = None
    out_errors: int | None = None
    in_discards: int | None = None
    out_discards: int | None = None
    if_type: int | None = None        # IANAifType (6 ethernetCsmacd, 24 softwareLoopback, ...)


@dataclass(slots=True)
class SnmpPoll:
    """The result of polling one device: ``ok=False`` with a reason in ``error`` when it failed."""

    device_id: int
    ok: bool
    error: str | None = None
    sys_name: str | None = None
    sys_descr: str | None = None
    sys_object_id: str | None = None
    sys_uptime_ticks: int | None = None   # hundredths of a second since the agent (re)started
    interfaces: list[InterfaceSample] = field(default_factory=list)
    cpu_pct: float | None = None
    mem_pct: float | None = None
    polled_at_us: int = 0                 # epoch microseconds when the counters were read
    detail: str | None = None             # the agent's or pysnmp's words for a failure
    requests: int = 0                     # SNMP requests this poll took (excluding v3 discovery)

    @classmethod
    def failed(cls, device_id: int, error: str, detail: str | None = None) -> SnmpPoll:
        return cls(device_id, False, error, polled_at_us=time.time_ns() // 1000, detail=detail)


class _Failed(Exception):  # noqa: N818 - internal control flow, never leaves this module
    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _indication_reason(ind: Any) -> tuple[str, str]:
    detail = f"{type(ind).__name__[:1].lower()}{type(ind).__name__[1:]}: {ind}"
    if isinstance(ind, errind.RequestTimedOut):
        return "timeout", detail
    if isinstance(ind, _AUTH_FAILURES):
        return "auth_failed", detail
    return "error", detail


def _text(value: Any) -> str:
    return bytes(value).replace(b"\x00", b"").decode("utf-8", "replace")


def _absent(value: Any) -> bool:
    return isinstance(value, (NoSuchObject, NoSuchInstance, EndOfMibView))


@dataclass(slots=True)
class _Walk:
    """What one round of GETBULK requests returned: exact instances and walked columns."""

    instances: dict[Oid, Any] = field(default_factory=dict)
    columns: dict[Oid, dict[int, Any]] = field(default_factory=dict)
    requests: int = 0
    first_reply_us: int = 0
    complete: bool = True      # False: an optional walk gave up on an error


@dataclass(slots=True)
class _Layout:
    """What the poller learnt about one device's tables, to ask for exactly that next time."""

    if_rows: int | None = None                 # rows of the interface table
    cpu_index: tuple[int, ...] | None = None   # hrProcessorLoad instances; None: walk the tables
    ram_index: tuple[int, ...] = ()            # hrStorage rows of type hrStorageRam
    polls: int = 0                             # polls since the HOST-RESOURCES tables were walked


def _predecessor(oid: Oid) -> Oid:
    """The OID whose GETNEXT is ``oid`` when ``oid`` exists (single integer index or scalar .0)."""
    return oid[:-1] + (oid[-1] - 1,) if oid[-1] > 0 else oid[:-1]


class SnmpPoller:
    """Polls targets concurrently over one SnmpEngine per run.

    Parameters:
        concurrency: how many devices are in flight at once. pysnmp spends its CPU decoding
            replies, so far more than the replies one process decodes per timeout turns slow
            answers into timeouts; raise it for high-latency networks, not for throughput.
        max_repetitions: GETBULK max-repetitions ceiling.
        max_varbinds: ceiling of the varbinds one GETBULK asks for (rows x columns).
        first_repetitions: rows asked for per column when a device's table sizes are not known yet.
        rediscover_every: polls after which the HOST-RESOURCES tables are walked again (processors
            and RAM rows are otherwise fetched as known instances).

    The poller remembers each device's table layout between runs (row counts; which hrStorage rows
    are RAM; the processors), so a steady-state poll of a device is one GETBULK: the system scalars,
    the processor loads and the RAM rows as non-repeaters, the interface columns one row past the
    table's last known size. Keep one poller per worker process.
    """

    def __init__(self, *, concurrency: int = 32, max_repetitions: int = 50, max_varbinds: int = 500,
                 first_repetitions: int = 12, rediscover_every: int = 30):
        if min(concurrency, max_repetitions, max_varbinds, first_repetitions, rediscover_every) < 1:
            raise ValueError("concurrency, max_repetitions, max_varbinds, first_repetitions and "
                             "rediscover_every must be >= 1")
        self.concurrency = concurrency
        self.max_repetitions = max_repetitions
        self.max_varbinds = max_varbinds
        self.first_repetitions = first_repetitions
        self.rediscover_every = rediscover_every
        self._layouts: dict[int, _Layout] = {}

    def forget(self, device_id: int) -> None:
        """Drop what was learnt about a device (e.g. after it was replaced)."""
        self._layouts.pop(device_id, None)

    def poll(self, targets: Sequence[SnmpTarget]) -> list[SnmpPoll]:
        """Poll every target (blocking); results in the order of ``targets``."""
        if not targets:
            return []
        return asyncio.run(self.poll_async(targets))

    async def poll_async(self, targets: Sequence[SnmpTarget]) -> list[SnmpPoll]:
        """Poll every target on the running loop with fresh engines; results in target order."""
        if not targets:
            return []
        return await _on_engines(targets, self.concurrency, self._poll_one, "netpulse.ingest.snmp_polled")

    async def _poll_one(self, engine: SnmpEngine, target: SnmpTarget, sem: asyncio.Semaphore) -> SnmpPoll:
        async with sem:
            try:
                return await self._poll_device(engine, target)
            except _Failed as f:
                return SnmpPoll.failed(target.device_id, f.reason, f.detail)
            except PySnmpError as exc:
                log.warning("netpulse.ingest.snmp_error", device_id=target.device_id, error=str(exc))
                return SnmpPoll.failed(target.device_id, "error", str(exc))

    async def _transport(self, target: SnmpTarget) -> UdpTransportTarget | Udp6TransportTarget:
        cls = Udp6TransportTarget if ":" in target.address else UdpTransportTarget
        try:
            return await cls.create((target.address, target.port), timeout=target.timeout_s,
                                    retries=target.retries)
        except PySnmpError as exc:
            raise _Failed("unresolvable", str(exc)) from None

    async def _poll_device(self, engine: SnmpEngine, target: SnmpTarget) -> SnmpPoll:
        transport = await self._transport(target)
        auth = target.auth_data()
        d = target.device_id
        layout = self._layouts.setdefault(d, _Layout())
        if_reps = self._reps(layout.if_rows, len(IF_COLUMNS))
        system = [(*o, 0) for o in SYSTEM]
        cpu_pct = mem_pct = None
        if layout.cpu_index is not None and layout.polls < self.rediscover_every:
            # Steady state: one request; processors and RAM rows ride along as exact instances.
            hr = [(*HR_PROCESSOR_LOAD, i) for i in layout.cpu_index]
            hr += [(*col, i) for i in layout.ram_index for col in (HR_STORAGE_SIZE, HR_STORAGE_USED)]
            walk = await self._walk(engine, auth, transport, IF_COLUMNS, [*system, *hr], if_reps)
            cpu_pct, mem_pct, complete = _host_resources_known(walk, layout)
            layout.polls = layout.polls + 1 if complete else self.rediscover_every  # incomplete: walk again
        else:
            # Both walks run to the end even when one fails, so no request outlives the run's engine.
            walked = await asyncio.gather(
                self._walk(engine, auth, transport, IF_COLUMNS, system, if_reps),
                self._walk(engine, auth, transport, HR_COLUMNS, [], self._reps(None, len(HR_COLUMNS)),
                           optional=True),
                return_exceptions=True,
            )
            if_result, hr_result = walked
            if isinstance(if_result, BaseException):
                raise if_result
            if isinstance(hr_result, BaseException):
                raise hr_result
            walk, hr_walk = if_result, hr_result
            walk.requests += hr_walk.requests
            if hr_walk.complete:   # else: no answer this time; walk the tables again next poll
                cpu_pct, mem_pct = _host_resources_walked(hr_walk, layout)
                layout.polls = 0
        layout.if_rows = max((len(v) for v in walk.columns.values()), default=0)

        s = walk.instances
        sys_descr, sys_oid, sys_uptime, sys_name = (s.get(o) for o in system)
        poll = SnmpPoll(
            d, True, sys_name=_text(sys_name) if sys_name is not None else None,
            sys_descr=_text(sys_descr) if sys_descr is not None else None,
            sys_object_id=".".join(str(x) for x in sys_oid.asTuple()) if sys_oid is not None else None,
            sys_uptime_ticks=int(sys_uptime) if sys_uptime is not None else None,
            cpu_pct=cpu_pct, mem_pct=mem_pct, polled_at_us=walk.first_reply_us)
        poll.interfaces = await self._interfaces(engine, auth, transport, walk)
        poll.requests = walk.requests
        if not any(o in s for o in system) and not poll.interfaces:
            raise _Failed("no_such_name", "the agent shows neither the system group nor the interface table "
                                          "to these credentials")
        return poll

    async def _interfaces(self, engine: SnmpEngine, auth: CommunityData | UsmUserData, transport: Any,
                          walk: _Walk) -> list[InterfaceSample]:
        cols = walk.columns
        indexes = sorted({i for c in IF_COLUMNS for i in cols[c]})
        # Agents without (complete) ifXTable: 32-bit counters, ifSpeed and ifDescr, only when needed.
        need: list[Oid] = []
        if not indexes or any(i not in cols[IF_HC_IN_OCTETS] or i not in cols[IF_HC_OUT_OCTETS] for i in indexes):
            need += [IF_IN_OCTETS, IF_OUT_OCTETS]
        if not indexes or any(i not in cols[IF_HIGH_SPEED] for i in indexes):
            need.append(IF_SPEED)
        if not indexes or any(i not in cols[IF_NAME] for i in indexes):
            need.append(IF_DESCR)
        if need:
            extra = await self._walk(engine, auth, transport, need, [], self._reps(len(indexes) or None, len(need)))
            cols = {**cols, **extra.columns}
            walk.requests += extra.requests
            indexes = sorted({*indexes, *(i for c in extra.columns.values() for i in c)})

        def get(col: Oid, i: int) -> int | None:
            v = cols.get(col, {}).get(i)
            return None if v is None else int(v)

        out = []
        for i in indexes:
            in_oct, out_oct = get(IF_HC_IN_OCTETS, i), get(IF_HC_OUT_OCTETS, i)
            bits = 64
            if in_oct is None or out_oct is None:
                in_oct, out_oct, bits = get(IF_IN_OCTETS, i), get(IF_OUT_OCTETS, i), 32
            high = get(IF_HIGH_SPEED, i)
            speed = high * 1_000_000 if high is not None else get(IF_SPEED, i)
            name = cols[IF_NAME].get(i, cols.get(IF_DESCR, {}).get(i))
            status = get(IF_OPER_STATUS, i)
            out.append(InterfaceSample(
                ifindex=i, name=_text(name) if name is not None else None, speed_bps=speed,
                oper_status=OPER_STATUS.get(status, "unknown") if status is not None else None,
                in_octets=in_oct, out_octets=out_oct, counter_bits=bits,
                in_errors=get(IF_IN_ERRORS, i), out_errors=get(IF_OUT_ERRORS, i),
                in_discards=get(IF_IN_DISCARDS, i), out_discards=get(IF_OUT_DISCARDS, i),
                if_type=get(IF_TYPE, i)))
        return out

    def _reps(self, known_rows: int | None, n_columns: int) -> int:
        want = self.first_repetitions if known_rows is None else known_rows + 1  # +1 row: the table's end
        return max(1, min(want, self.max_repetitions, self.max_varbinds // max(1, n_columns)))

    async def _walk(self, engine: SnmpEngine, auth: CommunityData | UsmUserData, transport: Any,
                    columns: Sequence[Oid], instances: Sequence[Oid], reps: int, *,
                    optional: bool = False) -> _Walk:
        """Walk ``columns`` side by side with GETBULK until each leaves its subtree. ``instances``
        ride the first request as non-repeaters (a GETNEXT of each one's predecessor; kept only when
        the reply is that very instance). ``optional``: a failure yields an empty walk instead
        (HOST-RESOURCES is a bonus; the interface walk decides whether the poll failed)."""
        walk = _Walk(columns={c: {} for c in columns})
        cursor: dict[Oid, Oid] = {c: c for c in columns}
        active = list(columns)
        pending = list(instances)
        budget = self.max_varbinds
        first = True
        while active or pending:
            if not first:
                reps = max(1, min(self.max_repetitions, budget // max(1, len(active))))
            request = [ObjectType(ObjectIdentity(o))
                       for o in [*(_predecessor(i) for i in pending), *(cursor[c] for c in active)]]
            try:
                ind, status, index, vbs = await bulk_cmd(engine, auth, transport, ContextData(),
                                                         len(pending), reps, *request, lookupMib=False)
            except PySnmpError as exc:
                if optional:
                    walk.complete = False
                    return walk
                raise _Failed("error", str(exc)) from None
            walk.requests += 1
            if ind:
                if optional:
                    walk.complete = False
                    return walk
                raise _Failed(*_indication_reason(ind))
            if status:
                name = str(status.prettyPrint()) if hasattr(status, "prettyPrint") else str(status)
                if name == "tooBig" and budget > len(active) + len(pending):
                    budget = max(1, budget // 2)
                    reps = max(1, min(reps, budget // max(1, len(active))))
                    continue
                if optional:
                    walk.complete = False
                    return walk
                raise _Failed(_snake(name), f"the agent answered {name} (index {int(index)})")
            if first:
                walk.first_reply_us = time.time_ns() // 1000
            n_pending = len(pending)
            for want, (oid, value) in zip(pending, vbs[:n_pending], strict=False):
                if tuple(oid) == want and not _absent(value):
                    walk.instances[want] = value
            pending = []
            width = len(active)
            finished: set[Oid] = set()
            advanced = False
            for j, (oid, value) in enumerate(vbs[n_pending:]):
                col = active[j % width]
                if col in finished:
                    continue
                name_t = tuple(oid)
                if (isinstance(value, EndOfMibView) or len(name_t) != len(col) + 1
                        or name_t[:len(col)] != col or name_t <= cursor[col]):
                    finished.add(col)
                    continue
                if not _absent(value):
                    walk.columns[col][name_t[-1]] = value
                cursor[col] = name_t
                advanced = True
            if not advanced and not finished:
                break  # the agent returned nothing usable: stop rather than loop
            active = [c for c in active if c not in finished]
            first = False
        return walk


async def _on_engines(targets: Sequence[SnmpTarget], concurrency: int,
                      one: Callable[[SnmpEngine, SnmpTarget, asyncio.Semaphore], Awaitable[SnmpPoll]],
                      event: str) -> list[SnmpPoll]:
    """Run ``one`` for every target, at most ``concurrency`` at once, on fresh engines (see
    ``_engine_slots``) that are closed afterwards; results in target order."""
    slots = _engine_slots(targets)
    engines = [SnmpEngine() for _ in range(max(slots) + 1)]
    sem = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    try:
        results = await asyncio.gather(*(one(engines[k], t, sem) for k, t in zip(slots, targets, strict=True)))
    finally:
        for engine in engines:
            engine.close_dispatcher()
    log.debug(event, targets=len(targets), failed=sum(1 for r in results if not r.ok),
              seconds=round(time.perf_counter() - started, 3))
    return list(results)


def _engine_slots(targets: Sequence[SnmpTarget]) -> list[int]:
    """Which engine of the run polls each target: the first, unless a v3 username comes with
    different keys. pysnmp keeps one USM entry per user name and engine ID, and the agents' engine
    IDs are unknown before discovery, so two variants of one user in one engine would overwrite each
    other's keys mid-flight; the n-th variant of a user name gets the n-th engine."""
    variants: dict[str, list[tuple[str | None, ...]]] = {}
    slots = []
    for t in targets:
        slot = 0
        if t.version == "3" and t.username:
            creds = (t.auth_protocol, t.auth_password, t.priv_protocol, t.priv_password)
            seen = variants.setdefault(t.username, [])
            if creds not in seen:
                seen.append(creds)
            slot = seen.index(creds)
        slots.append(slot)
    return slots


# CPU: the mean hrProcessorLoad over processors. Memory: used/size of the hrStorageRam rows (net-snmp
# counts buffers and page cache as used "Physical memory", as `free` did before procps 3.3.10).

def _mean(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def _ram_pct(sizes: Sequence[int], used: Sequence[int]) -> float | None:
    total = sum(sizes)
    return 100.0 * sum(used) / total if total > 0 else None


def _host_resources_walked(walk: _Walk, layout: _Layout) -> tuple[float | None, float | None]:
    """CPU and memory from walked HOST-RESOURCES tables; records their layout for the next polls."""
    loads = walk.columns[HR_PROCESSOR_LOAD]
    types, sizes, used = (walk.columns[c] for c in (HR_STORAGE_TYPE, HR_STORAGE_SIZE, HR_STORAGE_USED))
    ram = tuple(i for i, t in types.items() if tuple(t.asTuple()) == HR_STORAGE_RAM and i in sizes and i in used)
    layout.cpu_index = tuple(loads)
    layout.ram_index = ram
    return (_mean([int(v) for v in loads.values()]),
            _ram_pct([int(sizes[i]) for i in ram], [int(used[i]) for i in ram]))


def _host_resources_known(walk: _Walk, layout: _Layout) -> tuple[float | None, float | None, bool]:
    """CPU and memory from the instances a steady-state poll asked for; False when one was missing
    (the tables changed: walk them again next time)."""
    got = walk.instances
    loads = [got.get((*HR_PROCESSOR_LOAD, i)) for i in layout.cpu_index or ()]
    sizes = [got.get((*HR_STORAGE_SIZE, i)) for i in layout.ram_index]
    used = [got.get((*HR_STORAGE_USED, i)) for i in layout.ram_index]
    complete = all(v is not None for v in (*loads, *sizes, *used))
    cpu = _mean([int(v) for v in loads if v is not None])
    mem = _ram_pct([int(v) for v in sizes if v is not None], [int(v) for v in used if v is not None]) \
        if complete else None
    return cpu, mem, complete


def poll(targets: Sequence[SnmpTarget], **options: Any) -> list[SnmpPoll]:
    """Poll ``targets`` once with a throwaway ``SnmpPoller(**options)`` (blocking)."""
    return SnmpPoller(**options).poll(targets)


async def poll_async(targets: Sequence[SnmpTarget], **options: Any) -> list[SnmpPoll]:
    return await SnmpPoller(**options).poll_async(targets)


# --- the system group alone (discovery) ---------------------------------------------------------------

def get_system(targets: Sequence[SnmpTarget], *, concurrency: int = 256) -> list[SnmpPoll]:
    """sysDescr, sysObjectID, sysUpTime and sysName of every target (blocking); see ``get_system_async``."""
    if not targets:
        return []
    return asyncio.run(get_system_async(targets, concurrency=concurrency))


async def get_system_async(targets: Sequence[SnmpTarget], *, concurrency: int = 256) -> list[SnmpPoll]:
    """The system group of every target, one GET each, concurrently; results in target order.

    For asking many hosts who they are (discovery), not for polling: no interfaces, CPU or memory, and
    nothing is remembered. Failures are data with the poller's reasons (``"timeout"``, ``"auth_failed"``,
    ``"no_such_name"``, ...). Most hosts of a sweep answer nothing, so the cost is timeouts, not decoding:
    the default concurrency is far above the poller's.
    """
    if not targets:
        return []
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    return await _on_engines(targets, concurrency, _get_system_one, "netpulse.ingest.snmp_system_read")


async def _get_system_one(engine: SnmpEngine, target: SnmpTarget, sem: asyncio.Semaphore) -> SnmpPoll:
    system = [(*o, 0) for o in SYSTEM]
    async with sem:
        cls = Udp6TransportTarget if ":" in target.address else UdpTransportTarget
        try:
            transport = await cls.create((target.address, target.port), timeout=target.timeout_s,
                                         retries=target.retries)
        except PySnmpError as exc:
            return SnmpPoll.failed(target.device_id, "unresolvable", str(exc))
        try:
            ind, status, index, vbs = await get_cmd(engine, target.auth_data(), transport, ContextData(),
                                                    *(ObjectType(ObjectIdentity(o)) for o in system),
                                                    lookupMib=False)
        except PySnmpError as exc:
            log.warning("netpulse.ingest.snmp_error", device_id=target.device_id, error=str(exc))
            return SnmpPoll.failed(target.device_id, "error", str(exc))
    if ind:
        return SnmpPoll.failed(target.device_id, *_indication_reason(ind))
    if status:
        name = str(status.prettyPrint()) if hasattr(status, "prettyPrint") else str(status)
        return SnmpPoll.failed(target.device_id, _snake(name), f"the agent answered {name} (index {int(index)})")
    got = {tuple(oid): value for oid, value in vbs if not _absent(value)}
    if not got:
        return SnmpPoll.failed(target.device_id, "no_such_name",
                               "the agent shows no system group to these credentials")
    sys_descr, sys_oid, sys_uptime, sys_name = (got.get(o) for o in system)
    return SnmpPoll(
        target.device_id, True, sys_name=_text(sys_name) if sys_name is not None else None,
        sys_descr=_text(sys_descr) if sys_descr is not None else None,
        sys_object_id=".".join(str(x) for x in sys_oid.asTuple()) if sys_oid is not None else None,
        sys_uptime_ticks=int(sys_uptime) if sys_uptime is not None else None,
        polled_at_us=time.time_ns() // 1000, requests=1)
