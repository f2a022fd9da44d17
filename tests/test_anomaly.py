"""analytics.anomaly: the streaming detector and the batch path that runs it over many series, their
edge cases, causality, the multivariate device model and the CLI (no database needed)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analytics.anomaly import (
    DEFAULT_PARAMS,
    AnomalyParams,
    StreamScorer,
    device_outliers,
    score_frame,
    score_series,
)
from analytics.anomaly.detector import _step, advance, new_state

ROOT = Path(__file__).resolve().parent.parent
NAB = ROOT / "tests" / "data" / "nab"   # three NAB series kept with the tests (see NOTICE.md there)
# A small subset: gaps of up to an hour, repeated timestamps, a daily pattern with a jump.
NAB_FILES = ("realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv", "realAWSCloudwatch/ec2_network_in_5abac7.csv",
             "artificialWithAnomaly/art_daily_jumpsup.csv")
# Time constants short enough that a 1,500-point series at 1-minute steps leaves warm-up and uses them all.
SHORT = AnomalyParams(level_tau=timedelta(minutes=20), shift_tau=timedelta(minutes=5), slow_tau=timedelta(hours=1),
                      scale_tau=timedelta(hours=3), novelty_window=timedelta(hours=5), season=timedelta(hours=2),
                      season_bins=24, refractory=timedelta(minutes=30), warmup=timedelta(hours=2))
T0 = np.datetime64("2026-01-01T00:00:00", "us")


def nab(name: str) -> pl.DataFrame:
    path = NAB / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the NAB series the tests use live in tests/data/nab")
    return pl.read_csv(path, schema={"timestamp": pl.String, "value": pl.Float64}).with_columns(
        pl.col("timestamp").str.to_datetime("%Y-%m-%d %H:%M:%S"))


def messy_series(seed: int, n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Seasonal noise at 1-minute steps with NaNs, infs, spikes, a gap, repeated and jittered times."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(n, dtype=np.float64)
    values = 10 * np.sin(2 * np.pi * minutes / 120) + rng.normal(0, 1, n) + 50
    values[rng.choice(n, 15, replace=False)] += rng.normal(0, 20, 15)
    values[rng.choice(n, 30, replace=False)] = np.nan
    values[rng.choice(n, 3, replace=False)] = np.inf
    values[n - 100] = 150.0                                      # one spike bigger than anything before
    secs = minutes * 60 + rng.integers(-5, 6, n)                  # probe jitter
    secs[700:] += 3600                                            # an hour without data
    dup = rng.choice(np.arange(1, n), 10, replace=False)
    secs[dup] = secs[dup - 1]                                     # repeated timestamps
    secs = np.maximum.accumulate(secs)                            # in time order, as a live probe sends them
    return values, T0 + (secs * 1_000_000).astype("timedelta64[us]")


def us(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[us]").astype(np.int64)


# -- the streaming path is the batch path ----------------------------------------------------------------

@pytest.mark.parametrize("params", [SHORT, replace(SHORT, refractory=timedelta(0)),
                                    replace(SHORT, refractory_damping=0.0, season_bins=7, novelty_buckets=1)],
                         ids=["short", "no-refractory", "other-bins"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_batch_on_random_series(params: AnomalyParams, seed: int) -> None:
    """Point by point through a StreamScorer (three series interleaved, the state carried between
    calls and once through bytes) against one batch call over all three."""
    series = [messy_series(seed * 10 + k) for k in range(3)]
    frame = pl.concat([pl.DataFrame({"series": k, "time": t, "value": v}) for k, (v, t) in enumerate(series)])
    batch = score_frame(frame, params=params)["anomaly_score"].to_numpy()
    live = StreamScorer(params)
    streamed = [np.zeros(len(v)) for v, _ in series]
    for i in range(len(series[0][0])):
        for k, (v, t) in enumerate(series):
            streamed[k][i] = live.update(k, int(us(t[i:i + 1])[0]), float(v[i]))
        if i == 700:                                             # a worker restarts from its stored state
            restored = StreamScorer(params)
            for k in range(3):
                restored.load(k, live.to_bytes(k))
            live = restored
    np.testing.assert_allclose(np.concatenate(streamed), batch, rtol=0, atol=1e-9)
    assert (batch >= 0.5).any() and (batch > 0).mean() > 0.5      # the comparison covered real scores


def test_compiled_kernel_equals_the_same_code_run_as_plain_python() -> None:
    values, times = messy_series(7)
    state = new_state(1, SHORT)
    compiled = advance(us(times), values, np.array([0, len(values)]), np.array([0]), state, SHORT)
    plain_state = new_state(1, SHORT)[0]
    pvec = SHORT.vector()
    plain = np.array([_step.py_func(plain_state, int(t), float(x), pvec) for t, x in zip(us(times), values,
                                                                                        strict=True)])
    np.testing.assert_allclose(compiled, plain, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(state[0], plain_state)


@pytest.mark.parametrize("name", NAB_FILES)
def test_streaming_equals_batch_on_nab(name: str) -> None:
    df = nab(name)
    times, values = df["timestamp"].to_numpy(), df["value"].to_numpy()
    batch = score_series(values, times=times)
    live = StreamScorer()
    half = len(values) // 2
    first = live.update_many("s", us(times[:half]), values[:half])
    rest = [live.update("s", int(t), float(x)) for t, x in zip(us(times[half:]), values[half:], strict=True)]
    np.testing.assert_allclose(np.r_[first, rest], batch, rtol=0, atol=1e-9)
    assert ((batch >= 0) & (batch <= 1)).all() and (batch >= 0.5).any()


def test_scores_are_finite_in_unit_interval_even_for_extreme_values() -> None:
    rng = np.random.default_rng(5)
    extreme = np.where(rng.random(3000) < 0.5, 1e308, -1e308) * rng.random(3000)
    for values in (rng.standard_cauchy(3000) * 1e9, rng.normal(size=3000) * 1e-12, np.r_[np.zeros(1000), 1e300],
                   extreme, np.r_[np.full(500, 1e308), np.full(500, -1e308), np.full(500, 1e308)],
                   np.r_[np.full(1000, 5.0), np.full(1000, np.finfo(float).max)]):
        for params in (SHORT, DEFAULT_PARAMS):
            s = score_series(values, step_s=60.0, params=params)
            assert np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0, values[:3]


def test_scores_are_deterministic() -> None:
    values, times = messy_series(8)
    a = score_series(values, times=times, params=SHORT)
    b = score_series(values.copy(), times=times.copy(), params=SHORT)
    assert a.tobytes() == b.tobytes()


# -- warm-up, missing data, flat series -------------------------------------------------------------------

def test_warmup_scores_zero_and_short_series() -> None:
    values, times = messy_series(2)
    s = score_series(values, times=times, params=SHORT)
    in_warmup = times - times.min() < np.timedelta64(2, "h")
    assert in_warmup.sum() > 100 and (s[in_warmup] == 0).all()
    short = values[:100]                                         # 100 minutes, all inside a 2-hour warm-up
    assert (score_series(short, step_s=60.0, params=SHORT) == 0).all()
    assert (score_series(short) == 0).all()                      # 500 minutes, inside the 1-day default
    assert score_series(np.array([])).shape == (0,)
    assert (score_series(np.array([3.0])) == 0).all()


def test_constant_and_missing_series_do_not_blow_up() -> None:
    flat = np.full(3000, 45.0)
    assert (score_series(flat) == 0).all()
    assert (score_series(np.full(3000, np.nan)) == 0).all()
    assert (score_series(np.zeros(3000)) == 0).all()
    stepped = flat.copy()
    stepped[2000:] = 60.0                                        # a flat metric that moves is news, once
    s = score_series(stepped)
    assert s[2000] >= 0.5 and (s >= 0.5).sum() <= 3
    values, _ = messy_series(3)
    values[200:400] = np.nan
    s = score_series(values, step_s=60.0, params=SHORT)
    assert np.isfinite(s).all() and (s[200:400] == 0).all() and (s[~np.isfinite(values)] == 0).all()


def test_injected_spike_in_a_seasonal_series_scores_high() -> None:
    rng = np.random.default_rng(11)
    n = 288 * 7                                                  # a week at 5-minute steps
    daily = 40 + 25 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 2, n)
    spike = 288 * 5 + 100
    daily[spike] += 30
    s = score_series(daily)
    assert s[spike] >= 0.5
    rest = np.delete(s, spike)
    assert (rest >= 0.5).mean() < 0.005 and np.median(rest[288:]) < 0.2


def test_a_level_shift_is_flagged_once_then_damped() -> None:
    rng = np.random.default_rng(12)
    values = 20 + rng.normal(0, 1, 288 * 6)
    values[288 * 4:] += 15
    s = score_series(values)
    flagged = np.flatnonzero(s >= 0.5)
    shift = 288 * 4
    assert shift in flagged and ((flagged > shift) & (flagged < shift + 288)).sum() <= 1 and len(flagged) <= 4



def test_a_slowly_sampled_series_gets_time_constants_spanning_as_many_samples() -> None:
    """Hourly samples: the level, shift, slow and scale time constants stretch by step / cadence (12), so
    the defaults score it exactly as settings with those constants 12 times longer and an hourly cadence."""
    rng = np.random.default_rng(13)
    n = 24 * 40
    values = 30 + 8 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 1, n)
    values[24 * 30] += 25
    hourly = score_series(values, step_s=3600.0)
    stretched = replace(DEFAULT_PARAMS, cadence=timedelta(hours=1), **{
        name: getattr(DEFAULT_PARAMS, name) * 12 for name in ("level_tau", "shift_tau", "slow_tau", "scale_tau")})
    np.testing.assert_array_equal(hourly, score_series(values, step_s=3600.0, params=stretched))
    assert hourly[24 * 30] >= 0.5 and (np.delete(hourly, 24 * 30) >= 0.5).sum() <= 2
    unstretched = score_series(values, step_s=3600.0, params=replace(DEFAULT_PARAMS, cadence=timedelta(hours=2)))
    assert not np.array_equal(hourly, unstretched)             # the rule is what made them equal


def test_the_first_point_after_a_gap_is_not_judged_against_a_stale_level() -> None:
    """A steady ramp with 12 hours missing: the first point after the gap is far from the level of 12 hours
    ago, as any ramp would be; a real jump after the gap is still news."""
    rng = np.random.default_rng(0)
    n = 4 * 288
    keep = np.ones(n, dtype=bool)
    keep[600:744] = False
    times = T0 + (np.arange(n)[keep] * 300_000_000).astype("timedelta64[us]")
    values = (100 + 0.1 * np.arange(n) + rng.normal(0, 0.02, n))[keep]
    s = score_series(values, times=times)
    assert s[288:].max() < 0.5
    no_gap_rule = score_series(values, times=times, params=replace(DEFAULT_PARAMS, gap_factor=1e12))
    assert no_gap_rule[600] >= 0.5                               # without the rule it would be flagged
    jumped = values.copy()
    jumped[600:] += 200
    assert score_series(jumped, times=times)[600] >= 0.5

# -- many series at once, causality ----------------------------------------------------------------------

def long_frame(n_series: int = 4, n: int = 900) -> pl.DataFrame:
    frames = []
    for k in range(n_series):
        values, times = messy_series(10 + k, n)
        frames.append(pl.DataFrame({"device": k // 2, "metric": f"m{k % 2}", "time": times, "value": values}))
    return pl.concat(frames)


def test_score_frame_equals_each_series_alone_in_any_row_order() -> None:
    df = long_frame().sample(fraction=1.0, shuffle=True, seed=3)
    out = score_frame(df, series_col=["device", "metric"], params=SHORT)
    assert out.columns == [*df.columns, "anomaly_score"] and out.drop("anomaly_score").equals(df)
    for (device, metric), part in out.group_by(["device", "metric"], maintain_order=True):
        ordered = part.sort("time", maintain_order=True)         # rows with the same time: in frame order
        alone = score_series(ordered["value"].to_numpy(), times=ordered["time"].to_numpy(), params=SHORT)
        np.testing.assert_array_equal(ordered["anomaly_score"].to_numpy(), alone, err_msg=f"{device}/{metric}")
    ordered = df.sort("device", "metric", "time", maintain_order=True)
    out_sorted = score_frame(ordered, series_col=["device", "metric"], params=SHORT)
    for _, part in out_sorted.group_by(["device", "metric"], maintain_order=True):
        alone = score_series(part["value"].to_numpy(), times=part["time"].to_numpy(), params=SHORT)
        np.testing.assert_array_equal(part["anomaly_score"].to_numpy(), alone)
    lazy = score_frame(df.lazy(), series_col=["device", "metric"], params=SHORT)
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect().equals(out)


def test_score_frame_reads_epoch_seconds_and_zoned_times() -> None:
    values, times = messy_series(4)
    base = score_series(values, times=times, params=SHORT)
    epoch = (times - np.datetime64(0, "us")) / np.timedelta64(1, "s")
    np.testing.assert_allclose(score_series(values, times=epoch, params=SHORT), base, atol=1e-12)
    zoned = pl.DataFrame({"series": 1, "time": times, "value": values}).with_columns(
        pl.col("time").dt.replace_time_zone("UTC").dt.convert_time_zone("Africa/Nairobi"))
    np.testing.assert_allclose(score_frame(zoned, params=SHORT)["anomaly_score"].to_numpy(), base, atol=1e-12)
    with pytest.raises(ValueError, match="no column 'value'"):
        score_frame(zoned.rename({"value": "v"}))
    with pytest.raises(TypeError, match="epoch seconds"):
        score_frame(zoned.with_columns(pl.col("time").cast(pl.String)))


def test_appending_future_points_leaves_past_scores_unchanged() -> None:
    df = long_frame(n=1200)
    cut = datetime(2026, 1, 1, 13)
    past = df.filter(pl.col("time") < cut)
    full = score_frame(df, series_col=["device", "metric"], params=SHORT)
    early = score_frame(past, series_col=["device", "metric"], params=SHORT)
    assert len(past) < len(df) and early["anomaly_score"].to_numpy().max() > 0
    assert full.filter(pl.col("time") < cut).equals(early)
    df0 = nab(NAB_FILES[1])
    values, times = df0["value"].to_numpy(), df0["timestamp"].to_numpy()
    whole = score_series(values, times=times)
    for k in (300, 2000, 3500):
        assert np.array_equal(score_series(values[:k], times=times[:k]), whole[:k])


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="level_tau"):
        AnomalyParams(level_tau=timedelta(0))
    with pytest.raises(ValueError, match="negative"):
        AnomalyParams(warmup=timedelta(hours=-1))
    with pytest.raises(ValueError, match="season_weight"):
        AnomalyParams(season_weight=0.0)
    with pytest.raises(ValueError, match="buckets"):
        AnomalyParams(novelty_buckets=0)
    with pytest.raises(ValueError, match="cadence"):
        AnomalyParams(cadence=timedelta(0))
    with pytest.raises(ValueError, match="gap_factor"):
        AnomalyParams(gap_factor=1.0)
    assert DEFAULT_PARAMS.z_threshold > 0
    with pytest.raises(ValueError, match="floats"):
        StreamScorer().load("x", b"\0" * 8)


# -- the multivariate device model --------------------------------------------------------------------

def device_frame(n: int = 800, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    traffic = rng.normal(50, 10, n)
    return pl.DataFrame({
        "time": [datetime(2026, 1, 1) + timedelta(minutes=i) for i in range(n)],
        "in_mbps": traffic,
        "out_mbps": 0.5 * traffic + rng.normal(0, 2, n),
        "cpu_pct": 10 + 0.6 * traffic + rng.normal(0, 3, n),
        "rtt_ms": rng.normal(2, 0.2, n),
        "site": "nairobi",                                       # not a metric: ignored
    })


def test_device_outliers_flags_an_injected_multivariate_outlier() -> None:
    df = device_frame()
    # Busy CPU and slow answers while traffic is ordinary: each value is within the range seen, the mix is not.
    odd = 400
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) == odd).then(pl.lit(85.0)).otherwise(pl.col("cpu_pct")).alias("cpu_pct"),
        pl.when(pl.int_range(pl.len()) == odd).then(pl.lit(3.0)).otherwise(pl.col("rtt_ms")).alias("rtt_ms"),
        pl.when(pl.int_range(pl.len()) == odd).then(pl.lit(20.0)).otherwise(pl.col("in_mbps")).alias("in_mbps"),
    )
    out = device_outliers(df)
    s = out["outlier_score"].to_numpy()
    assert out.columns == ["time", "outlier_score"] and out["time"].equals(df["time"])
    assert s[odd] >= 0.5 and int(np.argmax(s)) == odd
    assert ((s >= 0) & (s <= 1)).all() and (s >= 0.5).mean() <= 0.02
    assert device_outliers(df)["outlier_score"].equals(out["outlier_score"])     # seeded


def test_device_outliers_handles_missing_metrics() -> None:
    df = device_frame(300).with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("cpu_pct")).alias("cpu_pct"),
        pl.lit(None, dtype=pl.Float64).alias("never_polled"),
        pl.when(pl.int_range(pl.len()) == 5).then(float("nan")).otherwise(pl.col("rtt_ms")).alias("rtt_ms"),
    )
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 9).then(None).otherwise(pl.col(c)).alias(c)
                         for c in ("in_mbps", "out_mbps", "cpu_pct", "rtt_ms"))
    s = device_outliers(df)["outlier_score"]
    assert s.null_count() == 1 and s[9] is None                  # nothing was measured at row 9
    assert s.drop_nulls().is_between(0, 1).all() and (s.drop_nulls().to_numpy() >= 0.5).mean() < 0.05
    assert device_outliers(df.head(1))["outlier_score"].null_count() == 1
    with pytest.raises(ValueError, match="no metric column"):
        device_outliers(df, metrics=["nope"])
    with pytest.raises(ValueError, match="no numeric metric"):
        device_outliers(df.select("time", "site"))


# -- the command line ---------------------------------------------------------------------------------

def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analytics.anomaly", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_scores_a_nab_file() -> None:
    name = NAB_FILES[1]                                          # repeated timestamps, kept as rows
    df = nab(name)
    result = run_cli("score", NAB / name)
    assert result.returncode == 0, result.stderr
    out = pl.read_csv(result.stdout.encode(), schema={"timestamp": pl.String, "value": pl.String,
                                                      "anomaly_score": pl.Float64})
    source = pl.read_csv(NAB / name, infer_schema=False)
    assert out.columns == ["timestamp", "value", "anomaly_score"] and len(out) == len(df)
    assert out["timestamp"].equals(source["timestamp"]) and out["value"].equals(source["value"])
    expected = score_series(df["value"].to_numpy(), times=df["timestamp"].to_numpy())
    np.testing.assert_allclose(out["anomaly_score"].to_numpy(), expected, atol=1e-6)
    assert (out["anomaly_score"] >= 0.5).any()


def test_cli_reads_iso_variants_epoch_seconds_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("host,timestamp,value\n"
                    "a,2026-01-01T00:00:00Z,1.5\n"
                    "a,2026-01-01 03:00:00+03:00,\n"           # the same instant as the next; empty = missing
                    "a,1767225600,2\n"
                    "a,2026-01-01T00:05,3\n"
                    "a,2026-01-01 00:10:00.250,4\n")
    result = run_cli("score", path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "timestamp,value,anomaly_score" and len(lines) == 6
    assert [ln.rsplit(",", 1)[0] for ln in lines[1:]] == [
        "2026-01-01T00:00:00Z,1.5", "2026-01-01 03:00:00+03:00,", "1767225600,2", "2026-01-01T00:05,3",
        "2026-01-01 00:10:00.250,4"]


@pytest.mark.parametrize(("content", "line", "words"), [
    ("time,value\n1,2\n", 1, "no timestamp column"),
    ("timestamp,val\n1,2\n", 1, "no value column"),
    ("timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:05:00,12,5\n", 3, "more fields"),
    ("timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:05:00,1\n2026-01-01 00:10:00,n/a\n", 4,
     "value 'n/a' is not a number"),
    ("timestamp,value\n2026-01-01 00:00:00,1\n2026-02-30 00:00:00,2\n", 3, "timestamp '2026-02-30 00:00:00'"),
    ("timestamp,value\n2026-01-01 00:00:00,1\nyesterday,2\n", 3, "not ISO 8601 or epoch seconds"),
    ("timestamp,value\n,2\n", 2, "no timestamp"),
    ("", 1, "empty file"),
    ("timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:05:00,inf\n", 3, "value 'inf' is not a finite number"),
    ("timestamp,value\n2026-01-01 00:00:00,-Infinity\n", 2, "value '-Infinity' is not a finite number"),
    ("timestamp,value\n2026-01-01 00:00:00,1\n\n2026-01-01 00:05:00,NaN\n", 4, "value 'NaN' is not a finite"),
    ("timestamp,value\n2026-01-01 00:00:00,1e400\n", 2, "value '1e400' is not a finite number"),
], ids=["no-timestamp", "no-value", "ragged", "bad-value", "bad-date", "bad-timestamp", "empty-timestamp",
        "empty-file", "inf", "minus-infinity", "nan-after-blank-line", "overflow"])
def test_cli_reports_bad_input_in_one_line(tmp_path: Path, content: str, line: int, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = run_cli("score", path)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"Error: {path}:{line}: ") and words in result.stderr, result.stderr


def test_cli_missing_file_and_help(tmp_path: Path) -> None:
    result = run_cli("score", tmp_path / "absent.csv")
    assert result.returncode == 1 and result.stderr.strip() == f"Error: {tmp_path / 'absent.csv'}: no such file"
    for args in (("--help",), ("score", "--help")):
        result = run_cli(*args)
        assert result.returncode == 0 and "Usage: python -m analytics.anomaly" in result.stdout
    assert "timestamp,value,anomaly_score" in run_cli("score", "--help").stdout


def test_cli_warns_once_about_repeated_timestamps_and_scores_every_row(tmp_path: Path) -> None:
    path = tmp_path / "dups.csv"
    rows = [f"2026-01-01 {h:02d}:{m:02d}:00,{(h * 60 + m) % 7}" for h in range(24) for m in range(0, 60, 5)]
    rows.insert(10, rows[9].rsplit(",", 1)[0] + ",3")             # line 12 repeats line 11's time
    rows.insert(50, rows[49])                                    # and an exact repeat further on
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    result = run_cli("score", path)
    assert result.returncode == 0
    assert result.stderr.strip() == (f"{path}:12: warning: timestamp 2026-01-01 00:45:00 repeats line 11 (2 repeated "
                                     "in the file); each row is scored as a sample of its own, after the earlier ones")
    assert len(result.stdout.splitlines()) == len(rows) + 1


def test_cli_scores_extreme_finite_values_within_unit_interval(tmp_path: Path) -> None:
    path = tmp_path / "extreme.csv"
    values = ["1e308", "-1e308", "1.7976931348623157e308", "0", "-1.7e308"] * 400
    path.write_text("timestamp,value\n" + "".join(f"{1767225600 + 60 * i},{v}\n" for i, v in enumerate(values)))
    result = run_cli("score", path)
    assert result.returncode == 0, result.stderr
    scores = pl.read_csv(result.stdout.encode(), infer_schema=False)["anomaly_score"].cast(pl.Float64)
    assert len(scores) == len(values) and scores.is_finite().all() and scores.is_between(0, 1).all()
