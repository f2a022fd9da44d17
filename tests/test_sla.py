"""analytics.sla against the real database: hand-computed figures for hand-written status histories,
the simulated fleet's scripted outages through the loader, SLA targets, and the CLI."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import pytest
from click.testing import CliRunner

from analytics.sla import (
    AVAILABILITY_COLUMNS,
    CAUSE_SCHEMA,
    OUTAGE_SCHEMA,
    availability,
    calendar_period,
    evaluate_targets,
    outages,
)
from cli import main
from ingest.loader import Loader
from ingest.simulator import Fleet, IncidentKind
from ingest.status import Hysteresis
from tests.factories import make_org, utc

T0 = utc(2026, 11, 1)  # a Sunday: the day, month and quarter-to-date views differ from the week's
H = 3600.0
PERIOD = (T0, T0 + timedelta(hours=10))


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _named(db: psycopg.Connection, table: str, org: uuid.UUID, name: str) -> int:
    row = db.execute(f"INSERT INTO {table} (organization_id, name, slug) VALUES (%s, %s, %s) RETURNING id",
                     (org, name, name.lower().replace(" ", "-"))).fetchone()
    assert row is not None
    return int(row[0])


def _device(db: psycopg.Connection, org: uuid.UUID, name: str, *, site: int | None = None,
            group: int | None = None, tags: tuple[int, ...] = ()) -> int:
    row = db.execute("INSERT INTO devices (organization_id, name, address, device_type, site_id, group_id)"
                     " VALUES (%s, %s, %s, 'router', %s, %s) RETURNING id", (org, name, name, site, group)).fetchone()
    assert row is not None
    for tag in tags:
        db.execute("INSERT INTO device_tags (device_id, tag_id) VALUES (%s, %s)", (row[0], tag))
    return int(row[0])


def _history(db: psycopg.Connection, org: uuid.UUID, device: int, *changes: tuple[float, str]) -> None:
    """Status changes at T0 + hours, each from the status before it (the first from unknown)."""
    before = "unknown"
    for hours, status in changes:
        db.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, from_status,"
                   " to_status) VALUES (%s, %s, %s, %s, %s, %s)",
                   (org, device, at(hours), at(hours) + timedelta(minutes=2), before, status))
        before = status


def _window(db: psycopg.Connection, org: uuid.UUID, scope: str, ref: str | None, start: float, end: float) -> None:
    db.execute("INSERT INTO maintenance_windows (organization_id, scope, scope_ref, starts_at, ends_at)"
               " VALUES (%s, %s, %s, %s, %s)", (org, scope, ref, at(start), at(end)))


@dataclass(frozen=True)
class Hand:
    org: uuid.UUID
    ids: dict[str, int]


@pytest.fixture
def hand(db: psycopg.Connection) -> Hand:
    """Five devices over [T0, T0 + 10 h):

    - a: down from T0 - 1 h to T0 + 1 h (straddles the start), degraded 2-3 h, down again from 8 h (ongoing)
    - b: never seen (no event at all), at site Remote
    - c: first seen at 2 h, degraded 3-4 h
    - d: down 2-5 h; its own maintenance 4-6 h covers the last hour of the outage
    - e: at site Remote; down 1.5-2 h (wholly in maintenance) and 4-7 h; maintenance of the site 1-4 h
      and of the device 3-5 h overlap: 1-5 h in maintenance, counted once
    Groups: Core = a, c; Edge = d, e. Tags: core = a, c; critical = a, d.
    """
    org = make_org(db, "acme")
    remote = _named(db, "sites", org, "Remote")
    core, edge = _named(db, "device_groups", org, "Core"), _named(db, "device_groups", org, "Edge")
    t_core, t_crit = _named(db, "tags", org, "core"), _named(db, "tags", org, "critical")
    ids = {"a": _device(db, org, "a", group=core, tags=(t_core, t_crit)),
           "b": _device(db, org, "b", site=remote),
           "c": _device(db, org, "c", group=core, tags=(t_core,)),
           "d": _device(db, org, "d", group=edge, tags=(t_crit,)),
           "e": _device(db, org, "e", site=remote, group=edge)}
    _history(db, org, ids["a"], (-5, "up"), (-1, "down"), (1, "up"), (2, "degraded"), (3, "up"), (8, "down"))
    _history(db, org, ids["c"], (2, "up"), (3, "degraded"), (4, "up"))
    _history(db, org, ids["d"], (-3, "up"), (2, "down"), (5, "up"))
    _history(db, org, ids["e"], (-3, "up"), (1.5, "down"), (2, "up"), (4, "down"), (7, "up"))
    _window(db, org, "device", "d", 4, 6)
    _window(db, org, "site", "Remote", 1, 4)
    _window(db, org, "device", "e", 3, 5)
    _window(db, org, "device", "a", 20, 30)  # after the period: no effect
    # Another organization's devices, events and windows change nothing.
    other = make_org(db, "globex")
    theirs = _device(db, other, "a")
    _history(db, other, theirs, (-1, "up"), (0.5, "down"))
    _window(db, other, "all", None, 0, 10)
    return Hand(org, ids)


def _rows(frame: pl.DataFrame) -> dict[str | None, dict]:
    return {r["name"]: r for r in frame.iter_rows(named=True)}


def test_device_figures_by_hand(db: psycopg.Connection, hand: Hand) -> None:
    frame = availability(db, hand.org, *PERIOD)
    assert frame.columns == ["device_id", "name", "site", "group", *AVAILABILITY_COLUMNS]
    assert frame["name"].to_list() == ["e", "a", "d", "c", "b"]  # worst first, no data last
    got = _rows(frame)
    expected = {  # monitored, down, unknown, maintenance (hours), outages, availability, mttr, mtbf (hours)
        "a": (10, 3, 0, 0, 2, 70.0, 1.5, 3.5),
        "b": (0, 0, 7, 3, 0, None, None, None),
        "c": (8, 0, 2, 0, 0, 100.0, None, None),
        "d": (8, 2, 0, 2, 1, 75.0, 2.0, 6.0),
        "e": (6, 2, 0, 4, 1, 100 * 4 / 6, 2.0, 4.0),
    }
    for name, (mon, down, unk, maint, n, pct, mttr, mtbf) in expected.items():
        r = got[name]
        assert (r["monitored_s"], r["down_s"], r["unknown_s"], r["maintenance_s"]) == pytest.approx(
            (mon * H, down * H, unk * H, maint * H)), name
        assert r["monitored_s"] + r["unknown_s"] + r["maintenance_s"] == pytest.approx(10 * H)
        assert r["outages"] == n, name
        assert r["availability_pct"] == (None if pct is None else pytest.approx(pct)), name
        assert r["mttr_s"] == (None if mttr is None else pytest.approx(mttr * H)), name
        assert r["mtbf_s"] == (None if mtbf is None else pytest.approx(mtbf * H)), name
    assert got["e"]["site"] == "Remote" and got["e"]["group"] == "Edge" and got["a"]["site"] is None


def test_outages_are_clipped_and_split_by_maintenance(db: psycopg.Connection, hand: Hand) -> None:
    frame = outages(db, hand.org, *PERIOD)
    assert frame.schema == OUTAGE_SCHEMA
    assert [(r["device"], r["start"], r["end"], r["duration_s"] / H, r["maintenance_s"] / H, r["counted"])
            for r in frame.iter_rows(named=True)] == [
        ("a", at(0), at(1), 1.0, 0.0, True),       # began an hour before the period
        ("e", at(1.5), at(2), 0.5, 0.5, False),    # wholly in maintenance: listed, not counted
        ("d", at(2), at(5), 3.0, 1.0, True),
        ("e", at(4), at(7), 3.0, 1.0, True),
        ("a", at(8), None, 2.0, 0.0, True),        # still down at the end of the period
    ]
    assert frame["device_id"].to_list()[0] == hand.ids["a"]
    # A recovery exactly at the end closes the outage; a failure exactly at the end is not an outage yet.
    edge = outages(db, hand.org, at(0.5), at(5))
    assert [(r["device"], r["end"]) for r in edge.iter_rows(named=True)] == [
        ("a", at(1)), ("e", at(2)), ("d", at(5)), ("e", None)]
    assert outages(db, hand.org, at(7), at(8)).is_empty()
    # A period inside an outage: one outage over the whole period, still ongoing.
    inside = outages(db, hand.org, at(2.5), at(3.5))
    assert [(r["device"], r["start"], r["end"]) for r in inside.iter_rows(named=True)] == [("d", at(2.5), None)]


def test_groups_sites_tags_and_org_are_time_weighted(db: psycopg.Connection, hand: Hand) -> None:
    by_group = availability(db, hand.org, *PERIOD, by="group")
    assert by_group.columns == ["name", "devices", *AVAILABILITY_COLUMNS]
    groups = _rows(by_group)
    # Core: a (7 h up of 10) and c (8 of 8): 15 / 18, not the mean of 70 % and 100 %.
    assert groups["Core"]["availability_pct"] == pytest.approx(100 * 15 / 18)
    assert (groups["Core"]["devices"], groups["Core"]["outages"]) == (2, 2)
    # MTBF in wall-clock time: the average device's 7.5 h of available time over the group's 2 outages
    # (summed device time, 15 h / 2, would read as longer than the 10 h period allows).
    assert groups["Core"]["mttr_s"] == pytest.approx(1.5 * H) and groups["Core"]["mtbf_s"] == pytest.approx(3.75 * H)
    assert groups["Edge"]["availability_pct"] == pytest.approx(100 * 10 / 14)
    assert groups[None]["devices"] == 1 and groups[None]["availability_pct"] is None  # b has no group
    assert by_group["name"].to_list() == ["Edge", "Core", None]

    sites = _rows(availability(db, hand.org, *PERIOD, by="site"))
    assert sites["Remote"]["availability_pct"] == pytest.approx(100 * 4 / 6)
    assert sites["Remote"]["maintenance_s"] == pytest.approx(7 * H)
    assert sites[None]["availability_pct"] == pytest.approx(100 * 21 / 26)

    tags = _rows(availability(db, hand.org, *PERIOD, by="tag"))
    assert tags["critical"]["availability_pct"] == pytest.approx(100 * 13 / 18)  # a and d
    assert tags["core"]["availability_pct"] == pytest.approx(100 * 15 / 18)      # a and c
    assert tags[None]["devices"] == 2 and tags[None]["availability_pct"] == pytest.approx(100 * 4 / 6)

    (org,) = availability(db, hand.org, *PERIOD, by="org").iter_rows(named=True)
    assert (org["name"], org["devices"], org["outages"]) == ("Acme", 5, 4)
    assert org["monitored_s"] == pytest.approx(32 * H) and org["down_s"] == pytest.approx(7 * H)
    assert org["availability_pct"] == pytest.approx(100 * 25 / 32)
    # b was never monitored: four devices share the 25 h available, 6.25 h each, over 4 outages.
    assert org["mttr_s"] == pytest.approx(7 * H / 4) and org["mtbf_s"] == pytest.approx(25 * H / 4 / 4)


def test_all_and_tag_windows_and_the_status_at_the_start(db: psycopg.Connection, hand: Hand) -> None:
    _window(db, hand.org, "all", None, -2, 0.5)
    _window(db, hand.org, "tag", "critical", 9, 12)
    got = _rows(availability(db, hand.org, *PERIOD))
    # a: maintenance 0-0.5 h (all) and 9-10 h (tag): down 0.5-1 h and 8-9 h counted.
    assert got["a"]["maintenance_s"] == pytest.approx(1.5 * H) and got["a"]["down_s"] == pytest.approx(1.5 * H)
    assert got["a"]["availability_pct"] == pytest.approx(100 * 7 / 8.5)
    assert got["c"]["maintenance_s"] == pytest.approx(0.5 * H) and got["c"]["unknown_s"] == pytest.approx(1.5 * H)
    # A period that starts exactly at an event takes that event's status.
    starts_down = _rows(availability(db, hand.org, at(2), at(3)))
    assert starts_down["d"]["down_s"] == pytest.approx(H) and starts_down["c"]["monitored_s"] == pytest.approx(H)


def test_bad_arguments(db: psycopg.Connection, hand: Hand) -> None:
    with pytest.raises(ValueError, match="empty period"):
        availability(db, hand.org, T0, T0)
    with pytest.raises(ValueError, match="naive"):
        outages(db, hand.org, T0.replace(tzinfo=None), at(1))
    with pytest.raises(ValueError, match="by='rack'"):
        availability(db, hand.org, *PERIOD, by="rack")  # type: ignore[arg-type]
    assert availability(db, uuid.uuid4(), *PERIOD).is_empty()


# --- SLA targets ------------------------------------------------------------------------------------------------
def _target(db: psycopg.Connection, org: uuid.UUID, scope: str, ref: str | None, pct: float, period: str) -> None:
    db.execute("INSERT INTO sla_targets (organization_id, scope, scope_ref, target_pct, period) VALUES"
               " (%s, %s, %s, %s, %s)", (org, scope, ref, pct, period))


@pytest.mark.parametrize(("period", "start", "end"), [
    ("day", utc(2026, 11, 1), utc(2026, 11, 2)), ("week", utc(2026, 10, 26), utc(2026, 11, 2)),
    ("month", utc(2026, 11, 1), utc(2026, 12, 1)), ("quarter", utc(2026, 10, 1), utc(2027, 1, 1)),
    ("year", utc(2026, 1, 1), utc(2027, 1, 1)),
])
def test_calendar_periods(period: str, start: datetime, end: datetime) -> None:
    assert calendar_period(period, at(10)) == (start, end)
    assert calendar_period("month", utc(2026, 12, 31, 23, 59)) == (utc(2026, 12, 1), utc(2027, 1, 1))


def test_targets_with_and_without_breach(db: psycopg.Connection, hand: Hand) -> None:
    _target(db, hand.org, "device", "a", 99.9, "month")
    _target(db, hand.org, "device", "c", 99, "month")
    _target(db, hand.org, "group", "Core", 80, "day")
    _target(db, hand.org, "site", "Remote", 99.5, "week")
    _target(db, hand.org, "tag", "nothing", 99, "year")
    _target(db, hand.org, "all", None, 90, "quarter")
    now = at(10)
    results = {(r.scope, r.scope_ref): r for r in evaluate_targets(db, hand.org, now)}
    a, c, core = results[("device", "a")], results[("device", "c")], results[("group", "Core")]
    remote, nothing, org = results[("site", "Remote")], results[("tag", "nothing")], results[("all", None)]

    # a: 70 % this month; budget 0.1 % of 720 h (10 h so far + 710 h left) = 43.2 min, 180 min spent.
    assert (a.achieved_pct, a.breached, a.target_pct) == (pytest.approx(70.0), True, 99.9)
    assert (a.period_start, a.period_end, a.evaluated_at, a.devices) == (T0, utc(2026, 12, 1), now, 1)
    assert a.error_budget_min == pytest.approx(43.2 - 180)
    assert (c.achieved_pct, c.breached) == (100.0, False)
    assert c.error_budget_min == pytest.approx(0.01 * (8 + 710) * 60)
    # Core today: 15 / 18 h; budget 20 % of (18 h + 14 h left x 2 devices) less 3 h down.
    assert (core.achieved_pct, core.breached, core.devices) == (pytest.approx(100 * 15 / 18), False, 2)
    assert core.error_budget_min == pytest.approx((0.2 * 46 - 3) * 60)
    # Remote this week (from Monday): e up since T0 - 3 h, 4 h of it in maintenance, 2 h down; b never seen.
    assert (remote.achieved_pct, remote.breached, remote.devices) == (pytest.approx(100 * 7 / 9), True, 2)
    assert remote.error_budget_min == pytest.approx((0.005 * (9 + 14) - 2) * 60)
    assert (nothing.devices, nothing.achieved_pct, nothing.breached, nothing.error_budget_min) == (0, None, False, None)
    # The quarter so far sees the hours before T0 too: a 15 h (4 down), c 8, d 11 (2 down), e 9 (2 down).
    assert (org.achieved_pct, org.breached) == (pytest.approx(100 * 35 / 43), True)
    assert org.monitored_s == pytest.approx(43 * H) and org.down_s == pytest.approx(8 * H)

    # At the very start of a period nothing was monitored yet: no figure, no breach.
    fresh = {r.period: r for r in evaluate_targets(db, hand.org, T0)}
    assert fresh["month"].achieved_pct is None and not fresh["month"].breached
    assert fresh["week"].achieved_pct is not None
    assert evaluate_targets(db, uuid.uuid4(), now) == []


# --- the simulated fleet through the loader --------------------------------------------------------------------
def _seed_fleet(db: psycopg.Connection, fleet: Fleet) -> tuple[uuid.UUID, list[int]]:
    org = make_org(db, "sim")
    sites = {s.name: _named(db, "sites", org, s.name) for s in fleet.sites}
    groups = {g: _named(db, "device_groups", org, g) for g in sorted({d.group for d in fleet.devices})}
    ids: list[int] = []
    for d in fleet.devices:
        ids.append(_device(db, org, d.name, site=sites[d.site], group=groups[d.group]))
        if d.parent_index is not None:
            db.execute("UPDATE devices SET parent_id = %s WHERE id = %s", (ids[d.parent_index], ids[-1]))
    return org, ids


def test_simulated_outages_match_the_script(db: psycopg.Connection) -> None:
    fleet = Fleet(n_devices=24, n_sites=2, seed=3, interval_s=60, incidents_per_device_day=0.0)
    org, ids = _seed_fleet(db, fleet)
    start, end = utc(2026, 3, 2), utc(2026, 3, 3)
    loader = Loader(hysteresis=Hysteresis(down_after=3, up_after=2))
    # Two hours before the day (every device's status is known at its start) and one after (outages that
    # run over the end finish after it), loaded an hour per batch so streaks cross batches.
    times = fleet.aligned_times(start - timedelta(hours=2), end + timedelta(hours=1))
    device_ids = np.array(ids, np.int32)
    for i in range(0, len(times), 60):
        loader.load(db, fleet.sample(times[i:i + 60], device_ids=device_ids))

    expected: dict[int, list[tuple[datetime, datetime | None]]] = {}
    cause: dict[int, str | None] = {}  # outage start (epoch minute) of a device -> the device behind it
    for inc in fleet.incidents(start, end):
        if inc.kind is IncidentKind.OUTAGE:
            for index in [inc.device_index, *fleet.descendants(inc.device_index)]:
                expected.setdefault(ids[index], []).append(
                    (max(inc.start, start), inc.end if inc.end <= end else None))
                behind = fleet.devices[inc.device_index].name if index != inc.device_index else None
                cause[ids[index] * 10**8 + int(max(inc.start, start).timestamp()) // 60] = behind
    assert len(expected) >= 3 and any(len(fleet.descendants(i.device_index)) > 0
                                      for i in fleet.incidents(start, end) if i.kind is IncidentKind.OUTAGE)

    step = timedelta(seconds=fleet.interval_s)
    found = outages(db, org, start, end)
    got: dict[int, list[tuple[datetime, datetime | None]]] = {}
    for r in found.iter_rows(named=True):
        got.setdefault(r["device_id"], []).append((r["start"], r["end"]))
    assert got.keys() == expected.keys()
    for device, spans in expected.items():
        assert len(got[device]) == len(spans), device
        for (g_start, g_end), (e_start, e_end) in zip(sorted(got[device]), sorted(spans), strict=True):
            assert abs(g_start - e_start) <= step
            assert (g_end is None) == (e_end is None)
            if g_end is not None and e_end is not None:
                assert abs(g_end - e_end) <= step

    # The parent's outage is named as the cause of its children's, and only of theirs.
    with_causes = outages(db, org, start, end, causes=True)
    assert with_causes.drop(CAUSE_SCHEMA.names()).equals(found)
    assert with_causes["cause_device"].drop_nulls().len() > 0
    for r in with_causes.iter_rows(named=True):
        key = r["device_id"] * 10**8 + int(r["start"].timestamp()) // 60
        wanted = next(cause[k] for k in (key, key - 1, key + 1) if k in cause)
        assert r["cause_device"] == wanted, r
        if wanted is not None:
            assert abs(r["cause_start"] - r["start"]) <= step
    # Scoped to one site: only its devices' outages, and its devices' figures.
    site = fleet.sites[0].name
    in_site = {ids[d.index] for d in fleet.devices if d.site == site}
    scoped = outages(db, org, start, end, causes=True, scope="site", ref=site)
    assert set(scoped["device_id"]) <= in_site and scoped.height == with_causes.filter(
        pl.col("device_id").is_in(list(in_site))).height
    assert set(availability(db, org, start, end, scope="site", ref=site)["device_id"]) == in_site

    period_s = (end - start).total_seconds()
    for by in ("device", "group", "site", "tag", "org"):
        rows = availability(db, org, start, end, by=by)  # type: ignore[arg-type]
        assert (rows["mttr_s"].fill_null(0) <= period_s).all() and (rows["mtbf_s"].fill_null(0) <= period_s).all()
    frame = availability(db, org, start, end)
    assert frame["availability_pct"].null_count() == 0
    for r in frame.iter_rows(named=True):
        spans = expected.get(r["device_id"], [])
        down_s = sum(((e or end) - s).total_seconds() for s, e in spans)
        assert r["monitored_s"] == pytest.approx(period_s)
        assert r["outages"] == len(spans)
        assert r["availability_pct"] == pytest.approx(100 * (1 - down_s / period_s),
                                                      abs=100 * max(1, len(spans)) * fleet.interval_s / period_s)
    # The organization's figure is the device seconds, not a mean of percentages (which here coincide:
    # every device was monitored the whole day), and it matches the script too.
    total_down = sum(((e or end) - s).total_seconds() for spans in expected.values() for s, e in spans)
    (org_row,) = availability(db, org, start, end, by="org").iter_rows(named=True)
    assert org_row["availability_pct"] == pytest.approx(100 * (1 - total_down / (period_s * len(ids))), abs=1e-3)


# --- the CLI -----------------------------------------------------------------------------------------------------
def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_report_table_and_csv(db: psycopg.Connection, hand: Hand, settings_env: None, tmp_path: Path) -> None:
    code, out, err = _cli("sla", "report", "--from", "2026-11-01", "--to", "2026-11-01T10:00:00Z", "--org", "acme")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "availability by device, 2026-11-01 00:00 to 2026-11-01 10:00 UTC, worst first"
    assert lines[1].split() == ["NAME", "SITE", "GROUP", "AVAILABILITY", "DOWN", "OUTAGES", "MTTR", "MTBF"]
    assert [line.split()[0] for line in lines[3:-1]] == ["e", "a", "d", "c", "b"]
    assert lines[-1] == ("MTTR: mean length of an outage; MTBF: mean wall-clock time between outages "
                         "(neither can exceed the period)")
    assert lines[4].split() == ["a", "-", "Core", "70.000%", "3h", "00m", "2", "1h", "30m", "3h", "30m"]
    assert lines[7].split() == ["b", "Remote", "-", "-", "0s", "0", "-", "-"]

    csv = tmp_path / "sites.csv"
    code, out, err = _cli("sla", "report", "--from", "2026-11-01T00:00:00+00:00", "--to", "2026-11-01T10:00Z",
                          "--by", "site", "--csv", str(csv), "--org", "acme")
    assert code == 0, err
    assert out.splitlines()[1].split() == ["SITE", "DEVICES", "AVAILABILITY", "DOWN", "(DEVICE-H)", "OUTAGES", "MTTR",
                                           "MTBF"]
    # Remote (b and e): e was down 2 h outside maintenance (4-7 h less 4-5 h), shown as device-hours.
    assert out.splitlines()[3].split()[:4] == ["Remote", "2", "66.667%", "2.00"]
    assert "between outages anywhere in the site" in out.splitlines()[-2]
    assert out.splitlines()[-1] == f"wrote 2 row(s) to {csv}"
    written = pl.read_csv(csv)
    assert written.columns == ["name", "devices", *AVAILABILITY_COLUMNS]
    assert written["availability_pct"].to_list() == pytest.approx([100 * 4 / 6, 100 * 21 / 26])

    code, out, err = _cli("sla", "report", "--since", "1d12h", "--by", "org", "--org", "acme")
    assert code == 0, err
    assert out.splitlines()[3].split()[:2] == ["Acme", "5"]


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "3x"], "Error: --since: '3x' is not a duration; use a number and a unit (w, d, h, m, s), e.g. 30d, "
                        "90m or 1d12h"),
    (["--since", "0d"], "Error: --since: '0d' must be longer than zero"),
    (["--from", "2026-11-02", "--to", "2026-11-01"], "Error: --to (2026-11-01 00:00) must be after --from "
                                                       "(2026-11-02 00:00)"),
    (["--from", "yesterday"], "Error: --from: 'yesterday' is not an ISO 8601 time; e.g. 2026-11-01 or "
                              "2026-11-01T08:00:00Z"),
    (["--to", "2026-11-01"], "Error: --to needs --from (or use --since for a period that ends now)"),
    (["--since", "1d", "--from", "2026-11-01"], "Error: use either --since or --from/--to, not both"),
    (["--org", "nope"], "Error: no organization with slug 'nope'; known: acme, globex"),
    (["--since", "99999999w"], "Error: --since: '99999999w' is longer than the longest accepted (3660 days)"),
    (["--from", "0001-01-01"], "Error: --from: '0001-01-01' is outside the accepted range (1970-01-02 to "
                               "9999-01-01)"),
])
def test_cli_report_bad_input(args: list[str], message: str, hand: Hand, settings_env: None) -> None:
    code, out, err = _cli("sla", "report", *args)
    assert (code, out, err) == (1, "", message + "\n")


def test_cli_targets(db: psycopg.Connection, hand: Hand, settings_env: None) -> None:
    code, out, _ = _cli("sla", "target", "list", "--org", "acme")
    assert (code, out) == (0, "no SLA targets in acme yet; add one with `netpulse sla target add`\n")
    _target(db, hand.org, "device", "a", 99.9, "month")
    _target(db, hand.org, "device", "c", 99, "month")
    code, out, err = _cli("sla", "target", "list", "--at", "2026-11-01T10:00:00Z", "--org", "acme")
    assert code == 0, err
    # The old name still works, and says the new one.
    assert _cli("sla", "targets", "--at", "2026-11-01T10:00:00Z", "--org", "acme") == (
        0, out, "note: `netpulse sla targets` is now `netpulse sla target list`\n")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "SCOPE", "REF", "PERIOD", "SINCE", "DEVICES", "TARGET", "ACHIEVED", "BUDGET",
                                "STATUS"]
    assert lines[2].split()[1:] == ["device", "a", "month", "2026-11-01", "00:00", "1", "99.9%", "70.000%",
                                    "-2h", "16m", "BREACHED"]
    assert lines[3].split()[1:] == ["device", "c", "month", "2026-11-01", "00:00", "1", "99%", "100.000%",
                                    "7h", "10m", "ok"]
    assert lines[-1] == "2 target(s), 1 breached"


def test_cli_maintenance_add_and_list(db: psycopg.Connection, hand: Hand, settings_env: None) -> None:
    code, out, err = _cli("maintenance", "add", "--scope", "site", "--ref", "remote", "--from", "2026-11-01T11:00Z",
                          "--to", "2026-11-01T13:30Z", "--reason", "fibre splice", "--org", "acme")
    assert code == 0, err
    assert out.startswith("added maintenance window ")
    assert out.endswith(": site 'Remote' from 2026-11-01 11:00 to 2026-11-01 13:30 UTC (2h 30m)\n")  # slug matched
    code, out, err = _cli("maintenance", "add", "--scope", "all", "--from", "2026-11-01T14:00",
                          "--to", "2026-11-01T15:00", "--org", "acme")
    assert code == 0, err
    code, out, err = _cli("maintenance", "list", "--org", "acme")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[1:3] for line in lines[2:-1]] == [["device", "a"], ["all", "-"], ["site", "Remote"],
                                                           ["device", "d"], ["device", "e"], ["site", "Remote"]]
    assert "fibre splice" in lines[4] and "past" in lines[4] and lines[-1] == "6 window(s)"
    # The new window counts: e is in maintenance 11:00-13:30 as well.
    got = _rows(availability(db, hand.org, at(0), at(14)))
    assert got["e"]["maintenance_s"] == pytest.approx(6.5 * H)


@pytest.mark.parametrize(("args", "message"), [
    (["--scope", "site", "--ref", "Atlantis"], "Error: no site named 'Atlantis' in this organization (names are "
                                               "exact, slugs also match)"),
    (["--scope", "device", "--ref", "zz"], "Error: no device named 'zz' in this organization (names are exact)"),
    (["--scope", "tag"], "Error: --scope tag needs --ref NAME (the tag's name)"),
    (["--scope", "all", "--ref", "x"], "Error: --ref is not used with --scope all; leave it out"),
])
def test_cli_maintenance_bad_input(args: list[str], message: str, db: psycopg.Connection, hand: Hand,
                                   settings_env: None) -> None:
    code, out, err = _cli("maintenance", "add", *args, "--from", "2026-11-01T11:00Z", "--to", "2026-11-01T12:00Z",
                          "--org", "acme")
    assert (code, out, err) == (1, "", message + "\n")
    code, out, err = _cli("maintenance", "add", "--scope", "all", "--from", "2026-11-01T11:00Z",
                          "--to", "2026-11-01T10:00Z", "--org", "acme")
    assert (code, err) == (1, "Error: --to (2026-11-01 10:00) must be after --from (2026-11-01 11:00)\n")
    assert db.execute("SELECT count(*) FROM maintenance_windows WHERE organization_id = %s",
                      (hand.org,)).fetchone() == (4,)


def test_cli_help() -> None:
    for args in (["sla"], ["sla", "report"], ["sla", "targets"], ["sla", "target", "add"], ["sla", "target", "list"],
                 ["sla", "target", "remove"], ["maintenance"], ["maintenance", "add"], ["maintenance", "list"]):
        result = CliRunner().invoke(main, [*args, "--help"], prog_name="netpulse")
        assert result.exit_code == 0 and result.stdout.startswith("Usage: netpulse "), args
