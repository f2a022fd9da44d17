"""The pages' questions, answered by analytics on the demo's data during a distribution-switch outage
(:mod:`tests.noc_data`): root causes, site tiles, devices down over time, the worst latencies, the
alert groups, the device grid, search, a device's timeline, windows and checks, the SLA trend and
outage causes. Every one is organization-filtered: another tenant's devices never show."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from analytics import alerts, sla
from analytics.devices import (
    DeviceQuery,
    dependency_tree,
    device_card,
    device_grid,
    maintenance_windows,
    search_devices,
    service_checks,
    status_timeline,
)
from analytics.fleet import devices_needing_attention, site_status, status_over_time, worst_latency
from netpulse.errors import NotFound, ValidationError
from tests.conftest import truncate_all
from tests.factories import make_org
from tests.noc_data import OUTAGE_AGO, NocData, seed_noc


@pytest.fixture(scope="module")
def noc(db_url: str) -> Iterator[NocData]:
    truncate_all(db_url)
    yield seed_noc(db_url, devices=24)
    truncate_all(db_url)


@pytest.fixture
def conn(db_url: str, noc: NocData) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def test_root_causes_come_first_with_what_is_behind_them(conn: psycopg.Connection, noc: NocData) -> None:
    frame = devices_needing_attention(conn, noc.org_id)
    assert frame["name"].to_list() == [noc.parent, noc.lossy]
    assert frame["behind"].to_list() == [len(noc.behind), 0] and frame["total"][0] == 2
    assert devices_needing_attention(conn, noc.org_id, limit=1)["total"][0] == 2
    assert devices_needing_attention(conn, uuid.uuid4()).is_empty()


def test_site_tiles_split_down_from_unreachable(conn: psycopg.Connection, noc: NocData) -> None:
    rows = {r["site"]: r for r in site_status(conn, noc.org_id).iter_rows(named=True)}
    parent_site = next(d.site for d in noc.fleet.devices if d.name == noc.parent)
    assert rows[parent_site]["down"] == 1 and rows[parent_site]["unreachable"] == len(noc.behind)
    assert sum(r["devices"] for r in rows.values()) == len(noc.ids)
    assert list(rows)[0] in (parent_site, next(d.site for d in noc.fleet.devices if d.name == noc.lossy))


def test_devices_down_over_time_shows_the_outage_at_its_height(conn: psycopg.Connection, noc: NocData) -> None:
    start = noc.now - timedelta(hours=1)
    frame = status_over_time(conn, noc.org_id, start, noc.now, timedelta(minutes=5))
    assert frame.height == 12
    outage_bucket = (noc.now - OUTAGE_AGO - start) // timedelta(minutes=5)
    assert frame["down"][: int(outage_bucket)].max() == 0
    assert frame["down"][-1] == 1 + len(noc.behind)
    with pytest.raises(ValueError):
        status_over_time(conn, noc.org_id, noc.now, start, timedelta(minutes=5))


def test_the_worst_latencies_are_the_highest_averages(conn: psycopg.Connection, noc: NocData) -> None:
    frame = worst_latency(conn, noc.org_id, noc.now - timedelta(hours=6), noc.now, n=3)
    names = frame.unique("device", maintain_order=True)["device"].to_list()
    assert len(names) == 3
    means = [frame.filter(frame["device"] == n)["rtt_ms"].mean() for n in names]
    assert means[0] >= means[-1]  # worst first (ranked on the hourly rollup, close to the series' mean)


def test_alerts_group_under_their_root_cause(conn: psycopg.Connection, noc: NocData) -> None:
    page = alerts.alert_groups(conn, noc.org_id)
    assert (page.total_alerts, page.total_groups) == (2 + len(noc.behind), 2)
    first = page.groups[0]
    assert first.head["device"] == noc.parent and first.head["root_cause"] is None
    assert sorted(a["device"] for a in first.folded) == sorted(noc.behind)
    assert {a["root_cause"] for a in first.folded} == {noc.parent}
    few = alerts.alert_groups(conn, noc.org_id, folded_rows=3).groups[0]  # a page shows a few, counts them all
    assert len(few.folded) == 3 and few.folded_total == len(noc.behind) and set(few.alert_ids) == set(first.alert_ids)
    hidden = alerts.alert_groups(conn, noc.org_id, alerts.AlertFilter(suppressed=False))
    assert (hidden.total_alerts, hidden.total_groups) == (2, 2)
    second = alerts.alert_groups(conn, noc.org_id, limit=1, offset=1)
    assert [g.head["device"] for g in second.groups] == [noc.lossy] and second.total_groups == 2
    assert alerts.alert_groups(conn, uuid.uuid4()).total_alerts == 0


def test_acknowledging_many_takes_only_firing_alerts_of_the_org(conn: psycopg.Connection, noc: NocData,
                                                              db_url: str) -> None:
    group = alerts.alert_groups(conn, noc.org_id).groups[1]
    other = make_org(conn, "globex")
    assert alerts.acknowledge_many(conn, other, group.alert_ids, None, "not mine", noc.now) == []
    done = alerts.acknowledge_many(conn, noc.org_id, group.alert_ids, noc.users["operator"], "on it", noc.now)
    assert done == group.alert_ids
    assert alerts.acknowledge_many(conn, noc.org_id, group.alert_ids, None, "again", noc.now) == []
    conn.execute("UPDATE alerts SET status = 'firing', acknowledged = false WHERE id = ANY(%s)", (done,))


def test_the_grid_filters_sorts_and_pages_on_the_server(conn: psycopg.Connection, noc: NocData) -> None:
    rows, total = device_grid(conn, noc.org_id, DeviceQuery(statuses=["down"]))
    assert total == 1 + len(noc.behind) and {r["name"] for r in rows} == {noc.parent, *noc.behind}
    rows, total = device_grid(conn, noc.org_id, DeviceQuery(sort="last_loss_pct", descending=True, limit=2))
    assert total == len(noc.ids) and rows[0]["last_loss_pct"] == 100
    site = noc.sites[0]
    rows, total = device_grid(conn, noc.org_id, DeviceQuery(site=site, search="acc", limit=100))
    assert total == len(rows) > 0 and all(r["site"] == site and "acc" in r["name"] for r in rows)
    page2, _ = device_grid(conn, noc.org_id, DeviceQuery(limit=5, offset=5))
    page1, _ = device_grid(conn, noc.org_id, DeviceQuery(limit=5))
    assert not {r["id"] for r in page1} & {r["id"] for r in page2}
    with pytest.raises(ValidationError):
        DeviceQuery(sort="password")
    assert device_grid(conn, uuid.uuid4())[1] == 0


def test_search_finds_names_addresses_and_sites(conn: psycopg.Connection, noc: NocData) -> None:
    assert search_devices(conn, noc.org_id, noc.parent)[0]["name"] == noc.parent
    address = next(d.address for d in noc.fleet.devices if d.name == noc.lossy)
    assert [r["name"] for r in search_devices(conn, noc.org_id, address)] == [noc.lossy]
    assert len(search_devices(conn, noc.org_id, noc.sites[1], limit=50)) > 5
    assert search_devices(conn, noc.org_id, "") == [] and search_devices(conn, uuid.uuid4(), noc.parent) == []


def test_a_device_card_timeline_windows_and_checks(conn: psycopg.Connection, noc: NocData) -> None:
    card = device_card(conn, noc.org_id, noc.ids[noc.parent])
    assert sorted(c["name"] for c in card["children"]) == sorted(noc.behind)
    child = device_card(conn, noc.org_id, noc.ids[noc.behind[0]])
    assert child["parent"] == noc.parent and child["parent_status"] == "down"
    with pytest.raises(NotFound):
        device_card(conn, uuid.uuid4(), noc.ids[noc.parent])
    timeline = status_timeline(conn, noc.org_id, noc.ids[noc.parent], noc.now - timedelta(hours=1), noc.now)
    assert timeline["status"].to_list()[-1] == "down" and timeline["end"][-1] == noc.now
    assert timeline["start"][-1] <= noc.now - OUTAGE_AGO + timedelta(minutes=1)
    server = conn.execute("SELECT device_id FROM service_checks").fetchone()[0]  # type: ignore[index]
    windows = maintenance_windows(conn, noc.org_id, server, noc.now - timedelta(days=1), noc.now)
    assert [w["reason"] for w in windows] == ["firmware upgrade"]
    assert maintenance_windows(conn, noc.org_id, server, noc.now - timedelta(hours=1), noc.now) == []
    (check,) = service_checks(conn, noc.org_id, server)
    assert check["ok"] is True and check["tls_days"] == 12 and check["http_status"] == 200
    assert service_checks(conn, uuid.uuid4(), server) == []


def test_the_topology_folds_unreachable_devices_into_their_cause(conn: psycopg.Connection, noc: NocData) -> None:
    nodes = {n["name"]: n for n in dependency_tree(conn, noc.org_id)}
    assert nodes[noc.parent]["status"] == "down" and nodes[noc.parent]["behind"] == len(noc.behind)
    assert {nodes[n]["status"] for n in noc.behind} == {"unreachable"}
    assert {nodes[n]["cause"] for n in noc.behind} == {noc.ids[noc.parent]}


def test_the_sla_trend_of_a_period(conn: psycopg.Connection, noc: NocData) -> None:
    start = noc.now - timedelta(hours=1)
    figures = sla.availability_over(conn, noc.org_id, start, noc.now)
    trend = sla.trend(figures, start, noc.now, timedelta(minutes=20))
    assert trend.height == 3
    assert trend["availability_pct"][0] == 100.0 and trend["availability_pct"][-1] < 100.0
    down = float(figures.by("org")["down_s"][0])
    assert abs(float(trend["down_s"].sum()) - down) < 1.0  # the buckets share out the period's down time
    assert [(t.scope, t.scope_ref, t.target_pct) for t in sla.list_targets(conn, noc.org_id)] == [("all", None, 99.5)]
