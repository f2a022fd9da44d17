"""A small world for tests that walk the whole OpenAPI document: two organizations, each holding one
of every kind of object the API names in a path (a made report among them), users of every role, and
a few metrics.

Everything is made through the core and analytics functions the API calls (no hand-written rows
except status events, which only the loader writes), so the objects are what the API would make.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from flask import Flask
from flask_jwt_extended import create_access_token
from sqlalchemy import Engine

from analytics import maintenance, notify, policies, sla_targets
from analytics.alerts import AlertEngine, Finding
from analytics.rules import Rule, create_rule
from dashboard.app import create_app
from dashboard.auth import issue_access_token
from ingest.loader import Loader
from netpulse import crypto, inventory, organizations, users
from netpulse.config import load_settings
from netpulse.db import make_engine, make_sessionmaker
from netpulse.inventory import credentials
from netpulse.metrics import MetricKind
from netpulse.schema import Role
from reports import runs, schedules
from tests.conftest import REDIS_URL, TEST_ENCRYPTION_KEY, empty_redis, truncate_all
from tests.factories import grid_rows

SECRET = "test-secret-key-0123456789abcdef"
PASSWORD = "correct-horse-battery"
ROLES = (Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.API_USER)
# Tables whose rows the API writes; a refused request must leave every count as it was.
WRITTEN = ("organizations", "users", "sites", "device_groups", "tags", "devices", "device_tags", "service_checks",
           "snmp_credentials", "alert_rules", "alerts", "alert_events", "maintenance_windows",
           "notification_channels", "notification_deliveries", "escalation_policies", "sla_targets", "report_runs",
           "report_schedules", "notification_outbox")


@dataclass
class Tenant:
    org: uuid.UUID
    tokens: dict[str, str] = field(default_factory=dict)   # role -> bearer token
    path: dict[str, str] = field(default_factory=dict)     # path parameter -> one of this tenant's objects


@dataclass
class World:
    app: Flask
    alpha: Tenant
    bravo: Tenant
    revoked: str    # the token of an alpha user disabled after it was issued
    spare: str      # an alpha operator's token, for operations that end their caller's session
    expired: str
    tampered: str


def build_app(db_url: str, engine: Engine) -> Flask:
    """The real app on the test database and this run's Redis (emptied by :func:`build_world`)."""
    return create_app(load_settings(database_url=db_url, redis_url=REDIS_URL, secret_key=SECRET, env="testing"),
                      engine=engine)


def _tenant(engine: Engine, slug: str, net: int, now: datetime) -> tuple[Tenant, dict[str, Any]]:
    """An organization with a user per role and one object of every kind; returns what tokens need."""
    made: dict[str, Any] = {}
    with make_sessionmaker(engine).begin() as session:
        org = organizations.create_organization(session, slug.title(), slug)
        made["users"] = {role.value: users.create_user(session, org.id, f"{role.value}@{slug}.test", PASSWORD,
                                                       role=role) for role in ROLES}
        made["gone"] = users.create_user(session, org.id, f"gone@{slug}.test", PASSWORD, role=Role.ADMIN)
        made["spare"] = users.create_user(session, org.id, f"spare@{slug}.test", PASSWORD, role=Role.OPERATOR)
        credential = credentials.add_snmp_credential(session, org.id, credentials.SnmpCredentialSpec(
            name="public-ro", version="2c", community="public-community"))
        core = inventory.create_device(session, org.id, inventory.DeviceSpec(
            name="core-1", address=f"198.51.{net}.1", device_type="router", site="HQ", tags=["core"]))
        inventory.create_device(session, org.id, inventory.DeviceSpec(
            name="edge-1", address=f"198.51.{net}.2", device_type="switch", site="HQ", parent="core-1",
            snmp_credential="public-ro"))
        check = inventory.add_service_check(session, org.id, core.id, inventory.ServiceCheckSpec(kind="tcp", port=22))
        # Named per organization: a name-addressed object of the other one must not be found by its name.
        channel = notify.create_channel(session, org.id, f"noc-{slug}", "webhook",
                                        {"url": "http://127.0.0.1:9/hook", "secret": "s" * 32})
        policy = policies.add_policy(session, org.id, policies.PolicySpec(
            name="default", tiers=[policies.Tier(0, (channel.name,))]))
        target = sla_targets.add_sla_target(session, org.id, scope="all", ref=None, target_pct="99.9")
        window = maintenance.add_window(session, org.id, scope="device", scope_ref="core-1",
                                        start=now + timedelta(days=1), end=now + timedelta(days=1, hours=2),
                                        reason="upgrade")
        conn = session.connection().connection.driver_connection
        assert isinstance(conn, psycopg.Connection)
        rule = create_rule(conn, org.id, Rule("latency", "threshold", "critical", metric=MetricKind.ICMP_RTT_MS,
                                              comparator=">", value=100, clear_value=80))
        report = AlertEngine().apply(conn, org.id, [Finding(rule, core.id, True, now, value=150.0,
                                                            started_at=now - timedelta(minutes=2))], now)
        for t, a, b in ((now - timedelta(hours=3), "unknown", "up"), (now - timedelta(hours=2), "up", "down"),
                        (now - timedelta(hours=1), "down", "up")):
            conn.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, "
                         "from_status, to_status) VALUES (%s, %s, %s, %s, %s, %s)", (org.id, core.id, t, t, a, b))
        schedule = schedules.add_schedule(conn, org.id, f"sla-{slug}", kind="availability", frequency="weekly")
        run_id = runs.request_run(conn, org.id, kind="alerts", scope="all", period="last-24h", fmt="csv", now=now)
        tenant = Tenant(org.id, path={
            "device_id": str(core.id), "check_name": check.name, "alert_id": str(report.opened[0]),
            "rule_id": str(rule.id), "window_id": str(window.id), "channel_name": channel.name,
            "policy_id": str(policy.id), "target_id": str(target.id), "credential_id": str(credential.id),
            "user_id": str(made["users"]["viewer"].id), "run_id": str(run_id), "schedule_name": schedule.name})
        made["devices"] = [core.id]
        made["run"] = run_id
    return tenant, made


def build_world(db_url: str, engine: Engine) -> World:
    """Both tenants, on an emptied Redis. Built once per module, before any test's fixtures: it
    installs the test keyring for the secrets it stores (each test installs it again)."""
    empty_redis()
    crypto.use_keyring(crypto.Keyring.from_keys(TEST_ENCRYPTION_KEY))
    now = datetime.now(UTC).replace(microsecond=0)
    alpha, a = _tenant(engine, "alpha", 2, now)
    bravo, b = _tenant(engine, "bravo", 3, now)
    with psycopg.connect(db_url, autocommit=True) as conn:
        Loader().load(conn, grid_rows(a["devices"] + b["devices"], now - timedelta(minutes=30), 30, step_s=60))
        for run_id in (a["run"], b["run"]):  # made as a worker makes it: the file is there to download
            made = runs.execute_run(conn, run_id)
            assert made.status == "succeeded", made
    app = build_app(db_url, engine)
    with app.app_context():
        for tenant, made in ((alpha, a), (bravo, b)):
            tenant.tokens = {role: issue_access_token(user) for role, user in made["users"].items()}
        revoked = issue_access_token(a["gone"])
        spare = issue_access_token(a["spare"])
        expired = create_access_token(identity=str(a["users"]["admin"].id), expires_delta=timedelta(seconds=-60),
                                      additional_claims={"org": str(alpha.org), "role": "admin",
                                                         "email": "admin@alpha.test"})
    token = alpha.tokens["admin"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with make_sessionmaker(engine).begin() as session:
        users.disable_user(session, alpha.org, a["gone"].id)
    return World(app, alpha, bravo, revoked, spare, expired, tampered)


def module_world(db_url: str, engine: Engine) -> Iterator[World]:
    """A module-scoped fixture's body: the world on an emptied database, emptied again after the module
    (``world = pytest.fixture(scope="module", name="world")(module_world)``)."""
    truncate_all(db_url)
    yield build_world(db_url, engine)
    truncate_all(db_url)


def served_document() -> dict[str, Any]:
    """``/api/v1/openapi.json`` as served (serving it needs no database), for collection time."""
    dead = "postgresql://postgres@127.0.0.1:1/none"
    engine = make_engine(dead)
    try:
        doc: dict[str, Any] = build_app(dead, engine).test_client().get("/api/v1/openapi.json").get_json()
    finally:
        engine.dispose()
    return doc


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_OWNED = {"organizations": "id", "device_tags": None, "alert_events": None}  # else: organization_id


def row_counts(db_url: str, org: uuid.UUID | None = None) -> dict[str, int]:
    """Rows per written table, in one statement (of one organization where a table says whose rows are)."""
    parts = []
    for table in WRITTEN:
        column = _OWNED.get(table, "organization_id")
        where = f" WHERE {column} = %(org)s" if org is not None and column else ""
        parts.append(f"(SELECT count(*) FROM {table}{where})")
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT " + ", ".join(parts), {"org": org}).fetchone()
    assert row is not None
    return dict(zip(WRITTEN, map(int, row), strict=True))
