"""Device status with hysteresis: the vectorised state machine against a plain sequential one,
across any split into batches, and through the loader into the device rows and the events table."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import psycopg
import pytest

from ingest.loader import Loader
from ingest.rows import MetricRows, to_micros
from ingest.status import DeviceState, Hysteresis, StatusEvent, apply
from netpulse.metrics import MetricKind
from tests.factories import make_devices, make_org, utc

T0 = utc(2026, 11, 20, 12)
STEP_US = 60_000_000


def batch(seqs: dict[int, str], start: int = 0) -> MetricRows:
    """Availability (and loss) rows: per device a string of U (up), D (degraded), X (no answer),
    one probe a minute from T0 + ``start`` minutes."""
    out = []
    for dev, seq in seqs.items():
        for k, c in enumerate(seq):
            t = to_micros(T0) + (start + k) * STEP_US
            out.append((t, dev, MetricKind.AVAILABLE, 0, 0.0 if c == "X" else 1.0))
            out.append((t, dev, MetricKind.ICMP_LOSS_PCT, 0, {"U": 0.0, "D": 33.3, "X": 100.0}[c]))
    return MetricRows.from_tuples(out)


def reference(seq: str, h: Hysteresis, start: int = 0, status: str = "unknown") -> tuple[str, list[tuple]]:
    """The two machines, one probe at a time: reachability (down after ``down_after`` failures, back
    after ``up_after`` answers) and answer quality over the answers only (degraded after
    ``degraded_after`` lossy answers, up after ``clean_after`` clean ones)."""
    fail = ok = loss = clean = 0
    run_since = 0
    quality = "up"
    events = []
    for k, c in enumerate(seq):
        t = to_micros(T0) + (start + k) * STEP_US
        if c == "X":
            run_since, fail, ok = (t if fail == 0 else run_since), fail + 1, 0
            if status != "down" and fail >= h.down_after:
                events.append((run_since, t, status, "down"))
                status = "down"
            continue
        run_since, ok, fail = (t if ok == 0 else run_since), ok + 1, 0
        loss, clean = (loss + 1, 0) if c == "D" else (0, clean + 1)
        if loss >= h.degraded_after:
            quality = "degraded"
        elif clean >= h.clean_after:
            quality = "up"
        if status == "down":
            if ok >= h.up_after:
                events.append((run_since, t, "down", quality))
                status = quality
        elif quality != status:
            events.append((t, t, status, quality))
            status = quality
    return status, events


def run_in_batches(seq: str, cuts: list[int], h: Hysteresis) -> tuple[str, list[tuple]]:
    state = DeviceState(1, "unknown", 0, 0, None, None)
    events: list[StatusEvent] = []
    bounds = [0, *sorted(cuts), len(seq)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        if a == b:
            continue
        result = apply(batch({1: seq[a:b]}, start=a), {1: state}, h)
        (u,) = result.updates
        state = DeviceState(1, u.status, u.fail_streak, u.ok_streak, u.streak_since_us, u.last_checked_us,
                            u.loss_streak, u.clean_streak, u.quality)
        events += result.events
    return state.status, [(e.time_us, e.confirmed_us, e.from_status, e.to_status) for e in events]


@pytest.mark.parametrize("seed", range(60))
def test_vectorised_equals_sequential_across_any_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h = Hysteresis(down_after=int(rng.integers(1, 5)), up_after=int(rng.integers(1, 4)),
                   degraded_after=int(rng.integers(1, 5)), clean_after=int(rng.integers(1, 6)))
    # Runs of random lengths, so long outages, lossy stretches and short blips all occur.
    p = rng.dirichlet([2, 2, 1.5])
    seq = "".join(str(rng.choice(list("UDX"), p=p)) * int(rng.integers(1, 7)) for _ in range(30))
    cuts = rng.integers(0, len(seq), int(rng.integers(0, 6))).tolist()
    assert run_in_batches(seq, cuts, h) == reference(seq, h)


def test_a_lossy_link_is_one_degraded_period() -> None:
    """30 % of echo requests lost, three per probe, every 10 s for 12 minutes: an answer loses packets
    two times in three. One answer at a time that would be about 30 flips; with the defaults it is one
    period, and the clean answers afterwards end it once."""
    rng = np.random.default_rng(7)
    lost = (rng.random((72, 3)) < 0.30).sum(axis=1)
    lossy = "".join("X" if n == 3 else "D" if n else "U" for n in lost)
    seq = "U" * 5 + lossy + "U" * 12
    h = Hysteresis()
    state, events = run_in_batches(seq, [20, 40, 60, 80], h)
    flips_one_at_a_time = reference(seq, Hysteresis(degraded_after=1, clean_after=1))[1]
    assert len([e for e in flips_one_at_a_time if e[2:] in (("up", "degraded"), ("degraded", "up"))]) > 20
    assert [e[2:] for e in events] == [("unknown", "up"), ("up", "degraded"), ("degraded", "up")]
    assert (state, events) == reference(seq, h)
    t = [to_micros(T0) + k * STEP_US for k in range(len(seq))]
    last_clean_run = len(seq.rstrip("U"))
    assert events[2][1] == t[last_clean_run + h.clean_after - 1]   # up again at the tenth clean answer


def test_quality_is_kept_through_an_outage() -> None:
    h = Hysteresis(down_after=2, up_after=2, degraded_after=2, clean_after=3)
    # Degraded, then down; back with clean answers: degraded until the third clean one.
    status, events = run_in_batches("UDDXXUUUU", [4, 6], h)
    assert [e[2:] for e in events] == [("unknown", "up"), ("up", "degraded"), ("degraded", "down"),
                                       ("down", "degraded"), ("degraded", "up")]
    assert (status, events) == reference("UDDXXUUUU", h)


def test_several_devices_in_one_batch_keep_their_own_streaks() -> None:
    h = Hysteresis(3, 2)
    seqs = {1: "UUXXXXUUU", 2: "XXUXXUU", 3: "UDDUXXXU", 4: "XX"}
    states = {d: DeviceState(d, "unknown", 0, 0, None, None) for d in seqs}
    result = apply(batch(seqs), states, h)
    got = {u.device_id: u.status for u in result.updates}
    assert got == {d: reference(s, h)[0] for d, s in seqs.items()}
    assert got == {1: "up", 2: "up", 3: "down", 4: "unknown"}
    by_device: dict[int, list] = {}
    for e in result.events:
        by_device.setdefault(e.device_id, []).append((e.time_us, e.confirmed_us, e.from_status, e.to_status))
    assert by_device == {d: reference(s, h)[1] for d, s in seqs.items() if reference(s, h)[1]}


def test_a_short_failure_changes_nothing_and_an_outage_is_dated_from_its_first_probe() -> None:
    h = Hysteresis(3, 2)
    status, events = reference("UUXXUU", h)
    assert status == "up" and [e[2:] for e in events] == [("unknown", "up")]
    _, events = run_in_batches("UUXXXXUU", [3, 5], h)
    t = [to_micros(T0) + k * STEP_US for k in range(8)]
    assert events == [(t[0], t[0], "unknown", "up"), (t[2], t[4], "up", "down"), (t[6], t[7], "down", "up")]


def test_late_and_repeated_samples_are_ignored() -> None:
    h = Hysteresis(2, 2)
    state = DeviceState(1, "up", 0, 5, to_micros(T0), to_micros(T0) + 10 * STEP_US)
    assert apply(batch({1: "XXXX"}, start=0), {1: state}, h).updates == []  # all at or before last_checked
    result = apply(batch({1: "XXXX"}, start=9), {1: state}, h)  # two old, two new
    (u,) = result.updates
    assert (u.status, u.fail_streak, u.last_checked_us) == ("down", 2, to_micros(T0) + 12 * STEP_US)


def test_invalid_thresholds() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Hysteresis(0, 2)
    with pytest.raises(ValueError, match="at least 1"):
        Hysteresis(clean_after=0)


def test_loader_keeps_streaks_across_batches_and_records_each_change_once(db: psycopg.Connection) -> None:
    org = make_org(db)
    dev, other = make_devices(db, org, 2)
    loader = Loader(hysteresis=Hysteresis(down_after=3, up_after=2, degraded_after=2, clean_after=1))
    seq = "UUUXXXXXUUDDU"
    for a in range(0, len(seq), 2):  # one batch per two probes: streaks cross batch boundaries
        b = batch({dev: seq[a:a + 2], other: "U" * len(seq[a:a + 2])}, start=a)
        loader.load(db, b)
        loader.load(db, b)  # a redelivered message changes nothing
    expected_status, expected = reference(seq, loader.hysteresis)
    row = db.execute("SELECT oper_status, oper_status_since, last_seen, last_checked, fail_streak, ok_streak, "
                     "loss_streak, clean_streak, quality FROM devices WHERE id = %s", (dev,)).fetchone()
    t = [T0 + timedelta(minutes=k) for k in range(len(seq))]
    # Answered since t[8], degraded at t[11] (the second lossy answer), up again at t[12].
    assert row == (expected_status, t[12], t[12], t[12], 0, 5, 0, 1, "up")
    events = db.execute("SELECT time, confirmed_at, from_status, to_status, organization_id::text "
                        "FROM device_status_events WHERE device_id = %s ORDER BY time", (dev,)).fetchall()
    assert [(to_micros(a), to_micros(b), c, d) for a, b, c, d, _ in events] == expected
    assert [(e[2], e[3]) for e in events] == [("unknown", "up"), ("up", "down"), ("down", "up"), ("up", "degraded"),
                                              ("degraded", "up")]
    assert {e[4] for e in events} == {str(org)}
    assert db.execute("SELECT from_status, to_status FROM device_status_events WHERE device_id = %s",
                      (other,)).fetchall() == [("unknown", "up")]
    # A late batch from before never moves a device back in time.
    loader.load(db, batch({dev: "XXXXX"}, start=-10))
    assert db.execute("SELECT oper_status FROM devices WHERE id = %s", (dev,)).fetchone() == ("up",)
