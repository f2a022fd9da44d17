"""Reports through the API: asked for, made by a real Dramatiq worker on the Redis broker, followed and
downloaded; schedules added, listed and removed; who may do what; and a broker that does not answer
losing nothing. The report figures themselves are checked in tests/test_reports.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from dramatiq import Worker
from flask import Flask
from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from dashboard.app import create_app
from dashboard.auth import issue_access_token
from netpulse import organizations, users
from netpulse.config import load_settings
from netpulse.db import make_sessionmaker
from netpulse.schema import Role
from reports.runs import get_run, run_file, runs_to_resume
from tests.apiworld import PASSWORD, SECRET, bearer, row_counts
from tests.factories import make_devices

DAY = datetime(2026, 11, 2, tzinfo=UTC)
ASK = {"kind": "availability", "scope": "all", "period": "2026-11-02..2026-11-03", "format": "pdf"}


@pytest.fixture
def broker(db_url: str, redis_url: str) -> Iterator[Any]:
    """The workers' side: the actors declared on a Redis broker, the database runtime, report settings."""
    from workers import broker as broker_mod
    from workers import reports as report_actors
    from workers import runtime as runtime_mod

    runtime_mod.configure(runtime_mod.Runtime(db_url))
    report_actors.configure(load_settings(database_url=db_url, env="testing"))
    broker = broker_mod.install(broker_mod.make_broker(url=redis_url))
    yield broker
    report_actors.configure(None)
    broker.close()


def work_off(broker: Any) -> None:
    """A worker makes every report run waiting on the broker, then stops."""
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        broker.join("reports")
        worker.join()
    finally:
        worker.stop()


def make_app(db_url: str, engine: Engine, redis_url: str, *, broker_url: str | None) -> Flask:
    """The web side, as ``netpulse serve`` builds it: its own broker object that declares no actor."""
    from workers.broker import make_broker
    from workers.client import report_sender

    send = report_sender(make_broker(url=broker_url)) if broker_url else None
    return create_app(load_settings(database_url=db_url, redis_url=redis_url, secret_key=SECRET, env="testing"),
                      engine=engine, send_report=send)


class Tenant:
    """An organization with three devices (one down for an hour on 2 Nov) and a user per role."""

    def __init__(self, app: Flask, engine: Engine, db: psycopg.Connection, slug: str) -> None:
        with make_sessionmaker(engine).begin() as session:
            org = organizations.create_organization(session, slug.title(), slug)
            made = {role: users.create_user(session, org.id, f"{role.value}@{slug}.test", PASSWORD, role=role)
                    for role in Role}
        self.org = org.id
        with app.app_context():
            self.headers = {role.value: bearer(issue_access_token(user)) for role, user in made.items()}
        devices = make_devices(db, org.id, 3)
        events = [(d, DAY - timedelta(days=3), "unknown", "up") for d in devices]
        events += [(devices[0], DAY + timedelta(hours=10), "up", "down"), (devices[0], DAY + timedelta(hours=11),
                                                                             "down", "up")]
        for device, t, was, now in events:
            db.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, from_status,"
                       " to_status) VALUES (%s, %s, %s, %s, %s, %s)", (org.id, device, t, t, was, now))
        db.execute("INSERT INTO notification_channels (organization_id, name, kind, config) VALUES (%s, 'managers',"
                   " 'smtp', %s), (%s, 'noc-slack', 'slack', %s)",
                   (org.id, Jsonb({"to": ["boss@example.com"]}), org.id, Jsonb({"url": "https://hooks.example.com/x"})))


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.get_data(as_text=True)[:600]
    return r.get_json()["data"]


def error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)[:600]
    body = r.get_json()
    assert body["success"] is False and body["error"]["code"] == code, body
    return dict(body["error"])


def test_a_report_asked_for_is_made_by_a_worker_and_downloaded(db_url: str, engine: Engine, db: psycopg.Connection,
                                                               redis_url: str, broker: Any) -> None:
    app = make_app(db_url, engine, redis_url, broker_url=redis_url)
    acme = Tenant(app, engine, db, "acme")
    client = app.test_client()
    operator = acme.headers["operator"]

    asked = client.post("/api/v1/reports/generate", json=ASK, headers=operator)
    run = ok(asked, 202)
    assert asked.headers["Location"] == f"/api/v1/reports/{run['id']}"
    assert (run["status"], run["kind"], run["scope"], run["format"], run["download"]) == (
        "pending", "availability", "all", "pdf", None)
    assert (run["period"]["start"], run["period"]["end"], run["period"]["label"]) == (
        "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z", "2 Nov 2026")
    # Nothing was made in the web request: the file comes from the worker.
    error(client.get(f"/api/v1/reports/{run['id']}/file", headers=operator), 404, "REPORT_FILE_NOT_FOUND")

    work_off(broker)

    made = ok(client.get(f"/api/v1/reports/{run['id']}", headers=acme.headers["viewer"]))
    assert made["status"] == "succeeded" and made["attempts"] == 1 and made["pages"] >= 1
    assert made["figures"]["availability_pct"] == pytest.approx(100 * (1 - 3600 / (3 * 86400)))
    assert made["download"] == f"/api/v1/reports/{run['id']}/file" and made["content_type"] == "application/pdf"
    file = client.get(made["download"], headers=acme.headers["viewer"])
    assert file.status_code == 200 and file.mimetype == "application/pdf" and file.data.startswith(b"%PDF")
    assert file.headers["Content-Disposition"] == f'attachment; filename="{made["file_name"]}"'
    assert made["file_name"] == "netpulse-availability-all-2026-11-02.pdf" and made["size"] == len(file.data)
    assert file.data == run_file(db, acme.org, run["id"])[2]

    listed = client.get("/api/v1/reports", headers=acme.headers["viewer"]).get_json()
    assert [r["id"] for r in listed["data"]] == [run["id"]] and listed["pagination"]["total"] == 1


def test_a_csv_report_downloads_as_csv(db_url: str, engine: Engine, db: psycopg.Connection, redis_url: str,
                                       broker: Any) -> None:
    app = make_app(db_url, engine, redis_url, broker_url=redis_url)
    acme = Tenant(app, engine, db, "acme")
    client = app.test_client()
    run = ok(client.post("/api/v1/reports/generate", json={**ASK, "kind": "alerts", "format": "csv"},
                         headers=acme.headers["admin"]), 202)
    work_off(broker)
    file = client.get(f"/api/v1/reports/{run['id']}/file", headers=acme.headers["admin"])
    assert file.status_code == 200 and file.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert file.headers["Content-Disposition"].endswith('.csv"') and file.data.decode("utf-8").strip()


def test_who_may_read_ask_for_and_schedule_reports(db_url: str, engine: Engine, db: psycopg.Connection,
                                                   redis_url: str) -> None:
    """report:read for viewers and operators, report:write for operators (and admins), nothing for API users."""
    app = make_app(db_url, engine, redis_url, broker_url=None)
    acme = Tenant(app, engine, db, "acme")
    client = app.test_client()
    schedule = {"name": "weekly", "kind": "performance", "frequency": "weekly"}
    for role in ("viewer", "api_user"):
        error(client.post("/api/v1/reports/generate", json=ASK, headers=acme.headers[role]), 403,
              "INSUFFICIENT_PERMISSIONS")
        error(client.post("/api/v1/report-schedules", json=schedule, headers=acme.headers[role]), 403,
              "INSUFFICIENT_PERMISSIONS")
    error(client.get("/api/v1/reports", headers=acme.headers["api_user"]), 403, "INSUFFICIENT_PERMISSIONS")
    assert ok(client.get("/api/v1/reports", headers=acme.headers["viewer"])) == []
    ok(client.post("/api/v1/reports/generate", json=ASK, headers=acme.headers["operator"]), 202)
    ok(client.post("/api/v1/report-schedules", json=schedule, headers=acme.headers["operator"]), 201)
    assert [s["name"] for s in ok(client.get("/api/v1/report-schedules", headers=acme.headers["viewer"]))] == ["weekly"]
    error(client.delete("/api/v1/report-schedules/weekly", headers=acme.headers["viewer"]), 403,
          "INSUFFICIENT_PERMISSIONS")
    assert ok(client.delete("/api/v1/report-schedules/weekly", headers=acme.headers["operator"])) == {"deleted": 1}


def test_another_organizations_reports_are_not_found(db_url: str, engine: Engine, db: psycopg.Connection,
                                                     redis_url: str) -> None:
    app = make_app(db_url, engine, redis_url, broker_url=None)
    acme, other = Tenant(app, engine, db, "acme"), Tenant(app, engine, db, "other")
    client = app.test_client()
    run = ok(client.post("/api/v1/reports/generate", json=ASK, headers=other.headers["admin"]), 202)
    ok(client.post("/api/v1/report-schedules", json={"name": "theirs", "kind": "alerts"},
                   headers=other.headers["admin"]), 201)
    for path in (f"/api/v1/reports/{run['id']}", f"/api/v1/reports/{run['id']}/file"):
        error(client.get(path, headers=acme.headers["admin"]), 404, "REPORT_RUN_NOT_FOUND")
    error(client.get("/api/v1/report-schedules/theirs", headers=acme.headers["admin"]), 404, "SCHEDULE_NOT_FOUND")
    error(client.delete("/api/v1/report-schedules/theirs", headers=acme.headers["admin"]), 404, "SCHEDULE_NOT_FOUND")
    assert ok(client.get("/api/v1/reports", headers=acme.headers["admin"])) == []
    assert ok(client.get("/api/v1/reports?schedule=theirs", headers=acme.headers["admin"])) == []
    assert ok(client.get("/api/v1/report-schedules/theirs", headers=other.headers["admin"]))["name"] == "theirs"


BAD_ASKS = [
    ({"scope": "site:Atlantis"}, "scope", "no site named 'Atlantis'"),
    ({"scope": "planet:Mars"}, "scope", "'planet:Mars' is not a scope; use all, or site:NAME"),
    ({"period": "soon"}, "period", "'soon' is not a period; use last-month"),
    ({"period": "2026-11-03..2026-11-02"}, "period", "2026-11-02 00:00 UTC is not after 2026-11-03 00:00 UTC"),
    ({"kind": "weather"}, "kind", "'availability', 'performance' or 'alerts'"),
    ({"format": "docx"}, "format", "'pdf' or 'csv'"),
]


@pytest.mark.parametrize(("change", "field", "says"), BAD_ASKS, ids=[c[1] + "-" + str(i) for i, c in
                                                                    enumerate(BAD_ASKS)])
def test_a_bad_request_for_a_report_is_422_naming_the_field_and_records_nothing(
        db_url: str, engine: Engine, db: psycopg.Connection, redis_url: str, change: dict[str, str], field: str,
        says: str) -> None:
    app = make_app(db_url, engine, redis_url, broker_url=None)
    acme = Tenant(app, engine, db, "acme")
    before = row_counts(db_url)
    err = error(app.test_client().post("/api/v1/reports/generate", json={**ASK, **change},
                                       headers=acme.headers["admin"]), 422, "INVALID_INPUT")
    assert list(err["details"]) == [field] and says in err["message"], err
    assert row_counts(db_url) == before


def test_schedules_are_checked_added_listed_and_removed_keeping_their_reports(
        db_url: str, engine: Engine, db: psycopg.Connection, redis_url: str) -> None:
    app = make_app(db_url, engine, redis_url, broker_url=None)
    acme = Tenant(app, engine, db, "acme")
    db.execute("UPDATE organizations SET time_zone = 'Africa/Nairobi' WHERE id = %s", (acme.org,))
    client, admin = app.test_client(), acme.headers["admin"]
    body = {"name": "nbo-monthly", "kind": "availability", "scope": "all", "frequency": "monthly", "at": "07:00",
            "day": 2, "channels": ["managers"]}
    bad = [({"channels": ["nobody"]}, "channels"), ({"channels": ["noc-slack"]}, "channels"),
           ({"time_zone": "Mars/Olympus"}, "time_zone"), ({"at": "25:00"}, "at"), ({"scope": "tag:none"}, "scope"),
           ({"frequency": "cron"}, "cron"), ({"day": 31}, "day")]
    for change, field in bad:
        err = error(client.post("/api/v1/report-schedules", json={**body, **change}, headers=admin), 422,
                    "INVALID_INPUT")
        assert field in err["details"], (change, err)
    assert ok(client.get("/api/v1/report-schedules", headers=admin)) == []

    made = ok(client.post("/api/v1/report-schedules", json=body, headers=admin), 201)
    assert (made["cron"], made["time_zone"], made["time_zone_set"], made["channels"]) == (
        "0 7 2 * *", "Africa/Nairobi", False, ["managers"])
    error(client.post("/api/v1/report-schedules", json=body, headers=admin), 409, "SCHEDULE_ALREADY_EXISTS")
    assert ok(client.get("/api/v1/report-schedules/nbo-monthly", headers=admin)) == made

    # A run of the schedule (as the scheduler claims one) stays after the schedule goes.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO report_runs (organization_id, schedule_id, schedule_name, kind, scope, format,"
                     " time_zone, period_start, period_end) VALUES (%s, %s, 'nbo-monthly', 'availability', 'all',"
                     " 'pdf', 'Africa/Nairobi', %s, %s)", (acme.org, made["id"], DAY, DAY + timedelta(days=1)))
    assert ok(client.delete("/api/v1/report-schedules/nbo-monthly", headers=admin)) == {"deleted": 1}
    error(client.get("/api/v1/report-schedules/nbo-monthly", headers=admin), 404, "SCHEDULE_NOT_FOUND")
    [kept] = ok(client.get("/api/v1/reports?schedule=nbo-monthly", headers=admin))
    assert (kept["schedule"], kept["status"]) == ("nbo-monthly", "pending")


def test_a_broker_that_does_not_answer_loses_no_report(db_url: str, engine: Engine, db: psycopg.Connection,
                                                       redis_url: str) -> None:
    """The run is recorded and answered 202; the scheduler hands it out once it has waited long enough.
    Without a sender at all (no broker given to the app), the next tick hands it out."""
    dead = make_app(db_url, engine, redis_url, broker_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    acme = Tenant(dead, engine, db, "acme")
    run = ok(dead.test_client().post("/api/v1/reports/generate", json=ASK, headers=acme.headers["admin"]), 202)
    now = datetime.now(UTC)
    assert run["id"] not in runs_to_resume(db, now)             # handed out a moment ago, as far as it knows
    assert run["id"] in runs_to_resume(db, now + timedelta(minutes=3))
    assert get_run(db, acme.org, run["id"]).status == "pending"

    unsent = make_app(db_url, engine, redis_url, broker_url=None)
    other = ok(unsent.test_client().post("/api/v1/reports/generate", json=ASK, headers=acme.headers["admin"]), 202)
    assert other["id"] in runs_to_resume(db, now)


def test_the_document_lists_what_the_reports_package_makes(db_url: str, engine: Engine, redis_url: str) -> None:
    from reports.generate import CONTENT_TYPES, FORMATS, KINDS

    doc = make_app(db_url, engine, redis_url, broker_url=None).test_client().get("/api/v1/openapi.json").get_json()
    body = doc["components"]["schemas"]["GenerateBody"]["properties"]
    assert tuple(body["kind"]["enum"]) == KINDS and tuple(body["format"]["enum"]) == FORMATS
    files = doc["paths"]["/api/v1/reports/{run_id}/file"]["get"]["responses"]["200"]["content"]
    assert set(files) == {CONTENT_TYPES[f] for f in FORMATS}


def test_sender_and_actor_agree_on_names() -> None:
    from workers import client
    from workers.reports import generate_report

    assert (generate_report.actor_name, generate_report.queue_name) == (client.GENERATE_REPORT, client.REPORTS)
