"""Scheduled reports end to end: a schedule due in the test's clock makes exactly one report and one
email (a local aiosmtpd server) through the real Redis broker, Dramatiq workers and the notification
outbox; workers killed in the middle of making it and in the middle of sending it, and a run stopped
between its commit and its send, never cause a second email; failures are retried and then
recorded, in the run's history from the outbox rows; the CLI manages schedules and downloads what
was made."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from analytics.notify.outbox import RetryPolicy, send_due
from cli import main
from netpulse.config import Settings, get_settings, load_settings
from reports.runs import execute_run, get_run, list_runs, run_file
from reports.schedules import add_schedule
from tests.conftest import REDIS_URL
from tests.factories import make_devices

NAIROBI = "Africa/Nairobi"
# The test's clock: 06:01 in Nairobi on 3 Nov 2026; a daily 06:00 schedule is due for 2 Nov.
NOW = datetime(2026, 11, 3, 3, 1, tzinfo=UTC)
DAY = (datetime(2026, 11, 1, 21, tzinfo=UTC), datetime(2026, 11, 2, 21, tzinfo=UTC))


@dataclass
class Mailbox:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    on_data: Callable[[], str | None] | None = None  # runs before the reply; returns a reply to send instead


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        box = Mailbox(int(s.getsockname()[1]))

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            reply = box.on_data() if box.on_data else None
            if reply is None or reply.startswith("250"):
                msg = message_from_bytes(envelope.content, policy=policy.default)
                assert isinstance(msg, EmailMessage)
                box.messages.append(msg)
            return reply or "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


def _settings(db_url: str, smtp: Mailbox, **extra: Any) -> Settings:
    return load_settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False,
                         email_from="netpulse@example.com", notify_timeout_s=5.0, **extra)


def _org(db: psycopg.Connection) -> uuid.UUID:
    org = db.execute("INSERT INTO organizations (name, slug, time_zone) VALUES ('Acme', 'acme', %s) RETURNING id",
                     (NAIROBI,)).fetchone()[0]
    devices = make_devices(db, org, 3)
    for device, down_at in zip(devices, (None, 10, 20), strict=True):
        db.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, from_status,"
                   " to_status) VALUES (%s, %s, %s, %s, 'unknown', 'up')", (org, device, DAY[0] - timedelta(days=3),
                                                                           DAY[0] - timedelta(days=3)))
        if down_at is not None:
            start = DAY[0] + timedelta(hours=down_at)
            db.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, from_status,"
                       " to_status) VALUES (%s, %s, %s, %s, 'up', 'down'), (%s, %s, %s, %s, 'down', 'up')",
                       (org, device, start, start, org, device, start + timedelta(minutes=30),
                        start + timedelta(minutes=30)))
    db.execute("INSERT INTO notification_channels (organization_id, name, kind, config) VALUES (%s, 'managers',"
               " 'smtp', %s), (%s, 'noc-slack', 'slack', %s)",
               (org, Jsonb({"to": ["boss@example.com"]}), org, Jsonb({"url": "https://hooks.example.com/x"})))
    return org


def _daily(db: psycopg.Connection, org: uuid.UUID, **extra: Any) -> int:
    schedule = add_schedule(db, org, "daily", kind="availability", frequency="daily", at="06:00",
                            channels=["managers"], **extra)
    # Created the day before the test's clock, so only the firing of 3 Nov 06:00 (for 2 Nov) is due.
    db.execute("UPDATE report_schedules SET created_at = %s WHERE id = %s", (NOW - timedelta(days=1), schedule.id))
    return schedule.id


@pytest.fixture
def runtime(db_url: str, redis_url: str) -> Iterator[Any]:
    from workers import broker as broker_mod
    from workers import runtime as runtime_mod

    runtime_mod.configure(runtime_mod.Runtime(db_url))
    broker = broker_mod.install(broker_mod.make_broker(url=redis_url))
    yield broker
    broker.close()


def test_a_due_schedule_makes_one_report_and_one_email(db: psycopg.Connection, db_url: str, smtp: Mailbox,
                                                       runtime: Any) -> None:
    from dramatiq import Worker

    from workers import notify as notify_actors
    from workers import reports as report_actors

    org = _org(db)
    schedule_id = _daily(db, org)
    report_actors.configure(_settings(db_url, smtp))
    notify_actors.configure(_settings(db_url, smtp))
    worker = Worker(runtime, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        claimed = report_actors.tick(NOW)
        assert len(claimed) == 1
        runtime.join("reports")
        runtime.join("notifications")  # the run's email, asked for after its commit
        worker.join()
        # Later ticks the same day find it claimed; a tick of the day before finds it not due yet.
        assert report_actors.tick(NOW + timedelta(minutes=1)) == []
        assert report_actors.tick(NOW + timedelta(hours=5)) == []
        notify_actors.sweep_outbox.send()  # the sweeper finds nothing left to send
        runtime.join("reports")
        runtime.join("notifications")
    finally:
        worker.stop()
        report_actors.configure(None)
        notify_actors.configure(None)

    [run] = list_runs(db, org)[0]
    assert (run.status, run.attempts, run.schedule_name) == ("succeeded", 1, "daily")
    assert (run.period.start, run.period.end, run.period.label) == (*DAY, "2 Nov 2026")
    assert run.pages and run.duration_s is not None and run.figures
    assert run.figures["availability_pct"] == pytest.approx(100 * (1 - 3600 / (3 * 86400)))
    assert [(d.channel, d.status) for d in run.deliveries] == [("managers", "sent")]
    [mail] = smtp.messages
    assert mail["Subject"] == "[NetPulse REPORT] Availability report: All devices, 2 Nov 2026"
    assert mail["To"] == "boss@example.com"
    # The outbox key is the schedule and period, then the channel: it travels with the email.
    [(key, status, kind)] = db.execute("SELECT idempotency_key, status, kind FROM notification_outbox").fetchall()
    channel = db.execute("SELECT id FROM notification_channels WHERE name = 'managers'").fetchone()[0]
    assert (key, status, kind) == (f"report:{schedule_id}:20261101T210000Z/{channel}", "sent", "report")
    assert mail["X-NetPulse-Idempotency-Key"] == key
    # Sent: the outbox keeps no copy of the file (the run keeps the download).
    assert db.execute("SELECT count(*) FROM notification_attachments").fetchone() == (0,)
    [attachment] = list(mail.iter_attachments())
    name, content_type, content = run_file(db, org, run.id)
    assert attachment.get_filename() == name == "netpulse-availability-all-2026-11-02.pdf"
    assert attachment.get_content() == content and content.startswith(b"%PDF")
    body = mail.get_body(("plain",))
    assert body is not None and "Availability: 98.611 %" in body.get_content()


def _worker(db_url: str, smtp: Mailbox) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NETPULSE_DATABASE_URL": db_url, "NETPULSE_REDIS_URL": REDIS_URL,
           "NETPULSE_SMTP_HOST": "127.0.0.1", "NETPULSE_SMTP_PORT": str(smtp.port), "NETPULSE_SMTP_STARTTLS": "false",
           "NETPULSE_EMAIL_FROM": "netpulse@example.com", "NETPULSE_REPORT_RETRY_DELAY_MS": "200",
           # A claim lasts 4 x the timeout + 5 s: a killed sender's claim runs out in 9 s.
           "NETPULSE_NOTIFY_TIMEOUT_S": "1"}
    return subprocess.Popen([sys.executable, "-m", "cli", "worker", "--threads", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _outbox(db: psycopg.Connection) -> list[tuple[str, int]]:
    return db.execute("SELECT status, attempts FROM notification_outbox ORDER BY id").fetchall()


def test_killed_workers_never_send_a_report_twice(db: psycopg.Connection, db_url: str, smtp: Mailbox,
                                                  runtime: Any) -> None:
    """Worker A dies while making the report, worker B while the SMTP server is taking its email (the
    message arrives, the answer never does); worker C, with the outbox's sweeper, finds B's claim run
    out and does not send it again; worker D, a restart after all that, sends nothing either."""
    from workers import notify as notify_actors
    from workers import reports as report_actors
    from workers.queues import QueueDepth, queue_depths

    org = _org(db)
    _daily(db, org)
    workers: list[subprocess.Popen[bytes]] = []
    blocker = psycopg.connect(db_url)
    try:
        # A: hold the sites table so making the report blocks mid-way, then kill A there.
        blocker.execute("LOCK TABLE sites IN ACCESS EXCLUSIVE MODE")
        workers.append(_worker(db_url, smtp))
        [run_id] = report_actors.tick(NOW)
        _until("A to start the run", lambda: db.execute("SELECT status FROM report_runs WHERE id = %s",
                                                        (run_id,)).fetchone()[0] == "running")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        blocker.rollback()
        assert get_run(db, org, run_id).status == "running" and get_run(db, org, run_id).size is None
        assert _outbox(db) == []  # nothing to send from a run that made no file

        # B: picks the run up again, makes it, queues its email with it and dies once the SMTP server
        # has the message.
        def kill_b() -> str:
            workers[1].send_signal(signal.SIGKILL)
            workers[1].wait()
            return "250 accepted, but nobody is listening any more"

        smtp.on_data = kill_b
        workers.append(_worker(db_url, smtp))
        _until("the run to be handed out again", lambda: report_actors.tick(NOW + timedelta(minutes=3)) == [run_id])
        _until("B to be killed mid-send", lambda: workers[1].poll() is not None)
        # The server keeps the message once kill_b has returned, a moment after B is gone.
        _until("the SMTP server to keep B's message", lambda: len(smtp.messages) == 1)
        run = get_run(db, org, run_id)
        assert run.status == "succeeded" and [(d.channel, d.status) for d in run.deliveries] == [
            ("managers", "sending")]

        # C: the sweeper finds B's claim run out; the email may have gone, so it is not sent again.
        smtp.on_data = None
        workers.append(_worker(db_url, smtp))

        def swept() -> bool:
            notify_actors.sweep_outbox.send()  # as the scheduler does every few seconds
            time.sleep(1.0)
            return _outbox(db) == [("unconfirmed", 1)]

        _until("C to find B's claim run out", swept)
        run = get_run(db, org, run_id)

        # D: a restart finds nothing to make and nothing to send.
        workers[2].terminate()
        workers[2].wait(10)
        workers.append(_worker(db_url, smtp))
        assert report_actors.tick(NOW + timedelta(minutes=9)) == []
        notify_actors.sweep_outbox.send()
        _until("D to run the sweep", lambda: queue_depths(runtime, ("notifications",))["notifications"]
               == QueueDepth(0, 0, 0, 0))
    finally:
        blocker.close()
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.wait(10)
    assert len(smtp.messages) == 1
    assert run.attempts == 2 and run.size and [(d.channel, d.status) for d in run.deliveries] == [
        ("managers", "unconfirmed")]
    [delivery] = run.deliveries
    assert delivery.error is not None and "not sent again" in delivery.error
    assert _outbox(db) == [("unconfirmed", 1)]
    attempts = db.execute("SELECT attempt, status FROM notification_deliveries ORDER BY id").fetchall()
    assert attempts == [(1, "unknown")]  # B's attempt, recorded by C as one whose outcome nobody knows


def test_a_run_stopped_between_its_commit_and_its_send_only_delays_the_email(
        db: psycopg.Connection, db_url: str, smtp: Mailbox) -> None:
    """The run's file and its email rows commit together; nothing asks for the send (the worker died
    right after the commit): the outbox's sweeper sends it, once, however often it runs."""
    org = _org(db)
    _daily(db, org)
    settings = _settings(db_url, smtp)
    from reports.runs import claim_due

    [run_id] = claim_due(db, NOW)
    outcome = execute_run(db, run_id)
    assert outcome.status == "succeeded" and len(outcome.outbox_ids) == 1
    run = get_run(db, org, run_id)
    assert run.status == "succeeded" and [(d.channel, d.status) for d in run.deliveries] == [("managers", "queued")]
    assert execute_run(db, run_id).status == "done"  # a second message for the run queues nothing
    assert smtp.messages == []

    def sweep() -> Any:
        return send_due(lambda: psycopg.connect(db_url, autocommit=True), settings=settings,
                        policy=RetryPolicy.from_settings(settings))

    assert sweep().sent == 1 and sweep().results == []
    assert len(smtp.messages) == 1
    [delivery] = get_run(db, org, run_id).deliveries
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 1, None)


def test_failures_are_retried_then_recorded(db: psycopg.Connection, db_url: str, smtp: Mailbox) -> None:
    org = _org(db)
    schedule_id = _daily(db, org)
    settings = _settings(db_url, smtp)
    from reports.runs import claim_due

    [run_id] = claim_due(db, NOW)
    # An email the server refuses for now is retried by the outbox, then recorded as failed.
    smtp.on_data = lambda: "451 4.3.0 mailbox busy, try later"
    assert execute_run(db, run_id, max_attempts=2).status == "succeeded"
    policy = RetryPolicy(max_retries=1, min_backoff_ms=300, max_backoff_ms=300)

    def sweep() -> Any:
        return send_due(lambda: psycopg.connect(db_url, autocommit=True), settings=settings, policy=policy)

    assert sweep().retrying == 1
    [delivery] = get_run(db, org, run_id).deliveries
    assert (delivery.status, delivery.attempts) == ("retrying", 1) and "451" in (delivery.error or "")
    time.sleep(0.5)  # the backoff (300 ms plus up to 25 %)
    assert sweep().failed == 1
    run = get_run(db, org, run_id)
    [delivery] = run.deliveries
    assert (run.status, run.attempts) == ("succeeded", 1)
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert delivery.error is not None and delivery.error.startswith("provider answered 451 4.3.0 mailbox busy")
    assert run_file(db, org, run_id)[2].startswith(b"%PDF")  # still downloadable
    assert smtp.messages == [] and execute_run(db, run_id).status == "done"

    # A report that cannot be made (its site is gone) fails with why, after its attempts.
    site = db.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, 'Kisumu', 'kisumu') RETURNING id",
                      (org,)).fetchone()[0]
    db.execute("UPDATE report_schedules SET scope = 'site', scope_ref = 'Kisumu' WHERE id = %s", (schedule_id,))
    db.execute("DELETE FROM sites WHERE id = %s", (site,))
    [run_id] = claim_due(db, NOW + timedelta(days=1))
    assert execute_run(db, run_id, max_attempts=2).status == "retry"
    outcome = execute_run(db, run_id, max_attempts=2)
    assert outcome.status == "failed"
    assert outcome.error == "making the report: no site named 'Kisumu' in this organization"
    with pytest.raises(Exception, match="has no file yet \\(it failed: making the report"):
        run_file(db, org, run_id)


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_cli_schedules_history_and_download(db: psycopg.Connection, db_url: str, smtp: Mailbox, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    org = _org(db)
    for key, value in {"NETPULSE_DATABASE_URL": db_url, "NETPULSE_SMTP_HOST": "127.0.0.1",
                       "NETPULSE_SMTP_PORT": str(smtp.port), "NETPULSE_SMTP_STARTTLS": "false",
                       "NETPULSE_EMAIL_FROM": "netpulse@example.com"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        r = _cli("report", "schedule", "add", "weekly-alerts", "--report", "alerts", "--every", "weekly",
                 "--day", "mon", "--at", "07:30", "--email", "managers", "--format", "csv")
        assert r.exit_code == 0, r.output
        assert r.stdout == ("added schedule 'weekly-alerts': alerts report for All devices, weekly (cron '30 7 * * 1' "
                            "in Africa/Nairobi), emailed to managers\n")
        for args, message in [
            (["--every", "cron", "--cron", "61 * * * *"], "Error: --cron: '61 * * * *' is not a cron expression"),
            (["--email", "noc-slack"], "Error: channel(s) 'noc-slack' cannot carry a file: reports go to email"),
            (["--email", "nobody"], "Error: no notification channel named 'nobody'"),
            (["--time-zone", "Mars/Olympus"], "Error: --time-zone: 'Mars/Olympus' is not a time zone"),
            (["--every", "monthly", "--day", "31"], "Error: --day: '31' is not a day of the month from 1 to 28"),
            (["--scope", "site:Nowhere"], "Error: no site named 'Nowhere' in this organization"),
        ]:
            r = _cli("report", "schedule", "add", "bad", "--report", "availability", *args)
            assert r.exit_code == 1 and r.stderr.startswith(message), (args, r.stderr)
        r = _cli("report", "schedule", "add", "weekly-alerts", "--report", "alerts")
        assert r.exit_code == 1 and "already exists" in r.stderr

        r = _cli("report", "schedule", "run", "weekly-alerts", "--period", "2026-10-26..2026-11-02")
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith("run ") and "succeeded" in r.stdout and "managers: sent" in r.stdout
        r = _cli("report", "schedule", "run", "weekly-alerts", "--period", "2026-10-26..2026-11-02")
        assert r.exit_code == 0 and "already (succeeded)" in r.stdout and len(smtp.messages) == 1

        r = _cli("report", "schedule", "list")
        assert r.exit_code == 0 and r.stdout.splitlines()[2].split()[:4] == ["weekly-alerts", "alerts", "all", "csv"]
        r = _cli("report", "history")
        assert r.exit_code == 0 and r.stdout.splitlines()[2].split()[1:4] == ["weekly-alerts", "alerts", "all"]
        [run], _ = list_runs(db, org)
        r = _cli("report", "download", str(run.id), "-o", str(tmp_path / "x.csv"))
        assert r.exit_code == 0 and (tmp_path / "x.csv").read_text().startswith("section,field,value")
        r = _cli("report", "download", "999999")
        assert r.exit_code == 1 and r.stderr == "Error: no report run 999999 in this organization\n"
        r = _cli("report", "schedule", "remove", "weekly-alerts")
        assert r.exit_code == 0 and r.stdout == "removed schedule 'weekly-alerts'\n"
        assert list_runs(db, org)[1] == 1  # the history stays
        r = _cli("report", "schedule", "remove", "weekly-alerts")
        assert r.exit_code == 1 and "no report schedule named 'weekly-alerts'" in r.stderr
    finally:
        get_settings.cache_clear()


def test_report_deliveries_move_to_the_outbox(empty_db_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A database whose report emails were recorded in report_deliveries: finished emails become
    finished outbox rows under the key the reports use now, so the history keeps them and a resumed
    run queues only what the old code would still have sent."""
    import shutil

    import netpulse.migrations as mig
    from netpulse.migrations import migrate

    before = tmp_path / "sql"
    shutil.copytree(mig.SQL_DIR, before)
    for path in (before / "migrations").glob("*.sql"):
        if int(path.name[:4]) >= 55:
            path.unlink()
    monkeypatch.setattr(mig.discover, "__defaults__", (before,))
    migrate(empty_db_url, requested="postgres")
    with psycopg.connect(empty_db_url, autocommit=True) as db:
        org = _org(db)
        schedule_id = _daily(db, org)
        db.execute("UPDATE report_schedules SET channels = '{managers,board}' WHERE id = %s", (schedule_id,))
        db.execute("INSERT INTO notification_channels (organization_id, name, kind, config) VALUES (%s, 'board', "
                   "'smtp', %s)", (org, Jsonb({"to": ["board@example.com"]})))
        channels = dict(db.execute("SELECT name, id FROM notification_channels").fetchall())
        runs = {}
        for day, status in ((1, "succeeded"), (2, "pending"), (3, "failed")):
            start = DAY[0] + timedelta(days=day)
            runs[status] = db.execute(
                "INSERT INTO report_runs (organization_id, schedule_id, schedule_name, kind, scope, format, time_zone,"
                " period_start, period_end, status, attempts, file_name, content_type, content, figures, finished_at)"
                " VALUES (%s, %s, 'daily', 'availability', 'all', 'pdf', %s, %s, %s, %s, 1, 'r.pdf', 'application/pdf',"
                " %s, '{}', CASE WHEN %s = 'pending' THEN NULL ELSE now() END) RETURNING id",
                (org, schedule_id, NAIROBI, start, start + timedelta(days=1), status, b"%PDF-1.4 test", status),
            ).fetchone()[0]
        old = [(runs["succeeded"], "managers", "sent"), (runs["succeeded"], "board", "unconfirmed"),
               (runs["pending"], "managers", "sent"), (runs["pending"], "board", "failed"),
               (runs["failed"], "managers", "failed")]
        for run, channel, status in old:
            db.execute("INSERT INTO report_deliveries (run_id, channel_id, status, provider_status, error, finished_at)"
                       " VALUES (%s, %s, %s, %s, %s, now())",
                       (run, channels[channel], status, 250 if status == "sent" else None,
                        None if status == "sent" else f"{status} in the old table"))

    monkeypatch.setattr(mig.discover, "__defaults__", (mig.SQL_DIR,))
    migrate(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as db:
        assert db.execute("SELECT to_regclass('report_deliveries')").fetchone() == (None,)
        history = {run_id: [(d.channel, d.status, d.error) for d in get_run(db, org, run_id).deliveries]
                   for run_id in runs.values()}
        assert history == {
            runs["succeeded"]: [("board", "unconfirmed", "unconfirmed in the old table"), ("managers", "sent", None)],
            runs["pending"]: [("managers", "sent", None)],  # board's email is still to be sent by the run
            runs["failed"]: [("managers", "failed", "failed in the old table")],
        }
        assert sorted(r[0] for r in db.execute("SELECT status FROM notification_deliveries")) == [
            "failed", "sent", "sent", "unknown"]
        # The unfinished run, resumed, queues the email the old code would still have sent, and only that.
        outcome = execute_run(db, runs["pending"])
        assert outcome.status == "succeeded" and len(outcome.outbox_ids) == 1
        key = db.execute("SELECT idempotency_key FROM notification_outbox WHERE id = %s",
                         (outcome.outbox_ids[0],)).fetchone()[0]
        assert key == f"report:{schedule_id}:20261103T210000Z/{channels['board']}"
        assert [(d.channel, d.status) for d in get_run(db, org, runs["pending"]).deliveries] == [
            ("board", "queued"), ("managers", "sent")]
