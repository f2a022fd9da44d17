"""ICMP benchmark: hosts probed per second by ingest.icmp against fping, on the same targets in one run.

    python bench/probe.py [--hosts 1000] [--rounds 9] [--paced-rounds 3] [--pps 1000] [--no-netns]

Must run as root (raw ICMP sockets, fping at ``-i 0``, network namespaces). Targets are ``--hosts``
distinct loopback addresses across 127.0.0.0/8 (Linux answers the whole /8), one echo each, 1 s timeout.
Each round runs every contender once, in turn, so they share the machine's state; figures are medians:

(a) fping -c 1 -i 0 -q -t 1000 <hosts>     the fastest fping (the baseline of the ratio); its time
                                            includes starting the process (~2 ms here)
(b) fping -c 1 -i 1 -q -t 1000 <hosts>     fping paced at one echo per ms (1,000/s)
(c) ping_many(targets)                      ours, unpaced, poll() driver (what ping_rows uses)
(d) async_ping_many(targets)                ours, unpaced, asyncio driver (in asyncio.run)
(e) ping_many(targets, pps=--pps)           ours, paced like (b)

Agreement: per host, alive verdicts and RTTs of ours against fping's from the same round (median and
95th percentile of the absolute RTT difference). Then, unless ``--no-netns``, the namespace test network
of tests/test_icmp.py (fast, 20 +- 5 ms, 10 % loss, down, unreachable; deleted at the end) is probed by
both at once with the same counts, periods and timeouts, to compare RTT and loss where they are not
microseconds. The last line is ``icmp/fping ratio: X``: (c)'s hosts/s over (a)'s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.icmp import PingResult, PingTarget, async_ping_many, ping_many  # noqa: E402
from tests.test_icmp import FpingSummary, NetnsLab, fping_summary, start_fping  # noqa: E402


def loopback_targets(n: int) -> list[PingTarget]:
    """``n`` distinct addresses spread over 127.0.0.0/8 (never .0 or .255 in the last octet)."""
    return [PingTarget(i, f"127.{1 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}", count=1, timeout_s=1.0)
            for i in range(n)]


def run_fping(addresses: list[str], interval_ms: int) -> tuple[float, dict[str, FpingSummary]]:
    start = time.perf_counter()
    out = subprocess.run(["fping", "-c", "1", "-i", str(interval_ms), "-q", "-t", "1000", *addresses],
                         capture_output=True, text=True, timeout=120)
    return time.perf_counter() - start, fping_summary(out.stderr)


def run_ours(call: Callable[[], list[PingResult]]) -> tuple[float, dict[str, PingResult]]:
    start = time.perf_counter()
    results = call()
    return time.perf_counter() - start, {r.address: r for r in results}


def agreement(ours: dict[str, PingResult], theirs: dict[str, FpingSummary]) -> str:
    verdicts = sum(ours[a].alive == (theirs[a].received > 0) for a in ours if a in theirs)
    losses = sum(ours[a].loss_pct == theirs[a].loss_pct for a in ours if a in theirs)
    diffs = sorted(abs((ours[a].avg_ms or 0.0) - (theirs[a].avg_ms or 0.0)) * 1000.0 for a in ours
                   if a in theirs and ours[a].alive and theirs[a].avg_ms is not None)
    if not diffs:
        return f"alive verdicts agree {verdicts}/{len(ours)}; no RTTs to compare"
    p95 = diffs[min(len(diffs) - 1, int(0.95 * len(diffs)))]
    ours_med = statistics.median(r.avg_ms for r in ours.values() if r.avg_ms is not None) * 1000.0
    theirs_med = statistics.median(s.avg_ms for s in theirs.values() if s.avg_ms is not None) * 1000.0
    return (f"alive verdicts agree {verdicts}/{len(ours)}, loss agrees {losses}/{len(ours)}; "
            f"median RTT ours {ours_med:.1f} us, fping {theirs_med:.1f} us; |diff| median "
            f"{statistics.median(diffs):.1f} us, p95 {p95:.1f} us")


def loopback(n: int, rounds: int, paced_rounds: int, pps: float) -> float:
    targets = loopback_targets(n)
    addresses = [t.address for t in targets]
    gap_ms = round(1000.0 / pps)
    times: dict[str, list[float]] = {k: [] for k in ("fping -i 0", f"fping -i {gap_ms}", "ours poll", "ours asyncio",
                                                     f"ours pps={pps:g}")}
    ping_many(targets[:10])                           # warm up imports and caches on both sides
    run_fping(addresses[:10], 0)
    last: dict[str, tuple[dict[str, PingResult], dict[str, FpingSummary]]] = {}
    for r in range(rounds):
        t_f, fp = run_fping(addresses, 0)
        t_o, ours = run_ours(lambda: ping_many(targets))
        t_a, _ = run_ours(lambda: asyncio.run(async_ping_many(targets)))
        times["fping -i 0"].append(t_f)
        times["ours poll"].append(t_o)
        times["ours asyncio"].append(t_a)
        last["unpaced"] = (ours, fp)
        if r < paced_rounds:
            t_fp, fpp = run_fping(addresses, gap_ms)
            t_op, ours_p = run_ours(lambda: ping_many(targets, pps=pps))
            times[f"fping -i {gap_ms}"].append(t_fp)
            times[f"ours pps={pps:g}"].append(t_op)
            last["paced"] = (ours_p, fpp)
    print(f"\n{n} loopback hosts, one echo each; medians of {rounds} rounds ({paced_rounds} paced)")
    print(f"{'contender':<16}{'seconds':>10}{'hosts/s':>12}{'min s':>10}{'max s':>10}")
    medians = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        medians[name] = med
        print(f"{name:<16}{med:>10.4f}{n / med:>12,.0f}{min(ts):>10.4f}{max(ts):>10.4f}")
    faster = "poll" if medians["ours poll"] <= medians["ours asyncio"] else "asyncio"
    print(f"driver: poll loop {medians['ours poll'] * 1000:.2f} ms vs asyncio {medians['ours asyncio'] * 1000:.2f} ms"
          f" -> {faster} is faster")
    for kind, (ours, theirs) in last.items():
        print(f"agreement ({kind}, last round): {agreement(ours, theirs)}")
    return (n / medians["ours poll"]) / (n / medians["fping -i 0"])


def netns_hosts() -> None:
    try:
        lab = NetnsLab.build()
    except Exception as exc:  # noqa: BLE001 - the loopback figures stand without it
        print(f"\nnamespace hosts skipped: {exc}")
        return
    try:
        h = lab.hosts
        targets = [PingTarget(1, h["fast"], count=20, interval_s=0.01, timeout_s=1.0),
                   PingTarget(2, h["slow"], count=100, interval_s=0.02, timeout_s=1.0),
                   PingTarget(3, h["lossy"], count=200, interval_s=0.01, timeout_s=1.0),
                   PingTarget(4, h["down"], count=3, interval_s=0.1, timeout_s=0.5),
                   PingTarget(5, h["unreachable"], count=3, interval_s=0.1, timeout_s=1.0)]
        procs = [start_fping(t) for t in targets]      # at the same time, same counts, periods and timeouts
        ours = ping_many(targets)
        theirs: dict[str, FpingSummary] = {}
        for proc in procs:
            theirs.update(fping_summary(proc.communicate(timeout=60)[1]))
    finally:
        lab.close()
    print("\nnamespace hosts, probed by both at once (ours | fping)")
    print(f"{'host':<12}{'address':<16}{'sent':>6}{'rcvd':>6}{'loss %':>8}{'avg ms':>9}{'jitter':>8} |"
          f"{'sent':>6}{'rcvd':>6}{'loss %':>8}{'avg ms':>9}")
    roles = ("fast", "20+-5 ms", "10 % loss", "down", "unreachable")
    for role, r in zip(roles, ours, strict=True):
        f = theirs.get(r.address)
        avg = f"{r.avg_ms:.3f}" if r.avg_ms is not None else "-"
        jit = f"{r.jitter_ms:.2f}" if r.jitter_ms is not None else "-"
        right = (f"{f.sent:>6}{f.received:>6}{f.loss_pct:>8.1f}{(f'{f.avg_ms:.3f}' if f.avg_ms else '-'):>9}"
                 if f else "  (no fping summary)")
        print(f"{role:<12}{r.address:<16}{r.sent:>6}{r.received:>6}{r.loss_pct:>8.1f}{avg:>9}{jit:>8} |{right}")
        if r.error:
            print(f"{'':<12}ours: {r.error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--paced-rounds", type=int, default=3)
    parser.add_argument("--pps", type=float, default=1000.0, help="pace of the paced runs (fping -i 1000/pps)")
    parser.add_argument("--no-netns", action="store_true", help="skip the namespace hosts")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/probe.py must run as root: raw ICMP sockets, fping -i 0 and network namespaces need it "
                 "(sudo .venv/bin/python bench/probe.py)")
    if shutil.which("fping") is None:
        sys.exit("fping is not installed: apt-get install fping")
    if not 1 <= args.hosts <= 1_000_000:
        sys.exit(f"--hosts must be between 1 and 1,000,000, not {args.hosts}")
    ratio = loopback(args.hosts, args.rounds, args.paced_rounds, args.pps)
    if not args.no_netns:
        netns_hosts()
    print(f"icmp/fping ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
