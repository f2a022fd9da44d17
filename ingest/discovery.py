"""Network discovery: which hosts of a network answer, what they say they are, and what to call them.

``discover`` sweeps every host address of a network with ICMP echoes (several per host, so that a lossy
host is still found; paced on request), asks each responder for the SNMP system group (sysName,
sysDescr, sysObjectID; v2c, each community in turn, all hosts concurrently), and proposes a device
type from the sysObjectID's enterprise number and sysDescr keywords (``propose_type``) and a name:
sysName, else the reverse-DNS name, else the address. It writes nothing: the caller decides what to
add to the inventory (``netpulse devices discover``).

A host that does not answer is simply not in the result; a network that cannot be swept (not a
network, too large) raises ``ValidationError``; ICMP sockets that cannot be opened raise ``ProbeError``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from ingest.icmp import PingResult, PingTarget, async_ping_many
from ingest.snmp import SnmpPoll, SnmpTarget, get_system_async
from netpulse.errors import ValidationError
from netpulse.schema import DeviceType

__all__ = ["Discovered", "discover", "discover_async", "parse_network", "host_count", "propose_type",
           "MAX_HOSTS"]

log = structlog.get_logger("netpulse.ingest.discovery")

MAX_HOSTS = 65_536                # a /16 of IPv4 (less its network and broadcast addresses)
ECHO_INTERVAL_S = 0.1             # between one host's own echoes
SNMP_RETRIES = 1                  # a lost UDP datagram should not cost a host its SNMP answer
PROGRESS_CHUNK = 4096             # hosts per ping call when someone watches the progress
_DNS_WORKERS = 16
_NAME_MAX = 255                   # the inventory's device name limit

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Discovered:
    """One host that answered the sweep. ``rtt_ms`` is the mean RTT of its answered echoes; the
    ``sys_*`` fields are None when it did not answer SNMP, and so is ``snmp_community``, else the
    community it answered."""

    address: str
    rtt_ms: float | None
    loss_pct: float
    sys_name: str | None
    sys_descr: str | None
    sys_object_id: str | None
    proposed_type: DeviceType
    proposed_name: str
    snmp_community: str | None


# --- the network ---------------------------------------------------------------------------------------

def host_count(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> int:
    """How many addresses ``network.hosts()`` yields, without listing them: IPv4 less the network and
    broadcast addresses, IPv6 less the subnet-router anycast; /31, /32, /127 and /128 keep all."""
    n = network.num_addresses
    if network.version == 4:
        return n - 2 if network.prefixlen < 31 else n
    return n - 1 if network.prefixlen < 127 else n


def parse_network(cidr: str, max_hosts: int = MAX_HOSTS) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network ``cidr`` names (host bits are allowed: ``192.0.2.7/24`` is ``192.0.2.0/24``; a bare
    address is that one host), refused when it holds more than ``max_hosts`` host addresses.

    Raises:
        ValidationError: not an IPv4/IPv6 network, or too large (details key ``cidr``).

    Examples:
        >>> str(parse_network("192.0.2.7/24"))
        '192.0.2.0/24'
    """
    text = cidr.strip()
    if max_hosts < 1:
        raise ValidationError(f"the host limit must be at least 1, not {max_hosts}",
                              details={"max_hosts": "must be at least 1"})
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ValidationError(f"{text!r} is not an IPv4 or IPv6 network ({exc}); write it as an address and "
                              f"prefix length, e.g. 192.0.2.0/24 or 2001:db8::/120",
                              details={"cidr": f"{text!r} is not a network"}) from None
    hosts = host_count(network)
    if hosts > max_hosts:
        raise ValidationError(f"{network} has {hosts:,} host addresses, more than the limit of {max_hosts:,}; "
                              f"sweep a smaller network or raise the limit (--max-hosts)",
                              details={"cidr": f"{hosts:,} host addresses, more than {max_hosts:,}"})
    return network


# --- device types --------------------------------------------------------------------------------------

_ENTERPRISES = (1, 3, 6, 1, 4, 1)


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Kind:
    """What a vendor's (or a product line's) devices are, unless a sysDescr keyword says otherwise."""

    vendor: str
    default: DeviceType
    refine: tuple[tuple[re.Pattern[str], DeviceType], ...] = ()
    descr: re.Pattern[str] | None = None  # recognises the vendor in sysDescr when sysObjectID does not

    def type_for(self, descr: str) -> DeviceType:
        return next((kind for pattern, kind in self.refine if pattern.search(descr)), self.default)


_T = DeviceType
# Systems that ride on a general-purpose agent (net-snmp, bsnmpd) and say what they are only in sysDescr.
_APPLIANCES: tuple[tuple[re.Pattern[str], DeviceType], ...] = (
    (_re(r"pfsense|opnsense"), _T.FIREWALL),
    (_re(r"edgeos|edgerouter|vyos|openwrt"), _T.ROUTER),
    (_re(r"synology|diskstation|qnap|truenas|freenas|data ontap"), _T.STORAGE),
)
# By sysObjectID under enterprises (1.3.6.1.4.1); the longest matching prefix wins.
_VENDORS: dict[tuple[int, ...], _Kind] = {
    (9,): _Kind("Cisco", _T.ROUTER, (
        (_re(r"\b(asa|pix)\b|adaptive security appliance|firepower|\bfpr-?\d"), _T.FIREWALL),
        (_re(r"wireless lan controller|\bwlc\b|\bc9800|\bair-ct"), _T.WIRELESS_CONTROLLER),
        (_re(r"aironet|\bair-?ap|\bcap\d{4}"), _T.ACCESS_POINT),
        (_re(r"catalyst|cat[39]k|nexus|nx-os|\bws-c|\bc(2960|3560|3650|3750|3850|9200|9300|9400|9500|9600)"
             r"|switch"), _T.SWITCH),
    ), _re(r"\bcisco\b")),
    (29671,): _Kind("Cisco Meraki", _T.ACCESS_POINT, (
        (_re(r"\bms\d"), _T.SWITCH), (_re(r"\b(mx|z)\d"), _T.FIREWALL)), _re(r"meraki")),
    (2636,): _Kind("Juniper", _T.ROUTER, (
        (_re(r"\bsrx|\bssg|netscreen"), _T.FIREWALL), (_re(r"\bex\d|\bqfx|switch"), _T.SWITCH),
    ), _re(r"juniper|junos")),
    (30065,): _Kind("Arista", _T.SWITCH, (), _re(r"\barista\b")),
    (14988,): _Kind("MikroTik", _T.ROUTER, ((_re(r"\bcrs\d|\bcss\d|swos"), _T.SWITCH),), _re(r"routeros|mikrotik")),
    (2011,): _Kind("Huawei", _T.ROUTER, (
        (_re(r"\busg\d|eudemon"), _T.FIREWALL), (_re(r"\b(s|ce)\d{4}|switch"), _T.SWITCH)), _re(r"huawei")),
    (1916,): _Kind("Extreme", _T.SWITCH, (), _re(r"extremexos|extreme networks")),
    (1991,): _Kind("Brocade", _T.SWITCH, (), _re(r"brocade|foundry")),
    (4413,): _Kind("Broadcom FASTPATH", _T.SWITCH, (), _re(r"edgeswitch|fastpath")),
    (6027,): _Kind("Dell Force10", _T.SWITCH, (), _re(r"force10")),
    (47196,): _Kind("Aruba CX", _T.SWITCH, (), _re(r"aruba.*\bcx\b")),
    (12356,): _Kind("Fortinet", _T.FIREWALL, (
        (_re(r"fortiap"), _T.ACCESS_POINT), (_re(r"fortiswitch"), _T.SWITCH), (_re(r"fortiadc"), _T.LOAD_BALANCER),
    ), _re(r"forti(gate|os|ap|switch|adc)")),
    (25461,): _Kind("Palo Alto Networks", _T.FIREWALL, (), _re(r"pan-os|palo alto")),
    (2620,): _Kind("Check Point", _T.FIREWALL, (), _re(r"check ?point|gaia")),
    (8741,): _Kind("SonicWall", _T.FIREWALL, (), _re(r"sonicwall")),
    (3097,): _Kind("WatchGuard", _T.FIREWALL, (), _re(r"watchguard|fireware")),
    (41112,): _Kind("Ubiquiti", _T.ACCESS_POINT, (
        (_re(r"edgeswitch|\busw|switch"), _T.SWITCH), (_re(r"\budm|\busg|dream machine|gateway"), _T.ROUTER),
    ), _re(r"ubiquiti|unifi|\buap\b")),
    (10002,): _Kind("Ubiquiti airOS", _T.ACCESS_POINT, (), _re(r"airos")),
    (14823,): _Kind("Aruba", _T.ACCESS_POINT, (), _re(r"arubaos|\baruba\b")),
    (14823, 1, 1): _Kind("Aruba", _T.WIRELESS_CONTROLLER),  # wlsxSwitchProducts: the mobility controllers
    (25053,): _Kind("Ruckus", _T.ACCESS_POINT, (
        (_re(r"zonedirector|smartzone|\bvsz"), _T.WIRELESS_CONTROLLER), (_re(r"\bicx"), _T.SWITCH)), _re(r"ruckus")),
    (3375,): _Kind("F5", _T.LOAD_BALANCER, (), _re(r"big-?ip")),
    (5951,): _Kind("Citrix NetScaler", _T.LOAD_BALANCER, (), _re(r"netscaler")),
    (22610,): _Kind("A10", _T.LOAD_BALANCER, (), _re(r"\bacos\b|a10 networks")),
    (789,): _Kind("NetApp", _T.STORAGE, (), _re(r"netapp")),
    (6574,): _Kind("Synology", _T.STORAGE),
    (24681,): _Kind("QNAP", _T.STORAGE),
    (11,): _Kind("HP", _T.OTHER, ((_re(r"procurve|officeconnect|switch"), _T.SWITCH),
                                 (_re(r"\bilo\b|proliant"), _T.SERVER))),
    (674,): _Kind("Dell", _T.SERVER, ((_re(r"powerconnect|networking|switch|\bos10\b"), _T.SWITCH),)),
    (6876,): _Kind("VMware", _T.SERVER, (), _re(r"vmware|esxi")),
    (311,): _Kind("Microsoft", _T.SERVER),
    (8072,): _Kind("net-snmp", _T.SERVER),
    (12325,): _Kind("FreeBSD bsnmpd", _T.SERVER),
}
_HOST_OS = _re(r"^(linux|freebsd|openbsd|netbsd|dragonfly|darwin|sunos)\b|\bwindows\b")


def _enterprise_path(sys_object_id: str | None) -> tuple[int, ...] | None:
    if not sys_object_id:
        return None
    try:
        oid = tuple(int(x) for x in sys_object_id.strip().strip(".").split("."))
    except ValueError:
        return None
    n = len(_ENTERPRISES)
    return oid[n:] if oid[:n] == _ENTERPRISES and len(oid) > n else None


def propose_type(sys_object_id: str | None, sys_descr: str | None) -> DeviceType:
    """A device type for what a host's SNMP agent says; ``other`` when it says nothing we know.

    In order: appliance keywords in sysDescr (pfSense, OPNsense, EdgeOS, Synology, ... ride on generic
    agents); the vendor of the sysObjectID's enterprise number, refined by product keywords (a Cisco
    "Catalyst" is a switch, an "ASA" a firewall); the vendor named in sysDescr; a host operating system
    (Linux, BSD, Windows) is a server.

    Examples:
        >>> propose_type("1.3.6.1.4.1.8072.3.2.10", "Linux db1 6.1.0-18-amd64 #1 SMP x86_64").value
        'server'
        >>> propose_type(".1.3.6.1.4.1.9.1.2066", "Cisco IOS Software, Catalyst L3 Switch Software").value
        'switch'
    """
    descr = " ".join((sys_descr or "").split())
    for pattern, kind in _APPLIANCES:
        if pattern.search(descr):
            return kind
    path = _enterprise_path(sys_object_id)
    if path is not None:
        for n in range(len(path), 0, -1):
            vendor = _VENDORS.get(path[:n])
            if vendor is not None:
                return vendor.type_for(descr)
    if descr:
        for vendor in _VENDORS.values():
            if vendor.descr is not None and vendor.descr.search(descr):
                return vendor.type_for(descr)
        if _HOST_OS.search(descr):
            return _T.SERVER
    return _T.OTHER


# --- the sweep -----------------------------------------------------------------------------------------

async def _sweep(addresses: Sequence[str], *, count: int, timeout_s: float, pps: float | None, privileged: bool,
                 progress: Progress | None) -> list[PingResult]:
    """Ping every address. With a progress callback, in chunks that report as they finish: chunk j
    starts when chunk j-1 should have sent its last echo, so the sweep costs about one timeout in
    all, not one per chunk, and the echo rate stays within ``pps``."""
    targets = [PingTarget(i, a, count=count, timeout_s=timeout_s, interval_s=ECHO_INTERVAL_S)
               for i, a in enumerate(addresses)]
    total = len(targets)
    size = PROGRESS_CHUNK if progress is not None else max(1, total)
    chunks = [targets[i:i + size] for i in range(0, total, size)]
    done = 0

    async def run(part: Sequence[PingTarget], delay: float) -> list[PingResult]:
        nonlocal done
        await asyncio.sleep(delay)
        results = await async_ping_many(part, privileged=privileged, pps=pps)
        done += len(part)
        if progress is not None:
            progress(done, total)
        return results

    def sending_s(n: int) -> float:
        return (count - 1) * ECHO_INTERVAL_S + (n * count / pps if pps else 0.0)

    tasks, start = [], 0.0
    for part in chunks:
        tasks.append(asyncio.create_task(run(part, start)))
        start += sending_s(len(part))
    try:
        results = await asyncio.gather(*tasks)
    except BaseException:
        # e.g. ProbeError (no ICMP socket): the other chunks stop too, and the error itself propagates
        # (a TaskGroup would wrap it in an ExceptionGroup).
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [r for part_results in results for r in part_results]


async def _ask_snmp(addresses: Sequence[str], communities: Sequence[str], port: int,
                    timeout_s: float) -> dict[str, tuple[SnmpPoll, str]]:
    """The system group of each address that answers one of ``communities`` (tried in order, each
    round asking only the hosts still silent), with the community that worked."""
    found: dict[str, tuple[SnmpPoll, str]] = {}
    todo = list(addresses)
    for community in communities:
        if not todo:
            break
        targets = [SnmpTarget(i, a, port, "2c", community, timeout_s=timeout_s, retries=SNMP_RETRIES)
                   for i, a in enumerate(todo)]
        for address, answer in zip(todo, await get_system_async(targets), strict=True):
            if answer.ok:
                found[address] = (answer, community)
        todo = [a for a in todo if a not in found]
    return found


def _reverse_name(address: str) -> str | None:
    try:
        name, _ = socket.getnameinfo((address, 0), socket.NI_NAMEREQD)
    except (OSError, UnicodeError):
        return None
    return name.rstrip(".") or None


async def _reverse_names(addresses: Sequence[str], timeout_s: float) -> dict[str, str]:
    """PTR names, looked up in threads. The lookups get ``timeout_s`` per round of ``_DNS_WORKERS``;
    those not done by then are given up (not waited for): a slow name server must not stall discovery."""
    if not addresses:
        return {}
    loop = asyncio.get_running_loop()
    workers = min(_DNS_WORKERS, len(addresses))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rdns")
    try:
        futures = [loop.run_in_executor(pool, _reverse_name, a) for a in addresses]
        done, pending = await asyncio.wait(futures, timeout=timeout_s * -(-len(addresses) // workers))
        for f in pending:
            f.cancel()        # a lookup that ends after the loop closed then drops its answer quietly
        names = {a: f.result() for a, f in zip(addresses, futures, strict=True) if f in done}
        return {a: name for a, name in names.items() if name}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _clean_name(text: str | None) -> str | None:
    name = " ".join((text or "").split())
    return name[:_NAME_MAX] or None


async def discover_async(cidr: str, *, communities: Sequence[str] = (), snmp_port: int = 161, icmp_count: int = 3,
                         timeout_s: float = 1.0, pps: float | None = None, privileged: bool = True,
                         max_hosts: int = MAX_HOSTS, resolve_names: bool = True,
                         progress: Progress | None = None) -> list[Discovered]:
    """``discover`` for callers inside an event loop."""
    network = parse_network(cidr, max_hosts)
    if isinstance(communities, str):
        communities = [communities]     # one community, not a sequence of one-letter ones
    problems: dict[str, str] = {}
    if icmp_count < 1:
        problems["icmp_count"] = f"icmp_count must be at least 1, not {icmp_count}"
    if not timeout_s > 0:
        problems["timeout_s"] = f"timeout_s must be above 0, not {timeout_s}"
    if pps is not None and not pps > 0:
        problems["pps"] = f"pps must be above 0, not {pps}"
    if not 1 <= snmp_port <= 65535:
        problems["snmp_port"] = f"snmp_port {snmp_port} is not between 1 and 65535"
    if any(not c for c in communities):
        problems["communities"] = "an SNMP community cannot be empty"
    if problems:
        raise ValidationError("cannot discover " + str(network) + ": " + "; ".join(problems.values()),
                              details=problems)

    started = time.perf_counter()
    addresses = [str(a) for a in network.hosts()]
    pings = await _sweep(addresses, count=icmp_count, timeout_s=timeout_s, pps=pps, privileged=privileged,
                         progress=progress)
    alive = [r for r in pings if r.alive]
    swept = time.perf_counter()
    snmp = await _ask_snmp([r.address for r in alive], communities, snmp_port, timeout_s)
    sys_names = {a: _clean_name(answer.sys_name) for a, (answer, _) in snmp.items()}
    unnamed = [r.address for r in alive if sys_names.get(r.address) is None]
    dns = await _reverse_names(unnamed, max(timeout_s, 2.0)) if resolve_names else {}

    found = []
    for r in alive:
        answer, community = snmp.get(r.address, (None, None))
        sys_name = answer.sys_name if answer else None
        sys_descr = answer.sys_descr if answer else None
        sys_oid = answer.sys_object_id if answer else None
        found.append(Discovered(
            address=r.address, rtt_ms=r.avg_ms, loss_pct=r.loss_pct, sys_name=sys_name, sys_descr=sys_descr,
            sys_object_id=sys_oid, proposed_type=propose_type(sys_oid, sys_descr),
            proposed_name=sys_names.get(r.address) or _clean_name(dns.get(r.address)) or r.address,
            snmp_community=community))
    log.info("netpulse.ingest.discovered", network=str(network), swept=len(addresses), alive=len(alive),
             snmp=len(snmp), sweep_s=round(swept - started, 3), total_s=round(time.perf_counter() - started, 3))
    return found


def discover(cidr: str, *, communities: Sequence[str] = (), snmp_port: int = 161, icmp_count: int = 3,
             timeout_s: float = 1.0, pps: float | None = None, privileged: bool = True, max_hosts: int = MAX_HOSTS,
             resolve_names: bool = True, progress: Progress | None = None) -> list[Discovered]:
    """Find the hosts of the network ``cidr`` that answer ICMP, and what they are.

    Parameters:
        cidr: an IPv4 or IPv6 network (``192.0.2.0/24``, ``2001:db8::/120``); every host address is swept.
        communities: SNMP v2c communities to try, in order, on each responder; none: no SNMP.
        snmp_port: the agents' UDP port.
        icmp_count: echoes per address (``ECHO_INTERVAL_S`` apart); a host is found when one is answered.
        timeout_s: how long an echo, and an SNMP request (sent twice), wait for an answer.
        pps: at most this many echo requests per second over the sweep; None: as fast as they go. Use a
            limit on real networks.
        privileged: raw ICMP sockets (root/CAP_NET_RAW) or, if False, ICMP datagram sockets.
        max_hosts: refuse networks with more host addresses than this.
        resolve_names: look up the PTR name of each host that gives no sysName.
        progress: called with (addresses swept, addresses) as the sweep goes.

    Returns:
        The hosts that answered, in address order.

    Raises:
        ValidationError: ``cidr`` is not a network or is too large, or an option is out of range.
        ProbeError: ICMP sockets cannot be opened (the message says how to allow them).
    """
    return asyncio.run(discover_async(cidr, communities=communities, snmp_port=snmp_port, icmp_count=icmp_count,
                                      timeout_s=timeout_s, pps=pps, privileged=privileged, max_hosts=max_hosts,
                                      resolve_names=resolve_names, progress=progress))
