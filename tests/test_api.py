"""The REST API, the login flow and the auth guard, through Flask's test client on the real database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token
from sqlalchemy import Engine

from dashboard import auth
from dashboard.api import require_permission
from dashboard.app import create_app
from dashboard.envelope import success
from ingest.loader import Loader
from ingest.rows import MetricRows
from ingest.status import Hysteresis
from netpulse.config import load_settings
from netpulse.db import make_engine, make_sessionmaker
from netpulse.metrics import MetricKind
from netpulse.schema import Role
from netpulse.users import create_organization, create_user
from tests.conftest import REDIS_URL

SECRET = "test-secret-key-0123456789abcdef"
PASSWORD = "correct-horse-battery"
META_KEYS = {"timestamp", "version", "request_id"}


# --- fixtures and builders -------------------------------------------------------------------------

def build_app(db_url: str, engine: Engine, redis_url: str, **settings: Any) -> Flask:
    """The real app on the test database and Redis. Pass the ``redis_url`` fixture, which empties Redis
    before and after the test: login limits (5 a minute per address, and the test client is always
    127.0.0.1) and cached user states must not leak between tests."""
    return create_app(load_settings(database_url=db_url, redis_url=redis_url, secret_key=SECRET, env="testing",
                                    **settings), engine=engine)


@pytest.fixture
def app(db_url: str, engine: Engine, db: psycopg.Connection, redis_url: str) -> Flask:
    """A fresh app per test; ``db`` empties every table afterwards, ``redis_url`` empties Redis."""
    return build_app(db_url, engine, redis_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_tenant(engine: Engine, slug: str, roles: dict[str, Role]) -> uuid.UUID:
    """An organization with one user per ``{email: role}``; every password is PASSWORD."""
    with make_sessionmaker(engine)() as session, session.begin():
        org = create_organization(session, slug.title(), slug)
        for email, role in roles.items():
            create_user(session, org.id, email, PASSWORD, role=role)
        return org.id


def add_site(db: psycopg.Connection, org: uuid.UUID, name: str) -> int:
    row = db.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, %s, %s) RETURNING id",
                     (org, name, name.lower().replace(" ", "-"))).fetchone()
    assert row is not None
    return int(row[0])


def add_devices(db: psycopg.Connection, org: uuid.UUID, prefix: str, n: int, *, site_id: int | None = None,
                oper_status: str = "unknown", net: int = 2) -> list[int]:
    ids = []
    for i in range(n):
        row = db.execute(
            "INSERT INTO devices (organization_id, name, address, ip_address, device_type, site_id, oper_status)"
            " VALUES (%s, %s, %s, %s, 'router', %s, %s) RETURNING id",
            (org, f"{prefix}-{i:02d}", f"198.51.{net}.{i + 1}", f"198.51.{net}.{i + 1}", site_id, oper_status),
        ).fetchone()
        assert row is not None
        ids.append(int(row[0]))
    return ids


def api_login(client: FlaskClient, email: str, password: str = PASSWORD) -> str:
    r = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.get_json()
    return str(r.get_json()["data"]["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_envelope_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert set(body["meta"]) == META_KEYS and body["meta"]["version"] == "v1"
    assert "data" not in body
    return dict(body)


def form_login(client: FlaskClient, email: str, password: str = PASSWORD, next_path: str = "/") -> Any:
    page = client.get(f"/login?next={next_path}")
    assert page.status_code == 200
    cookie = client.get_cookie(auth.LOGIN_CSRF_COOKIE, path="/login")
    assert cookie is not None
    return client.post("/login", data={"email": email, "password": password, "csrf_token": cookie.value,
                                       "next": next_path})


# --- login -----------------------------------------------------------------------------------------

def test_api_login_returns_a_bearer_token_in_the_envelope(engine: Engine, client: FlaskClient) -> None:
    org = make_tenant(engine, "acme", {"noc@acme.test": Role.OPERATOR})
    r = client.post("/api/v1/auth/login", json={"email": "NOC@acme.test", "password": PASSWORD},
                    headers={"X-Request-ID": "req-client-42"})
    assert r.status_code == 200
    body = r.get_json()
    assert list(body) == ["success", "data", "meta"] and body["success"] is True
    data = body["data"]
    assert data["token_type"] == "Bearer" and data["access_token"].count(".") == 2
    assert data["expires_in"] == int(auth.ACCESS_TTL.total_seconds())
    assert data["user"] == {"id": data["user"]["id"], "email": "noc@acme.test", "role": "operator",
                            "organization_id": str(org)}
    assert body["meta"]["request_id"] == "req-client-42" == r.headers["X-Request-ID"]
    assert body["meta"]["version"] == "v1" and body["meta"]["timestamp"].endswith("Z")
    # The token works as a bearer token.
    assert client.get("/api/v1/devices", headers=bearer(data["access_token"])).status_code == 200


def test_api_login_with_a_bad_password_is_401_invalid_credentials(engine: Engine, client: FlaskClient) -> None:
    make_tenant(engine, "acme", {"noc@acme.test": Role.VIEWER})
    for email, password in (("noc@acme.test", "wrong-password"), ("nobody@acme.test", PASSWORD)):
        r = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        body = assert_envelope_error(r, 401, "INVALID_CREDENTIALS")
        assert "access_token" not in r.get_data(as_text=True)
        assert body["meta"]["request_id"].startswith("req_")


def test_api_login_names_missing_fields(client: FlaskClient) -> None:
    body = assert_envelope_error(client.post("/api/v1/auth/login", json={"email": "a@b.test"}), 422,
                                 "MISSING_REQUIRED_FIELD")
    assert body["error"]["details"] == {"password": "required"}
    assert_envelope_error(client.post("/api/v1/auth/login", data="not json"), 422, "INVALID_INPUT")


# --- devices ---------------------------------------------------------------------------------------

def test_devices_are_paginated_in_the_envelope(engine: Engine, db: psycopg.Connection,
                                               client: FlaskClient) -> None:
    org = make_tenant(engine, "acme", {"noc@acme.test": Role.VIEWER})
    site = add_site(db, org, "Nairobi DC")
    add_devices(db, org, "core", 4, site_id=site, oper_status="up")
    add_devices(db, org, "edge", 3, oper_status="down", net=3)
    token = api_login(client, "noc@acme.test")

    r = client.get("/api/v1/devices?per_page=3", headers=bearer(token))
    assert r.status_code == 200
    body = r.get_json()
    assert list(body) == ["success", "data", "pagination", "meta"]
    assert body["pagination"] == {"page": 1, "per_page": 3, "total": 7, "total_pages": 3, "has_next": True,
                                  "has_prev": False}
    assert [d["name"] for d in body["data"]] == ["core-00", "core-01", "core-02"]
    first = body["data"][0]
    assert first["site"] == {"id": site, "name": "Nairobi DC"} and first["oper_status"] == "up"
    assert first["tags"] == [] and first["group"] is None and first["parent"] is None
    assert first["ip_address"] == "198.51.2.1" and "snmp_community" not in first
    assert set(body["meta"]) == META_KEYS

    last = client.get("/api/v1/devices?per_page=3&page=3", headers=bearer(token)).get_json()
    assert [d["name"] for d in last["data"]] == ["edge-02"]
    assert last["pagination"]["has_next"] is False and last["pagination"]["has_prev"] is True

    down = client.get("/api/v1/devices?oper_status=down", headers=bearer(token)).get_json()
    assert [d["name"] for d in down["data"]] == ["edge-00", "edge-01", "edge-02"]
    assert down["pagination"]["per_page"] == 50 and down["pagination"]["total"] == 3

    in_site = client.get("/api/v1/devices?site=nairobi-dc&search=core-0", headers=bearer(token)).get_json()
    assert in_site["pagination"]["total"] == 4

    bad = assert_envelope_error(client.get("/api/v1/devices?per_page=0&page=x", headers=bearer(token)), 422,
                                "INVALID_INPUT")
    assert set(bad["error"]["details"]) == {"per_page", "page"}
    bad = assert_envelope_error(client.get("/api/v1/devices?oper_status=sideways", headers=bearer(token)), 422,
                                "INVALID_INPUT")
    assert set(bad["error"]["details"]) == {"oper_status"}


def test_one_device_and_404_device_not_found(engine: Engine, db: psycopg.Connection,
                                             client: FlaskClient) -> None:
    org = make_tenant(engine, "acme", {"noc@acme.test": Role.VIEWER})
    [dev] = add_devices(db, org, "core", 1)
    token = api_login(client, "noc@acme.test")
    r = client.get(f"/api/v1/devices/{dev}", headers=bearer(token))
    assert r.status_code == 200 and r.get_json()["data"]["name"] == "core-00"
    body = assert_envelope_error(client.get(f"/api/v1/devices/{dev + 1000}", headers=bearer(token)), 404,
                                 "DEVICE_NOT_FOUND")
    assert body["error"]["details"] == {"device_id": str(dev + 1000)}
    assert f"id {dev + 1000} not found" in body["error"]["message"]


def test_organizations_see_only_their_own_devices(engine: Engine, db: psycopg.Connection,
                                                  client: FlaskClient) -> None:
    org_a = make_tenant(engine, "alpha", {"a@alpha.test": Role.ADMIN})
    org_b = make_tenant(engine, "bravo", {"b@bravo.test": Role.ADMIN})
    a_devices = add_devices(db, org_a, "alpha", 3, oper_status="up")
    add_devices(db, org_b, "bravo", 1, oper_status="down", net=9)
    token_a, token_b = api_login(client, "a@alpha.test"), api_login(client, "b@bravo.test")

    seen_by_b = client.get("/api/v1/devices", headers=bearer(token_b)).get_json()
    assert [d["name"] for d in seen_by_b["data"]] == ["bravo-00"] and seen_by_b["pagination"]["total"] == 1
    assert_envelope_error(client.get(f"/api/v1/devices/{a_devices[0]}", headers=bearer(token_b)), 404,
                          "DEVICE_NOT_FOUND")
    summary_b = client.get("/api/v1/fleet/summary", headers=bearer(token_b)).get_json()["data"]
    assert summary_b["total_devices"] == 1 and summary_b["status_counts"]["up"] == 0
    summary_a = client.get("/api/v1/fleet/summary", headers=bearer(token_a)).get_json()["data"]
    assert summary_a["status_counts"] == {"unknown": 0, "up": 3, "degraded": 0, "down": 0}


def test_fleet_summary_counts_statuses_set_by_the_loader(engine: Engine, db: psycopg.Connection,
                                                         client: FlaskClient) -> None:
    org = make_tenant(engine, "acme", {"noc@acme.test": Role.API_USER})
    devs = add_devices(db, org, "core", 5)
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    # Probe results: two up, one degraded (lost packets), one down; devs[4] never probed (unknown).
    avail, loss = [1, 1, 1, 0], [0, 0, 20, 100]
    rows = MetricRows.from_tuples(
        [(t, d, int(MetricKind.AVAILABLE), 0, float(a)) for d, a in zip(devs, avail, strict=False)]
        + [(t, d, int(MetricKind.ICMP_LOSS_PCT), 0, float(x)) for d, x in zip(devs, loss, strict=False)])
    Loader(hysteresis=Hysteresis(down_after=1, degraded_after=1)).load(db, rows)  # one probe decides here
    token = api_login(client, "noc@acme.test")
    data = client.get("/api/v1/fleet/summary", headers=bearer(token)).get_json()["data"]
    assert data == {"status_counts": {"unknown": 1, "up": 2, "degraded": 1, "down": 1}, "total_devices": 5,
                    "last_metric_at": t.isoformat().replace("+00:00", "Z")}


# --- auth and RBAC ---------------------------------------------------------------------------------

def test_unauthenticated_api_requests_get_401_envelopes(app: Flask, client: FlaskClient) -> None:
    for path in ("/api/v1/devices", "/api/v1/devices/1", "/api/v1/fleet/summary"):
        assert_envelope_error(client.get(path), 401, "AUTHENTICATION_REQUIRED")
    assert_envelope_error(client.get("/api/v1/devices", headers=bearer("not.a.jwt")), 401, "INVALID_TOKEN")
    with app.app_context():
        expired = create_access_token(identity=str(uuid.uuid4()), expires_delta=timedelta(seconds=-60),
                                      additional_claims={"org": str(uuid.uuid4()), "role": "admin", "email": "x@y.z"})
        forged = create_access_token(identity="x", additional_claims={"org": str(uuid.uuid4()), "role": "admin"})
    assert_envelope_error(client.get("/api/v1/devices", headers=bearer(expired)), 401, "TOKEN_EXPIRED")
    tampered = forged[:-4] + ("AAAA" if not forged.endswith("AAAA") else "BBBB")
    assert_envelope_error(client.get("/api/v1/devices", headers=bearer(tampered)), 401, "INVALID_TOKEN")


@pytest.mark.parametrize("role", list(Role))
def test_every_role_of_the_rbac_table_reads_devices(engine: Engine, client: FlaskClient, role: Role) -> None:
    # The spec's table grants device:read to admin, operator, viewer and api_user alike.
    make_tenant(engine, "acme", {"user@acme.test": role})
    token = api_login(client, "user@acme.test")
    assert client.get("/api/v1/devices", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/fleet/summary", headers=bearer(token)).status_code == 200


def test_viewer_and_api_user_differ_where_the_rbac_table_does(db_url: str, engine: Engine,
                                                              db: psycopg.Connection, redis_url: str) -> None:
    # No endpoint of this slice needs alert:read or report:read yet, so a test variant of the app mounts
    # one guarded by the same decorator the API uses (registered before the app's first request).
    app = build_app(db_url, engine, redis_url)

    @require_permission("alert:read")
    def alerts_probe() -> Any:
        return success([])

    app.add_url_rule("/api/v1/test-alerts", "test_alerts", alerts_probe)
    client = app.test_client()
    make_tenant(engine, "acme", {"viewer@acme.test": Role.VIEWER, "robot@acme.test": Role.API_USER})
    viewer, robot = api_login(client, "viewer@acme.test"), api_login(client, "robot@acme.test")
    assert client.get("/api/v1/test-alerts", headers=bearer(viewer)).status_code == 200
    body = assert_envelope_error(client.get("/api/v1/test-alerts", headers=bearer(robot)), 403,
                                 "INSUFFICIENT_PERMISSIONS")
    assert body["error"]["details"] == {"required": "alert:read", "role": "api_user"}


def test_unknown_api_routes_and_methods_are_enveloped(client: FlaskClient) -> None:
    assert_envelope_error(client.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
    assert_envelope_error(client.get("/api/v2/devices"), 404, "NOT_FOUND")
    body = assert_envelope_error(client.delete("/api/v1/devices"), 405, "METHOD_NOT_ALLOWED")
    assert "GET" in body["error"]["details"]["allowed_methods"]


def test_api_crash_is_a_500_envelope(db_url: str, engine: Engine, db: psycopg.Connection, redis_url: str) -> None:
    app = build_app(db_url, engine, redis_url)

    def boom() -> Any:
        raise RuntimeError("kaboom")

    app.add_url_rule("/api/v1/test-boom", "test_boom", boom)
    body = assert_envelope_error(app.test_client().get("/api/v1/test-boom"), 500, "INTERNAL_ERROR")
    assert "kaboom" not in body["error"]["message"]


# --- health ----------------------------------------------------------------------------------------

def test_healthz_needs_no_login(client: FlaskClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "healthy"}


def test_healthz_is_503_when_the_database_is_unreachable() -> None:
    dead = make_engine("postgresql://postgres@127.0.0.1:1/netpulse")  # nothing listens on port 1
    try:
        app = create_app(load_settings(database_url="postgresql://postgres@127.0.0.1:1/netpulse",
                                       redis_url=REDIS_URL, secret_key=SECRET, env="testing"), engine=dead)
        r = app.test_client().get("/healthz")
    finally:
        dead.dispose()
    assert r.status_code == 503
    # Public: the verdict only, never the driver's message with the database's host and port.
    assert r.get_json() == {"status": "unhealthy"}


# --- the dashboard behind the login ----------------------------------------------------------------

def test_dashboard_without_a_cookie_redirects_to_login(client: FlaskClient) -> None:
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"] == "/login?next=/"
    r = client.get("/some/page?x=1")
    assert r.status_code == 302 and r.headers["Location"] == "/login?next=/some/page%3Fx%3D1"
    # Dash's own requests are XHRs: they get a 401 envelope, not a redirect.
    assert_envelope_error(client.get("/_dash-layout"), 401, "AUTHENTICATION_REQUIRED")
    assert_envelope_error(client.post("/_dash-update-component", json={}), 401, "AUTHENTICATION_REQUIRED")
    assert client.get("/_dash-component-suites/dash/any-bundle.js").status_code == 401
    login = client.get("/login")
    assert login.status_code == 200 and b'name="password"' in login.data


def test_form_login_sets_the_cookies_and_opens_the_dashboard(engine: Engine, client: FlaskClient) -> None:
    make_tenant(engine, "acme", {"noc@acme.test": Role.VIEWER})
    r = form_login(client, "noc@acme.test", next_path="/")
    assert r.status_code == 303 and r.headers["Location"] == "/"
    cookies = {c.split("=", 1)[0]: c for c in r.headers.getlist("Set-Cookie")}
    assert "HttpOnly" in cookies[auth.ACCESS_COOKIE] and "SameSite=Lax" in cookies[auth.ACCESS_COOKIE]
    assert "HttpOnly" not in cookies[auth.CSRF_COOKIE]  # the Dash renderer reads it
    page = client.get("/")
    assert page.status_code == 200 and b"NetPulse" in page.data and b'data-bs-theme="dark"' in page.data
    layout = client.get("/_dash-layout")
    assert layout.status_code == 200 and b"noc@acme.test" in layout.data
    assert client.get("/login").status_code == 302  # already signed in
    # Cookie auth serves the API too (GET needs no CSRF header).
    assert client.get("/api/v1/devices").status_code == 200
    # Signing out is a POST carrying the CSRF value; GET only asks.
    confirm = client.get("/logout")
    assert confirm.status_code == 200 and b'action="/logout"' in confirm.data
    assert client.get("/").status_code == 200
    csrf = client.get_cookie(auth.CSRF_COOKIE)
    assert csrf is not None
    out = client.post("/logout", data={"csrf_token": csrf.value})
    assert out.status_code == 303 and out.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_form_login_rejects_bad_password_forged_form_and_open_redirect(engine: Engine,
                                                                       client: FlaskClient) -> None:
    make_tenant(engine, "acme", {"noc@acme.test": Role.VIEWER})
    bad = form_login(client, "noc@acme.test", "wrong-password")
    assert bad.status_code == 200 and b"Invalid email or password" in bad.data
    assert client.get_cookie(auth.ACCESS_COOKIE) is None
    forged = client.post("/login", data={"email": "noc@acme.test", "password": PASSWORD, "csrf_token": "x"})
    assert forged.status_code == 400 and client.get_cookie(auth.ACCESS_COOKIE) is None
    r = form_login(client, "noc@acme.test", next_path="//evil.example/")
    assert r.status_code == 303 and r.headers["Location"] == "/"


def _callback_request(client: FlaskClient, output_contains: str) -> dict[str, Any]:
    """The body Dash's renderer posts for the first callback whose output mentions ``output_contains``."""
    deps = client.get("/_dash-dependencies").get_json()
    dep = next(d for d in deps if output_contains in d["output"])
    outputs = []
    for part in dep["output"].strip(".").split("..."):
        cid, prop = part.rsplit(".", 1)
        outputs.append({"id": cid, "property": prop})
    inputs = [{"id": i["id"], "property": i["property"], "value": 0} for i in dep["inputs"]]
    return {"output": dep["output"], "outputs": outputs, "inputs": inputs, "state": [],
            "changedPropIds": [f"{i['id']}.{i['property']}" for i in dep["inputs"]]}


def test_dash_callbacks_need_the_csrf_header_and_read_the_users_org(engine: Engine, db: psycopg.Connection,
                                                                     client: FlaskClient) -> None:
    org = make_tenant(engine, "acme", {"noc@acme.test": Role.VIEWER})
    other = make_tenant(engine, "other", {"x@other.test": Role.VIEWER})
    add_devices(db, org, "core", 2, oper_status="up")
    add_devices(db, org, "edge", 1, oper_status="down", net=3)
    add_devices(db, other, "theirs", 5, oper_status="degraded", net=4)
    form_login(client, "noc@acme.test")
    body = _callback_request(client, "status-count-up")
    assert_envelope_error(client.post("/_dash-update-component", json=body), 401, "AUTHENTICATION_REQUIRED")
    csrf = client.get_cookie(auth.CSRF_COOKIE)
    assert csrf is not None
    r = client.post("/_dash-update-component", json=body, headers={auth.CSRF_HEADER: csrf.value})
    assert r.status_code == 200, r.get_data(as_text=True)
    out = r.get_json()["response"]
    assert out["status-count-up"]["children"] == "2"
    assert out["status-count-down"]["children"] == "1"
    assert out["status-count-degraded"]["children"] == "0"  # the other organization's 5 are not counted
    assert out["total-devices"]["children"] == "3"


def test_a_cookie_near_expiry_is_reissued_for_active_users_only(db_url: str, engine: Engine, app: Flask,
                                                                client: FlaskClient) -> None:
    org = make_tenant(engine, "acme", {"noc@acme.test": Role.VIEWER})
    with make_sessionmaker(engine)() as session:
        from netpulse.schema import User

        user = session.query(User).filter_by(email="noc@acme.test").one()
        with app.app_context():
            near = create_access_token(identity=str(user.id), expires_delta=auth.REFRESH_WITHIN / 2,
                                       additional_claims={"ver": user.token_version, "org": str(org),
                                                          "role": "viewer", "email": user.email})
            fresh = auth.issue_access_token(user)
    client.set_cookie(auth.ACCESS_COOKIE, fresh)
    assert auth.ACCESS_COOKIE not in str(client.get("/").headers.getlist("Set-Cookie"))
    client.set_cookie(auth.ACCESS_COOKIE, near)
    renewed = client.get("/")
    assert renewed.status_code == 200
    assert any(c.startswith(f"{auth.ACCESS_COOKIE}=") for c in renewed.headers.getlist("Set-Cookie"))
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET is_active = false WHERE email = 'noc@acme.test'")
    auth.user_states(app).forget(user.id)  # a change made in SQL by hand is seen once the cache entry goes
    client.set_cookie(auth.ACCESS_COOKIE, near)
    gone = client.get("/")
    assert gone.status_code == 302 and gone.headers["Location"].startswith("/login")
    access = [c for c in gone.headers.getlist("Set-Cookie") if c.startswith(f"{auth.ACCESS_COOKIE}=")]
    assert access and all(c.startswith(f"{auth.ACCESS_COOKIE}=;") for c in access)  # cleared, not renewed


def test_request_ids_are_unique_and_echoed(client: FlaskClient) -> None:
    a, b = client.get("/api/v1/devices"), client.get("/api/v1/devices")
    assert a.get_json()["meta"]["request_id"] != b.get_json()["meta"]["request_id"]
    assert a.headers["X-Request-ID"] == a.get_json()["meta"]["request_id"]
    weird = client.get("/api/v1/devices", headers={"X-Request-ID": "<script>"}).get_json()["meta"]["request_id"]
    assert weird.startswith("req_")

