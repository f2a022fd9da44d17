"""SNMP benchmark: interfaces polled per second by ingest.snmp against net-snmp's snmpbulkwalk.

    python bench/snmp.py [--devices 200] [--rounds 3] [--concurrency 32] [--procs 8] [--version 2c|3]

Starts its own snmpd (Debian's net-snmp) on a free 127.0.0.1 UDP port and stops it at the end.
The N "devices" are N polls of that one agent (N targets with distinct device ids and the same
address), run concurrently by both sides:

(a) ours: ``SnmpPoller(concurrency=...)`` polls all N targets per run (one engine per run), the full
    poll: system group, IF-MIB interfaces with counters, HOST-RESOURCES CPU and memory. One warm-up
    run first (the poller learns each device's tables, as a worker does on its first tick); then
    ``--rounds`` timed runs. The cold first run is printed too.
(b) baseline: per device, the snmpbulkwalk processes a net-snmp script needs for the same data:
    system (.1.3.6.1.2.1.1), ifTable, ifXTable, hrProcessorLoad and hrStorageTable, ``--procs``
    processes at a time (asyncio subprocesses), output read and the interfaces counted.
    snmpbulkwalk walks one subtree per process, so walking the tables whole is its fastest way
    (one process per column would spawn 15 per device).

Both sides share the agent and this machine's cores; the agent's CPU is inside both figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.snmp import SnmpPoller, SnmpTarget  # noqa: E402
from netpulse.logs import configure as configure_logging  # noqa: E402

COMMUNITY, USER, AUTH_PASS, PRIV_PASS = "public", "netpulse", "authpass123", "privpass123"
CONF = f"""\
rocommunity {COMMUNITY} 127.0.0.1
createUser {USER} SHA {AUTH_PASS} AES {PRIV_PASS}
rouser {USER} priv
sysName bench-agent
"""
QUIET_ENV = {**os.environ, "MIBS": "", "MIBDIRS": ""}
BASELINE_SUBTREES = (".1.3.6.1.2.1.1", ".1.3.6.1.2.1.2.2", ".1.3.6.1.2.1.31.1.1",
                     ".1.3.6.1.2.1.25.3.3.1.2", ".1.3.6.1.2.1.25.2.3.1")
IF_NAME = ".1.3.6.1.2.1.31.1.1.1.1."


def start_agent(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    snmpd = shutil.which("snmpd") or shutil.which("snmpd", path="/usr/sbin:/usr/local/sbin")
    if snmpd is None or shutil.which("snmpbulkwalk") is None:
        sys.exit("net-snmp is not installed: apt-get install snmpd snmp")
    (workdir / "persist").mkdir()
    (workdir / "snmpd.conf").write_text(CONF)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with open(workdir / "snmpd.log", "wb") as log:
        proc = subprocess.Popen(
            [snmpd, "-f", "-LOn", "-C", "-c", str(workdir / "snmpd.conf"), "-p", str(workdir / "snmpd.pid"),
             f"udp:127.0.0.1:{port}"],
            env={**QUIET_ENV, "SNMP_PERSISTENT_DIR": str(workdir / "persist")}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = subprocess.run(["snmpget", "-v2c", "-c", COMMUNITY, "-t", "1", f"127.0.0.1:{port}", ".1.3.6.1.2.1.1.5.0"],
                           capture_output=True, env=QUIET_ENV)
        if r.returncode == 0:
            return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"snmpd did not start: {(workdir / 'snmpd.log').read_text()[-500:]}")


def stop_agent(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def targets(n: int, port: int, version: str) -> list[SnmpTarget]:
    if version == "2c":
        return [SnmpTarget(i, "127.0.0.1", port, "2c", COMMUNITY, timeout_s=5, retries=1) for i in range(n)]
    return [SnmpTarget(i, "127.0.0.1", port, "3", username=USER, auth_protocol="SHA", auth_password=AUTH_PASS,
                       priv_protocol="AES", priv_password=PRIV_PASS, timeout_s=5, retries=1) for i in range(n)]


def netsnmp_args(port: int, version: str) -> list[str]:
    creds = (["-v2c", "-c", COMMUNITY] if version == "2c" else
             ["-v3", "-l", "authPriv", "-u", USER, "-a", "SHA", "-A", AUTH_PASS, "-x", "AES", "-X", PRIV_PASS])
    return [*creds, "-On", "-Oq", "-Cr25", "-t", "5", "-r", "1", f"127.0.0.1:{port}"]


async def netsnmp_round(n: int, port: int, version: str, procs: int) -> int:
    """Every device's subtrees walked by snmpbulkwalk processes; returns the interfaces seen."""
    sem = asyncio.Semaphore(procs)
    base = netsnmp_args(port, version)

    async def walk(subtree: str) -> bytes:
        async with sem:
            p = await asyncio.create_subprocess_exec("snmpbulkwalk", *base, subtree, env=QUIET_ENV,
                                                     stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.PIPE)
            out, err = await p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"snmpbulkwalk {subtree} failed: {err.decode().strip()}")
            return out

    async def device() -> int:
        outs = await asyncio.gather(*(walk(s) for s in BASELINE_SUBTREES))
        return sum(1 for line in outs[2].decode().splitlines() if line.startswith(IF_NAME))

    return sum(await asyncio.gather(*(device() for _ in range(n))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32, help="devices in flight in our poller")
    ap.add_argument("--procs", type=int, default=4 * (os.cpu_count() or 1),
                    help="snmpbulkwalk processes at a time")
    ap.add_argument("--version", choices=("2c", "3"), default="2c")
    args = ap.parse_args()
    configure_logging("warning")

    with tempfile.TemporaryDirectory(prefix="netpulse-bench-snmp-") as tmp:
        proc, port = start_agent(Path(tmp))
        try:
            print(f"agent: snmpd on 127.0.0.1:{port}; {args.devices} devices = {args.devices} concurrent polls "
                  f"of that one agent; SNMP v{args.version}; {os.cpu_count()} cores")
            tg = targets(args.devices, port, args.version)
            poller = SnmpPoller(concurrency=args.concurrency)
            t0 = time.perf_counter()
            cold = poller.poll(tg)
            cold_s = time.perf_counter() - t0
            failed = [p for p in cold if not p.ok]
            if failed:
                sys.exit(f"{len(failed)} of our polls failed, e.g. {failed[0].error}: {failed[0].detail}")
            n_if = sum(len(p.interfaces) for p in cold)
            ours_if, ours_s, requests = 0, 0.0, 0
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                polls = poller.poll(tg)
                ours_s += time.perf_counter() - t0
                bad = [p for p in polls if not p.ok]
                if bad:
                    sys.exit(f"{len(bad)} of our polls failed, e.g. {bad[0].error}: {bad[0].detail}")
                ours_if += sum(len(p.interfaces) for p in polls)
                requests += sum(p.requests for p in polls)
            steady = requests / (args.rounds * args.devices)
            print(f"interfaces per device: {n_if // args.devices}; SNMP requests per poll: cold run "
                  f"{sum(p.requests for p in cold) / len(cold):.1f}, then {steady:.1f}")

            asyncio.run(netsnmp_round(min(args.devices, 10), port, args.version, args.procs))  # page in
            base_if, base_s = 0, 0.0
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                base_if += asyncio.run(netsnmp_round(args.devices, port, args.version, args.procs))
                base_s += time.perf_counter() - t0
        finally:
            stop_agent(proc)

    ours = ours_if / ours_s
    base = base_if / base_s
    print(f"ours, cold first run      : {n_if / cold_s:>9,.0f} interfaces/s  ({args.devices / cold_s:,.0f} polls/s)")
    print(f"ours (SnmpPoller, c={args.concurrency:<4}) : {ours:>9,.0f} interfaces/s  "
          f"({args.devices * args.rounds / ours_s:,.0f} polls/s, {args.rounds} runs in {ours_s:.2f} s)")
    print(f"snmpbulkwalk (procs={args.procs:<3})  : {base:>9,.0f} interfaces/s  "
          f"({args.devices * args.rounds / base_s:,.0f} polls/s, {args.rounds} runs in {base_s:.2f} s)")
    print(f"snmp/netsnmp ratio: {ours / base:.2f}")


if __name__ == "__main__":
    main()
