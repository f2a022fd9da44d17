"""Network discovery (ingest.discovery, ``netpulse devices discover``) against the namespace test network.

The lab (tests/netlab.py) runs snmpd in the fast host's namespace; the sweep covers the lab's subnet,
whose every address routes into a lab link or is refused on this host. SNMP answers are cross-checked
with net-snmp's snmpget. Nothing is mocked: real ICMP, a real agent, the real database.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from cli import main
from ingest.discovery import Discovered, discover, host_count, parse_network, propose_type
from ingest.icmp import icmp_permitted
from netpulse import crypto
from netpulse.errors import ProbeError, ValidationError
from netpulse.schema import DeviceType
from tests.factories import make_org
from tests.netlab import NetnsLab, needs_root, netns_lab, which

COMMUNITY, SYS_NAME = "np-lab-ro", "lab-agent"
LIVE = ("fast", "slow", "lossy")
needs_raw = pytest.mark.skipif(not icmp_permitted(True), reason="raw ICMP sockets need root or CAP_NET_RAW")


@pytest.fixture(scope="module")
def lab() -> Iterator[NetnsLab]:
    with netns_lab("snmpd", "snmpget") as built:
        built.start_snmpd("fast", community=COMMUNITY, sys_name=SYS_NAME)
        built.check_contained(built.subnet)
        yield built


@pytest.fixture
def org(db: psycopg.Connection) -> uuid.UUID:
    return make_org(db, "acme")


def _snmpget(lab: NetnsLab, *oids: str) -> list[str]:
    """Values as net-snmp's snmpget prints them (-Oqv: values only; -On: numeric OIDs)."""
    snmpget = which("snmpget")
    assert snmpget is not None
    out = subprocess.run([snmpget, "-v2c", "-c", COMMUNITY, "-On", "-Oqv", f"{lab.hosts['fast']}:161", *oids],
                         capture_output=True, text=True, timeout=20, check=True,
                         env={**os.environ, "MIBS": "", "MIBDIRS": ""}).stdout
    return [line.strip().strip('"') for line in out.splitlines()]


def _sweep(lab: NetnsLab, *communities: str) -> list[Discovered]:
    """The lab's subnet. Five echoes per address: the lossy host (one echo in ten dropped) is missed once
    in 100,000 sweeps. No reverse DNS: the lab's addresses would be asked of the machine's name server."""
    return discover(lab.subnet, communities=communities, icmp_count=5, timeout_s=0.5, resolve_names=False)


def _by_address(found: list[Discovered]) -> dict[str, Discovered]:
    return {d.address: d for d in found}


def _devices(db: psycopg.Connection) -> dict[str, tuple[object, ...]]:
    rows = db.execute("SELECT d.name, d.address, host(d.ip_address), d.device_type, d.snmp_version, "
                      "d.snmp_community, d.snmp_port, s.name, g.name, d.description FROM devices d "
                      "LEFT JOIN sites s ON s.id = d.site_id LEFT JOIN device_groups g ON g.id = d.group_id").fetchall()
    # The community is stored encrypted; compare its plaintext.
    return {r[1]: (*r[:5], crypto.decrypt(r[5]), *r[6:]) for r in rows}


# --- the lab ---------------------------------------------------------------------------------------

@needs_root
def test_set_down_takes_a_host_off_the_network_and_back(lab: NetnsLab) -> None:
    from ingest.icmp import PingTarget, ping_many

    def alive(role: str) -> bool:
        [r] = ping_many([PingTarget(1, lab.hosts[role], count=3, interval_s=0.05, timeout_s=0.5)])
        return r.alive

    assert alive("fast") and not alive("down")
    try:
        lab.set_down("fast", True)
        lab.set_down("down", False)
        assert not alive("fast") and alive("down")
    finally:
        lab.set_down("fast", False)
        lab.set_down("down", True)
    assert alive("fast") and not alive("down")
    with pytest.raises(ValueError, match="no host 'unreachable' in the lab"):
        lab.set_down("unreachable", True)


@needs_root
def test_lab_teardown_removes_everything_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError, match="the test failed"):
        with netns_lab("snmpd", "snmpget") as other:
            other.start_snmpd("lossy", community="c", sys_name="x")
            snmpd = next(p for p in other.processes if "snmpd" in " ".join(map(str, p.args)))
            assert other.leftovers()
            raise RuntimeError("the test failed")
    assert snmpd.poll() is not None, "snmpd still runs"
    assert other.leftovers() == []
    assert other.processes == [] and other.workdir is None


# --- discovery on the lab's network ----------------------------------------------------------------

@needs_root
def test_discovery_finds_exactly_the_live_hosts_and_asks_snmp(lab: NetnsLab) -> None:
    found = _sweep(lab, "not-this-one", COMMUNITY)
    by_address = _by_address(found)
    assert set(by_address) == {lab.hosts[role] for role in LIVE}
    assert [d.address for d in found] == sorted(by_address, key=ipaddress.ip_address)

    descr, object_id, name = _snmpget(lab, ".1.3.6.1.2.1.1.1.0", ".1.3.6.1.2.1.1.2.0", ".1.3.6.1.2.1.1.5.0")
    agent = by_address[lab.hosts["fast"]]
    assert (agent.sys_name, agent.sys_descr, "." + (agent.sys_object_id or "")) == (name, descr, object_id)
    assert agent.sys_name == SYS_NAME and agent.sys_object_id == "1.3.6.1.4.1.8072.3.2.10"  # net-snmp on Linux
    assert (agent.proposed_type, agent.proposed_name, agent.snmp_community) == (DeviceType.SERVER, SYS_NAME,
                                                                                COMMUNITY)
    for role in ("slow", "lossy"):
        d = by_address[lab.hosts[role]]
        assert (d.sys_name, d.sys_descr, d.sys_object_id, d.snmp_community) == (None, None, None, None), d
        assert (d.proposed_type, d.proposed_name) == (DeviceType.OTHER, d.address)
    for d in found:
        assert d.rtt_ms is not None and d.rtt_ms > 0 and 0 <= d.loss_pct < 100


@needs_root
def test_a_wrong_community_gives_no_snmp_data_but_the_host_is_found(lab: NetnsLab) -> None:
    found = _by_address(_sweep(lab, "wrong"))
    assert set(found) == {lab.hosts[role] for role in LIVE}
    agent = found[lab.hosts["fast"]]
    assert (agent.sys_name, agent.sys_descr, agent.sys_object_id, agent.snmp_community) == (None, None, None, None)
    assert (agent.proposed_type, agent.proposed_name) == (DeviceType.OTHER, agent.address)


@needs_root
def test_a_host_taken_down_is_not_found_and_found_again_when_back(lab: NetnsLab) -> None:
    try:
        lab.set_down("slow", True)
        assert set(_by_address(_sweep(lab))) == {lab.hosts["fast"], lab.hosts["lossy"]}
    finally:
        lab.set_down("slow", False)
    assert lab.hosts["slow"] in _by_address(_sweep(lab))


# --- the command -----------------------------------------------------------------------------------

def _cli(lab: NetnsLab, *extra: str) -> list[str]:
    return ["devices", "discover", lab.subnet, "--snmp-community", "wrong", "--snmp-community", COMMUNITY,
            "--count", "5", "--timeout", "0.5", "--no-dns", *extra]


@needs_root
def test_cli_dry_run_lists_the_hosts_and_adds_nothing(lab: NetnsLab, org: uuid.UUID, db: psycopg.Connection,
                                                      settings_env: None) -> None:
    result = CliRunner().invoke(main, _cli(lab, "--dry-run", "--site", "Lab", "--group", "New"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ADDRESS", "RTT", "MS", "LOSS", "%", "NAME", "TYPE", "SNMP", "SYSDESCR", "RESULT"]
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert set(rows) == {lab.hosts[role] for role in LIVE}
    agent = rows[lab.hosts["fast"]].split()
    assert agent[3:6] == [SYS_NAME, "server", "v2c"] and agent[6] == "Linux" and agent[-1] == "new"
    assert rows[lab.hosts["slow"]].split()[3:6] == [lab.hosts["slow"], "other", "-"]
    assert COMMUNITY not in result.output, "the community is a secret: never printed"
    assert lines[-1] == f"3 host(s) answered in {lab.subnet}: 3 new, 0 already known; dry run, nothing was added"
    assert db.execute("SELECT count(*) FROM devices").fetchone() == (0,)
    assert db.execute("SELECT (SELECT count(*) FROM sites), (SELECT count(*) FROM device_groups)").fetchone() == (0, 0)


@needs_root
def test_cli_adds_the_new_hosts_once(lab: NetnsLab, org: uuid.UUID, db: psycopg.Connection,
                                     settings_env: None) -> None:
    """A taken name gets a suffix; the agent is saved for SNMP polling; a second run adds nothing."""
    db.execute("INSERT INTO devices (organization_id, name, address, ip_address, device_type) "
               "VALUES (%s, %s, '192.0.2.10', '192.0.2.10', 'router')", (org, SYS_NAME))
    result = CliRunner().invoke(main, _cli(lab, "--site", "Lab", "--group", "Discovered"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"3 host(s) answered in {lab.subnet}: added 3, 0 already known"
    h = lab.hosts
    devices = _devices(db)
    assert set(devices) == {"192.0.2.10", h["fast"], h["slow"], h["lossy"]}
    name, address, ip_text, device_type, version, community, port, site, group, description = devices[h["fast"]]
    assert (name, ip_text, device_type, version, community, port, site, group) == (
        f"{SYS_NAME}-2", h["fast"], "server", "2c", COMMUNITY, 161, "Lab", "Discovered")
    assert isinstance(description, str) and description.startswith(f"discovered in {lab.subnet}: Linux ")
    for role in ("slow", "lossy"):
        assert devices[h[role]][:7] == (h[role], h[role], h[role], "other", None, None, 161)

    again = CliRunner().invoke(main, _cli(lab))
    assert again.exit_code == 0, again.output
    results = {line.split()[0]: line.split("known: ")[-1] for line in again.stdout.splitlines()[2:-1]}
    assert results == {h["fast"]: f"{SYS_NAME}-2", h["slow"]: h["slow"], h["lossy"]: h["lossy"]}
    assert again.stdout.splitlines()[-1] == f"3 host(s) answered in {lab.subnet}: added 0, 3 already known"
    assert len(_devices(db)) == 4


def test_cli_checks_the_site_before_sweeping(org: uuid.UUID, db: psycopg.Connection, settings_env: None) -> None:
    """(A loopback network: nothing would leave the machine, were it swept after all.)"""
    result = CliRunner().invoke(main, ["devices", "discover", "127.0.0.0/30", "--site", "!!!"])
    assert result.exit_code == 1
    assert result.stderr == "Error: invalid site: '!!!' has no letters or digits to build a slug from\n"


# --- loopback --------------------------------------------------------------------------------------

@needs_raw
def test_loopback_names_from_reverse_dns_and_ipv6() -> None:
    """127.0.0.1 is named by /etc/hosts (no DNS query leaves the machine); ::1 by its address."""
    [v4] = discover("127.0.0.1/32", icmp_count=1)
    assert (v4.address, v4.proposed_name, v4.proposed_type, v4.sys_name) == ("127.0.0.1", "localhost",
                                                                             DeviceType.OTHER, None)
    [v6] = discover("::1/128", icmp_count=1, resolve_names=False)
    assert (v6.address, v6.proposed_name) == ("::1", "::1")


@needs_raw
def test_a_large_sweep_reports_progress_in_chunks() -> None:
    seen: list[tuple[int, int]] = []
    found = discover("127.42.0.0/19", icmp_count=1, resolve_names=False,
                     progress=lambda done, total: seen.append((done, total)))
    assert len(found) == 8190 and found[0].address == "127.42.0.1" and found[-1].address == "127.42.31.254"
    assert seen == [(4096, 8190), (8190, 8190)]


def test_no_icmp_socket_raises_probe_error_not_a_group_of_them() -> None:
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        low, high = (int(x) for x in f.read().split())
    if low <= os.getgid() <= high:
        pytest.skip("ping_group_range lets this group open ICMP datagram sockets here")
    seen: list[tuple[int, int]] = []
    with pytest.raises(ProbeError, match="ping_group_range"):   # every chunk fails; the sweep stops at once
        discover("127.42.0.0/19", privileged=False, resolve_names=False,
                 progress=lambda done, total: seen.append((done, total)))
    assert seen == []


# --- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cidr", "hosts"), [
    ("192.0.2.0/24", 254), ("192.0.2.7/24", 254), ("192.0.2.0/31", 2), ("192.0.2.9", 1), ("192.0.2.9/32", 1),
    ("2001:db8::/120", 255), ("2001:db8::/127", 2), ("2001:db8::1/128", 1), ("10.0.0.0/16", 65_534),
])
def test_networks_and_their_host_counts(cidr: str, hosts: int) -> None:
    network = parse_network(cidr)
    assert host_count(network) == hosts == sum(1 for _ in network.hosts())


@pytest.mark.parametrize(("cidr", "max_hosts", "message"), [
    ("10.0.0.300/24", 65_536, "'10.0.0.300/24' is not an IPv4 or IPv6 network"),
    ("192.0.2.0/33", 65_536, "'192.0.2.0/33' is not an IPv4 or IPv6 network"),
    ("lan", 65_536, "'lan' is not an IPv4 or IPv6 network"),
    ("", 65_536, "'' is not an IPv4 or IPv6 network"),
    ("10.0.0.0/8", 65_536, "10.0.0.0/8 has 16,777,214 host addresses, more than the limit of 65,536; sweep a "
                           "smaller network or raise the limit (--max-hosts)"),
    ("2001:db8::/64", 65_536, "2001:db8::/64 has 18,446,744,073,709,551,615 host addresses, more than the limit"),
    ("192.0.2.0/24", 100, "192.0.2.0/24 has 254 host addresses, more than the limit of 100"),
])
def test_bad_and_too_large_networks_are_refused(cidr: str, max_hosts: int, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_network(cidr, max_hosts)
    assert info.value.message.startswith(message) and "cidr" in info.value.details


def test_bad_options_are_refused_before_sweeping() -> None:
    with pytest.raises(ValidationError) as info:
        discover("127.0.0.0/30", icmp_count=0, timeout_s=0, pps=-1, snmp_port=0, communities=[""])
    assert set(info.value.details) == {"icmp_count", "timeout_s", "pps", "snmp_port", "communities"}


@pytest.mark.parametrize(("args", "message"), [
    (["10.0.0.300/24"], "Error: '10.0.0.300/24' is not an IPv4 or IPv6 network"),
    (["10.0.0.0/8"], "Error: 10.0.0.0/8 has 16,777,214 host addresses, more than the limit of 65,536"),
    (["192.0.2.0/24", "--max-hosts", "16"], "Error: 192.0.2.0/24 has 254 host addresses, more than the limit of 16"),
])
def test_cli_bad_networks_give_one_line_and_exit_1(args: list[str], message: str) -> None:
    """Checked before the database is opened: no NETPULSE_DATABASE_URL is needed to be told."""
    result = CliRunner().invoke(main, ["devices", "discover", *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, result.stderr


# --- type proposals ---------------------------------------------------------------------------------

T = DeviceType


@pytest.mark.parametrize(("oid", "descr", "expected"), [
    # net-snmp and other host agents
    ("1.3.6.1.4.1.8072.3.2.10", "Linux db1 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 x86_64", T.SERVER),
    (".1.3.6.1.4.1.8072.3.2.8", "FreeBSD files1 13.2-RELEASE FreeBSD 13.2-RELEASE releng/13.2 amd64", T.SERVER),
    ("1.3.6.1.4.1.311.1.1.3.1.2", "Hardware: Intel64 Family 6 Model 85 Stepping 7 AT/AT COMPATIBLE - "
                                  "Software: Windows Version 6.3 (Build 17763 Multiprocessor Free)", T.SERVER),
    (None, "Linux web2 5.15.0-91-generic #101-Ubuntu SMP x86_64", T.SERVER),
    # appliances on generic agents
    ("1.3.6.1.4.1.12325.1.1.2.1.1", "pfSense fw1.example.net 2.7.2-RELEASE FreeBSD 14.0-CURRENT amd64",
     T.FIREWALL),
    ("1.3.6.1.4.1.8072.3.2.8", "OPNsense.localdomain 23.7 FreeBSD 13.2-RELEASE-p3 amd64", T.FIREWALL),
    ("1.3.6.1.4.1.8072.3.2.10", "EdgeOS v2.0.9-hotfix.7.5622731.230615.0857", T.ROUTER),
    ("1.3.6.1.4.1.8072.3.2.10", "Linux DiskStation 4.4.302+ #72806 SMP Thu Sep 5 2024 x86_64", T.STORAGE),
    # Cisco
    ("1.3.6.1.4.1.9.1.2068", "Cisco IOS Software [Amsterdam], ISR Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), "
                             "Version 17.3.4a", T.ROUTER),
    ("1.3.6.1.4.1.9.1.2494", "Cisco IOS Software [Cupertino], Catalyst L3 Switch Software (CAT9K_IOSXE), "
                             "Version 17.9.4", T.SWITCH),
    ("1.3.6.1.4.1.9.1.1208", "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E8",
     T.SWITCH),
    ("1.3.6.1.4.1.9.12.3.1.3.1812", "Cisco NX-OS(tm) n9000, Software (n9000-dk9), Version 9.3(10)", T.SWITCH),
    ("1.3.6.1.4.1.9.1.2313", "Cisco Adaptive Security Appliance Version 9.16(4)", T.FIREWALL),
    ("1.3.6.1.4.1.9.1.2530", "Cisco Controller (C9800-40-K9), Wireless LAN Controller", T.WIRELESS_CONTROLLER),
    ("1.3.6.1.4.1.9.1.2240", "Cisco AP Software, ap3g3-k9w8 Version: 17.9.4.27 (AIR-AP2802I-E-K9)",
     T.ACCESS_POINT),
    (None, "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E8", T.SWITCH),
    # Juniper, Arista, MikroTik
    ("1.3.6.1.4.1.2636.1.1.1.2.25", "Juniper Networks, Inc. mx480 internet router, kernel JUNOS 21.4R3", T.ROUTER),
    ("1.3.6.1.4.1.2636.1.1.1.2.132", "Juniper Networks, Inc. ex4300-48t Ethernet Switch, kernel JUNOS 20.4R3",
     T.SWITCH),
    ("1.3.6.1.4.1.2636.1.1.1.2.135", "Juniper Networks, Inc. srx340 internet router, kernel JUNOS 21.2R3",
     T.FIREWALL),
    ("1.3.6.1.4.1.30065.1.3011.7050.3741.48", "Arista Networks EOS version 4.28.3M running on an Arista Networks "
                                              "DCS-7050SX3-48YC8", T.SWITCH),
    ("1.3.6.1.4.1.14988.1", "RouterOS CCR2004-16G-2S+", T.ROUTER),
    ("1.3.6.1.4.1.14988.1", "RouterOS CRS326-24G-2S+", T.SWITCH),
    # firewalls, access points, load balancers
    ("1.3.6.1.4.1.12356.101.1.8000", "FortiGate-60F v7.2.5,build1517", T.FIREWALL),
    ("1.3.6.1.4.1.25461.2.3.36", "Palo Alto Networks PA-3200 series firewall", T.FIREWALL),
    ("1.3.6.1.4.1.41112.1.6", "UAP-AC-Pro-Gen2 6.5.54.14277", T.ACCESS_POINT),
    ("1.3.6.1.4.1.41112.1.6", "USW-24-PoE, 6.5.59.14777, Linux 3.6.5", T.SWITCH),
    ("1.3.6.1.4.1.14823.1.2.66", "ArubaOS (MODEL: 315), Version 8.6.0.4-8.6.0.4", T.ACCESS_POINT),
    ("1.3.6.1.4.1.14823.1.1.40", "ArubaOS (MODEL: Aruba7010-US), Version 8.10.0.6", T.WIRELESS_CONTROLLER),
    ("1.3.6.1.4.1.3375.2.1.3.4.43", "Linux f5-lb1 3.10.0-862.14.4.el7.ve.x86_64 #1 SMP x86_64", T.LOAD_BALANCER),
    # nothing known
    ("1.3.6.1.4.1.11.2.3.9.1", "HP ETHERNET MULTI-ENVIRONMENT,ROM none,JETDIRECT,JD153", T.OTHER),
    ("1.3.6.1.4.1.99999.1.2", "Acme Widget 3000", T.OTHER),
    ("not-an-oid", "", T.OTHER),
    (None, None, T.OTHER),
])
def test_type_proposals(oid: str | None, descr: str | None, expected: DeviceType) -> None:
    assert propose_type(oid, descr) == expected
