"""Login cost benchmark: one argon2id password check with NetPulse's parameters, against
argon2-cffi's defaults as the baseline, measured in the same run.

    python bench/login.py [--rounds 20]

Prints the median and the fastest check of each (the fastest is the machine's cost when nothing
else competes for the cores; the median, on a shared machine, what a login costs now).
"""

from __future__ import annotations

import argparse
import statistics
import time

from argon2 import PasswordHasher

from netpulse.config import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST


def measure(hasher: PasswordHasher, rounds: int) -> tuple[float, float]:
    hashed = hasher.hash("correct-horse-battery-staple")
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        hasher.verify(hashed, "correct-horse-battery-staple")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    ours = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM)
    baseline = PasswordHasher()
    median, best = measure(ours, args.rounds)
    base_median, base_best = measure(baseline, args.rounds)
    print(f"netpulse  t={ours.time_cost} m={ours.memory_cost} KiB p={ours.parallelism}: "
          f"median {median:.1f} ms, fastest {best:.1f} ms")
    print(f"baseline  t={baseline.time_cost} m={baseline.memory_cost} KiB p={baseline.parallelism}: "
          f"median {base_median:.1f} ms, fastest {base_best:.1f} ms")
    print(f"ratio (baseline / netpulse, median): {base_median / median:.1f}x")


if __name__ == "__main__":
    main()
