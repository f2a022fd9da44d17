"""analytics.anomaly: the vectorised score against its plain-Python reference, its edge cases, causality,
the multivariate device model and the CLI (no database needed)."""

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
    device_outliers,
    score_frame,
    score_series,
    score_series_loop,
)

ROOT = Path(__file__).resolve().parent.parent
NAB = ROOT / "tests" / "data" / "nab"   # three NAB series kept with the tests (see NOTICE.md there)
# A small subset: gaps of up to an hour, repeated timestamps, a daily pattern with a jump.
NAB_FILES = ("realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv", "realAWSCloudwatch/ec2_network_in_5abac7.csv",
             "artificialWithAnomaly/art_daily_jumpsup.csv")
# Windows short enough that a 1,500-point series at 1-minute steps leaves warm-up and uses all of them.
SHORT = AnomalyParams(local_window=timedelta(minutes=30), season=timedelta(hours=2), seasons=3,
                      scale_window=timedelta(hours=3), novelty_window=timedelta(hours=5), warmup=timedelta(hours=2))
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
    return values, T0 + (secs * 1_000_000).astype("timedelta64[us]")


# -- the vectorised score is the reference score ----------------------------------------------------------

@pytest.mark.parametrize("params", [
    SHORT,
    replace(SHORT, seasons=0),
    replace(SHORT, local_window=timedelta(0)),
    replace(SHORT, novelty_factor=0.0, sharpness=4.0),
    replace(SHORT, min_fill=0.9, floor_rel=0.05),
], ids=["both", "local", "seasonal", "no-novelty", "strict-fill"])
@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_equals_loop_on_random_series(params: AnomalyParams, seed: int) -> None:
    values, times = messy_series(seed)
    fast = score_series(values, times=times, params=params)
    slow = score_series_loop(values, params, times=times)
    assert np.abs(fast - slow).max() <= 1e-9
    assert (fast >= 0.5).any() and (fast > 0).mean() > 0.5      # the comparison covered real scores


@pytest.mark.parametrize("name", NAB_FILES)
def test_vectorised_equals_loop_on_nab(name: str) -> None:
    df = nab(name)
    times, values = df["timestamp"].to_numpy(), df["value"].to_numpy()
    fast = score_series(values, times=times)
    assert np.abs(fast - score_series_loop(values, times=times)).max() <= 1e-9
    assert ((fast >= 0) & (fast <= 1)).all()


def test_scores_are_in_unit_interval_and_finite() -> None:
    rng = np.random.default_rng(5)
    for values in (rng.standard_cauchy(2000) * 1e9, rng.normal(size=2000) * 1e-12, np.r_[np.zeros(1000), 1e300]):
        s = score_series(values, step_s=60.0, params=SHORT)
        assert np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0


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
    assert score_series_loop(np.array([])).shape == (0,)
    assert (score_series(np.array([3.0])) == 0).all()


def test_constant_and_missing_series_do_not_blow_up() -> None:
    flat = np.full(3000, 45.0)
    assert (score_series(flat) == 0).all() and (score_series_loop(flat) == 0).all()
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
    assert (rest >= 0.5).mean() < 0.005 and np.median(rest[288:]) < 0.1


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
    for (device, metric), part in out.group_by(["device", "metric"]):
        alone = score_series(part["value"].to_numpy(), times=part["time"].to_numpy(), params=SHORT)
        np.testing.assert_allclose(part["anomaly_score"].to_numpy(), alone, rtol=0, atol=1e-12,
                                   err_msg=f"{device}/{metric}")
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
    with pytest.raises(ValueError, match="warmup"):
        AnomalyParams(warmup=timedelta(0))
    with pytest.raises(ValueError, match="nothing to score against"):
        AnomalyParams(local_window=timedelta(0), seasons=0)
    with pytest.raises(ValueError, match="negative"):
        AnomalyParams(scale_window=timedelta(hours=-1))
    assert DEFAULT_PARAMS.z_threshold > 0


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
], ids=["no-timestamp", "no-value", "ragged", "bad-value", "bad-date", "bad-timestamp", "empty-timestamp",
        "empty-file"])
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
