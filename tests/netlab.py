"""A test network of network namespaces, for probes that must cross real links (root and ``ip netns``).

Each host is a namespace joined to this host by a veth pair. The links are point-to-point: host ``k``
has the address ``P.(k+1)`` of ``subnet`` (``P.0/28``, ``P`` a 10.231.X /24 that this host neither routes
nor addresses), and this host's end of its link has ``P.(129+k)``, outside ``subnet``. So a sweep of
``subnet`` meets the lab's hosts and nothing of this host, as a discovery of a real LAN would. An
``unreachable`` route for the whole /24 makes every other address of it fail on this host: no probe of
the lab can leave the machine.

- fast:        the namespace's kernel answers;
- slow:        the kernel is silenced (icmp_echo_ignore_all) and a small raw-socket responder answers
               each echo after gauss(20, 5) ms (tc netem is not available in this kernel);
- lossy:       an nftables rule drops one echo request in ten (``numgen random mod 10 0``);
- down:        the namespace's end of the link is down: nothing answers, not even ARP
               (``set_down`` takes any host down, or brings one back, the same way);
- unreachable: ``P.250``, routed into the fast namespace, whose ``unreachable`` route answers with
               ICMP host-unreachable.

``start_snmpd`` runs net-snmp's agent inside one host's namespace. ``close()`` stops every process and
deletes every namespace (with its veth pair and nftables tables) and route, also after a failed build;
test modules wrap ``netns_lab()`` in a module-scoped fixture. Without root and ``ip netns`` the tests
that need the lab skip, and in CI (CI=true) they fail instead.
"""

from __future__ import annotations

import ipaddress
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import CI

SLOW_MS, SLOW_SD_MS, LOSS_ONE_IN = 20.0, 5.0, 10
NETNS_NEEDED = "the namespace test network needs root and network namespaces (iproute2's `ip netns`)"
ROOT_OK = os.geteuid() == 0 and shutil.which("ip") is not None
# Skips locally without root; in CI the test runs and fails, as every missing requirement must there.
needs_root = pytest.mark.skipif(not ROOT_OK and not CI, reason=NETNS_NEEDED)
_SBIN = "/usr/sbin:/usr/local/sbin:/sbin"
_PACKAGES = {"nft": "nftables", "fping": "fping", "snmpd": "snmpd", "snmpget": "snmp", "setpriv": "util-linux"}
_QUIET_SNMP = {"MIBS": "", "MIBDIRS": ""}

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


class NetnsUnavailable(RuntimeError):
    """This machine (or user) cannot create network namespaces."""


def ip(*args: str, stdin: str | None = None) -> str:
    """Run ``ip ARGS`` on this host; its stdout, or RuntimeError with its stderr."""
    result = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def netns_exec(ns: str, *cmd: str, stdin: str | None = None) -> None:
    """Run ``cmd`` inside the namespace ``ns``; RuntimeError with its stderr when it fails."""
    result = subprocess.run(["ip", "netns", "exec", ns, *cmd], input=stdin, capture_output=True, text=True,
                            timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {ns} failed: {result.stderr.strip()}")


def which(tool: str) -> str | None:
    """``tool`` on PATH or in the sbin directories (snmpd lives in /usr/sbin)."""
    return shutil.which(tool) or shutil.which(tool, path=_SBIN)


def unavailable(what: str) -> NoReturn:
    """Skip the test for a missing requirement; in CI, fail it."""
    if CI:
        pytest.fail(f"{what} (required in CI)")
    pytest.skip(what)


def _free_prefix() -> str:
    """A 10.231.X /24 that nothing on this host routes or addresses (parallel runs pick others)."""
    used = ip("-4", "route", "show", "table", "all") + ip("-4", "addr")
    free = [x for x in range(256) if f"10.231.{x}." not in used]
    if not free:
        raise RuntimeError("every 10.231.X.0/24 is in use on this host")
    return f"10.231.{random.choice(free)}"


@dataclass(frozen=True)
class LabAgent:
    """An snmpd running in a lab host's namespace, answering v2c ``community`` from this host."""

    role: str
    address: str
    port: int
    community: str
    sys_name: str


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
    peers: dict[str, str] = field(default_factory=dict)       # role -> the namespace's veth
    routes: list[list[str]] = field(default_factory=list)     # routes added to this host (`ip route add` args)
    agents: dict[str, LabAgent] = field(default_factory=dict)  # role -> its snmpd
    workdir: Path | None = None

    ROLES = ("fast", "slow", "lossy", "down")

    @property
    def subnet(self) -> str:
        """The hosts' network (``P.0/28``): every role's address and nothing of this host."""
        return f"{self.prefix}.0/28"

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
            ip("netns", "add", first)
        except RuntimeError as exc:
            raise NetnsUnavailable(str(exc)) from exc
        self.namespaces.append(first)
        self._add_route("unreachable", f"{p}.0/24")   # first: nothing of the /24 may leave the machine
        host_cmds = []
        for k, role in enumerate(self.ROLES):
            ns, veth, peer = f"np-{self.tag}-{role}", f"np{self.tag}{k}h", f"np{self.tag}{k}n"
            if k:
                host_cmds.append(f"netns add {ns}")
                self.namespaces.append(ns)
            self.ns[role], self.links[role], self.peers[role] = ns, veth, peer
            self.hosts[role], self.gateway[role] = f"{p}.{k + 1}", f"{p}.{k + 129}"
            host_cmds += [f"link add {veth} type veth peer name {peer} netns {ns}",
                          f"addr add {self.gateway[role]} peer {self.hosts[role]} dev {veth}", f"link set {veth} up"]
        ip("-batch", "-", stdin="\n".join(host_cmds) + "\n")
        for role in self.ROLES:
            peer = self.peers[role]
            ip("-n", self.ns[role], "-batch", "-",
               stdin=f"addr add {self.hosts[role]} peer {self.gateway[role]} dev {peer}\nlink set {peer} up\n"
                     "link set lo up\n")
        # slow: the kernel stays silent, the responder answers late
        netns_exec(self.ns["slow"], "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns["slow"], sys.executable, "-c", RESPONDER,
                                 str(SLOW_MS), str(SLOW_SD_MS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.processes.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        if not ready or proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the echo responder did not start: {proc.stderr.read1() if proc.stderr else ''!r}")
        # lossy: drop one echo request in ten
        netns_exec(self.ns["lossy"], "nft", "-f", "-", stdin=textwrap.dedent(f"""\
            table inet netpulse_test {{
                chain input {{
                    type filter hook input priority 0; policy accept;
                    icmp type echo-request numgen random mod {LOSS_ONE_IN} 0 drop
                }}
            }}
            """))
        self.set_down("down", True)
        # unreachable: routed into the fast namespace, which rejects it with ICMP host unreachable
        self.hosts["unreachable"] = f"{p}.250"
        self.ns["unreachable"], self.links["unreachable"] = self.ns["fast"], self.links["fast"]
        self.gateway["unreachable"] = self.gateway["fast"]
        netns_exec(self.ns["fast"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        ip("-n", self.ns["fast"], "route", "add", "unreachable", f"{p}.250/32")
        self._add_route(f"{p}.250/32", "via", self.hosts["fast"], "dev", self.links["fast"])
        self.check_routes()

    def _add_route(self, *args: str) -> None:
        ip("route", "add", *args)
        self.routes.append(list(args))

    def check_routes(self) -> None:
        """Every test address must leave through its own veth, never through a real interface."""
        for role, address in self.hosts.items():
            route = ip("route", "get", address)
            if f"dev {self.links[role]} " not in route + " ":
                raise RuntimeError(f"{role} host {address} does not route into its test link: {route.strip()}")

    def check_contained(self, network: str) -> None:
        """Every address of ``network`` goes into a lab link or is refused on this host (the /24's
        ``unreachable`` route): call before probing a whole network of the lab."""
        net = ipaddress.ip_network(network)
        if not net.subnet_of(ipaddress.IPv4Network(f"{self.prefix}.0/24")):
            raise RuntimeError(f"{network} is not inside the lab's {self.prefix}.0/24")
        links = set(self.links.values())
        for address in net:
            result = subprocess.run(["ip", "route", "get", str(address)], capture_output=True, text=True, timeout=30)
            words = result.stdout.split()
            dev = words[words.index("dev") + 1] if "dev" in words else None
            if result.returncode == 0 and dev not in links:
                raise RuntimeError(f"{address} routes outside the lab: {result.stdout.strip()}")

    def set_down(self, role: str, down: bool = True) -> None:
        """Take ``role``'s host off the network (its end of the link down: no ARP, no echo, no SNMP) or
        bring it back. Coming back, both ends forget their neighbours, so the first echo after it is
        answered instead of waiting behind an ARP entry that failed while the host was down."""
        if role not in self.ROLES:
            raise ValueError(f"no host {role!r} in the lab; hosts: {', '.join(self.ROLES)}")
        ns, peer = self.ns[role], self.peers[role]
        ip("-n", ns, "link", "set", peer, "down" if down else "up")
        if not down:
            # The kernel turns the carrier on later (its link watcher may wait up to a second, longer on
            # a busy machine), dropping packets meanwhile: wait until both ends say UP.
            deadline = time.monotonic() + 30
            while not (" state UP " in ip("-o", "link", "show", self.links[role])
                       and " state UP " in ip("-n", ns, "-o", "link", "show", peer)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the link to the {role} host did not come up within 30 s")
                time.sleep(0.02)
            ip("neigh", "flush", "dev", self.links[role])
            ip("-n", ns, "neigh", "flush", "dev", peer)

    def start_snmpd(self, role: str, *, community: str, sys_name: str, port: int = 161) -> LabAgent:
        """Run net-snmp's ``snmpd`` in ``role``'s namespace on its address, answering SNMP v2c reads with
        ``community`` from this host's end of the link only; returns once it answers ``sysName``."""
        if role not in self.ROLES:
            raise ValueError(f"no host {role!r} in the lab; hosts: {', '.join(self.ROLES)}")
        if role in self.agents:
            raise RuntimeError(f"snmpd already runs on the {role} host")
        snmpd, snmpget = which("snmpd"), which("snmpget")
        if snmpd is None or snmpget is None:
            raise RuntimeError("net-snmp is not installed (apt-get install snmpd snmp)")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"netlab-{self.tag}-"))
        d = self.workdir / f"snmpd-{role}"
        (d / "persist").mkdir(parents=True)
        (d / "snmpd.conf").write_text(f"rocommunity {community} {self.gateway[role]}\nsysName {sys_name}\n")
        env = {**os.environ, **_QUIET_SNMP, "SNMP_PERSISTENT_DIR": str(d / "persist")}
        peer = f"{self.hosts[role]}:{port}"
        with open(d / "snmpd.log", "wb") as log:
            # `ip netns exec` execs the command: the process is snmpd itself, so terminate() reaches it.
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns[role], snmpd, "-f", "-LOn", "-C",
                                     "-c", str(d / "snmpd.conf"), "-p", str(d / "snmpd.pid"), f"udp:{peer}"],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(proc)
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"snmpd exited with {proc.returncode}: {(d / 'snmpd.log').read_text()[-1000:]}")
            out = subprocess.run([snmpget, "-v2c", "-c", community, "-On", "-Oqv", "-t", "0.5", "-r", "0", peer,
                                  ".1.3.6.1.2.1.1.5.0"], capture_output=True, text=True, timeout=10,
                                 env={**os.environ, **_QUIET_SNMP})
            if out.returncode == 0 and out.stdout.strip().strip('"') == sys_name:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"snmpd did not answer on {peer}: {(d / 'snmpd.log').read_text()[-1000:]}")
            time.sleep(0.2)
        agent = LabAgent(role, self.hosts[role], port, community, sys_name)
        self.agents[role] = agent
        return agent

    def close(self) -> None:
        """Stop the processes, then delete the namespaces (their veth pairs and nftables tables go with
        them), this host's routes and the work directory. Safe after a partial build and when repeated."""
        for proc in self.processes:
            if proc.poll() is None:
                if proc.stdin:
                    proc.stdin.close()    # the responder's cue; snmpd needs the signal
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self.processes.clear()
        self.agents.clear()
        # A namespace lives on while a process is inside, so they go after the processes.
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
        for veth in set(self.links.values()):
            subprocess.run(["ip", "link", "del", veth], capture_output=True)   # already gone, normally
        for route in reversed(self.routes):
            subprocess.run(["ip", "route", "del", *route], capture_output=True)  # the veth took the rest
        self.routes.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def leftovers(self) -> list[str]:
        """What of this lab is still on the machine (empty after ``close()``)."""
        found = [f"namespace {ns}" for ns in ip("netns", "list").split() if ns.startswith(f"np-{self.tag}-")]
        found += [f"link {line.split(':')[1].strip()}" for line in ip("-o", "link").splitlines()
                  if f" np{self.tag}" in line]
        found += [f"route {line.strip()}" for line in ip("-4", "route", "show", "table", "all").splitlines()
                  if f"{self.prefix}." in line]
        return found


@contextmanager
def netns_lab(*tools: str) -> Iterator[NetnsLab]:
    """A lab built for the ``with`` body and removed after it, however the body ends. ``tools`` are
    programs the caller needs besides ``nft`` (e.g. fping, snmpd). Without root, ``ip netns`` or a
    tool, the test skips with the reason (fails in CI)."""
    if not ROOT_OK:
        unavailable(f"{NETNS_NEEDED}; this is uid {os.geteuid()}"
                    + ("" if shutil.which("ip") else " and iproute2 is not installed"))
    missing = [tool for tool in ("nft", *tools) if which(tool) is None]
    if missing:
        packages = " ".join(sorted({_PACKAGES.get(tool, tool) for tool in missing}))
        unavailable(f"{' and '.join(missing)} not installed (apt-get install {packages})")
    try:
        lab = NetnsLab.build()
    except NetnsUnavailable as exc:
        unavailable(f"{NETNS_NEEDED}; `ip netns add` failed: {exc}")
    try:
        yield lab
    finally:
        lab.close()
