"""The notification outbox against the real database, Redis, RabbitMQ and local provider stand-ins:
messages written with the alert decision, claims that two senders never share, idempotency keys on
the wire, no silent routing holes, digests and report mails through the same path."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from analytics.alerts import AlertEngine, Finding, counts, digest, history, list_alerts
from analytics.notify import Attachment, Message, Notification, RetryPolicy, enqueue, send_due
from analytics.notify.outbox import backlog, claim, deliver
from analytics.rules import Rule, save_rules
from netpulse.config import Settings, load_settings
from netpulse.metrics import MetricKind
from tests.factories import make_channel, make_devices, make_org, telemetry_counts
from tests.faultlab import wait_for
from tests.stubs import Mailbox, Stub

SECRET = "s3cret-webhook-key-0123456789"
NOW = datetime.now(UTC).replace(microsecond=0)


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"email_from": "netpulse@example.com", "notify_timeout_s": 2.0,
                            "notify_min_backoff_ms": 200, "notify_max_backoff_ms": 2000, "notify_max_retries": 2,
                            "notify_link_base_url": "http://noc.example.com"}
    return load_settings(**{**base, **overrides})


def connector(url: str) -> Callable[[], Any]:
    @contextmanager
    def connect() -> Iterator[psycopg.Connection]:
        with psycopg.connect(url, autocommit=True) as conn:
            yield conn
    return connect


def policy(db: psycopg.Connection, org: uuid.UUID, *tiers: list[str]) -> None:
    db.execute("INSERT INTO escalation_policies (organization_id, name, steps) VALUES (%s, 'default', %s)",
               (org, Jsonb([{"after_s": 600 * i, "channels": t} for i, t in enumerate(tiers)])))


def critical_rule(db: psycopg.Connection, org: uuid.UUID, severity: str = "critical") -> Rule:
    (saved,) = save_rules(db, org, [Rule(f"latency {severity}", "threshold", severity, metric=MetricKind.ICMP_RTT_MS,
                                         comparator=">", value=100, clear_value=80)])
    return saved


def fire(db: psycopg.Connection, org: uuid.UUID, rule: Rule, device: int, at: datetime = NOW) -> Any:
    return AlertEngine().apply(db, org, [Finding(rule, device, True, at, value=150.0)], at)


def outbox(db: psycopg.Connection) -> list[tuple[Any, ...]]:
    return db.execute("SELECT o.kind, c.name, o.status, o.attempts, o.idempotency_key FROM notification_outbox o "
                      "JOIN notification_channels c ON c.id = o.channel_id ORDER BY o.id").fetchall()


# --- written with the decision ------------------------------------------------------------------------

def test_a_decision_and_its_messages_commit_together(db: psycopg.Connection) -> None:
    org = make_org(db)
    make_channel(db, org, "hooks", "webhook", {"url": "http://127.0.0.1:9/x", "secret": SECRET})
    policy(db, org, ["hooks"])
    rule = critical_rule(db, org)
    (dev,) = make_devices(db, org, 1)

    class Crash(Exception):
        pass

    with pytest.raises(Crash), db.transaction():  # the evaluation dies after the engine ran
        fire(db, org, rule, dev)
        raise Crash
    assert db.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    assert outbox(db) == []
    fire(db, org, rule, dev)
    [(alert_id,)] = db.execute("SELECT id FROM alerts").fetchall()
    assert outbox(db) == [("alert", "hooks", "queued", 0, f"alert:{alert_id}:opened:0/{_channel_id(db, 'hooks')}")]
    # Queued is not notified: notified_at waits for a delivery that succeeds.
    assert db.execute("SELECT notified_at, delivery_status FROM alerts").fetchone() == (None, "pending")
    assert [k for _, k, _, _ in history(db, alert_id)] == ["opened", "queued"]


def _channel_id(db: psycopg.Connection, name: str) -> int:
    row = db.execute("SELECT id FROM notification_channels WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


# --- no silent routing holes ------------------------------------------------------------------------------

def test_a_critical_alert_without_a_usable_policy_goes_to_every_enabled_channel(
        db: psycopg.Connection, log_events: list[dict[str, Any]]) -> None:
    org = make_org(db)
    make_channel(db, org, "mail", "sendgrid", {"to": ["noc@acme.test"]})
    make_channel(db, org, "chat", "slack", {"url": "https://hooks.slack.com/services/T/B/x"})
    make_channel(db, org, "off", "slack", {"url": "https://hooks.slack.com/services/T/B/y"}, enabled=False)
    rule = critical_rule(db, org)
    a, b = make_devices(db, org, 2)
    no_policy = fire(db, org, rule, a)  # no policy at all
    assert [(n.reason, n.channels) for n in no_policy.notify] == [("opened", ("chat", "mail"))]
    [warned] = [e for e in log_events if e["event"] == "netpulse.alerts.unrouted"]
    assert warned["sent_to"] == ["chat", "mail"] and warned["log_level"] == "warning"
    policy(db, org, ["off", "gone"])  # a policy naming only a disabled and an unknown channel
    unusable = fire(db, org, rule, b)
    assert [(n.reason, n.channels) for n in unusable.notify] == [("opened", ("chat", "mail"))]
    assert len([e for e in log_events if e["event"] == "netpulse.alerts.unrouted"]) == 2
    assert [(k, c) for k, c, *_ in outbox(db)] == [("alert", "mail"), ("alert", "chat")] * 2


def test_no_channel_at_all_says_not_delivered(db: psycopg.Connection, log_events: list[dict[str, Any]]) -> None:
    org = make_org(db)
    policy(db, org, ["noc-email"])
    rule, warn = critical_rule(db, org), critical_rule(db, org, "warning")
    a, b, c = make_devices(db, org, 3)
    report = fire(db, org, rule, a)
    assert report.notify == [] and outbox(db) == []
    assert any(e["event"] == "netpulse.alerts.no_channel" for e in log_events)
    [alert] = list_alerts(db, org)[0]
    assert (alert["delivery_status"], alert["notified_at"]) == ("no_channel", None)
    assert [(k, n) for _, k, n, _ in history(db, alert["id"])] == [
        ("opened", None), ("undelivered", "not delivered: no channel")]
    fire(db, org, warn, b)
    with db.transaction():
        assert digest(db, org, NOW + timedelta(minutes=15)) == []
    assert counts(db, org)["undelivered"] == 2
    # A channel added later: the next critical alert goes out (and the start-up warning stops).
    make_channel(db, org, "noc-email", "sendgrid", {"to": ["noc@acme.test"]})
    assert [n.channels for n in fire(db, org, rule, c).notify] == [("noc-email",)]


def test_serve_warns_at_start_about_an_organization_without_channels(db_url: str, db: psycopg.Connection,
                                                                    redis_url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import main
    from netpulse.config import get_settings

    make_org(db, "lonely")
    org = make_org(db, "covered")
    make_channel(db, org, "mail", "sendgrid", {"to": ["noc@acme.test"]})
    monkeypatch.setenv("NETPULSE_DATABASE_URL", db_url)
    monkeypatch.setenv("NETPULSE_SECRET_KEY", secrets.token_urlsafe(48))
    monkeypatch.setenv("NETPULSE_REDIS_URL", redis_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["serve", "--get", "/healthz"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Warning: organization 'lonely' has no enabled notification channel: its alerts will show 'not delivered: "
        "no channel'. Add one with `netpulse notify channel add --org lonely ...`."]


# --- claims, keys, retries -------------------------------------------------------------------------------

def _message(org: uuid.UUID, key: str, **kw: Any) -> Message:
    note = Notification(title="Device down on core-1", severity="critical", message="No answer.",
                        started_at=NOW, device="core-1", link="/alerts/x")
    return Message(kind=kw.pop("kind", "alert"), key=key, notification=note, **kw)


def test_two_senders_never_claim_the_same_row(db_url: str, db: psycopg.Connection) -> None:
    org = make_org(db)
    channel = make_channel(db, org, "hooks", "webhook", {"url": "http://127.0.0.1:9/x", "secret": SECRET})
    for i in range(40):
        enqueue(db, org, _message(org, f"m{i}"), channel_ids=[channel])
    got: list[list[int]] = [[], []]

    def sender(k: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while rows := claim(conn, lease=30, policy=RetryPolicy(), limit=3):
                got[k] += [r.id for r in rows]

    threads = [threading.Thread(target=sender, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got[0]) + len(got[1]) == 40 and not set(got[0]) & set(got[1])
    assert db.execute("SELECT count(*) FROM notification_outbox WHERE status = 'sending'").fetchone() == (40,)
    assert backlog(db).sending == 40 and backlog(db).due == 0


def test_a_timed_out_send_is_retried_with_the_same_key_and_a_sent_row_never_again(
        db_url: str, db: psycopg.Connection, http_stub: Callable[[], Stub]) -> None:
    receiver = http_stub()
    # The first request arrives but its answer comes after the client gave up; the second is answered.
    receiver.answer((200, "slow", {}, 3.0), (200, "thanks", {}))
    org = make_org(db)
    channel = make_channel(db, org, "hooks", "webhook", {"url": receiver.url + "/in", "secret": SECRET})
    [row_id] = enqueue(db, org, _message(org, "alert:one:opened:0"), channel_ids=[channel])
    s = settings(notify_timeout_s=0.5)
    connect = connector(db_url)
    first = send_due(connect, settings=s, policy=RetryPolicy.from_settings(s))
    assert [(r.status.value, r.retry_in_ms is not None) for r in first.results] == [("failed", True)]
    time.sleep(0.6)
    second = send_due(connect, settings=s, policy=RetryPolicy.from_settings(s))
    assert [r.status.value for r in second.results] == ["sent"]
    assert send_due(connect, settings=s, policy=RetryPolicy.from_settings(s)).results == []  # nothing left
    keys = [r.headers["Idempotency-Key"] for r in receiver.seen]
    assert keys == [f"alert:one:opened:0/{channel}"] * 2  # two requests, one message: the receiver keeps one
    assert db.execute("SELECT status, attempts, sent_at IS NOT NULL FROM notification_outbox WHERE id = %s",
                      (row_id,)).fetchone() == ("sent", 2, True)
    attempts = db.execute("SELECT attempt, status, coalesce(error, '') LIKE '%%timed out%%' "
                          "FROM notification_deliveries WHERE outbox_id = %s ORDER BY id", (row_id,)).fetchall()
    assert attempts == [(1, "failed", True), (2, "sent", False)]


def test_a_dead_senders_claim_runs_out_and_the_row_goes_once_more(db_url: str, db: psycopg.Connection,
                                                                  http_stub: Callable[[], Stub]) -> None:
    receiver = http_stub()
    org = make_org(db)
    channel = make_channel(db, org, "hooks", "webhook", {"url": receiver.url + "/in", "secret": SECRET})
    [row_id] = enqueue(db, org, _message(org, "k1"), channel_ids=[channel])
    s = settings()
    policy_ = RetryPolicy.from_settings(s)
    [dead] = claim(db, lease=0.3, policy=policy_)  # a sender that claimed the row, then died
    assert send_due(connector(db_url), settings=s, policy=policy_).results == []  # still held
    time.sleep(0.4)
    report = send_due(connector(db_url), settings=s, policy=policy_)
    assert [(r.status.value, r.attempt) for r in report.results] == [("sent", 2)]
    log = db.execute("SELECT attempt, status FROM notification_deliveries WHERE outbox_id = %s ORDER BY id",
                     (row_id,)).fetchall()
    assert log == [(1, "unknown"), (2, "sent")]
    # The dead sender wakes up and reports: its claim is gone, nothing is overwritten or sent.
    late = deliver(connector(db_url), dead, settings=s, policy=policy_)
    assert late.lost_claim and len(receiver.seen) == 2
    assert db.execute("SELECT status, attempts FROM notification_outbox").fetchone() == ("sent", 2)


def test_a_report_mail_carries_its_attachment_and_its_key(db_url: str, db: psycopg.Connection,
                                                          smtp_server: Mailbox, http_stub: Callable[[], Stub]) -> None:
    org = make_org(db)
    mail = make_channel(db, org, "managers", "smtp", {"to": ["boss@example.com"]})
    api = http_stub()
    api.answer((202, "", {"X-Message-Id": "sg-1"}))
    sg = make_channel(db, org, "managers-sg", "sendgrid", {"to": ["boss@example.com"]})
    pdf = b"%PDF-1.4 fake report\n%%EOF"
    report = Message(kind="report", key="report:7:20261123",
                     notification=Notification(title="Weekly SLA report", severity="info", message="All targets met.",
                                               started_at=NOW, link="/reports/7", kind="report",
                                               attachments=(Attachment("sla-2026-w47.pdf", "application/pdf", pdf),)))
    ids = enqueue(db, org, report, channel_ids=[mail, sg])
    assert len(ids) == 2 and enqueue(db, org, report, channel_ids=[mail, sg]) == []  # the same report: queued once
    s = settings(smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_starttls=False, sendgrid_api_key="SG.k",
                 sendgrid_api_host=api.url)
    done = send_due(connector(db_url), settings=s, policy=RetryPolicy.from_settings(s))
    assert sorted(r.status.value for r in done.results) == ["sent", "sent"]
    [(_, _, msg)] = smtp_server.messages
    [part] = list(msg.iter_attachments())
    assert (part.get_filename(), part.get_content_type(), part.get_content()) == (
        "sla-2026-w47.pdf", "application/pdf", pdf)
    assert msg["X-NetPulse-Idempotency-Key"] == f"report:7:20261123/{mail}"
    assert "Open in NetPulse: http://noc.example.com/reports/7" in msg.get_body(("plain",)).get_content()
    body = json.loads(api.seen[0].body)
    assert body["custom_args"] == {"netpulse_key": f"report:7:20261123/{sg}"}
    assert body["headers"] == {"X-NetPulse-Idempotency-Key": f"report:7:20261123/{sg}"}
    assert body["attachments"][0]["filename"] == "sla-2026-w47.pdf"
    assert db.execute("SELECT count(*) FROM notification_attachments").fetchone() == (0,)  # gone once sent


def test_the_smtp_message_id_is_the_same_on_every_attempt() -> None:
    from analytics.notify.smtp import SmtpChannel

    channel = SmtpChannel(host="127.0.0.1", port=25, from_email="netpulse@example.com", to=["a@example.com"])
    note = _message(uuid.uuid4(), "k").notification
    first, again = channel.message(note, key="alert:1:opened:0/3"), channel.message(note, key="alert:1:opened:0/3")
    other = channel.message(note, key="alert:1:resolved:0/3")
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]
    assert first["Message-ID"].endswith(".netpulse@example.com>")


def test_warnings_are_digested_through_the_outbox_and_marked_notified_when_sent(
        db_url: str, db: psycopg.Connection, http_stub: Callable[[], Stub]) -> None:
    receiver = http_stub()
    org = make_org(db)
    make_channel(db, org, "hooks", "webhook", {"url": receiver.url + "/in", "secret": SECRET})
    policy(db, org, ["hooks"])
    warn = critical_rule(db, org, "warning")
    devs = make_devices(db, org, 3)
    for d in devs:
        assert fire(db, org, warn, d).notify == []  # warnings wait for the digest
    with db.transaction():
        [queued] = digest(db, org, NOW + timedelta(minutes=15))
    with db.transaction():
        assert digest(db, org, NOW + timedelta(minutes=30)) == []  # in one digest only, even before it is sent
    assert (queued.reason, len(queued.alert_ids), len(queued.outbox_ids)) == ("digest", 3, 1)
    s = settings()
    assert [r.status.value for r in send_due(connector(db_url), settings=s,
                                             policy=RetryPolicy.from_settings(s)).results] == ["sent"]
    [req] = receiver.seen
    assert json.loads(req.body)["alert"]["title"] == "3 warning(s) in the last digest period"
    assert req.headers["Idempotency-Key"].startswith(f"digest:{org}:")
    assert db.execute("SELECT count(*) FROM alerts WHERE notified_at IS NOT NULL AND delivery_status = 'delivered'"
                      ).fetchone() == (3,)


# --- through the workers, on both brokers ---------------------------------------------------------------

@pytest.fixture(params=["redis", "rabbitmq"])
def worker(request: pytest.FixtureRequest, db_url: str, redis_url: str) -> Iterator[Any]:
    """A Dramatiq worker on the real broker named by the parameter."""
    import redis
    from dramatiq import Worker

    import workers.notify
    from workers import broker as broker_mod
    from workers import runtime

    url = request.getfixturevalue("amqp_url") if request.param == "rabbitmq" else redis_url
    client = redis.Redis.from_url(redis_url)
    runtime.configure(runtime.Runtime(db_url, redis=client))
    b = broker_mod.install(broker_mod.make_broker(url=url, redis=client))
    workers.notify.configure(settings())
    w = Worker(b, worker_threads=2, worker_timeout=100)
    w.start()
    yield b
    w.stop()
    b.close()
    workers.notify.configure(None)


def test_the_same_message_delivered_twice_sends_once(worker: Any, db: psycopg.Connection,
                                                     http_stub: Callable[[], Stub]) -> None:
    from workers.notify import NOTIFICATIONS, deliver_outbox, sweep_outbox

    receiver = http_stub()
    org = make_org(db)
    channel = make_channel(db, org, "hooks", "webhook", {"url": receiver.url + "/in", "secret": SECRET})
    ids = [i for k in range(5) for i in enqueue(db, org, _message(org, f"twice{k}"), channel_ids=[channel])]
    for i in ids:  # each message twice (a redelivery), and a sweep on top
        deliver_outbox.send([i])
        deliver_outbox.send([i])
    sweep_outbox.send()
    worker.join(NOTIFICATIONS)
    wait_for(lambda: db.execute("SELECT count(*) FROM notification_outbox WHERE status = 'sent'").fetchone() == (5,),
             30, "five rows sent")
    worker.join(NOTIFICATIONS)
    keys = [r.headers["Idempotency-Key"] for r in receiver.seen]
    assert sorted(keys) == sorted(f"twice{k}/{channel}" for k in range(5))  # five requests, no repeat


def test_a_provider_answering_500_is_retried_until_it_takes_it(worker: Any, db: psycopg.Connection,
                                                               http_stub: Callable[[], Stub]) -> None:
    from workers.notify import send_soon

    receiver = http_stub()
    receiver.answer((500, "oops", {}), (503, "busy", {}), (200, "ok", {}))
    org = make_org(db)
    channel = make_channel(db, org, "hooks", "webhook", {"url": receiver.url + "/in", "secret": SECRET})
    send_soon(enqueue(db, org, _message(org, "flaky"), channel_ids=[channel]))
    wait_for(lambda: db.execute("SELECT status FROM notification_outbox").fetchone() == ("sent",), 30, "the row sent")
    assert [r[0] for r in db.execute("SELECT status FROM notification_deliveries ORDER BY id")] == [
        "failed", "failed", "sent"]
    assert len({r.headers["Idempotency-Key"] for r in receiver.seen}) == 1 and len(receiver.seen) == 3


# --- isolation ------------------------------------------------------------------------------------------

def test_one_organizations_failure_does_not_stop_the_others(db_url: str, db: psycopg.Connection, redis_url: str,
                                                            log_events: list[dict[str, Any]]) -> None:
    import numpy as np
    import redis

    from ingest.loader import Loader
    from ingest.rows import MetricRows, to_micros
    from workers import runtime
    from workers.alerting import evaluate_alerts

    broken, fine = make_org(db, "broken"), make_org(db, "fine")
    critical_rule(db, broken)
    db.execute("UPDATE alert_rules SET metric = 'no_such_metric' WHERE organization_id = %s", (broken,))
    critical_rule(db, fine)
    (dev,) = make_devices(db, fine, 1)
    t = to_micros(datetime.now(UTC)) - 5_000_000
    Loader().load(db, MetricRows(np.array([t]), np.array([dev], np.int32), np.array([int(MetricKind.ICMP_RTT_MS)],
                                                                                    np.int16),
                                 np.zeros(1, np.int32), np.array([250.0])))
    client = redis.Redis.from_url(redis_url)
    runtime.configure(runtime.Runtime(db_url, redis=client))
    evaluate_alerts()  # synchronously, as a worker runs it
    assert db.execute("SELECT organization_id FROM alerts").fetchall() == [(fine,)]
    failures = [e for e in log_events if e["event"] == "netpulse.workers.organization_failed"]
    assert [(e["job"], e["org"]) for e in failures] == [("evaluate_alerts", str(broken))]
    assert telemetry_counts(client) == {("netpulse_organization_failures", "evaluate_alerts"): 1}
