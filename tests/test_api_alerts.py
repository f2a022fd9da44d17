"""The alert and SLA endpoints of the REST API, through Flask's test client on the real database.

Alerts are opened by the real engine (``AlertEngine().apply`` with saved rules) and SLA figures come from
hand-written status events, each endpoint compared with the analytics function it exposes.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from analytics import sla
from analytics.alerts import AlertEngine, Finding, acknowledge
from analytics.rules import Rule, save_rules
from dashboard import auth
from netpulse.metrics import MetricKind
from netpulse.schema import Role
from tests.test_api import (
    PASSWORD,
    add_devices,
    add_site,
    assert_envelope_error,
    bearer,
    build_app,
    form_login,
    make_tenant,
)

T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)  # when the engine opened the alerts; people act on the clock
ALERT_KEYS = {"id", "severity", "status", "device_id", "device", "alert_type", "message", "metric", "value",
              "threshold", "occurrences", "started_at", "created_at", "last_seen", "acknowledged_at",
              "acknowledged_by", "acknowledged_note", "resolved_at", "resolved_by", "resolution_note", "suppressed",
              "suppressed_reason", "flapping", "escalation_level", "site", "parent", "rule_id", "notified_at",
              "acknowledged_by_email", "resolved_by_email", "delivery_status"}


# --- fixtures and builders (the app fixtures of test_api, which pytest does not share across modules) ------

@pytest.fixture
def app(db_url: str, engine: Engine, db: psycopg.Connection, redis_url: str) -> Flask:
    return build_app(db_url, engine, redis_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def login(client: FlaskClient, email: str) -> tuple[dict[str, str], str]:
    """Bearer headers and the user's id."""
    r = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.get_json()
    data = r.get_json()["data"]
    return bearer(data["access_token"]), data["user"]["id"]


def rule(db: psycopg.Connection, org: uuid.UUID, severity: str = "critical", name: str = "latency") -> Rule:
    (saved,) = save_rules(db, org, [Rule(name, "threshold", severity, metric=MetricKind.ICMP_RTT_MS, comparator=">",
                                         value=100, clear_value=80)])
    return saved


def fire(db: psycopg.Connection, org: uuid.UUID, r: Rule, device: int, at: datetime, *, firing: bool = True,
         value: float = 150.0) -> list[uuid.UUID]:
    """Apply one finding; the ids of the alerts it opened (firing) or resolved (cleared)."""
    report = AlertEngine().apply(db, org, [Finding(r, device, firing, at, value=value,
                                                   started_at=at - timedelta(minutes=2))], at)
    return report.opened if firing else report.resolved


@pytest.fixture
def acme(engine: Engine, db: psycopg.Connection) -> dict[str, Any]:
    """Organization acme with one user per role, three devices and three alerts:
    ``a0`` (critical, core-00, resolved), ``a1`` (warning, core-01, firing), ``a2`` (critical, core-02, firing)."""
    org = make_tenant(engine, "acme", {"admin@acme.test": Role.ADMIN, "noc@acme.test": Role.OPERATOR,
                                       "viewer@acme.test": Role.VIEWER, "robot@acme.test": Role.API_USER})
    devs = add_devices(db, org, "core", 3, oper_status="up")
    latency, warn = rule(db, org), rule(db, org, "warning", "latency warning")
    (a0,) = fire(db, org, latency, devs[0], T0)
    (a1,) = fire(db, org, warn, devs[1], T0 + timedelta(minutes=1))
    (a2,) = fire(db, org, latency, devs[2], T0 + timedelta(minutes=2))
    assert fire(db, org, latency, devs[0], T0 + timedelta(minutes=3), firing=False, value=50.0) == [a0]
    return {"org": org, "devs": devs, "a0": a0, "a1": a1, "a2": a2}


def alert_row(db: psycopg.Connection, alert_id: uuid.UUID) -> tuple[Any, ...]:
    row = db.execute("SELECT status, acknowledged_by, acknowledged_note, resolved_by, resolution_note FROM alerts "
                     "WHERE id = %s", (alert_id,)).fetchone()
    assert row is not None
    return tuple(row)


# --- listing ---------------------------------------------------------------------------------------

def test_open_alerts_are_listed_newest_first_with_every_field(client: FlaskClient, acme: dict[str, Any]) -> None:
    headers, _ = login(client, "viewer@acme.test")
    r = client.get("/api/v1/alerts", headers=headers)
    assert r.status_code == 200
    body = r.get_json()
    assert list(body) == ["success", "data", "pagination", "meta"]
    assert [a["id"] for a in body["data"]] == [str(acme["a2"]), str(acme["a1"])]  # open by default
    assert body["pagination"] == {"page": 1, "per_page": 50, "total": 2, "total_pages": 1, "has_next": False,
                                  "has_prev": False}
    newest = body["data"][0]
    assert set(newest) == ALERT_KEYS
    assert newest == newest | {
        "severity": "critical", "status": "firing", "device_id": acme["devs"][2], "device": "core-02",
        "alert_type": "latency", "metric": "icmp_rtt_ms", "value": 150.0, "threshold": 100.0,
        "occurrences": 1, "started_at": iso(T0), "created_at": iso(T0 + timedelta(minutes=2)),
        "last_seen": iso(T0 + timedelta(minutes=2)), "acknowledged_at": None, "acknowledged_by": None,
        "resolved_at": None, "suppressed": False, "suppressed_reason": None, "flapping": False,
        "escalation_level": 0}
    assert newest["message"] == "icmp_rtt_ms is 150 (> 100)"


def test_alerts_filter_by_status_severity_and_device(client: FlaskClient, db: psycopg.Connection,
                                                     acme: dict[str, Any]) -> None:
    acknowledge(db, acme["org"], acme["a1"], None, "looking", T0 + timedelta(minutes=5))
    headers, _ = login(client, "viewer@acme.test")

    def ids(query: str) -> list[str]:
        r = client.get(f"/api/v1/alerts?{query}", headers=headers)
        assert r.status_code == 200, r.get_json()
        return [a["id"] for a in r.get_json()["data"]]

    a0, a1, a2 = str(acme["a0"]), str(acme["a1"]), str(acme["a2"])
    assert ids("status=all") == [a2, a1, a0]
    assert ids("status=open") == [a2, a1]
    assert ids("status=firing") == [a2]
    assert ids("status=acknowledged") == [a1]
    assert ids("status=resolved") == [a0]
    assert ids("status=all&severity=critical") == [a2, a0]
    assert ids("severity=warning") == [a1]
    assert ids(f"status=all&device={acme['devs'][0]}") == [a0]
    assert ids(f"device={acme['devs'][0]}") == []  # its only alert is resolved
    assert ids("device=999999") == []
    resolved = client.get("/api/v1/alerts?status=resolved", headers=headers).get_json()["data"][0]
    assert resolved["resolved_at"] == iso(T0 + timedelta(minutes=3))
    assert resolved["resolution_note"] == "cleared automatically" and resolved["resolved_by"] is None
    acked = client.get("/api/v1/alerts?status=acknowledged", headers=headers).get_json()["data"][0]
    assert acked["acknowledged_at"] == iso(T0 + timedelta(minutes=5)) and acked["acknowledged_note"] == "looking"


def test_alerts_paginate_by_page_and_per_page(client: FlaskClient, acme: dict[str, Any]) -> None:
    headers, _ = login(client, "viewer@acme.test")
    page = client.get("/api/v1/alerts?status=all&per_page=2&page=2", headers=headers).get_json()
    assert [a["id"] for a in page["data"]] == [str(acme["a0"])]
    assert page["pagination"] == {"page": 2, "per_page": 2, "total": 3, "total_pages": 2, "has_next": False,
                                  "has_prev": True}
    first = client.get("/api/v1/alerts?status=all&per_page=1", headers=headers).get_json()
    assert [a["id"] for a in first["data"]] == [str(acme["a2"])]
    assert first["pagination"]["has_next"] is True and first["pagination"]["total_pages"] == 3
    past = client.get("/api/v1/alerts?status=all&page=10", headers=headers).get_json()
    assert past["data"] == [] and past["pagination"]["total"] == 3 and past["pagination"]["has_next"] is False


def test_the_old_limit_and_offset_are_refused_naming_the_convention(client: FlaskClient,
                                                                     acme: dict[str, Any]) -> None:
    headers, _ = login(client, "viewer@acme.test")
    body = assert_envelope_error(client.get("/api/v1/alerts?limit=2&offset=2", headers=headers), 422,
                                 "INVALID_INPUT")
    assert set(body["error"]["details"]) == {"limit", "offset"}
    assert "allowed: page, per_page, status," in body["error"]["details"]["limit"]
    two = client.get("/api/v1/alerts?status=all&per_page=2", headers=headers).get_json()
    assert len(two["data"]) == 2 and two["pagination"]["per_page"] == 2  # the per_page=2 gave 50


@pytest.mark.parametrize(("query", "bad"), [
    ("status=closed", {"status"}),
    ("severity=fatal", {"severity"}),
    ("per_page=0&page=-1", {"per_page", "page"}),
    ("per_page=201", {"per_page"}),
    ("per_page=ten", {"per_page"}),
    ("device=core-00", {"device"}),
    ("device=0&status=open", {"device"}),
])
def test_bad_alert_query_parameters_are_422_naming_them(client: FlaskClient, acme: dict[str, Any], query: str,
                                                        bad: set[str]) -> None:
    headers, _ = login(client, "viewer@acme.test")
    body = assert_envelope_error(client.get(f"/api/v1/alerts?{query}", headers=headers), 422, "INVALID_INPUT")
    assert set(body["error"]["details"]) == bad


# --- one alert -------------------------------------------------------------------------------------

def test_one_alert_carries_its_history(client: FlaskClient, acme: dict[str, Any]) -> None:
    headers, _ = login(client, "viewer@acme.test")
    r = client.get(f"/api/v1/alerts/{acme['a0']}", headers=headers)
    assert r.status_code == 200
    data = r.get_json()["data"]
    assert set(data) == ALERT_KEYS | {"history"} and data["status"] == "resolved" and data["device"] == "core-00"
    assert data["history"] == [
        {"time": iso(T0), "kind": "opened", "note": None,
         "details": {"rule": "latency", "value": 150.0, "started_at": (T0 - timedelta(minutes=2)).isoformat()}},
        # The tenant has no notification channel: the critical alert says it reached nobody.
        {"time": iso(T0), "kind": "undelivered", "note": "not delivered: no channel",
         "details": {"reason": "no_channel"}},
        {"time": iso(T0 + timedelta(minutes=3)), "kind": "resolved", "note": "cleared automatically",
         "details": {"value": 50.0}},
    ]


@pytest.mark.parametrize("alert_id", [str(uuid.UUID(int=7)), "not-a-uuid", "123"])
def test_unknown_and_malformed_alert_ids_are_404_alert_not_found(client: FlaskClient, acme: dict[str, Any],
                                                                 alert_id: str) -> None:
    headers, _ = login(client, "admin@acme.test")
    for r in (client.get(f"/api/v1/alerts/{alert_id}", headers=headers),
              client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=headers),
              client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "x"}, headers=headers)):
        body = assert_envelope_error(r, 404, "ALERT_NOT_FOUND")
        assert body["error"]["details"] == {"alert_id": alert_id}
    # A request is judged before it touches data: a resolve without its note is a 422 whatever the alert
    # (a malformed id names nothing: that is judged first, with the path).
    no_note = client.post(f"/api/v1/alerts/{alert_id}/resolve", headers=headers)
    if alert_id == str(uuid.UUID(int=7)):
        assert_envelope_error(no_note, 422, "MISSING_REQUIRED_FIELD")
    else:
        assert_envelope_error(no_note, 404, "ALERT_NOT_FOUND")


# --- acknowledge and resolve -----------------------------------------------------------------------

def test_an_operator_acknowledges_then_resolves(client: FlaskClient, db: psycopg.Connection,
                                                acme: dict[str, Any]) -> None:
    headers, user = login(client, "noc@acme.test")
    a2 = acme["a2"]
    r = client.post(f"/api/v1/alerts/{a2}/acknowledge", json={"note": "  on it  "}, headers=headers)
    assert r.status_code == 200, r.get_json()
    data = r.get_json()["data"]
    assert data["status"] == "acknowledged" and data["acknowledged_by"] == user
    assert data["acknowledged_note"] == "on it" and data["acknowledged_at"].endswith("Z")
    assert [(e["kind"], e["note"]) for e in data["history"]] == [
        ("opened", None), ("undelivered", "not delivered: no channel"), ("acknowledged", "on it")]
    assert alert_row(db, a2) == ("acknowledged", uuid.UUID(user), "on it", None, None)  # committed

    again = assert_envelope_error(client.post(f"/api/v1/alerts/{a2}/acknowledge", headers=headers), 409,
                                  "ALERT_ALREADY_ACKNOWLEDGED")
    assert again["error"]["details"] == {"status": "acknowledged"}

    r = client.post(f"/api/v1/alerts/{a2}/resolve", json={"note": "replaced the uplink"}, headers=headers)
    assert r.status_code == 200, r.get_json()
    data = r.get_json()["data"]
    assert data["status"] == "resolved" and data["resolved_by"] == user and data["resolved_at"].endswith("Z")
    assert data["resolution_note"] == "replaced the uplink"
    assert [e["kind"] for e in data["history"]] == ["opened", "undelivered", "acknowledged", "resolved"]
    assert alert_row(db, a2) == ("resolved", uuid.UUID(user), "on it", uuid.UUID(user), "replaced the uplink")

    for action, body in (("resolve", {"note": "again"}), ("acknowledge", {})):
        err = assert_envelope_error(client.post(f"/api/v1/alerts/{a2}/{action}", json=body, headers=headers), 409,
                                    "ALERT_ALREADY_RESOLVED")
        assert err["error"]["details"] == {"status": "resolved"}


def test_acknowledge_needs_no_body_and_resolve_goes_straight_from_firing(client: FlaskClient,
                                                                        db: psycopg.Connection,
                                                                        acme: dict[str, Any]) -> None:
    headers, user = login(client, "admin@acme.test")  # admin holds every permission
    r = client.post(f"/api/v1/alerts/{acme['a1']}/acknowledge", headers=headers)
    assert r.status_code == 200 and r.get_json()["data"]["acknowledged_note"] is None
    r = client.post(f"/api/v1/alerts/{acme['a2']}/resolve", json={"note": "false alarm"}, headers=headers)
    assert r.status_code == 200 and r.get_json()["data"]["acknowledged_at"] is None
    assert alert_row(db, acme["a2"]) == ("resolved", None, None, uuid.UUID(user), "false alarm")


def test_resolve_without_a_note_and_bad_bodies_are_422(client: FlaskClient, db: psycopg.Connection,
                                                       acme: dict[str, Any]) -> None:
    headers, _ = login(client, "noc@acme.test")
    url = f"/api/v1/alerts/{acme['a2']}/resolve"
    for kwargs in ({}, {"json": {}}, {"json": {"note": "   "}}, {"json": {"note": None}}):
        body = assert_envelope_error(client.post(url, headers=headers, **kwargs), 422, "MISSING_REQUIRED_FIELD")
        assert body["error"]["details"] == {"note": "required"}
    body = assert_envelope_error(client.post(url, json={"note": 42}, headers=headers), 422, "INVALID_INPUT")
    assert body["error"]["details"] == {"note": "Input should be a valid string"}
    for kwargs in ({"json": ["note"]}, {"data": "note=x", "content_type": "application/x-www-form-urlencoded"}):
        body = assert_envelope_error(client.post(url, headers=headers, **kwargs), 422, "INVALID_INPUT")
        assert body["error"]["details"] == {"body": "expected a JSON object"}
    too_long = assert_envelope_error(
        client.post(f"/api/v1/alerts/{acme['a2']}/acknowledge", json={"note": "x" * 2001}, headers=headers), 422,
        "INVALID_INPUT")
    assert set(too_long["error"]["details"]) == {"note"}
    assert alert_row(db, acme["a2"])[0] == "firing"


def test_cookie_sessions_must_echo_the_csrf_token_to_act_on_alerts(client: FlaskClient, db: psycopg.Connection,
                                                                   acme: dict[str, Any]) -> None:
    form_login(client, "noc@acme.test")
    url = f"/api/v1/alerts/{acme['a2']}/acknowledge"
    assert_envelope_error(client.post(url, json={}), 401, "AUTHENTICATION_REQUIRED")
    assert alert_row(db, acme["a2"])[0] == "firing"
    csrf = client.get_cookie(auth.CSRF_COOKIE)
    assert csrf is not None
    assert client.post(url, json={}, headers={auth.CSRF_HEADER: csrf.value}).status_code == 200


def test_a_token_of_a_deleted_user_cannot_act(client: FlaskClient, db: psycopg.Connection,
                                              acme: dict[str, Any]) -> None:
    headers, user = login(client, "noc@acme.test")
    db.execute("DELETE FROM users WHERE id = %s", (uuid.UUID(user),))  # the token's signature is still good
    assert_envelope_error(client.post(f"/api/v1/alerts/{acme['a2']}/acknowledge", headers=headers), 401,
                          "TOKEN_REVOKED")
    assert alert_row(db, acme["a2"])[0] == "firing"


# --- RBAC and tenancy ------------------------------------------------------------------------------

def test_viewers_read_alerts_but_cannot_act_on_them(client: FlaskClient, db: psycopg.Connection,
                                                    acme: dict[str, Any]) -> None:
    viewer, _ = login(client, "viewer@acme.test")
    assert client.get(f"/api/v1/alerts/{acme['a2']}", headers=viewer).status_code == 200
    for action, body in (("acknowledge", {"note": "mine"}), ("resolve", {"note": "done"})):
        err = assert_envelope_error(client.post(f"/api/v1/alerts/{acme['a2']}/{action}", json=body, headers=viewer),
                                    403, "INSUFFICIENT_PERMISSIONS")
        assert err["error"]["details"] == {"required": "alert:write", "role": "viewer"}
    assert alert_row(db, acme["a2"]) == ("firing", None, None, None, None)


def test_api_users_see_no_alerts_but_read_slas(client: FlaskClient, acme: dict[str, Any]) -> None:
    robot, _ = login(client, "robot@acme.test")
    for r in (client.get("/api/v1/alerts", headers=robot), client.get(f"/api/v1/alerts/{acme['a2']}", headers=robot)):
        err = assert_envelope_error(r, 403, "INSUFFICIENT_PERMISSIONS")
        assert err["error"]["details"] == {"required": "alert:read", "role": "api_user"}
    assert_envelope_error(client.post(f"/api/v1/alerts/{acme['a2']}/acknowledge", headers=robot), 403,
                          "INSUFFICIENT_PERMISSIONS")
    for path in ("/api/v1/sla/availability", "/api/v1/sla/outages", "/api/v1/sla/targets"):
        assert client.get(path, headers=robot).status_code == 200, path


def test_alert_and_sla_endpoints_need_a_token(client: FlaskClient) -> None:
    some = uuid.uuid4()
    for r in (client.get("/api/v1/alerts"), client.get(f"/api/v1/alerts/{some}"),
              client.post(f"/api/v1/alerts/{some}/acknowledge"), client.post(f"/api/v1/alerts/{some}/resolve"),
              client.get("/api/v1/sla/availability"), client.get("/api/v1/sla/outages"),
              client.get("/api/v1/sla/targets")):
        assert_envelope_error(r, 401, "AUTHENTICATION_REQUIRED")
    assert_envelope_error(client.put(f"/api/v1/alerts/{some}/acknowledge"), 405, "METHOD_NOT_ALLOWED")


def test_another_organizations_alerts_are_not_found(engine: Engine, client: FlaskClient, db: psycopg.Connection,
                                                    acme: dict[str, Any]) -> None:
    make_tenant(engine, "bravo", {"admin@bravo.test": Role.ADMIN})
    headers, _ = login(client, "admin@bravo.test")
    listed = client.get("/api/v1/alerts?status=all", headers=headers).get_json()
    assert listed["data"] == [] and listed["pagination"]["total"] == 0
    assert client.get(f"/api/v1/alerts?status=all&device={acme['devs'][2]}", headers=headers).get_json()["data"] == []
    a2 = acme["a2"]
    for r in (client.get(f"/api/v1/alerts/{a2}", headers=headers),
              client.post(f"/api/v1/alerts/{a2}/acknowledge", json={"note": "mine now"}, headers=headers),
              client.post(f"/api/v1/alerts/{a2}/resolve", json={"note": "gone"}, headers=headers)):
        body = assert_envelope_error(r, 404, "ALERT_NOT_FOUND")
        assert body["error"]["details"] == {"alert_id": str(a2)}
    assert alert_row(db, a2) == ("firing", None, None, None, None)


# --- SLA -------------------------------------------------------------------------------------------

def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """analytics' rows as the API must render them."""
    return [{k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()} for row in rows]


@pytest.fixture
def history(engine: Engine, db: psycopg.Connection) -> dict[str, Any]:
    """Two days ago, from ``base``: core-00 (site Nairobi) down 1-2 h; core-01 down from 3 h on, still;
    core-02 never probed. A second organization has a device down all along."""
    org = make_tenant(engine, "acme", {"viewer@acme.test": Role.VIEWER})
    site = add_site(db, org, "Nairobi")
    core0 = add_devices(db, org, "core", 1, site_id=site)[0]
    core1, core2 = add_devices(db, org, "edge", 2, net=3)
    other = make_tenant(engine, "bravo", {"viewer@bravo.test": Role.VIEWER})
    (theirs,) = add_devices(db, other, "theirs", 1, net=4)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    events = [(org, core0, base, "unknown", "up"), (org, core0, base + timedelta(hours=1), "up", "down"),
              (org, core0, base + timedelta(hours=2), "down", "up"), (org, core1, base, "unknown", "up"),
              (org, core1, base + timedelta(hours=3), "up", "down"), (other, theirs, base, "unknown", "down")]
    for o, dev, t, a, b in events:
        db.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, from_status, "
                   "to_status) VALUES (%s, %s, %s, %s, %s, %s)", (o, dev, t, t, a, b))
    return {"org": org, "base": base, "devs": [core0, core1, core2]}


def test_availability_by_every_grouping_matches_analytics(client: FlaskClient, db: psycopg.Connection,
                                                          history: dict[str, Any]) -> None:
    headers, _ = login(client, "viewer@acme.test")
    start, end = history["base"], history["base"] + timedelta(hours=6)
    for by in sla.BY:
        r = client.get(f"/api/v1/sla/availability?from={iso(start)}&to={iso(end)}&by={by}", headers=headers)
        assert r.status_code == 200, r.get_json()
        data = r.get_json()["data"]
        expected = as_json(sla.availability(db, history["org"], start, end, by=cast(sla.By, by)).to_dicts())
        assert data == {"from": iso(start), "to": iso(end), "by": by, "items": expected}
    by_device = client.get(f"/api/v1/sla/availability?from={iso(start)}&to={iso(end)}", headers=headers).get_json()
    rows = {row["name"]: row for row in by_device["data"]["items"]}
    assert by_device["data"]["by"] == "device" and set(rows) == {"core-00", "edge-00", "edge-01"}  # not bravo's
    assert rows["core-00"]["down_s"] == 3600 and rows["core-00"]["site"] == "Nairobi"
    assert rows["core-00"]["availability_pct"] == pytest.approx(100 * 5 / 6)
    assert rows["edge-00"]["down_s"] == 3 * 3600 and rows["edge-00"]["mttr_s"] == 3 * 3600
    assert rows["edge-01"]["availability_pct"] is None and rows["edge-01"]["mttr_s"] is None  # never monitored


def test_outages_match_analytics_and_an_ongoing_one_has_no_end(client: FlaskClient, db: psycopg.Connection,
                                                               history: dict[str, Any]) -> None:
    headers, _ = login(client, "viewer@acme.test")
    base = history["base"]
    start, end = base - timedelta(hours=1), base + timedelta(hours=5)
    # An explicit offset ('+' sent as %2B) and a time without one (taken as UTC) mean the same instants.
    query = f"from={quote(start.isoformat())}&to={end.replace(tzinfo=None).isoformat()}"
    r = client.get(f"/api/v1/sla/outages?{query}", headers=headers)
    assert r.status_code == 200, r.get_json()
    data = r.get_json()["data"]
    assert data == {"from": iso(start), "to": iso(end),
                    "items": as_json(sla.outages(db, history["org"], start, end).to_dicts())}
    assert [(o["device"], o["start"], o["end"], o["duration_s"]) for o in data["items"]] == [
        ("core-00", iso(base + timedelta(hours=1)), iso(base + timedelta(hours=2)), 3600.0),
        ("edge-00", iso(base + timedelta(hours=3)), None, 7200.0)]


def test_sla_period_defaults_to_the_last_day_and_stops_at_now(client: FlaskClient, history: dict[str, Any]) -> None:
    headers, _ = login(client, "viewer@acme.test")
    before = datetime.now(UTC)
    data = client.get("/api/v1/sla/outages", headers=headers).get_json()["data"]
    end = datetime.fromisoformat(data["to"])
    assert before - timedelta(seconds=1) <= end <= datetime.now(UTC)
    assert datetime.fromisoformat(data["from"]) == end - timedelta(days=1)
    assert [o["device"] for o in data["items"]] == ["edge-00"] and data["items"][0]["end"] is None
    future = iso(datetime.now(UTC) + timedelta(days=3))
    clipped = client.get(f"/api/v1/sla/availability?from={iso(history['base'])}&to={future}&by=org",
                         headers=headers).get_json()["data"]
    assert datetime.fromisoformat(clipped["to"]) <= datetime.now(UTC)


def test_sla_targets_match_analytics(client: FlaskClient, db: psycopg.Connection, history: dict[str, Any]) -> None:
    org = history["org"]
    db.execute("INSERT INTO sla_targets (organization_id, scope, scope_ref, target_pct, period, severity) VALUES "
               "(%s, 'all', NULL, 99.9, 'day', 'critical'), (%s, 'site', 'Nairobi', 50, 'week', 'warning')",
               (org, org))
    headers, _ = login(client, "viewer@acme.test")
    at = history["base"] + timedelta(hours=6, minutes=30)  # never a period's first instant (nothing to measure)
    data = client.get(f"/api/v1/sla/targets?at={iso(at)}", headers=headers).get_json()["data"]
    expected = as_json([asdict(result) for result in sla.evaluate_targets(db, org, at)])
    assert data == {"at": iso(at), "items": expected}
    assert [(t["scope"], t["period"], t["breached"]) for t in data["items"]] == [
        ("all", "day", True), ("site", "week", False)]
    assert data["items"][0]["period_start"].endswith("T00:00:00Z")
    now = client.get("/api/v1/sla/targets", headers=headers).get_json()["data"]
    assert len(now["items"]) == 2 and datetime.fromisoformat(now["at"]) <= datetime.now(UTC)


@pytest.mark.parametrize(("path", "query", "bad"), [
    ("availability", "from=yesterday", {"from"}),
    ("availability", "from=2026-11-20T00:00:00+00:00", {"from"}),  # an unescaped '+' arrives as a space
    ("availability", "from=2026-11-20T00:00:00Z&to=2026-11-19T00:00:00Z", {"to"}),
    ("availability", "from=2026-11-20T00:00:00Z&to=2026-11-20T00:00:00Z", {"to"}),
    ("availability", "from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", {"to"}),
    ("availability", "from=2099-01-01T00:00:00Z", {"from"}),
    ("availability", "by=planet&to=soon", {"by", "to"}),
    ("outages", "to=2026-13-01", {"to"}),
    ("targets", "at=noon", {"at"}),
    ("targets", "at=2099-01-01T00:00:00Z", {"at"}),
])
def test_bad_sla_parameters_are_422_naming_them(client: FlaskClient, history: dict[str, Any], path: str, query: str,
                                                bad: set[str]) -> None:
    headers, _ = login(client, "viewer@acme.test")
    body = assert_envelope_error(client.get(f"/api/v1/sla/{path}?{query}", headers=headers), 422, "INVALID_INPUT")
    assert set(body["error"]["details"]) == bad
