"""Hardened auth, against the real PostgreSQL and Redis: tokens that stop working at once, the login
limit, CSRF on every state-changing route, security headers, Secure cookies behind a proxy, bad input
to the login and to Dash's endpoints, and the settings' refusal of a weak secret key.

Each finding of the hostile test of the old server is a test here, named for what now happens.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import redis
from argon2 import PasswordHasher
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from analytics.alerts import AlertEngine, Finding
from analytics.rules import Rule, save_rules
from cli import main
from dashboard import auth
from dashboard.app import create_app
from netpulse.config import load_settings
from netpulse.db import make_engine, make_sessionmaker
from netpulse.errors import ConfigError
from netpulse.metrics import MetricKind
from netpulse.schema import Role, User
from netpulse.tokens import KEY_PREFIX
from tests.conftest import REDIS_URL
from tests.test_api import (
    PASSWORD,
    SECRET,
    add_devices,
    assert_envelope_error,
    bearer,
    form_login,
    make_tenant,
)
from tests.test_api_alerts import T0

DEAD_DB = "postgresql://postgres@127.0.0.1:1/netpulse"  # nothing listens on port 1


def make_app(db_url: str, engine: Engine, *, redis_client: Any = None, **settings: Any) -> Flask:
    return create_app(load_settings(database_url=db_url, redis_url=REDIS_URL, secret_key=SECRET, env="testing",
                                    **settings), engine=engine, redis_client=redis_client)


@pytest.fixture
def app(db_url: str, engine: Engine, db: psycopg.Connection, redis_url: str) -> Flask:
    return make_app(db_url, engine)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def acme(engine: Engine, db: psycopg.Connection) -> dict[str, Any]:
    """Organization acme: an admin, an operator, one device and one firing critical alert."""
    org = make_tenant(engine, "acme", {"admin@acme.test": Role.ADMIN, "noc@acme.test": Role.OPERATOR})
    (device,) = add_devices(db, org, "core", 1, oper_status="up")
    (saved,) = save_rules(db, org, [Rule("latency", "threshold", "critical", metric=MetricKind.ICMP_RTT_MS,
                                         comparator=">", value=100, clear_value=80)])
    report = AlertEngine().apply(db, org, [Finding(saved, device, True, T0, value=150.0,
                                                   started_at=T0 - timedelta(minutes=2))], T0)
    users = dict(db.execute("SELECT email, id FROM users").fetchall())
    return {"org": org, "device": device, "alert": report.opened[0], "users": users}


def alert_status(db: psycopg.Connection, alert_id: uuid.UUID) -> str:
    row = db.execute("SELECT status FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    assert row is not None
    return str(row[0])


def sign_in(client: FlaskClient, email: str, carrier: str) -> dict[str, str]:
    """Sign in with a bearer token or a browser cookie; the headers a state-changing request then needs."""
    if carrier == "bearer":
        r = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.get_json()
        return bearer(r.get_json()["data"]["access_token"])
    assert form_login(client, email).status_code == 303
    csrf = client.get_cookie(auth.CSRF_COOKIE)
    assert csrf is not None
    return {auth.CSRF_HEADER: csrf.value}


def overview_callback(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    """The body Dash's renderer posts for the overview's status counts."""
    deps = client.get("/_dash-dependencies", headers=headers).get_json()
    dep = next(d for d in deps if "status-count-up" in d["output"])
    outputs = []
    for part in dep["output"].strip(".").split("..."):
        cid, prop = part.rsplit(".", 1)
        outputs.append({"id": cid, "property": prop})
    inputs = [{"id": i["id"], "property": i["property"], "value": 0} for i in dep["inputs"]]
    return {"output": dep["output"], "outputs": outputs, "inputs": inputs, "state": [],
            "changedPropIds": [f"{i['id']}.{i['property']}" for i in dep["inputs"]]}


def set_user(app: Flask, user_id: uuid.UUID, **values: Any) -> None:
    """Change a user through the ORM, as an admin command or route does."""
    with make_sessionmaker(app.extensions["netpulse.engine"])() as session, session.begin():
        user = session.get(User, user_id)
        assert user is not None
        for name, value in values.items():
            setattr(user, name, value)


def _change_password(app: Flask, client: FlaskClient, user_id: uuid.UUID, headers: dict[str, str]) -> None:
    r = client.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "a-new-pass-0042"},
                    headers=headers)
    assert r.status_code == 200, r.get_json()
    fresh = r.get_json()["data"]["access_token"]
    assert client.get("/api/v1/alerts", headers=bearer(fresh)).status_code == 200  # the new token works


def _sign_out(app: Flask, client: FlaskClient, user_id: uuid.UUID, headers: dict[str, str]) -> None:
    if "Authorization" in headers:
        r = client.post("/api/v1/auth/logout", headers=headers)
        assert r.status_code == 200 and r.get_json()["data"] == {"signed_out": True}
    else:
        r = client.post("/logout", data={"csrf_token": headers[auth.CSRF_HEADER]})
        assert r.status_code == 303 and r.headers["Location"] == "/login"


TRIGGERS: dict[str, Callable[[Flask, FlaskClient, uuid.UUID, dict[str, str]], None]] = {
    "disabled": lambda app, client, uid, headers: set_user(app, uid, is_active=False),
    "demoted_to_viewer": lambda app, client, uid, headers: set_user(app, uid, role=Role.VIEWER.value),
    "password_changed": _change_password,
    "signed_out": _sign_out,
}


# --- tokens stop working at once -------------------------------------------------------------------

@pytest.mark.parametrize("carrier", ["bearer", "cookie"])
@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_a_token_stops_working_at_once(app: Flask, client: FlaskClient, db: psycopg.Connection,
                                       acme: dict[str, Any], trigger: str, carrier: str) -> None:
    """Found: a deactivated user's bearer token still acknowledged alerts, an admin demoted to viewer still
    resolved them, sign-out and a password change revoked nothing. Now each ends every earlier token, on
    the API and on a Dash callback, although the user's state was cached in Redis a moment before."""
    user_id = acme["users"]["admin@acme.test"]
    headers = sign_in(client, "admin@acme.test", carrier)
    callback = overview_callback(client, headers)
    assert client.post("/_dash-update-component", json=callback, headers=headers).status_code == 200
    assert client.get("/api/v1/alerts", headers=headers).status_code == 200
    redis_client = redis.Redis.from_url(REDIS_URL)
    assert redis_client.exists(f"{KEY_PREFIX}{user_id}")  # the state is served from the cache now
    old_cookie = client.get_cookie(auth.ACCESS_COOKIE)

    TRIGGERS[trigger](app, client, user_id, headers)

    if old_cookie is not None:  # the browser may have dropped or replaced it: present the old token again
        client.set_cookie(auth.ACCESS_COOKIE, old_cookie.value)
    resolve = client.post(f"/api/v1/alerts/{acme['alert']}/resolve", json={"note": "done"}, headers=headers)
    assert_envelope_error(resolve, 401, "TOKEN_REVOKED")
    assert alert_status(db, acme["alert"]) == "firing"
    ack = client.post(f"/api/v1/alerts/{acme['alert']}/acknowledge", headers=headers)
    assert_envelope_error(ack, 401, "TOKEN_REVOKED")
    dash = client.post("/_dash-update-component", json=callback, headers=headers)
    assert_envelope_error(dash, 401, "TOKEN_REVOKED")
    if carrier == "cookie":
        page = client.get("/")
        assert page.status_code == 302 and page.headers["Location"].startswith("/login")


def test_a_demoted_admin_signs_in_again_with_the_viewers_rights(app: Flask, client: FlaskClient,
                                                                db: psycopg.Connection, acme: dict[str, Any]) -> None:
    set_user(app, acme["users"]["admin@acme.test"], role=Role.VIEWER.value)
    headers = sign_in(client, "admin@acme.test", "bearer")
    assert client.get("/api/v1/alerts", headers=headers).status_code == 200
    resolve = client.post(f"/api/v1/alerts/{acme['alert']}/resolve", json={"note": "done"}, headers=headers)
    assert_envelope_error(resolve, 403, "INSUFFICIENT_PERMISSIONS")
    assert alert_status(db, acme["alert"]) == "firing"


def test_signing_out_ends_every_session_of_the_user(client: FlaskClient, acme: dict[str, Any],
                                                    app: Flask) -> None:
    """One token version per user: signing out in the browser also ends the user's API token."""
    api = sign_in(client, "admin@acme.test", "bearer")
    other = app.test_client()
    browser = sign_in(other, "admin@acme.test", "cookie")
    assert other.post("/logout", data={"csrf_token": browser[auth.CSRF_HEADER]}).status_code == 303
    assert_envelope_error(client.get("/api/v1/alerts", headers=api), 401, "TOKEN_REVOKED")
    # The operator's session is untouched.
    assert client.get("/api/v1/alerts", headers=sign_in(client, "noc@acme.test", "bearer")).status_code == 200


def test_a_change_made_by_a_cli_command_ends_sessions_at_once(client: FlaskClient, acme: dict[str, Any],
                                                              settings_env: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import _common
    from netpulse.config import get_settings
    from netpulse.tokens import use_state_cache

    monkeypatch.setenv("NETPULSE_REDIS_URL", REDIS_URL)
    monkeypatch.setattr(_common, "_state_cache", None)
    get_settings.cache_clear()
    use_state_cache(_common.state_cache_client)  # as the `netpulse` group does for every command
    headers = sign_in(client, "noc@acme.test", "bearer")
    assert client.get("/api/v1/alerts", headers=headers).status_code == 200  # cached now
    with _common.session_scope() as session:
        user = session.get(User, acme["users"]["noc@acme.test"])
        assert user is not None
        user.is_active = False
    assert_envelope_error(client.get("/api/v1/alerts", headers=headers), 401, "TOKEN_REVOKED")


def test_a_change_made_in_sql_by_hand_also_moves_the_token_version(app: Flask, client: FlaskClient,
                                                                   db: psycopg.Connection,
                                                                   acme: dict[str, Any]) -> None:
    """The database's trigger moves the version whoever changes the row; only the few seconds of the
    cache separate a hand-made change from its effect."""
    headers = sign_in(client, "noc@acme.test", "bearer")
    user_id = acme["users"]["noc@acme.test"]
    db.execute("UPDATE users SET role = 'viewer' WHERE id = %s", (user_id,))
    db.execute("UPDATE users SET last_login_at = now(), email = 'noc2@acme.test' WHERE id = %s", (user_id,))
    versions = db.execute("SELECT token_version FROM users WHERE id = %s", (user_id,)).fetchone()
    assert versions == (1,)  # the role moved it; the login time and email did not
    auth.user_states(app).forget(user_id)
    assert_envelope_error(client.get("/api/v1/alerts", headers=headers), 401, "TOKEN_REVOKED")


def test_without_redis_tokens_are_checked_against_the_database_and_login_is_refused(
        db_url: str, engine: Engine, acme: dict[str, Any], redis_url: str) -> None:
    """Redis down: requests read the user's state from PostgreSQL (slower, never less strict); logging in
    is refused with a 503, since the limit is what keeps a password guesser from burning argon2 CPU."""
    app = create_app(load_settings(database_url=db_url, redis_url="redis://127.0.0.1:1/0", secret_key=SECRET,
                                   env="testing"), engine=engine)  # nothing listens on port 1
    client = app.test_client()
    user_id = acme["users"]["noc@acme.test"]
    with make_sessionmaker(engine)() as session, app.test_request_context():
        user = session.get(User, user_id)
        assert user is not None
        headers = bearer(auth.issue_access_token(user))
    assert client.get("/api/v1/alerts", headers=headers).status_code == 200
    set_user(app, user_id, is_active=False)
    assert_envelope_error(client.get("/api/v1/alerts", headers=headers), 401, "TOKEN_REVOKED")
    r = client.post("/api/v1/auth/login", json={"email": "admin@acme.test", "password": PASSWORD})
    assert_envelope_error(r, 503, "SERVICE_UNAVAILABLE")
    assert r.headers["Retry-After"].isdigit()
    form = form_login(client, "admin@acme.test")
    assert form.status_code == 503 and b"Sign-in is unavailable" in form.data and form.headers["Retry-After"]


def test_login_while_the_database_is_down_is_a_503(redis_url: str) -> None:
    """Found: a 500. Now 503 with Retry-After, on the API, the form and authenticated requests alike."""
    dead = make_engine(DEAD_DB, pool_size=1, max_overflow=0)
    try:
        app = create_app(load_settings(database_url=DEAD_DB, redis_url=REDIS_URL, secret_key=SECRET, env="testing"),
                         engine=dead)
        client = app.test_client()
        r = client.post("/api/v1/auth/login", json={"email": "noc@acme.test", "password": PASSWORD})
        assert_envelope_error(r, 503, "SERVICE_UNAVAILABLE")
        assert r.headers["Retry-After"].isdigit()
        form = form_login(client, "noc@acme.test")
        assert form.status_code == 503 and b"database does not answer" in form.data
        with app.test_request_context():
            token = auth.issue_access_token(User(id=uuid.uuid4(), organization_id=uuid.uuid4(), role="admin",
                                                 email="x@acme.test", token_version=0))
        assert_envelope_error(client.get("/api/v1/devices", headers=bearer(token)), 503, "SERVICE_UNAVAILABLE")
    finally:
        dead.dispose()


# --- the login limit -------------------------------------------------------------------------------

def api_attempt(client: FlaskClient, email: str, password: str, address: str) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def assert_limited(r: Any) -> dict[str, Any]:
    body = assert_envelope_error(r, 429, "RATE_LIMIT_EXCEEDED")
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 60 and body["error"]["details"] == {"retry_after_s": retry}
    return body


def test_five_logins_a_minute_per_user_the_same_for_unknown_users(client: FlaskClient, acme: dict[str, Any]) -> None:
    """Found: 200 wrong passwords at 2.7/s were all answered. Now the sixth attempt in a minute for one
    user is a 429 with Retry-After, from any address and even with the right password, and an address
    that names no user gets exactly the same answers."""
    answers: dict[str, list[Any]] = {}
    for email in ("admin@acme.test", "nobody@acme.test"):
        answers[email] = [api_attempt(client, email, "wrong-password", f"198.51.100.{i}") for i in range(5)]
        answers[email].append(api_attempt(client, email, PASSWORD, "198.51.100.99"))
    for known, unknown in zip(answers["admin@acme.test"], answers["nobody@acme.test"], strict=True):
        assert known.status_code == unknown.status_code
        assert known.get_json()["error"] == unknown.get_json()["error"] or known.status_code == 429
    assert [r.status_code for r in answers["admin@acme.test"]] == [401] * 5 + [429]
    limited = [assert_limited(answers[e][-1]) for e in answers]
    assert limited[0]["error"]["code"] == limited[1]["error"]["code"]
    # Another user from the same addresses is not limited.
    assert api_attempt(client, "noc@acme.test", PASSWORD, "198.51.100.1").status_code == 200


def test_five_logins_a_minute_per_address(client: FlaskClient, acme: dict[str, Any]) -> None:
    for i in range(5):
        assert api_attempt(client, f"user{i}@acme.test", "wrong-password", "203.0.113.7").status_code == 401
    assert_limited(api_attempt(client, "admin@acme.test", PASSWORD, "203.0.113.7"))
    assert api_attempt(client, "admin@acme.test", PASSWORD, "203.0.113.8").status_code == 200
    # An IPv6 client counts by its /64, which one subscriber usually holds whole.
    for i in range(5):
        assert api_attempt(client, f"v6{i}@acme.test", "x", f"2001:db8:1:2::{i + 1}").status_code == 401
    assert_limited(api_attempt(client, "noc@acme.test", PASSWORD, "2001:db8:1:2:ffff::1"))


def test_the_login_form_is_limited_too(client: FlaskClient, acme: dict[str, Any]) -> None:
    for _ in range(5):
        r = form_login(client, "admin@acme.test", "wrong-password")
        assert r.status_code == 200 and b"Invalid email or password" in r.data
    r = form_login(client, "admin@acme.test")
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert b"Too many sign-in attempts" in r.data and client.get_cookie(auth.ACCESS_COOKIE) is None


def test_changing_the_password_checks_the_current_one_under_the_same_limit(client: FlaskClient,
                                                                          acme: dict[str, Any]) -> None:
    headers = sign_in(client, "noc@acme.test", "bearer")  # attempt 1 of the user's 5
    for _ in range(4):
        wrong = client.post("/api/v1/auth/password", json={"current_password": "guess-guess",
                                                           "new_password": "a-new-pass-0042"}, headers=headers)
        assert_envelope_error(wrong, 401, "INVALID_CREDENTIALS")
    assert_limited(client.post("/api/v1/auth/password", json={"current_password": PASSWORD,
                                                              "new_password": "a-new-pass-0042"}, headers=headers))
    assert client.get("/api/v1/alerts", headers=headers).status_code == 200  # nothing changed


def test_a_nul_byte_in_the_login_email_is_a_4xx_and_no_log_shows_the_password(
        client: FlaskClient, acme: dict[str, Any], caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found: a 500 whose logged traceback printed the password in clear."""
    password = "Sup3r-Secret-Passw0rd"
    r = client.post("/api/v1/auth/login", json={"email": "noc\x00@acme.test", "password": password})
    body = assert_envelope_error(r, 422, "INVALID_INPUT")
    assert set(body["error"]["details"]) == {"email"}
    form = form_login(client, "noc\x00@acme.test", password)
    assert form.status_code == 400 and b"Enter a valid email address" in form.data
    too_long = client.post("/api/v1/auth/login", json={"email": "noc@acme.test", "password": "x" * 5000})
    assert_envelope_error(too_long, 422, "INVALID_INPUT")
    for field in ("email", "password"):  # a lone surrogate: valid JSON, not UTF-8
        body = {"email": "noc@acme.test", "password": password, field: "\ud800x"}
        raw = json.dumps(body)
        assert_envelope_error(client.post("/api/v1/auth/login", data=raw, content_type="application/json"), 422,
                              "INVALID_INPUT")
    out = capsys.readouterr()
    logged = caplog.text + out.out + out.err + r.get_data(as_text=True) + form.get_data(as_text=True)
    assert password not in logged


def test_old_hashes_verify_and_are_rehashed_at_login_without_ending_sessions(
        app: Flask, client: FlaskClient, db: psycopg.Connection, acme: dict[str, Any]) -> None:
    user_id = acme["users"]["noc@acme.test"]
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    db.execute("SELECT set_config('netpulse.rehash', 'on', false)")  # as a rehash does: sessions stay
    db.execute("UPDATE users SET hashed_password = %s WHERE id = %s", (old, user_id))
    earlier = sign_in(app.test_client(), "noc@acme.test", "bearer")
    row = db.execute("SELECT hashed_password, token_version FROM users WHERE id = %s", (user_id,)).fetchone()
    assert row is not None and row[0] != old and "$m=19456,t=2,p=1$" in row[0] and row[1] == 0
    assert client.get("/api/v1/alerts", headers=earlier).status_code == 200


# --- CSRF ------------------------------------------------------------------------------------------

def _fill(rule: str, acme: dict[str, Any]) -> str:
    values = {"int": str(acme["device"]), "path": "x", "default": str(acme["alert"])}

    def one(m: re.Match[str]) -> str:
        kind = m.group(1) or "default"
        return values.get(kind, values["default"])

    return re.sub(r"<(?:(\w+):)?\w+>", one, rule)


def test_every_state_changing_route_refuses_a_cookie_without_the_csrf_value(
        app: Flask, client: FlaskClient, db: psycopg.Connection, acme: dict[str, Any]) -> None:
    """Read from the URL map, so a route added later is covered by construction."""
    headers = sign_in(client, "admin@acme.test", "cookie")
    checked = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            path = _fill(rule.rule, acme)
            r = client.open(path, method=method, json={"note": "csrf"})
            assert r.status_code >= 400, f"{method} {path} answered {r.status_code} without the CSRF value"
            checked.append(f"{method} {rule.rule}")
    assert {"POST /_dash-update-component", "POST /logout", "POST /api/v1/alerts/<alert_id>/resolve"} <= set(checked)
    assert alert_status(db, acme["alert"]) == "firing"
    assert client.get("/api/v1/alerts").status_code == 200  # still signed in: GET /logout only asks
    # With the value, the same cookie acts.
    ack = client.post(f"/api/v1/alerts/{acme['alert']}/acknowledge", headers=headers)
    assert ack.status_code == 200 and alert_status(db, acme["alert"]) == "acknowledged"


def test_signing_out_needs_a_post_with_the_csrf_value(client: FlaskClient, acme: dict[str, Any]) -> None:
    """Found: GET /logout signed out (any page could do it with an <img>)."""
    headers = sign_in(client, "admin@acme.test", "cookie")
    page = client.get("/logout")
    assert page.status_code == 200 and b'name="csrf_token"' in page.data
    assert client.get("/api/v1/alerts").status_code == 200
    forged = client.post("/logout", data={"csrf_token": "forged"})
    assert forged.status_code == 401 or forged.status_code == 400
    assert client.get("/api/v1/alerts").status_code == 200
    assert client.post("/logout").status_code == 400
    assert client.post("/logout", data={"csrf_token": headers[auth.CSRF_HEADER]}).status_code == 303
    assert client.get("/api/v1/alerts").status_code == 401


# --- headers and cookies ---------------------------------------------------------------------------

def test_security_headers_on_every_response(client: FlaskClient, acme: dict[str, Any]) -> None:
    anonymous = {path: client.get(path) for path in ("/login", "/", "/api/v1/devices", "/api/v1/nope", "/healthz")}
    sign_in(client, "admin@acme.test", "cookie")
    signed_in = {path: client.get(path) for path in ("/", "/_dash-layout", "/api/v1/devices", "/logout")}
    for where, r in [*anonymous.items(), *signed_in.items()]:
        csp = r.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp, where
        assert r.headers["X-Content-Type-Options"] == "nosniff", where
        assert r.headers["X-Frame-Options"] == "DENY", where
        assert r.headers["Referrer-Policy"] == "same-origin", where
        assert "Strict-Transport-Security" not in r.headers, where  # plain http
    dash_csp = signed_in["/"].headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]+)", dash_csp)
    assert script_src is not None and "'unsafe-inline'" not in script_src.group(1)
    assert "'unsafe-eval'" not in dash_csp and "object-src 'none'" in dash_csp
    # Every inline script of the page is allowed by its hash, none by a blanket rule.
    assert script_src.group(1).count("'sha256-") == len(re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)",
                                                                    signed_in["/"].get_data(as_text=True)))
    login_csp = anonymous["/login"].headers["Content-Security-Policy"]
    assert login_csp == auth.PAGE_CSP and "unsafe-inline" not in login_csp


def _cookie_flags(r: Any) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in r.headers.getlist("Set-Cookie")}


def test_cookies_are_secure_behind_a_trusted_https_proxy_only(db_url: str, engine: Engine, db: psycopg.Connection,
                                                              redis_url: str, acme: dict[str, Any]) -> None:
    """Found: Secure followed NETPULSE_HTTP_HOST. Now the request's scheme decides, as the trusted proxy
    (NETPULSE_PROXY_HOPS) tells it; an untrusted X-Forwarded-Proto is ignored."""
    proxied = make_app(db_url, engine, proxy_hops=1).test_client()
    direct = make_app(db_url, engine).test_client()

    def login(c: FlaskClient, headers: dict[str, str]) -> Any:
        c.get("/login", headers=headers)
        token = c.get_cookie(auth.LOGIN_CSRF_COOKIE, path="/login")
        assert token is not None
        return c.post("/login", data={"email": "admin@acme.test", "password": PASSWORD, "csrf_token": token.value},
                      headers=headers)

    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.10"}
    behind = login(proxied, https)
    assert behind.status_code == 303
    flags = _cookie_flags(behind)
    for name in (auth.ACCESS_COOKIE, auth.CSRF_COOKIE):
        assert "; Secure" in flags[name] and "SameSite=Lax" in flags[name]
    assert "HttpOnly" in flags[auth.ACCESS_COOKIE] and "HttpOnly" not in flags[auth.CSRF_COOKIE]
    assert behind.headers["Strict-Transport-Security"].startswith("max-age=")

    plain = login(make_app(db_url, engine, proxy_hops=1).test_client(), {"X-Forwarded-Proto": "http"})
    assert plain.status_code == 303 and all("Secure" not in c for c in _cookie_flags(plain).values())
    spoofed = login(direct, https)  # no trusted proxy: the header is anyone's
    assert spoofed.status_code == 303 and all("Secure" not in c for c in _cookie_flags(spoofed).values())

    always = make_app(db_url, engine, cookie_secure="always").test_client().get("/login")
    assert "; Secure" in _cookie_flags(always)[auth.LOGIN_CSRF_COOKIE]


def test_the_login_limit_counts_the_client_behind_the_proxy(db_url: str, engine: Engine, db: psycopg.Connection,
                                                            redis_url: str, acme: dict[str, Any]) -> None:
    client = make_app(db_url, engine, proxy_hops=1).test_client()
    for i in range(5):
        r = client.post("/api/v1/auth/login", json={"email": f"u{i}@acme.test", "password": "x"},
                        headers={"X-Forwarded-For": "192.0.2.10"})
        assert r.status_code == 401
    other = client.post("/api/v1/auth/login", json={"email": "admin@acme.test", "password": PASSWORD},
                        headers={"X-Forwarded-For": "192.0.2.11"})
    assert other.status_code == 200  # another client of the same proxy
    same = client.post("/api/v1/auth/login", json={"email": "admin@acme.test", "password": PASSWORD},
                       headers={"X-Forwarded-For": "192.0.2.10"})
    assert_limited(same)


# --- Dash's endpoints ------------------------------------------------------------------------------

def test_malformed_dash_requests_are_4xx(app: Flask, client: FlaskClient, acme: dict[str, Any]) -> None:
    """Found: garbage callback bodies and unknown component-suite paths were 500s."""
    headers = sign_in(client, "admin@acme.test", "cookie")
    good = overview_callback(client, headers)
    bodies: list[Any] = [b"garbage", b"{", {}, [], {"output": 5}, {**good, "output": "nope.children"},
                         {**good, "inputs": "a"}, {**good, "inputs": []}, {**good, "inputs": [5]},
                         {**good, "inputs": [{"id": "other", "property": "n_intervals", "value": 1}]},
                         {**good, "outputs": "x"}, {**good, "state": {"a": 1}}, {**good, "changedPropIds": [1]}]
    for body in bodies:
        kwargs: dict[str, Any] = ({"data": body, "content_type": "application/json"} if isinstance(body, bytes)
                                  else {"json": body})
        r = client.post("/_dash-update-component", headers=headers, **kwargs)
        assert r.status_code == 400, (body, r.get_data(as_text=True)[:200])
        assert r.get_json()["error"]["code"] == "INVALID_INPUT"
    assert client.post("/_dash-update-component", json=good, headers=headers).status_code == 200
    for path in ("dash/any-bundle.js", "nope/x.js", "dash/../../etc/passwd", "dash/deps/react@18.v4_4_1m1.js"):
        assert client.get(f"/_dash-component-suites/{path}").status_code == 404, path


def _wildcard(raw_id: str) -> Any:
    return {k: 1 if v == ["ALL"] else v for k, v in json.loads(raw_id).items()} if raw_id.startswith("{") else raw_id


def _is_wildcard(raw_id: str) -> bool:
    """A pattern-matching id (``{"index": ["ALL"], ...}``): the renderer sends a list of components for it;
    a dict id without a wildcard is one component."""
    return raw_id.startswith("{") and any(isinstance(v, list) for v in json.loads(raw_id).values())


def test_no_callback_answers_500_to_values_of_the_wrong_type(app: Flask, client: FlaskClient,
                                                             acme: dict[str, Any]) -> None:
    """Every registered callback, well-formed requests carrying values the renderer never sends."""
    headers = sign_in(client, "admin@acme.test", "cookie")
    dash_app = app.extensions["netpulse.dash"]
    sent = 0
    for output, spec in dash_app.callback_map.items():
        outs = []
        for part in output.strip(".").split("..."):
            cid, prop = part.rsplit(".", 1)
            ident = _wildcard(cid)
            one = {"id": ident, "property": prop}
            outs.append([one] if _is_wildcard(cid) else one)

        def dep(d: dict[str, str], value: Any) -> Any:
            one = {"id": _wildcard(d["id"]), "property": d["property"], "value": value}
            return [one] if _is_wildcard(d["id"]) else one

        for value in ("abc", {"a": 1}, [1, 2], 10**30, None, -1, True, "../../x"):
            body = {"output": output, "outputs": outs if output.startswith("..") else outs[0],
                    "inputs": [dep(d, value) for d in spec["inputs"]], "state": [dep(d, value) for d in spec["state"]],
                    "changedPropIds": [f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}"]}
            r = client.post("/_dash-update-component", json=body, headers=headers)
            assert r.status_code < 500, (output, value, r.status_code)
            sent += 1
    assert sent >= 8 * 10


# --- settings --------------------------------------------------------------------------------------

@pytest.mark.parametrize("weak", ["a" * 16, "a" * 64, "ab" * 20, "changeme-changeme-changeme-changeme", "short-key"])
def test_a_weak_secret_key_is_refused_with_how_to_make_one(weak: str) -> None:
    """Found: a secret key of sixteen "a"s was accepted."""
    with pytest.raises(ConfigError) as err:
        load_settings(secret_key=weak)
    message = err.value.message
    assert message.startswith("NETPULSE_SECRET_KEY=") and "secrets.token_urlsafe" in message
    assert weak not in message  # the key itself is not echoed


def test_a_generated_secret_key_is_accepted() -> None:
    import secrets

    for _ in range(20):
        assert load_settings(secret_key=secrets.token_urlsafe(48)).secret_key
        assert load_settings(secret_key=secrets.token_hex(32)).secret_key


def test_serve_refuses_a_weak_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from netpulse.config import get_settings

    monkeypatch.setenv("NETPULSE_SECRET_KEY", "a" * 16)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["serve", "--get", "/healthz"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "Error: NETPULSE_SECRET_KEY=" in result.output and "a" * 16 not in result.output


def test_env_example_names_real_settings_and_loads(tmp_path: Any) -> None:
    """.env.example documents settings that exist, with values the settings accept."""
    from pathlib import Path

    from netpulse.config import ENV_PREFIX, Settings

    example = Path(__file__).resolve().parent.parent / ".env.example"
    lines = [ln for ln in example.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    keys = [ln.split("=", 1)[0] for ln in lines]
    assert all(k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):].lower() in Settings.model_fields for k in keys), keys
    assert {"NETPULSE_SECRET_KEY", "NETPULSE_ENCRYPTION_KEY", "NETPULSE_PROXY_HOPS"} <= set(keys)
    filled = tmp_path / ".env"
    filled.write_text(example.read_text().replace("NETPULSE_SECRET_KEY=\n",
                                                  "NETPULSE_SECRET_KEY=Vw3k9Qp1ZtXr7LmN2bHc8YdF5gJs4Ua6xx\n"))
    settings = Settings(_env_file=str(filled))  # type: ignore[call-arg]
    assert settings.login_rate_limit == 5 and settings.proxy_hops == 0 and settings.keyring().keys
