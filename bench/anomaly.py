"""Anomaly benchmark: detection quality on the labelled NAB series (window figures and NAB's own
standard score), and the speed of the batch path against the streaming path, in the same run.

    python bench/anomaly.py [--data ../shared/data/nab] [--nab ../shared/nab] [--nab-python PY]

Scores every file of ``--data`` that ``labels/combined_windows.json`` lists, all series in one
``score_frame`` call, then counts at ``--threshold`` (NAB's rules for what counts: the first 15 % of
each file, at most 750 rows, is a probationary period whose flags are ignored; windows are inclusive):

- window recall: labelled windows with at least one flagged point, over all windows;
- event precision: a run of consecutive flagged points is one event; events that touch a window,
  over all events (point precision, flagged points inside windows over flagged points, is shown too);
- F1 of window recall and event precision; per corpus and overall (summed counts).

These figures do not see what NAB rewards (early detection inside a window, few flagged points
outside): the NAB standard score does, and is computed by NAB's scorer through
``../shared/nab/run_nab.sh`` on the training files when a Python with NAB's requirements is given
(``--nab-python``, else ``$NETPULSE_NAB_PYTHON``, else ``/tmp/nabvenv/bin/python`` if present).

Then the overall line for variants of the detector (ablations of ``AnomalyParams``); the same
files sampled otherwise (hourly means; times jittered by 40 % of a step with 1 % of the rows outside
the windows starting a gap of 15 minutes to 3 hours), scored with the defaults and without the cadence
and gap rules (on the 5-minute files those rules change nothing; here they should help); the batch
path's points per second over 1,000 synthetic series in one call (best of 3) and the streaming
path's cost per point (``StreamScorer.update``, one call per sample), and their ratio. The last
line is ``NAB train standard: X``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.anomaly import DEFAULT_PARAMS, AnomalyParams, StreamScorer, score_frame  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nab"
DEFAULT_NAB = ROOT.parent / "shared" / "nab"
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
        return (f"{name:<38} {self.files:>5} {self.detected:>4}/{self.windows:<4} {_num(recall)} "
                f"{self.true_events:>5}/{self.events:<5} {_num(precision)} {_num(points)} {_num(f1)}")


def _num(x: float) -> str:
    return f"{'-':>6}" if math.isnan(x) else f"{x:>6.3f}"


HEADER = (f"{'':<38} {'files':>5} {'windows':>9} {'recall':>6} {'events':>11} {'ev.pr':>6} {'pt.pr':>6} "
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
    times = series["label_time" if "label_time" in series.columns else "time"].to_numpy()
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
    "no refractory": replace(DEFAULT_PARAMS, refractory=timedelta(0)),
    "novelty factor 1.0": replace(DEFAULT_PARAMS, novelty_factor=1.0),
    "z threshold 6": replace(DEFAULT_PARAMS, z_threshold=6.0),
    "slow level 1 day": replace(DEFAULT_PARAMS, slow_tau=timedelta(days=1)),
}


# The cadence and gap rules switched off: time constants never stretch, no step counts as a gap.
WITHOUT_CADENCE_RULES = replace(DEFAULT_PARAMS, cadence=timedelta(days=3650), gap_factor=1e12)


def hourly_means(frame: pl.DataFrame) -> pl.DataFrame:
    """Each file averaged over whole hours (a slower cadence with the same daily rhythm)."""
    return (frame.group_by("series", pl.col("time").dt.truncate("1h"), maintain_order=True)
            .agg(pl.col("value").mean()))


def jittered_with_gaps(frame: pl.DataFrame, windows: dict[str, list[tuple[str, str]]], seed: int = 0) -> pl.DataFrame:
    """Times moved by up to 40 % of a step (values stay tied to the clock) and 1 % of the rows outside the
    windows starting a run of 3-36 missing rows; windows are still counted on the original times."""
    rng = np.random.default_rng(seed)
    parts = []
    for (key,), part in frame.group_by("series", maintain_order=True):
        t = part["time"].to_numpy().astype("datetime64[us]").astype(np.int64)
        step = int(np.median(np.diff(t)))
        inside = np.zeros(len(t), dtype=bool)
        for start, end in windows[str(key)]:
            first_us, last_us = (int(np.datetime64(v, "us").astype(np.int64)) for v in (start, end))
            inside |= (t >= first_us) & (t <= last_us)
        keep = np.ones(len(t), dtype=bool)
        for first in np.flatnonzero(rng.random(len(t)) < 0.01):
            keep[first:first + rng.integers(3, 37)] = False
        keep |= inside
        moved = t + (rng.uniform(-0.4, 0.4, len(t)) * step).astype(np.int64)
        parts.append(part.with_columns(pl.col("time").alias("label_time"),
                                       pl.Series("time", moved).cast(pl.Datetime("us"))).filter(pl.Series(keep)))
    return pl.concat(parts)


def nab_python(given: str | None) -> str | None:
    """A Python that can run NAB's scorer (pandas < 3), or None."""
    for candidate in (given, os.environ.get("NETPULSE_NAB_PYTHON"), "/tmp/nabvenv/bin/python"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def nab_standard(nab: Path, python: str, jobs: int = 2) -> tuple[str, float]:
    """NAB's score table on the training files (with the four published references) and our score."""
    cmd = ["bash", str(nab / "run_nab.sh"), "-n", str(nab), "-p", python, "-c", "train", "-j", str(jobs),
           "-r", "ARTime,numenta,contextOSE,windowedGaussian", "--", sys.executable, "-m", "analytics.anomaly",
           "score"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not last.startswith("NAB standard score:"):
        raise RuntimeError(f"run_nab.sh failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout, float(last.split(":")[1])


def synthetic(n_series: int, n: int, seed: int = 0) -> pl.DataFrame:
    """``n_series`` one-minute series of ``n`` points: daily rhythm, noise, a few spikes."""
    rng = np.random.default_rng(seed)
    t = np.datetime64("2026-01-01T00:00:00", "us") + np.arange(n).astype("timedelta64[m]")
    phase = rng.uniform(0, 2 * np.pi, (n_series, 1))
    values = 50 + 20 * np.sin(2 * np.pi * np.arange(n) / 1440 + phase) + rng.normal(0, 2, (n_series, n))
    values[rng.random((n_series, n)) < 1e-3] += 40
    return pl.DataFrame({"series": np.repeat(np.arange(n_series), n), "time": np.tile(t, n_series),
                         "value": values.ravel()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB folder (default: %(default)s)")
    ap.add_argument("--nab", type=Path, default=DEFAULT_NAB, help="NAB checkout with run_nab.sh (default: %(default)s)")
    ap.add_argument("--nab-python", default=None, help="Python with NAB's requirements (pandas<3, ...)")
    ap.add_argument("--threshold", type=float, default=0.5, help="score that flags a point (default 0.5)")
    ap.add_argument("--series", type=int, default=1000, help="synthetic series in the throughput call")
    ap.add_argument("--points", type=int, default=1440, help="points per synthetic series")
    args = ap.parse_args()

    frame, windows = load(args.data)
    n = len(frame)
    print(f"NAB: {len(windows)} labelled files, {n:,} points, {sum(map(len, windows.values()))} windows; "
          f"threshold {args.threshold}; flags in the first 15 % of each file (max 750 rows) ignored")
    print("recall = windows with a flagged point; ev.pr = event precision (a run of consecutive flagged "
          "points is one event, true if it touches a window); pt.pr = point precision; F1 of recall and ev.pr")
    scored = score_frame(frame)
    print()
    print(HEADER)
    for name, c in evaluate(scored, windows, args.threshold).items():
        print(c.row(name))
    print()
    print("variants (overall)")
    print(HEADER)
    for name, params in VARIANTS.items():
        variant = scored if params is DEFAULT_PARAMS else score_frame(frame, params=params)
        print(evaluate(variant, windows, args.threshold)["overall"].row(name))
    print()
    print("sampled otherwise (overall)")
    print(HEADER)
    for label, resampled in (("hourly means", hourly_means(frame)),
                             ("jitter and gaps", jittered_with_gaps(frame, windows))):
        for name, params in (("defaults", DEFAULT_PARAMS), ("no cadence/gap rules", WITHOUT_CADENCE_RULES)):
            scored_other = score_frame(resampled, params=params)
            print(evaluate(scored_other, windows, args.threshold)["overall"].row(f"{label}: {name}"))

    # Speed: the batch path over many series in one call, and the streaming path one sample at a time.
    many = synthetic(args.series, args.points)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        score_frame(many)
        timings.append(time.perf_counter() - start)
    batch_s = min(timings)
    one = many.filter(pl.col("series") < 20)
    live = StreamScorer()
    t_us = one["time"].dt.epoch("us").to_numpy()
    keys, values = one["series"].to_numpy(), one["value"].to_numpy()
    start = time.perf_counter()
    for i in range(len(values)):
        live.update(int(keys[i]), int(t_us[i]), float(values[i]))
    stream_s = time.perf_counter() - start
    batch_rate, stream_rate = len(many) / batch_s, len(values) / stream_s
    print()
    print(f"batch score_frame        {batch_rate:>12,.0f} points/s  ({len(many):,} points, {args.series:,} series "
          f"in one call, best of 3: {batch_s:.3f} s)")
    print(f"streaming update         {stream_rate:>12,.0f} points/s  ({1e6 / stream_rate:.2f} us per point, "
          f"{len(values):,} points one call each; state {live.state(0).nbytes:,} bytes per series)")
    print(f"anomaly batch/streaming ratio: {batch_rate / stream_rate:.1f}")

    python = nab_python(args.nab_python)
    if python is None or not (args.nab / "run_nab.sh").exists():
        print("NAB train standard: n/a (no NAB checkout or no Python with its requirements; "
              "see --nab and --nab-python)")
        return
    table, standard = nab_standard(args.nab, python)
    print()
    print(table.strip().rsplit("\n", 1)[0])
    print(f"NAB train standard: {standard:.1f}")


if __name__ == "__main__":
    main()
