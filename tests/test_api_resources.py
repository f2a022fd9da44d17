"""What the resources of /api/v1 answer, each compared with the core or analytics function behind it,
and the hostile inputs that once gave 500s. Through Flask's test client on the real database.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from analytics.evaluate import backtest
from analytics.frames import load_metrics
from analytics.rules import Rule
from dashboard.auth import issue_access_token
from ingest.interfaces import upsert_interfaces
from ingest.loader import Loader
from ingest.rows import MetricRows, to_micros
from ingest.snmp import InterfaceSample, SnmpPoll
from netpulse import organizations, users
from netpulse.db import make_sessionmaker
from netpulse.metrics import MetricKind
from netpulse.schema import Role
from tests.apiworld import PASSWORD, bearer, build_app, row_counts
from tests.factories import grid_rows

META_KEYS = {"timestamp", "version", "request_id"}


@pytest.fixture
def app(db_url: str, engine: Engine, db: psycopg.Connection) -> Flask:
    return build_app(db_url, engine)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Acme:
    """Organization acme with an admin (``headers``) and, on demand, users of other roles."""

    def __init__(self, app: Flask, engine: Engine) -> None:
        self.app, self.engine = app, engine
        with make_sessionmaker(engine).begin() as session:
            org = organizations.create_organization(session, "Acme", "acme")
            self.org = org.id
            admin = users.create_user(session, org.id, "admin@acme.test", PASSWORD, role=Role.ADMIN)
            self.admin_id = admin.id
            with app.app_context():
                self.headers = bearer(issue_access_token(admin))

    def token_for(self, role: Role) -> dict[str, str]:
        with make_sessionmaker(self.engine).begin() as session:
            user = users.create_user(session, self.org, f"{role.value}-{uuid.uuid4().hex[:6]}@acme.test", PASSWORD,
                                     role=role)
            with self.app.app_context():
                return bearer(issue_access_token(user))


@pytest.fixture
def acme(app: Flask, engine: Engine) -> Acme:
    return Acme(app, engine)


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.get_data(as_text=True)[:600]
    body = r.get_json()
    assert body["success"] is True and set(body["meta"]) == META_KEYS
    return body


def error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)[:600]
    body = r.get_json()
    assert body["success"] is False and body["error"]["code"] == code, body
    return dict(body["error"])


def device(client: FlaskClient, acme: Acme, name: str, address: str, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "address": address, "device_type": "router", **extra}
    return dict(ok(client.post("/api/v1/devices", json=body, headers=acme.headers), 201)["data"])


# --- hostile input that once gave 500s ------------------------------------------------------------------

def test_an_id_beyond_int32_is_404_not_500(client: FlaskClient, acme: Acme) -> None:
    for path in ("/api/v1/devices/2147483648", "/api/v1/devices/99999999999999999999/metrics?metrics=cpu_pct",
                 "/api/v1/devices/-1", "/api/v1/devices/abc"):
        err = error(client.get(path, headers=acme.headers), 404, "DEVICE_NOT_FOUND")
        assert err["details"]["device_id"] == path.split("/")[4].split("?")[0]
    error(client.delete("/api/v1/devices/2147483648", headers=acme.headers), 404, "DEVICE_NOT_FOUND")
    error(client.get("/api/v1/rules/2147483648", headers=acme.headers), 404, "RULE_NOT_FOUND")


def test_year_one_and_other_impossible_times_are_422_naming_the_field(client: FlaskClient, acme: Acme) -> None:
    for query, field in (("to=0001-01-01T00:00:00", "to"), ("from=0001-01-01", "from"), ("from=9999-12-31", "from"),
                         ("to=yesterday", "to"), ("since=99999999w", "since"), ("since=-5m", "since"),
                         ("from=2026-11-20T00:00:00+00:00", "from")):  # an unescaped '+' arrives as a space
        err = error(client.get(f"/api/v1/sla/availability?{query}", headers=acme.headers), 422, "INVALID_INPUT")
        assert list(err["details"]) == [field], (query, err)


def test_deep_malformed_and_wrong_typed_bodies_are_422_and_write_nothing(client: FlaskClient, db_url: str,
                                                                         acme: Acme) -> None:
    before = row_counts(db_url)
    deep = "[" * 100_000 + "]" * 100_000
    for data, expected in ((deep, {"body": "not valid JSON"}), ('{"name": ', {"body": "not valid JSON"}),
                           ("[1, 2]", {"body": "expected a JSON object"}),
                           ('"router"', {"body": "expected a JSON object"}), ("42", {"body": "expected a JSON object"}),
                           ('{"name": 5, "address": [], "device_type": null}', None)):
        r = client.post("/api/v1/devices", data=data, content_type="application/json", headers=acme.headers)
        err = error(r, 422, "INVALID_INPUT")
        if expected is not None:
            assert err["details"] == expected
        else:
            assert set(err["details"]) == {"name", "address", "device_type"}
    nested = {"name": "x", "address": "192.0.2.9", "device_type": "router", "description": json.dumps([[[[]]]])}
    for payload in ({"name": "x", "address": "192.0.2.9", "device_type": "router", "tags": [[["deep"]]]},
                    {**nested, "extra": {"a": {"b": {"c": 1}}}}):
        error(client.post("/api/v1/devices", json=payload, headers=acme.headers), 422, "INVALID_INPUT")
    err = error(client.post("/api/v1/devices", data="name=x", content_type="application/x-www-form-urlencoded",
                            headers=acme.headers), 422, "INVALID_INPUT")
    assert err["details"] == {"body": "expected a JSON object"}
    assert row_counts(db_url) == before


def test_nul_characters_are_refused_anywhere(client: FlaskClient, db_url: str, acme: Acme) -> None:
    before = row_counts(db_url)
    err = error(client.get("/api/v1/devices?search=a%00b", headers=acme.headers), 422, "INVALID_INPUT")
    assert err["details"] == {"search": "must not contain a NUL character"}
    err = error(client.post("/api/v1/devices", json={"name": "a\x00b", "address": "192.0.2.1", "device_type": "router"},
                            headers=acme.headers), 422, "INVALID_INPUT")
    assert err["details"] == {"name": "must not contain a NUL character"}
    r = client.post("/api/v1/auth/login", json={"email": "a\x00@acme.test", "password": "secret\x00pw"})
    err = error(r, 422, "INVALID_INPUT")
    assert set(err["details"]) == {"email", "password"} and "secret" not in r.get_data(as_text=True)
    assert row_counts(db_url) == before


# --- the conventions the issue found broken -------------------------------------------------------------

def test_since_is_the_duration_asked_for(client: FlaskClient, acme: Acme) -> None:
    for since, span in (("7d", timedelta(days=7)), ("90m", timedelta(minutes=90)), ("1d12h", timedelta(hours=36)),
                        ("3600", timedelta(hours=1))):
        data = ok(client.get(f"/api/v1/sla/availability?since={since}", headers=acme.headers))["data"]
        start, end = datetime.fromisoformat(data["from"]), datetime.fromisoformat(data["to"])
        assert end - start == span, since
    default = ok(client.get("/api/v1/sla/outages", headers=acme.headers))["data"]
    assert datetime.fromisoformat(default["to"]) - datetime.fromisoformat(default["from"]) == timedelta(days=1)
    err = error(client.get("/api/v1/sla/outages?since=2h&from=2026-11-01", headers=acme.headers), 422, "INVALID_INPUT")
    assert err["details"] == {"since": "use either since or from/to, not both"}


# --- devices ---------------------------------------------------------------------------------------------

def test_device_crud(client: FlaskClient, acme: Acme) -> None:
    core = device(client, acme, "core-1", "192.0.2.1", site="Nairobi DC", tags=["core", "Core"])
    assert core["site"]["name"] == "Nairobi DC" and core["tags"] == ["core"] and core["status"] == "active"
    edge = device(client, acme, "edge-1", "edge-1.example.net", parent="core-1", probe_interval_s=30)
    assert edge["parent"] == {"id": core["id"], "name": "core-1"} and edge["ip_address"] is None
    err = error(client.post("/api/v1/devices", json={"name": "core-1", "address": "192.0.2.1", "device_type": "router"},
                            headers=acme.headers), 409, "DEVICE_ALREADY_EXISTS")
    assert set(err["details"]) == {"name", "address"}
    err = error(client.post("/api/v1/devices", json={"name": "x", "address": "300.1.1.1", "device_type": "router"},
                            headers=acme.headers), 422, "INVALID_IP_ADDRESS")
    assert set(err["details"]) == {"address"}
    changed = ok(client.patch(f"/api/v1/devices/{edge['id']}", json={"description": "rack 4", "parent": None},
                              headers=acme.headers))["data"]
    assert changed["description"] == "rack 4" and changed["parent"] is None and changed["probe_interval_s"] == 30
    replaced = ok(client.put(f"/api/v1/devices/{edge['id']}", json={"name": "edge-2", "address": "192.0.2.2",
                                                                     "device_type": "switch"}, headers=acme.headers))
    assert replaced["data"]["name"] == "edge-2" and replaced["data"]["probe_interval_s"] is None
    err = error(client.patch(f"/api/v1/devices/{core['id']}", json={"parent": "edge-2", "colour": "red"},
                             headers=acme.headers), 422, "INVALID_INPUT")
    assert err["details"]["colour"].startswith("unknown field; allowed: name, address, device_type,")
    assert ok(client.delete(f"/api/v1/devices/{edge['id']}", headers=acme.headers))["data"] == {"deleted": 1}
    error(client.get(f"/api/v1/devices/{edge['id']}", headers=acme.headers), 404, "DEVICE_NOT_FOUND")


CSV_GOOD = "name,address,type,site,tags\ncore-1,192.0.2.1,router,HQ,core\nedge-1,192.0.2.2,switch,HQ,edge;core\n"
CSV_BAD = ("name,address,type\nok-1,192.0.2.10,router\nbad-1,300.1.1.1,router\nbad-2,192.0.2.11,toaster\n"
           "ok-2,192.0.2.10,router\n")


def _upload(client: FlaskClient, acme: Acme, text: str | bytes, **form: Any) -> Any:
    raw = text.encode() if isinstance(text, str) else text
    return client.post("/api/v1/devices/import", data={"file": (io.BytesIO(raw), "devices.csv"), **form},
                       content_type="multipart/form-data", headers=acme.headers)


def test_csv_import_reports_every_bad_line_and_imports_nothing(client: FlaskClient, db_url: str, acme: Acme) -> None:
    before = row_counts(db_url)
    err = error(_upload(client, acme, CSV_BAD), 422, "INVALID_INPUT")
    lines = err["details"]["lines"]
    assert [entry["line"] for entry in lines] == [3, 4, 5]
    assert "address" in lines[0]["message"] and "type" in lines[1]["message"] and "192.0.2.10" in lines[2]["message"]
    assert "nothing was imported" in err["message"]
    assert row_counts(db_url) == before
    for bad, problem in ((b"\xff\xfename\n", "not UTF-8 text"), (b"name,address,type\nx\x00,1.2.3.4,router\n",
                                                                 "not a text file")):
        assert error(_upload(client, acme, bad), 422, "INVALID_INPUT")["details"] == {"file": problem}
    # A one-line upload is a header line, never a file name the server would open.
    one_line = error(_upload(client, acme, "/etc/passwd"), 422, "INVALID_INPUT")
    assert one_line["details"]["lines"][0] == {"line": 1, "message": one_line["details"]["lines"][0]["message"]}
    assert "unknown column(s) '/etc/passwd'" in one_line["details"]["lines"][0]["message"]
    assert row_counts(db_url) == before

    dry = ok(_upload(client, acme, CSV_GOOD, dry_run="true"))["data"]
    assert dry == {"devices": 2, "sites": 1, "groups": 0, "tags": 2, "dry_run": True, "summary": dry["summary"]}
    assert row_counts(db_url) == before
    done = ok(_upload(client, acme, CSV_GOOD))["data"]
    assert (done["devices"], done["dry_run"]) == (2, False)
    listed = ok(client.get("/api/v1/devices?tag=core", headers=acme.headers))
    assert [d["name"] for d in listed["data"]] == ["core-1", "edge-1"]
    error(client.post("/api/v1/devices/import", data={"dry_run": "true"}, content_type="multipart/form-data",
                      headers=acme.headers), 422, "MISSING_REQUIRED_FIELD")


def test_bulk_delete_is_all_or_nothing(client: FlaskClient, db_url: str, acme: Acme) -> None:
    ids = [device(client, acme, f"d-{i}", f"192.0.2.{i + 1}")["id"] for i in range(3)]
    other = Acme.__new__(Acme)
    with make_sessionmaker(acme.engine).begin() as session:
        other.org = organizations.create_organization(session, "Other", "other").id
    with psycopg.connect(db_url, autocommit=True) as conn:
        theirs = conn.execute("INSERT INTO devices (organization_id, name, address, device_type) VALUES "
                              "(%s, 'theirs', '192.0.2.99', 'router') RETURNING id", (other.org,)).fetchone()[0]
    before = row_counts(db_url)
    err = error(client.post("/api/v1/devices/bulk-delete", json={"device_ids": [ids[0], theirs, 2147483647]},
                            headers=acme.headers), 404, "DEVICE_NOT_FOUND")
    assert err["details"] == {"device_ids": [str(theirs), "2147483647"]}
    assert row_counts(db_url) == before
    error(client.post("/api/v1/devices/bulk-delete", json={"device_ids": []}, headers=acme.headers), 422,
          "INVALID_INPUT")
    assert ok(client.post("/api/v1/devices/bulk-delete", json={"device_ids": ids[:2]},
                          headers=acme.headers))["data"] == {"deleted": 2}
    assert [d["id"] for d in ok(client.get("/api/v1/devices", headers=acme.headers))["data"]] == [ids[2]]


# --- metrics, interfaces, status history -----------------------------------------------------------------

@pytest.fixture
def measured(client: FlaskClient, db_url: str, acme: Acme) -> dict[str, Any]:
    """Two devices at site HQ with 30 minutes of cpu and rtt samples every 20 s, and interfaces."""
    a = device(client, acme, "core-1", "192.0.2.1", site="HQ")["id"]
    b = device(client, acme, "core-2", "192.0.2.2")["id"]
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(minutes=30)
    polled = to_micros(end - timedelta(minutes=1))
    rates = [(polled, a, int(k), 1, v) for k, v in ((MetricKind.IF_IN_BPS, 1.5e6), (MetricKind.IF_OUT_BPS, 2.5e5),
                                                      (MetricKind.IF_UTIL_PCT, 15.0))]
    with psycopg.connect(db_url, autocommit=True) as conn:
        Loader().load(conn, grid_rows([a, b], start, 90))
        Loader().load(conn, MetricRows.from_tuples([(end - timedelta(minutes=1), *r[1:]) for r in rates]))
        upsert_interfaces(conn, SnmpPoll(a, True, interfaces=[
            InterfaceSample(1, "ge-0/0/1", 1_000_000_000, "up"), InterfaceSample(2, "ge-0/0/2", None, "down")],
            polled_at_us=polled))
    return {"a": a, "b": b, "start": start, "end": end}


def test_device_metrics_page_through_the_frame_of_load_metrics(client: FlaskClient, db_url: str, acme: Acme,
                                                              measured: dict[str, Any]) -> None:
    a, start, end = measured["a"], measured["start"], measured["end"]
    q = f"metrics=cpu_pct,icmp_rtt_ms&from={start.isoformat().replace('+00:00', 'Z')}&to={end.isoformat()[:19]}"
    first = ok(client.get(f"/api/v1/devices/{a}/metrics?{q}&per_page=100", headers=acme.headers))
    with psycopg.connect(db_url) as conn:
        frame = load_metrics(conn, acme.org, metrics=["cpu_pct", "icmp_rtt_ms"], start=start, end=end, devices=[a])
    assert first["pagination"] == {"page": 1, "per_page": 100, "total": frame.height, "total_pages": 2,
                                   "has_next": True, "has_prev": False}
    data = first["data"]
    assert data["resolution"] == "raw" and data["metrics"] == ["cpu_pct", "icmp_rtt_ms"]
    expected = frame.head(100).to_dicts()
    assert [(s["device"], s["metric"], s["value"]) for s in data["items"]] == [
        ("core-1", str(e["metric"]), e["value"]) for e in expected]
    second = ok(client.get(f"/api/v1/devices/{a}/metrics?{q}&per_page=100&page=2", headers=acme.headers))
    assert len(second["data"]["items"]) == frame.height - 100
    hourly = ok(client.get(f"/api/v1/devices/{a}/metrics?metrics=cpu_pct&since=1d&resolution=1h",
                           headers=acme.headers))["data"]
    assert hourly["resolution"] == "1h" and all("count" in s for s in hourly["items"])

    r = client.get(f"/api/v1/devices/{a}/metrics?{q}&per_page=5&format=csv", headers=acme.headers)
    assert r.status_code == 200 and r.mimetype == "text/csv" and r.headers["X-Total-Count"] == str(frame.height)
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0] == ["time", "device_id", "device", "metric", "ifindex", "value"] and len(rows) == 6
    assert r.headers["X-Request-ID"]
    err = error(client.get(f"/api/v1/devices/{a}/metrics?metrics=warp_factor", headers=acme.headers), 422,
                "INVALID_INPUT")
    assert "warp_factor" in err["details"]["metrics"]
    error(client.get(f"/api/v1/devices/{a}/metrics", headers=acme.headers), 422, "MISSING_REQUIRED_FIELD")


def test_scope_metrics_follow_the_site_filter(client: FlaskClient, acme: Acme, measured: dict[str, Any]) -> None:
    site = ok(client.get("/api/v1/metrics?metrics=cpu_pct&since=1h&site=hq&per_page=10000", headers=acme.headers))
    everyone = ok(client.get("/api/v1/metrics?metrics=cpu_pct&since=1h&per_page=10000", headers=acme.headers))
    assert {s["device_id"] for s in site["data"]["items"]} == {measured["a"]}
    assert {s["device_id"] for s in everyone["data"]["items"]} == {measured["a"], measured["b"]}
    kinds = ok(client.get("/api/v1/metrics/kinds?per_page=200", headers=acme.headers))
    assert {"name": "cpu_pct", "unit": "%", "id": int(MetricKind.CPU_PCT)} in kinds["data"]


def test_interfaces_carry_their_latest_rates(client: FlaskClient, acme: Acme, measured: dict[str, Any]) -> None:
    body = ok(client.get(f"/api/v1/devices/{measured['a']}/interfaces", headers=acme.headers))
    first, second = body["data"]
    assert (first["ifindex"], first["name"], first["speed_bps"], first["oper_status"]) == (1, "ge-0/0/1", 10**9, "up")
    assert first["rates"] == {"if_in_bps": 1.5e6, "if_out_bps": 2.5e5, "if_util_pct": 15.0, "if_errors_ps": None}
    assert second["rates"] == dict.fromkeys(first["rates"]) and second["sampled_at"] is None
    assert ok(client.get(f"/api/v1/devices/{measured['b']}/interfaces", headers=acme.headers))["data"] == []


def test_status_history_is_the_devices_events(client: FlaskClient, db_url: str, acme: Acme,
                                              measured: dict[str, Any]) -> None:
    a, now = measured["a"], measured["end"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        for hours, old, new in ((3, "unknown", "up"), (2, "up", "down"), (1, "down", "up"), (30 * 24, "unknown", "up")):
            t = now - timedelta(hours=hours)
            conn.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, "
                         "from_status,"
                         " to_status) VALUES (%s, %s, %s, %s, %s, %s)", (acme.org, a, t, t, old, new))
    body = ok(client.get(f"/api/v1/devices/{a}/status-history?per_page=2", headers=acme.headers))
    assert body["pagination"]["total"] == 3  # the last 7 days by default
    assert [(e["from_status"], e["to_status"]) for e in body["data"]] == [("down", "up"), ("up", "down")]
    assert ok(client.get(f"/api/v1/devices/{a}/status-history?since=60d", headers=acme.headers))["pagination"][
        "total"] == 4


# --- rules and the backtest ----------------------------------------------------------------------------

RULE = {"name": "cpu high", "kind": "threshold", "severity": "warning", "metric": "cpu_pct", "comparator": ">",
        "value": 90, "clear_value": 50}


def test_rule_crud_and_backtest_match_analytics(client: FlaskClient, db_url: str, acme: Acme,
                                                measured: dict[str, Any]) -> None:
    created = ok(client.post("/api/v1/rules", json=RULE, headers=acme.headers), 201)["data"]
    assert created["description"] == "cpu_pct > 90, clears at 50 (all devices)" and created["for_s"] == 0
    error(client.post("/api/v1/rules", json=RULE, headers=acme.headers), 409, "RULE_ALREADY_EXISTS")
    err = error(client.post("/api/v1/rules", json={**RULE, "name": "bad", "clear_value": 95}, headers=acme.headers),
                422, "INVALID_INPUT")
    assert set(err["details"]) == {"clear_value"}
    rid = created["id"]
    ok(client.put(f"/api/v1/rules/{rid}", json={**RULE, "value": 80}, headers=acme.headers))
    assert ok(client.get(f"/api/v1/rules/{rid}", headers=acme.headers))["data"]["value"] == 80

    q = "since=1h&per_page=3"
    saved = ok(client.get(f"/api/v1/rules/{rid}/backtest?{q}", headers=acme.headers))
    draft = ok(client.post(f"/api/v1/rules/backtest?{q}", json={**RULE, "value": 80}, headers=acme.headers))
    data = saved["data"]
    end, start = datetime.fromisoformat(data["to"]), datetime.fromisoformat(data["from"])
    with psycopg.connect(db_url) as conn:
        expected = backtest(conn, acme.org, Rule("cpu high", "threshold", "warning", metric=MetricKind.CPU_PCT,
                                                 comparator=">", value=80, clear_value=50), start, end)
    assert data["alerts"] == len(expected.alerts) > 0 and saved["pagination"]["total"] == len(expected.alerts)
    assert (data["devices"], data["samples"], data["still_open"]) == (2, expected.samples, expected.still_open)
    assert [a["opened_at"] for a in data["items"]] == [
        a.opened_at.isoformat().replace("+00:00", "Z") for a in expected.alerts[:3]]
    assert draft["data"]["alerts"] == data["alerts"]
    status_rule = {"name": "down", "kind": "status", "severity": "critical"}
    error(client.post("/api/v1/rules/backtest", json=status_rule, headers=acme.headers), 422, "INVALID_INPUT")
    assert ok(client.delete(f"/api/v1/rules/{rid}", headers=acme.headers))["data"] == {"deleted": 1}
    error(client.get(f"/api/v1/rules/{rid}", headers=acme.headers), 404, "RULE_NOT_FOUND")


# --- maintenance, checks ---------------------------------------------------------------------------------

def test_maintenance_windows(client: FlaskClient, db_url: str, acme: Acme) -> None:
    device(client, acme, "core-1", "192.0.2.1", site="Nairobi DC")
    now = datetime.now(UTC)
    body = {"scope": "site", "scope_ref": "nairobi-dc", "from": (now - timedelta(hours=1)).isoformat(),
            "to": (now + timedelta(hours=1)).isoformat(), "reason": "fibre splice"}
    made = ok(client.post("/api/v1/maintenance", json=body, headers=acme.headers), 201)["data"]
    assert (made["scope_ref"], made["state"], made["created_by"]) == ("Nairobi DC", "active", str(acme.admin_id))
    before = row_counts(db_url)
    for bad, field in (({**body, "scope_ref": "Atlantis"}, "scope_ref"), ({**body, "scope": "all"}, "scope_ref"),
                       ({**body, "to": body["from"]}, "to"), ({**body, "from": "0001-01-01"}, "from")):
        err = error(client.post("/api/v1/maintenance", json=bad, headers=acme.headers), 422, "INVALID_INPUT")
        assert field in err["details"], err
    assert row_counts(db_url) == before
    listed = ok(client.get("/api/v1/maintenance?state=active", headers=acme.headers))
    assert [w["id"] for w in listed["data"]] == [made["id"]]
    assert ok(client.get("/api/v1/maintenance?state=upcoming", headers=acme.headers))["data"] == []
    assert ok(client.delete(f"/api/v1/maintenance/{made['id']}", headers=acme.headers))["data"] == {"deleted": 1}
    error(client.get(f"/api/v1/maintenance/{made['id']}", headers=acme.headers), 404, "MAINTENANCE_WINDOW_NOT_FOUND")


def test_service_checks(client: FlaskClient, acme: Acme) -> None:
    dev = device(client, acme, "web-1", "192.0.2.5")["id"]
    tcp = ok(client.post(f"/api/v1/devices/{dev}/checks", json={"kind": "tcp", "port": 22}, headers=acme.headers),
             201)["data"]
    http = ok(client.post(f"/api/v1/devices/{dev}/checks", json={"kind": "http", "url": "https://192.0.2.5/health"},
                          headers=acme.headers), 201)["data"]
    assert (tcp["name"], http["name"]) == ("tcp-22", "https-443/health")
    error(client.post(f"/api/v1/devices/{dev}/checks", json={"kind": "tcp", "port": 22}, headers=acme.headers), 409,
          "CHECK_ALREADY_EXISTS")
    err = error(client.post(f"/api/v1/devices/{dev}/checks", json={"kind": "tcp", "url": "http://x/"},
                            headers=acme.headers), 422, "INVALID_INPUT")
    assert set(err["details"]) == {"port", "url"}
    assert ok(client.get(f"/api/v1/devices/{dev}/checks/https-443/health", headers=acme.headers))["data"]["id"] == \
        http["id"]
    listed = ok(client.get(f"/api/v1/checks?device={dev}", headers=acme.headers))
    assert [c["name"] for c in listed["data"]] == ["https-443/health", "tcp-22"]
    ok(client.delete(f"/api/v1/devices/{dev}/checks/tcp-22", headers=acme.headers))
    error(client.get(f"/api/v1/devices/{dev}/checks/tcp-22", headers=acme.headers), 404, "CHECK_NOT_FOUND")


# --- notifications: channels and policies --------------------------------------------------------------

class _Hook(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        type(self).received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_channels_hide_secrets_and_test_sends_reach_the_receiver(client: FlaskClient, db_url: str,
                                                                  acme: Acme) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        body = {"name": "noc hook", "kind": "webhook", "config": {"url": url, "secret": "k" * 32}}
        made = ok(client.post("/api/v1/channels", json=body, headers=acme.headers), 201)
        assert "k" * 32 not in json.dumps(made) and made["data"]["secrets"] == ["secret"]
        error(client.post("/api/v1/channels", json=body, headers=acme.headers), 409, "CHANNEL_ALREADY_EXISTS")
        err = error(client.post("/api/v1/channels", json={**body, "name": "x", "config": {"url": "ftp://x"}},
                                headers=acme.headers), 422, "INVALID_INPUT")
        assert set(err["details"]) == {"url", "secret"}
        sent = ok(client.post("/api/v1/channels/noc%20hook/test", headers=acme.headers))["data"]
        assert sent["ok"] is True and sent["status"] == "sent" and len(_Hook.received) == 1
    finally:
        server.shutdown()
    listed = ok(client.get("/api/v1/channels", headers=acme.headers))
    assert [c["name"] for c in listed["data"]] == ["noc hook"] and "k" * 32 not in json.dumps(listed)
    viewer = acme.token_for(Role.VIEWER)
    assert ok(client.get("/api/v1/channels/noc%20hook", headers=viewer))["data"]["target"].startswith("http://127.0.0.1")
    error(client.post("/api/v1/channels", json={**body, "name": "y"}, headers=viewer), 403, "INSUFFICIENT_PERMISSIONS")

    policy = {"name": "default", "tiers": [{"after_s": 0, "channels": ["noc hook"]},
                                           {"after_s": 900, "channels": ["noc hook"]}]}
    made_policy = ok(client.post("/api/v1/policies", json=policy, headers=acme.headers), 201)["data"]
    assert [t["after_s"] for t in made_policy["critical"]] == [0, 900] and made_policy["warning"] == ["noc hook"]
    assert made_policy["digest_every_s"] == 900  # the warning digest every 15 minutes unless set
    hourly = ok(client.post("/api/v1/policies", json={**policy, "name": "hourly", "digest_every_s": 3600},
                            headers=acme.headers), 201)["data"]
    assert hourly["digest_every_s"] == 3600
    err = error(client.post("/api/v1/policies", json={**policy, "name": "p3", "digest_every_s": 30},
                            headers=acme.headers), 422, "INVALID_INPUT")
    assert set(err["details"]) == {"digest_every_s"}
    assert ok(client.delete(f"/api/v1/policies/{hourly['id']}", headers=acme.headers))["data"]["deleted"] == 1
    err = error(client.post("/api/v1/policies", json={**policy, "name": "p2", "tiers": [
        {"after_s": 60, "channels": ["nowhere"]}]}, headers=acme.headers), 422, "INVALID_INPUT")
    assert set(err["details"]) == {"tiers"}
    assert ok(client.delete(f"/api/v1/policies/{made_policy['id']}", headers=acme.headers))["data"]["deleted"] == 1


# --- SLA targets, users, organization, SNMP credentials --------------------------------------------------

def test_sla_targets_are_added_evaluated_and_removed(client: FlaskClient, acme: Acme) -> None:
    device(client, acme, "core-1", "192.0.2.1", site="HQ")
    made = ok(client.post("/api/v1/sla/targets", json={"scope": "site", "scope_ref": "hq", "target_pct": 99.95,
                                                        "period": "quarter"}, headers=acme.headers), 201)["data"]
    assert (made["scope_ref"], made["target_pct"], made["period"]) == ("HQ", 99.95, "quarter")
    error(client.post("/api/v1/sla/targets", json={"scope": "site", "scope_ref": "HQ", "target_pct": 99,
                                                   "period": "quarter"}, headers=acme.headers), 409,
          "SLA_TARGET_ALREADY_EXISTS")
    err = error(client.post("/api/v1/sla/targets", json={"scope": "site", "scope_ref": "Mars", "target_pct": 99},
                            headers=acme.headers), 422, "INVALID_INPUT")
    assert list(err["details"]) == ["scope_ref"]
    listed = ok(client.get("/api/v1/sla/targets", headers=acme.headers))["data"]["items"]
    assert [(t["target_id"], t["scope_ref"]) for t in listed] == [(made["id"], "HQ")]
    assert ok(client.delete(f"/api/v1/sla/targets/{made['id']}", headers=acme.headers))["data"] == {
        "deleted": 1, "resolved_alerts": 0}


def test_users_and_the_organization_for_admins(client: FlaskClient, acme: Acme) -> None:
    assert ok(client.get("/api/v1/organization", headers=acme.headers))["data"]["slug"] == "acme"
    made = ok(client.post("/api/v1/users", json={"email": "NOC@acme.test", "password": PASSWORD, "role": "operator"},
                          headers=acme.headers), 201)["data"]
    assert (made["email"], made["role"], made["is_active"]) == ("noc@acme.test", "operator", True)
    assert "password" not in json.dumps(made) and "hashed" not in json.dumps(made)
    err = error(client.post("/api/v1/users", json={"email": "x@acme.test", "password": "short"}, headers=acme.headers),
                422, "INVALID_INPUT")
    assert list(err["details"]) == ["password"]
    uid = made["id"]
    assert ok(client.put(f"/api/v1/users/{uid}/role", json={"role": "viewer"}, headers=acme.headers))["data"]["role"] \
        == "viewer"
    assert ok(client.post(f"/api/v1/users/{uid}/disable", headers=acme.headers))["data"]["is_active"] is False
    error(client.post(f"/api/v1/users/{uid}/disable", headers=acme.headers), 409, "USER_ALREADY_DISABLED")
    ok(client.put(f"/api/v1/users/{uid}/password", json={"password": "another-long-one"}, headers=acme.headers))
    error(client.post(f"/api/v1/users/{acme.admin_id}/disable", headers=acme.headers), 409, "LAST_ADMIN")
    page = ok(client.get("/api/v1/users?per_page=1", headers=acme.headers))
    assert page["pagination"]["total"] == 2 and len(page["data"]) == 1
    operator = acme.token_for(Role.OPERATOR)
    error(client.get("/api/v1/users", headers=operator), 403, "INSUFFICIENT_PERMISSIONS")


def test_snmp_credentials_are_masked(client: FlaskClient, acme: Acme) -> None:
    body = {"name": "core-v3", "version": "3", "username": "netpulse", "auth_protocol": "sha",
            "auth_password": "authpass123", "priv_protocol": "AES", "priv_password": "privpass123"}
    made = ok(client.post("/api/v1/snmp-credentials", json=body, headers=acme.headers), 201)
    assert "authpass123" not in json.dumps(made) and "privpass123" not in json.dumps(made)
    assert made["data"]["security_level"] == "authPriv" and made["data"]["auth_password"].endswith("****")
    cid = made["data"]["id"]
    device(client, acme, "r1", "192.0.2.1", snmp_credential="core-v3")
    assert ok(client.get(f"/api/v1/snmp-credentials/{cid}", headers=acme.headers))["data"]["devices"] == 1
    err = error(client.delete(f"/api/v1/snmp-credentials/{cid}", headers=acme.headers), 409, "SNMP_CREDENTIAL_IN_USE")
    assert err["details"] == {"devices": ["r1"]}
    gone = ok(client.delete(f"/api/v1/snmp-credentials/{cid}?force=true", headers=acme.headers))["data"]
    assert gone == {"deleted": 1, "detached": ["r1"]}


# --- anomaly scores --------------------------------------------------------------------------------------

def test_anomaly_scores_top_and_per_device(client: FlaskClient, db_url: str, acme: Acme) -> None:
    a = device(client, acme, "core-1", "192.0.2.1")["id"]
    b = device(client, acme, "core-2", "192.0.2.2")["id"]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        for dev, metric, peak in ((a, MetricKind.CPU_PCT, 0.9), (b, MetricKind.ICMP_RTT_MS, 0.6),
                                  (b, MetricKind.CPU_PCT, 0.2)):
            for minute in range(10):
                score = peak if minute == 5 else 0.1
                conn.execute("INSERT INTO anomaly_scores (time, device_id, metric_id, ifindex, score) VALUES "
                             "(%s, %s, %s, 0, %s)", (now - timedelta(minutes=minute), dev, int(metric), score))
    top = ok(client.get("/api/v1/anomalies/top?per_page=2", headers=acme.headers))
    assert top["pagination"]["total"] == 3
    assert [(s["name"], s["metric"], s["anomalous"], s["points"]) for s in top["data"]] == [
        ("core-1", "cpu_pct", 1, 10), ("core-2", "icmp_rtt_ms", 1, 10)]
    assert top["data"][0]["max_score"] == pytest.approx(0.9)
    scores = ok(client.get(f"/api/v1/devices/{b}/anomalies?min_score=0.5", headers=acme.headers))
    assert [(s["metric"], round(s["score"], 2)) for s in scores["data"]] == [("icmp_rtt_ms", 0.6)]
    only_cpu = ok(client.get(f"/api/v1/devices/{b}/anomalies?metrics=cpu_pct", headers=acme.headers))
    assert only_cpu["pagination"]["total"] == 10
