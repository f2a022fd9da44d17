"""SNMP polling against a real net-snmp agent, cross-checked with net-snmp's own tools; counter-to-rate
logic; interfaces in the database.

The session fixture starts ``snmpd`` on a free 127.0.0.1 UDP port with its own config, persistent
directory and pid file. Without snmpd the agent tests skip, unless running as root, where the
fixture installs Debian's ``snmpd snmp`` and a failure is an error (CI runs as root).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest

from ingest.counters import ABSURD_BPS, CounterSample, CounterState, counter_rate, counter_rates, snmp_rows
from ingest.interfaces import upsert_interfaces
from ingest.loader import Loader
from ingest.snmp import InterfaceSample, SnmpPoll, SnmpPoller, SnmpTarget, poll
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind
from tests.factories import make_devices, make_org

COMMUNITY = "public"
V3_USER, V3_AUTH_ONLY_USER = "netpulse", "netpulse_auth"
AUTH_PASS, PRIV_PASS = "authpass123", "privpass123"
SYS_NAME = "test-agent"
SNMPD_CONF = f"""\
rocommunity {COMMUNITY} 127.0.0.1
rocommunity hronly 127.0.0.1 .1.3.6.1.2.1.25
view noifx included .1.3.6.1.2.1.1
view noifx included .1.3.6.1.2.1.2
rocommunity noifx 127.0.0.1 -V noifx
createUser {V3_USER} SHA {AUTH_PASS} AES {PRIV_PASS}
createUser {V3_AUTH_ONLY_USER} SHA {AUTH_PASS}
rouser {V3_USER} priv
rouser {V3_AUTH_ONLY_USER} auth
sysName {SYS_NAME}
"""
QUIET_ENV = {"MIBS": "", "MIBDIRS": ""}
IF_NAME = ".1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN, IF_HC_OUT = ".1.3.6.1.2.1.31.1.1.1.6", ".1.3.6.1.2.1.31.1.1.1.10"
IF_HIGH_SPEED = ".1.3.6.1.2.1.31.1.1.1.15"


# --- the agent ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Agent:
    port: int
    dir: Path

    @property
    def peer(self) -> str:
        return f"127.0.0.1:{self.port}"

    def target(self, device_id: int = 1, **kw: object) -> SnmpTarget:
        args: dict[str, object] = {"version": "2c", "community": COMMUNITY, "timeout_s": 2.0, "retries": 1}
        args.update(kw)
        return SnmpTarget(device_id, "127.0.0.1", self.port, **args)  # type: ignore[arg-type]

    def v3_target(self, device_id: int = 1, **kw: object) -> SnmpTarget:
        args: dict[str, object] = {"username": V3_USER, "auth_protocol": "SHA", "auth_password": AUTH_PASS,
                                   "priv_protocol": "AES", "priv_password": PRIV_PASS}
        args.update(kw)
        return self.target(device_id, version="3", community=None, **args)

    def _run(self, tool: str, *args: str) -> dict[str, str]:
        """``OID -> value`` from snmpget/snmpbulkwalk (-On -Oq: numeric OIDs, no types)."""
        out = subprocess.run([tool, "-v2c", "-c", COMMUNITY, "-On", "-Oq", "-t", "2", self.peer, *args],
                             capture_output=True, text=True, timeout=20, env={**os.environ, **QUIET_ENV},
                             check=True).stdout
        values = {}
        for line in out.splitlines():
            oid, _, value = line.partition(" ")
            values[oid] = value.strip().strip('"')
        return values

    def get(self, *oids: str) -> dict[str, str]:
        return self._run("snmpget", *oids)

    def walk(self, oid: str) -> dict[int, str]:
        """A column by ifindex (the last OID component)."""
        return {int(k.rsplit(".", 1)[1]): v for k, v in self._run("snmpbulkwalk", oid).items()
                if k.startswith(oid + ".")}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _netsnmp_tools() -> str | None:
    """The snmpd binary; as root, installs Debian's snmpd and snmp when missing."""
    found = shutil.which("snmpd") or shutil.which("snmpd", path="/usr/sbin:/usr/local/sbin")
    if found and shutil.which("snmpbulkwalk"):
        return found
    if os.geteuid() != 0:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "snmpd", "snmp"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"could not install snmpd as root: {result.stderr.strip()[-500:]}")
    return shutil.which("snmpd", path="/usr/sbin:/usr/local/sbin:" + os.environ.get("PATH", ""))


@pytest.fixture(scope="session")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    snmpd = _netsnmp_tools()
    if snmpd is None:
        pytest.skip("net-snmp's snmpd/snmpbulkwalk are not installed (apt-get install snmpd snmp) "
                    "and this user is not root to install them")
    d = tmp_path_factory.mktemp("snmpd")
    (d / "persist").mkdir()
    (d / "snmpd.conf").write_text(SNMPD_CONF)
    port = _free_udp_port()
    env = {**os.environ, **QUIET_ENV, "SNMP_PERSISTENT_DIR": str(d / "persist")}
    with open(d / "snmpd.log", "wb") as log:
        proc = subprocess.Popen([snmpd, "-f", "-LOn", "-C", "-c", str(d / "snmpd.conf"), "-p", str(d / "snmpd.pid"),
                                 f"udp:127.0.0.1:{port}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    a = Agent(port, d)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"snmpd exited with {proc.returncode}: {(d / 'snmpd.log').read_text()[-1000:]}")
            try:
                if a.get(".1.3.6.1.2.1.1.5.0").get(".1.3.6.1.2.1.1.5.0") == SYS_NAME:
                    break
            except subprocess.CalledProcessError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"snmpd did not answer on {a.peer}: {(d / 'snmpd.log').read_text()[-1000:]}")
            time.sleep(0.2)
        yield a
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _lo(p: SnmpPoll) -> InterfaceSample:
    return next(i for i in p.interfaces if i.name == "lo")


def _udp_burst(n_bytes: int) -> None:
    """Send ``n_bytes`` of UDP payload over the loopback to a socket of ours, and drain it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        chunk = b"x" * 1000
        for _ in range(n_bytes // len(chunk)):
            tx.sendto(chunk, rx.getsockname())
            try:
                while rx.recv(2048):
                    pass
            except BlockingIOError:
                pass


# --- polling a real agent ---------------------------------------------------------------------------

def test_v2c_poll_matches_netsnmp(agent: Agent) -> None:
    names = agent.walk(IF_NAME)
    speeds = agent.walk(IF_HIGH_SPEED)
    system = agent.get(*(f".1.3.6.1.2.1.1.{n}.0" for n in (1, 2, 5)))
    before_in, before_out = agent.walk(IF_HC_IN), agent.walk(IF_HC_OUT)
    [p] = poll([agent.target()])
    after_in, after_out = agent.walk(IF_HC_IN), agent.walk(IF_HC_OUT)

    assert p.ok and p.error is None, p
    assert p.sys_name == system[".1.3.6.1.2.1.1.5.0"] == SYS_NAME
    assert p.sys_descr == system[".1.3.6.1.2.1.1.1.0"]
    assert "." + (p.sys_object_id or "") == system[".1.3.6.1.2.1.1.2.0"]
    assert p.sys_uptime_ticks is not None and p.sys_uptime_ticks > 0
    assert abs(p.polled_at_us - time.time() * 1e6) < 30e6
    assert {i.ifindex: i.name for i in p.interfaces} == names
    for i in p.interfaces:
        assert i.counter_bits == 64
        assert i.speed_bps == int(speeds[i.ifindex]) * 1_000_000
        assert i.in_octets is not None and i.out_octets is not None
        assert int(before_in[i.ifindex]) <= i.in_octets <= int(after_in[i.ifindex])
        assert int(before_out[i.ifindex]) <= i.out_octets <= int(after_out[i.ifindex])
        assert i.in_errors is not None and i.in_errors >= 0 and i.out_discards is not None
    lo = _lo(p)
    assert lo.oper_status == "up" and lo.if_type == 24
    assert p.mem_pct is not None and 0 < p.mem_pct <= 100     # net-snmp on Linux has hrStorageRam
    assert p.cpu_pct is None or 0 <= p.cpu_pct <= 100          # hrProcessorLoad is empty for ~60 s


def test_agent_without_ifxtable_falls_back_to_32_bit_counters(agent: Agent) -> None:
    """A view without the ifXTable (as on old agents): ifInOctets/ifOutOctets, ifSpeed, ifDescr."""
    descr, speed = agent.walk(".1.3.6.1.2.1.2.2.1.2"), agent.walk(".1.3.6.1.2.1.2.2.1.5")
    before = agent.walk(".1.3.6.1.2.1.2.2.1.10")
    [p] = poll([agent.target(community="noifx")])
    after = agent.walk(".1.3.6.1.2.1.2.2.1.10")
    assert p.ok and p.sys_name == SYS_NAME, p
    assert {i.ifindex: i.name for i in p.interfaces} == descr
    for i in p.interfaces:
        assert i.counter_bits == 32 and i.speed_bps == int(speed[i.ifindex])
        assert int(before[i.ifindex]) <= (i.in_octets or 0) <= int(after[i.ifindex]) < 2**32
    assert p.requests == 3     # interfaces + HOST-RESOURCES (not in this view), then the 32-bit columns


def test_v3_authpriv_and_authnopriv(agent: Agent) -> None:
    priv, auth_only = poll([agent.v3_target(1),
                            agent.v3_target(2, username=V3_AUTH_ONLY_USER, priv_protocol=None, priv_password=None)])
    assert priv.ok and auth_only.ok, (priv, auth_only)
    assert agent.v3_target().security_level == "authPriv"
    assert priv.sys_name == auth_only.sys_name == SYS_NAME
    assert [i.name for i in priv.interfaces] == [i.name for i in auth_only.interfaces] == \
        list(agent.walk(IF_NAME).values())


def test_wrong_community_is_a_quick_timeout(agent: Agent) -> None:
    started = time.monotonic()
    [p] = poll([agent.target(community="not-the-community", timeout_s=0.3, retries=0)])
    assert (p.ok, p.error) == (False, "timeout")
    assert p.interfaces == [] and p.sys_name is None
    assert time.monotonic() - started < 2.0


def test_wrong_v3_credentials_are_auth_failures(agent: Agent) -> None:
    wrong_auth, unknown_user, good = poll([
        agent.v3_target(1, auth_password="wrong-password"),
        agent.v3_target(2, username="nobody"),
        agent.v3_target(3),   # the same user with the right keys, in the same run
    ])
    assert (wrong_auth.ok, wrong_auth.error) == (False, "auth_failed")
    assert wrong_auth.detail is not None and "wrongDigest" in wrong_auth.detail
    assert (unknown_user.ok, unknown_user.error) == (False, "auth_failed")
    assert unknown_user.detail is not None and "unknownUserName" in unknown_user.detail
    assert good.ok, good


def test_view_without_system_or_interfaces_is_no_such_name(agent: Agent) -> None:
    [p] = poll([agent.target(community="hronly")])
    assert (p.ok, p.error) == (False, "no_such_name"), p


def test_unresolvable_address_is_a_result() -> None:
    [p] = poll([SnmpTarget(1, "no-such-host.invalid", community="public", timeout_s=0.5, retries=0)])
    assert (p.ok, p.error) == (False, "unresolvable")


def test_many_devices_concurrently(agent: Agent) -> None:
    """Forty 'devices' (the same agent), a mix of v2c and v3, in one run; the second run uses the
    learnt layout: one request per device."""
    targets = [agent.target(i) if i % 2 else agent.v3_target(i) for i in range(40)]
    poller = SnmpPoller(concurrency=8)
    first = poller.poll(targets)
    second = poller.poll(targets)
    assert all(p.ok for p in first + second), [p for p in first + second if not p.ok][:3]
    assert [p.device_id for p in second] == list(range(40))
    assert {p.requests for p in second} == {1}
    assert all(p.mem_pct is not None for p in second)


def test_two_polls_give_loopback_rates(agent: Agent) -> None:
    poller, state = SnmpPoller(), CounterState()
    [p1] = poller.poll([agent.target(7)])
    rows1 = snmp_rows(p1, state)
    assert not np.isin(rows1.metric_id, [MetricKind.IF_IN_BPS, MetricKind.IF_OUT_BPS, MetricKind.IF_UTIL_PCT,
                                         MetricKind.IF_ERRORS_PS]).any()   # no rate from a first sample
    assert set(rows1.metric_id.tolist()) <= {MetricKind.CPU_PCT, MetricKind.MEM_PCT}

    burst = 10_000_000
    _udp_burst(burst)
    # net-snmp caches the interface table for a few seconds: wait until it shows the burst.
    lo_index, target_in = _lo(p1).ifindex, _lo(p1).in_octets + burst  # type: ignore[operator]
    deadline = time.monotonic() + 15
    while int(agent.walk(IF_HC_IN)[lo_index]) < target_in:
        assert time.monotonic() < deadline, "the agent never showed the burst on lo"
        time.sleep(0.5)
    [p2] = poller.poll([agent.target(7)])
    rows2 = snmp_rows(p2, state)

    lo1, lo2 = _lo(p1), _lo(p2)
    dt = (p2.polled_at_us - p1.polled_at_us) / 1e6
    got = {(int(m), int(i)): v for m, i, v in zip(rows2.metric_id, rows2.ifindex, rows2.value, strict=True)}
    assert (rows2.device_id == 7).all() and (rows2.time_us == p2.polled_at_us).all()
    in_bps = got[(MetricKind.IF_IN_BPS, lo2.ifindex)]
    assert in_bps == pytest.approx((lo2.in_octets - lo1.in_octets) * 8 / dt)  # type: ignore[operator]
    assert in_bps >= burst * 8 / dt
    assert got[(MetricKind.IF_OUT_BPS, lo2.ifindex)] >= burst * 8 / dt
    assert got[(MetricKind.IF_ERRORS_PS, lo2.ifindex)] == 0.0
    # lo's 10 Mb/s is nominal: no utilisation, and no "absurd rate" verdict at ~20 Mb/s.
    assert (MetricKind.IF_UTIL_PCT, lo2.ifindex) not in got
    # every interface gets in/out rates (idle ones: 0); a zero-speed one no utilisation
    assert {i for (m, i) in got if m == MetricKind.IF_IN_BPS} == {i.ifindex for i in p2.interfaces}


def test_interfaces_upserted_and_rates_loaded(agent: Agent, db: psycopg.Connection, session) -> None:
    from netpulse.schema import Interface

    org = make_org(db)
    [device_id] = make_devices(db, org, 1)
    poller, state = SnmpPoller(), CounterState()
    [p1] = poller.poll([agent.target(device_id)])
    assert upsert_interfaces(db, p1) == len(p1.interfaces) > 0
    time.sleep(0.01)
    [p2] = poller.poll([agent.target(device_id)])
    snmp_rows(p1, state)
    rows = snmp_rows(p2, state)

    stale = SnmpPoll(device_id, True, polled_at_us=p1.polled_at_us - 1_000_000,
                     interfaces=[InterfaceSample(_lo(p1).ifindex, name="renamed", oper_status="down")])
    assert upsert_interfaces(db, [p2, stale]) == len(p2.interfaces)
    assert upsert_interfaces(db, stale) == 0                  # an older poll never overwrites
    stored = {i.ifindex: i for i in session.query(Interface).filter_by(device_id=device_id)}
    assert {k: (i.name, i.speed_bps, i.oper_status) for k, i in stored.items()} == \
        {i.ifindex: (i.name, i.speed_bps, i.oper_status) for i in p2.interfaces}
    assert all(int(i.last_seen.timestamp() * 1e6) == p2.polled_at_us for i in stored.values())

    result = Loader().load(db, rows)
    assert result.inserted == len(rows) > 0
    n = db.execute("SELECT count(*) FROM metrics WHERE device_id = %s AND ifindex > 0", (device_id,)).fetchone()
    assert n is not None and n[0] == int((rows.ifindex > 0).sum())

    db.execute("DELETE FROM devices WHERE id = %s", (device_id,))
    assert db.execute("SELECT count(*) FROM interfaces").fetchone() == (0,)


def test_workers_poll_snmp_devices_and_keep_counters_in_redis(agent: Agent, db_url: str, db: psycopg.Connection,
                                                               redis_url: str) -> None:
    """The probe path of the workers: SNMP settings from the device rows (inline v2c and a v3
    credential profile), counter state parked in Redis between two worker processes' polls."""
    import redis

    from ingest.icmp import icmp_permitted
    from workers.probes import COUNTER_PREFIX, network_rows
    from workers.runtime import Runtime

    org, other = make_org(db), make_org(db, "other")  # the same address twice: two organizations
    [v2c], [v3] = make_devices(db, org, 1), make_devices(db, other, 1)
    db.execute("UPDATE devices SET address = '127.0.0.1', snmp_version = '2c', snmp_port = %s, "
               "snmp_community = %s WHERE id = %s", (agent.port, COMMUNITY, v2c))
    cred = db.execute("INSERT INTO snmp_credentials (organization_id, name, version, username, auth_protocol, "
                      "auth_password, priv_protocol, priv_password) VALUES (%s, 'v3', '3', %s, 'SHA', %s, 'AES', %s) "
                      "RETURNING id", (other, V3_USER, AUTH_PASS, PRIV_PASS)).fetchone()[0]
    db.execute("UPDATE devices SET address = '127.0.0.1', snmp_port = %s, snmp_credential_id = %s WHERE id = %s",
               (agent.port, cred, v3))
    devices = [{"id": d, "name": f"dev-{d}", "address": "127.0.0.1", "simulated": False, "count": 1,
                "timeout_s": 1.0, "interval_s": 60} for d in (v2c, v3)]
    client = redis.Redis.from_url(redis_url)
    privileged = icmp_permitted(True)

    def worker() -> Runtime:  # a fresh process: nothing in memory but Redis
        return Runtime(db_url, icmp_privileged=privileged, icmp_allowed=privileged or icmp_permitted(False),
                       redis=client)

    t1 = time.time_ns() // 1000
    rows1 = network_rows(worker(), devices, t1)
    assert not np.isin(rows1.metric_id, [MetricKind.IF_IN_BPS, MetricKind.IF_OUT_BPS]).any()
    assert set(rows1.device_id[rows1.metric_id == MetricKind.AVAILABLE].tolist()) == {v2c, v3}
    assert client.exists(f"{COUNTER_PREFIX}{v2c}", f"{COUNTER_PREFIX}{v3}") == 2
    n_ifaces = db.execute("SELECT count(*) FROM interfaces WHERE device_id = %s", (v2c,)).fetchone()[0]
    assert n_ifaces > 0
    assert db.execute("SELECT count(*) FROM interfaces WHERE device_id = %s", (v3,)).fetchone()[0] == n_ifaces
    time.sleep(1.0)
    t2 = time.time_ns() // 1000
    rows2 = network_rows(worker(), devices, t2)
    rates = rows2.metric_id == MetricKind.IF_IN_BPS
    assert set(rows2.device_id[rates].tolist()) == {v2c, v3}
    assert (rows2.time_us == t2).all()
    assert int(rates.sum()) == 2 * n_ifaces
    # A device whose agent does not answer: ICMP still says it is up, SNMP yields nothing, no crash.
    db.execute("UPDATE devices SET snmp_community = 'wrong' WHERE id = %s", (v2c,))
    rows3 = network_rows(worker(), devices[:1], t2 + 1_000_000)
    assert not np.isin(rows3.metric_id, [MetricKind.IF_IN_BPS]).any()
    assert MetricKind.AVAILABLE in rows3.metric_id.tolist()


# --- targets --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "field"), [
    ({"version": "1", "community": "x"}, "version"),
    ({"version": "2c"}, "community"),
    ({"version": "3"}, "username"),
    ({"version": "3", "username": "u", "auth_protocol": "SHA", "auth_password": "short"}, "auth_password"),
    ({"version": "3", "username": "u", "auth_protocol": "SHA1X", "auth_password": "longenough"}, "auth_protocol"),
    ({"version": "3", "username": "u", "priv_protocol": "AES", "priv_password": "longenough"}, "priv_protocol"),
    ({"community": "x", "port": 0}, "port"),
])
def test_invalid_targets_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        SnmpTarget(5, "192.0.2.1", **kwargs)
    assert field in exc.value.details and "device 5" in exc.value.message


# --- counters: pure logic -----------------------------------------------------------------------------

S = 1_000_000  # one second in microseconds


def test_first_sample_has_no_rate() -> None:
    assert counter_rate(None, CounterSample(100, 64, 0, 10)) is None
    state = CounterState()
    assert state.update(1, 1, "in_octets", CounterSample(100, 64, 0, 10)) is None
    assert state.update(1, 1, "in_octets", CounterSample(1100, 64, 10 * S, 1010)) == 100.0


@pytest.mark.parametrize("bits", [32, 64])
def test_wrap(bits: int) -> None:
    top = 2**bits
    prev = CounterSample(top - 300, bits, 0, 500)
    cur = CounterSample(700, bits, 10 * S, 1500)
    assert counter_rate(prev, cur) == 100.0                  # 300 to the top, 700 after: 1000 in 10 s


def test_reset_when_uptime_goes_back() -> None:
    prev = CounterSample(5_000_000, 64, 0, 900_000)
    assert counter_rate(prev, CounterSample(1_000, 64, 10 * S, 300)) is None      # restarted, smaller value
    assert counter_rate(prev, CounterSample(9_000_000, 64, 10 * S, 300)) is None  # restarted, larger value
    assert counter_rate(prev, CounterSample(9_000_000, 64, 10 * S, None)) == 400_000.0  # no uptime: no check


def test_time_going_backwards_or_standing_still() -> None:
    prev = CounterSample(1000, 64, 100 * S, 10)
    assert counter_rate(prev, CounterSample(2000, 64, 90 * S, 20)) is None
    assert counter_rate(prev, CounterSample(2000, 64, 100 * S, 20)) is None


def test_absurd_rate_is_a_reset() -> None:
    # 1 Gb/s link: 125 MB/s max, 10 % headroom
    prev = CounterSample(1000, 32, 0, 100)
    assert counter_rate(prev, CounterSample(1000 + 130_000_000, 32, S, 200), max_rate=137_500_000) == 130e6
    assert counter_rate(prev, CounterSample(1000 + 140_000_000, 32, S, 200), max_rate=137_500_000) is None
    # counters cleared without a restart look like a wrap of almost 2^32: absurd
    big = CounterSample(4_000_000, 32, 0, 100)
    assert counter_rate(big, CounterSample(10, 32, 10 * S, 1100), max_rate=137_500_000) is None
    assert counter_rate(prev, CounterSample(2000, 64, S, 200)) is None              # width changed


def test_vectorised_rates_match_the_scalar_ones() -> None:
    rng = np.random.default_rng(3)
    n = 500
    bits = rng.choice([32, 64], n)
    top = np.where(bits == 32, 2.0**32, 2.0**64)
    pv = (rng.random(n) * top).astype(np.uint64)
    cv = (rng.random(n) * top).astype(np.uint64)
    pt = rng.integers(0, 100, n) * S
    ct = pt + rng.integers(-2, 60, n) * S
    pu = rng.integers(0, 10_000, n)
    cu = pu + rng.integers(-100, 6000, n)
    cap = rng.choice([np.inf, 1e9, 1e6], n)
    vec = counter_rates(pv, bits, pt, pu, cv, bits, ct, cu, cap)
    for k in range(n):
        one = counter_rate(CounterSample(int(pv[k]), int(bits[k]), int(pt[k]), int(pu[k])),
                           CounterSample(int(cv[k]), int(bits[k]), int(ct[k]), int(cu[k])), max_rate=float(cap[k]))
        assert (one is None and np.isnan(vec[k])) or one == pytest.approx(vec[k], rel=1e-12)


def test_state_round_trips_through_json() -> None:
    state = CounterState()
    state.put(1, 2, "in_octets", CounterSample(2**64 - 1, 64, 123, None))
    state.put(1, 3, "out_errors", CounterSample(5, 32, 456, 789))
    state.put(2, 1, "in_octets", CounterSample(1, 64, 999, 1))
    back = CounterState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back.to_dict() == state.to_dict() and len(back) == 3
    assert back.get(1, 2, "in_octets") == CounterSample(2**64 - 1, 64, 123, None)
    assert back.prune(older_than_us=500) == 2 and back.forget_device(2) == 1 and len(back) == 0
    with pytest.raises(ValueError, match="version"):
        CounterState.from_dict({"version": 99, "counters": []})


def _poll(t_s: float, uptime: int, *ifaces: InterfaceSample, device_id: int = 9, **kw: object) -> SnmpPoll:
    return SnmpPoll(device_id, True, sys_uptime_ticks=uptime, interfaces=list(ifaces),
                    polled_at_us=int(t_s * S), **kw)  # type: ignore[arg-type]


def _iface(ifindex: int, in_oct: int, out_oct: int, *, speed: int | None = 100_000_000, in_err: int | None = 0,
           out_err: int | None = 0, bits: int = 64, if_type: int = 6) -> InterfaceSample:
    return InterfaceSample(ifindex, f"eth{ifindex}", speed, "up", in_oct, out_oct, bits, in_err, out_err, 0, 0,
                           if_type)


def _by_metric(rows) -> dict[tuple[MetricKind, int], float]:
    return {(MetricKind(int(m)), int(i)): float(v)
            for m, i, v in zip(rows.metric_id, rows.ifindex, rows.value, strict=True)}


def test_snmp_rows_from_synthetic_polls() -> None:
    state = CounterState()
    first = snmp_rows(_poll(0, 100, _iface(1, 1000, 2000), _iface(2, 0, 0, speed=None), cpu_pct=12.5,
                            mem_pct=40.0), state)
    assert _by_metric(first) == {(MetricKind.CPU_PCT, 0): 12.5, (MetricKind.MEM_PCT, 0): 40.0}

    # 10 s later: eth1 in 1 MB (800 kb/s), out 5 MB (4 Mb/s) of 100 Mb/s; 30 errors; eth2 no speed
    rows = snmp_rows(_poll(10, 1100, _iface(1, 1_001_000, 5_002_000, in_err=20, out_err=10),
                           _iface(2, 500, 0, speed=None)), state, tick_us=77)
    got = _by_metric(rows)
    assert got[(MetricKind.IF_IN_BPS, 1)] == 800_000.0
    assert got[(MetricKind.IF_OUT_BPS, 1)] == 4_000_000.0
    assert got[(MetricKind.IF_UTIL_PCT, 1)] == pytest.approx(4.0)
    assert got[(MetricKind.IF_ERRORS_PS, 1)] == 3.0
    assert got[(MetricKind.IF_IN_BPS, 2)] == 400.0 and (MetricKind.IF_UTIL_PCT, 2) not in got
    assert (rows.time_us == 77).all() and (rows.device_id == 9).all()


def test_snmp_rows_resets_absurd_rates_failed_polls_and_loopback() -> None:
    state = CounterState()
    snmp_rows(_poll(0, 100, _iface(1, 0, 0, speed=10_000_000), _iface(2, 0, 0, speed=10_000_000, if_type=24)),
              state)
    # 10 Mb/s link, 100 MB in 10 s = 80 Mb/s: absurd on eth1, fine on the loopback (nominal speed)
    rows = snmp_rows(_poll(10, 1100, _iface(1, 100_000_000, 0, speed=10_000_000),
                           _iface(2, 100_000_000, 0, speed=10_000_000, if_type=24)), state)
    got = _by_metric(rows)
    assert (MetricKind.IF_IN_BPS, 1) not in got and got[(MetricKind.IF_OUT_BPS, 1)] == 0.0
    assert got[(MetricKind.IF_IN_BPS, 2)] == 80_000_000.0 and (MetricKind.IF_UTIL_PCT, 2) not in got
    # a failed poll changes nothing; the next good one measures over the whole 20 s
    assert len(snmp_rows(SnmpPoll.failed(9, "timeout"), state)) == 0
    got = _by_metric(snmp_rows(_poll(30, 3100, _iface(1, 100_000_000 + 2_000_000, 0, speed=10_000_000)), state))
    assert got[(MetricKind.IF_IN_BPS, 1)] == 800_000.0
    # the agent restarted: no rates, but the next interval has them again
    assert not _by_metric(snmp_rows(_poll(40, 50, _iface(1, 10, 0, speed=10_000_000)), state)).keys() & {
        (MetricKind.IF_IN_BPS, 1)}
    assert _by_metric(snmp_rows(_poll(50, 1050, _iface(1, 1010, 0, speed=10_000_000)), state))[
        (MetricKind.IF_IN_BPS, 1)] == 800.0


def test_unknown_speed_has_only_the_absolute_ceiling() -> None:
    state = CounterState()
    snmp_rows(_poll(0, 100, _iface(1, 0, 0, speed=None)), state)
    fast = ABSURD_BPS / 8 / 2          # half the ceiling, in bytes per second
    got = _by_metric(snmp_rows(_poll(1, 200, _iface(1, int(fast), 2**63, speed=None)), state))
    assert got[(MetricKind.IF_IN_BPS, 1)] == pytest.approx(ABSURD_BPS / 2)
    assert (MetricKind.IF_OUT_BPS, 1) not in got       # 2^63 bytes in a second: a discontinuity


def test_snmp_rows_32_bit_counters_and_missing_error_columns() -> None:
    state = CounterState()
    snmp_rows(_poll(0, 100, _iface(1, 2**32 - 1000, 0, bits=32, out_err=None)), state)
    got = _by_metric(snmp_rows(_poll(1, 200, _iface(1, 1000, 0, bits=32, in_err=5, out_err=None)), state))
    assert got[(MetricKind.IF_IN_BPS, 1)] == 16_000.0      # wrapped: 2000 bytes in 1 s
    assert got[(MetricKind.IF_ERRORS_PS, 1)] == 5.0         # only the direction the agent exposes
