"""Anomaly benchmark: detection quality on the labelled NAB series, and the vectorised scorer against
the plain Python loop computing the same score, in the same run.

    python bench/anomaly.py [--data ../shared/data/nab] [--threshold 0.5] [--loop-points 0]

Scores every file of ``--data`` that ``labels/combined_windows.json`` lists, all series in one
``score_frame`` call, then counts at ``--threshold`` (NAB's rules for what counts: the first 15 % of
each file, at most 750 rows, is a probationary period whose flags are ignored; windows are inclusive):

- window recall: labelled windows with at least one flagged point, over all windows;
- event precision: a run of consecutive flagged points is one event; events that touch a window,
  over all events (point precision, flagged points inside windows over flagged points, is shown too);
- F1 of window recall and event precision; per corpus and overall (summed counts).

Then the same table's overall line for variants of the score (ablations of ``AnomalyParams``), and
points per second of ``score_frame`` (best of 3) against ``score_series_loop`` series by series
(``--loop-points`` caps how many points the loop scores; 0 = all), with the largest difference
between the two. The last line is ``anomaly vectorised/loop ratio: X``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.anomaly import DEFAULT_PARAMS, AnomalyParams, score_frame, score_series_loop  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "nab"
PROBATION_SHARE, PROBATION_MAX = 0.15, 750


@dataclass
class Counts:
    files: int = 0
    windows: int = 0
    detected: int = 0
    events: int = 0
    true_events: int = 0
    flagged: int = 0
    flagged_in: int = 0

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def row(self, name: str) -> str:
        recall = self.detected / self.windows if self.windows else float("nan")
        precision = self.true_events / self.events if self.events else float("nan")
        points = self.flagged_in / self.flagged if self.flagged else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
        return (f"{name:<22} {self.files:>5} {self.detected:>4}/{self.windows:<4} {_num(recall)} "
                f"{self.true_events:>5}/{self.events:<5} {_num(precision)} {_num(points)} {_num(f1)}")


def _num(x: float) -> str:
    return f"{'-':>6}" if math.isnan(x) else f"{x:>6.3f}"


HEADER = (f"{'':<22} {'files':>5} {'windows':>9} {'recall':>6} {'events':>11} {'ev.pr':>6} {'pt.pr':>6} "
          f"{'F1':>6}")


def load(data: Path) -> tuple[pl.DataFrame, dict[str, list[tuple[str, str]]]]:
    """All labelled files present under ``data`` as one long frame (series, time, value), and their windows."""
    windows = json.loads((data / "labels" / "combined_windows.json").read_text())
    frames = []
    for key in sorted(windows):
        path = data / key
        if not path.exists():
            continue
        df = pl.read_csv(path, schema={"timestamp": pl.String, "value": pl.Float64})
        frames.append(df.select(pl.lit(key).alias("series"),
                                pl.col("timestamp").str.to_datetime("%Y-%m-%d %H:%M:%S").alias("time"),
                                "value"))
    if not frames:
        raise SystemExit(f"no labelled NAB files under {data} (see --data)")
    present = {f["series"][0] for f in frames}
    return pl.concat(frames), {k: v for k, v in windows.items() if k in present}


def count(series: pl.DataFrame, windows: list[tuple[str, str]], threshold: float) -> Counts:
    """Counts for one file's rows (in file order) with their ``anomaly_score``."""
    times = series["time"].to_numpy()
    flags = series["anomaly_score"].to_numpy() >= threshold
    flags[:min(PROBATION_MAX, int(PROBATION_SHARE * len(flags)))] = False
    inside = np.zeros(len(flags), dtype=bool)
    detected = 0
    for start, end in windows:
        mask = (times >= np.datetime64(start)) & (times <= np.datetime64(end))
        inside |= mask
        detected += bool(flags[mask].any())
    starts = np.flatnonzero(flags & ~np.r_[False, flags[:-1]])
    ends = np.flatnonzero(flags & ~np.r_[flags[1:], False])
    true_events = sum(bool(inside[a:b + 1].any()) for a, b in zip(starts, ends, strict=True))
    return Counts(1, len(windows), detected, len(starts), true_events, int(flags.sum()), int((flags & inside).sum()))


def evaluate(scored: pl.DataFrame, windows: dict[str, list[tuple[str, str]]],
             threshold: float) -> dict[str, Counts]:
    """Counts per corpus (the folder of each file) and ``overall``."""
    out: dict[str, Counts] = {}
    for (key,), series in scored.group_by("series", maintain_order=True):
        corpus = str(key).split("/")[0]
        c = count(series, windows[str(key)], threshold)
        out.setdefault(corpus, Counts()).add(c)
    total = Counts()
    for c in out.values():
        total.add(c)
    out["overall"] = total
    return out


VARIANTS: dict[str, AnomalyParams] = {
    "chosen (defaults)": DEFAULT_PARAMS,
    "local only": replace(DEFAULT_PARAMS, seasons=0),
    "seasonal only": replace(DEFAULT_PARAMS, local_window=timedelta(0)),
    "no novelty gate": replace(DEFAULT_PARAMS, novelty_factor=0.0),
    "local, no novelty": replace(DEFAULT_PARAMS, seasons=0, novelty_factor=0.0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB folder (default: %(default)s)")
    ap.add_argument("--threshold", type=float, default=0.5, help="score that flags a point (default 0.5)")
    ap.add_argument("--loop-points", type=int, default=0, help="cap on points the plain loop scores (0: all)")
    args = ap.parse_args()

    frame, windows = load(args.data)
    n = len(frame)
    print(f"NAB: {len(windows)} labelled files, {n:,} points, {sum(map(len, windows.values()))} windows; "
          f"threshold {args.threshold}; flags in the first 15 % of each file (max 750 rows) ignored")
    print("recall = windows with a flagged point; ev.pr = event precision (a run of consecutive flagged "
          "points is one event, true if it touches a window); pt.pr = point precision; F1 of recall and ev.pr")

    timings = []
    for _ in range(3):
        start = time.perf_counter()
        scored = score_frame(frame)
        timings.append(time.perf_counter() - start)
    vec_s = min(timings)

    print()
    print(HEADER)
    results = evaluate(scored, windows, args.threshold)
    for name, c in results.items():
        print(c.row(name))

    print()
    print("variants (overall)")
    print(HEADER)
    for name, params in VARIANTS.items():
        variant = scored if params is DEFAULT_PARAMS else score_frame(frame, params=params)
        print(evaluate(variant, windows, args.threshold)["overall"].row(name))

    # The baseline: the plain per-series loop over the same series (or the first --loop-points of them).
    budget = args.loop_points or n
    loop_points, worst = 0, 0.0
    start = time.perf_counter()
    for (_,), series in scored.group_by("series", maintain_order=True):
        if loop_points >= budget:
            break
        ref = score_series_loop(series["value"].to_numpy(), times=series["time"].to_numpy())
        worst = max(worst, float(np.max(np.abs(ref - series["anomaly_score"].to_numpy()))))
        loop_points += len(series)
    loop_s = time.perf_counter() - start

    vec_rate, loop_rate = n / vec_s, loop_points / loop_s
    print()
    print(f"vectorised score_frame   {vec_rate:>12,.0f} points/s  ({n:,} points, {len(windows)} series in one "
          f"call, best of 3: {vec_s:.3f} s)")
    print(f"plain loop (reference)   {loop_rate:>12,.0f} points/s  ({loop_points:,} points in {loop_s:.2f} s)")
    print(f"largest |vectorised - loop| difference: {worst:.2e}")
    print(f"anomaly vectorised/loop ratio: {vec_rate / loop_rate:.1f}")


if __name__ == "__main__":
    main()
