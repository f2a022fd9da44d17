"""Notifications against real local servers: HTTP stand-ins for SendGrid, Africa's Talking, Slack and a
webhook receiver, aiosmtpd for SMTP; deliveries through a real Redis broker and Dramatiq worker."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from analytics.notify import (
    Notification,
    RateLimiter,
    RetryPolicy,
    TransportError,
    build_channel,
    templates,
    validate_config,
)
from analytics.notify.africastalking import AfricasTalkingChannel
from analytics.notify.base import Attachment
from analytics.notify.sendgrid import SendGridChannel
from analytics.notify.slack import SlackChannel
from analytics.notify.smtp import SmtpChannel
from analytics.notify.webhook import WebhookChannel, sign, verify
from cli import main
from netpulse.config import Settings, get_settings, load_settings
from netpulse.errors import ConfigError, ValidationError
from tests.factories import make_org
from tests.stubs import Mailbox, Stub, free_port

SECRET = "s3cret-webhook-key-0123456789"
NOTE = Notification(title="Device down on core-sw-1", severity="critical", message="No answer to 3 pings.",
                    started_at=datetime(2026, 5, 1, 10, 42, 7, tzinfo=UTC), device="core-sw-1", site="Nairobi DC",
                    link="http://noc.example.com/alerts/42", alert_id="1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def _settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"email_from": "netpulse@example.com", "notify_timeout_s": 5.0}
    return load_settings(**{**base, **overrides})


# --- templates and the schedule -----------------------------------------------------------------------

def test_sms_fits_one_segment_and_keeps_the_link_only_when_whole() -> None:
    assert templates.sms_text(NOTE) == ("NetPulse CRITICAL: Device down on core-sw-1 @ core-sw-1 (Nairobi DC), since "
                                        "10:42 UTC. No answer to 3 pings. http://noc.example.com/alerts/42")
    long = Notification(**{**NOTE.to_dict(), "message": "x " * 200,
                           "started_at": NOTE.started_at})  # type: ignore[arg-type]
    text = templates.sms_text(long)
    assert len(text) == templates.SMS_LIMIT and text.endswith("...") and "http" not in text
    assert text.isascii()


def test_email_and_webhook_templates() -> None:
    assert templates.email_subject(NOTE) == "[NetPulse CRITICAL] Device down on core-sw-1"
    over = Notification.from_dict({**NOTE.to_dict(), "resolved": True})
    assert templates.email_subject(over) == "[NetPulse RESOLVED] Device down on core-sw-1"
    assert templates.sms_text(over).startswith("NetPulse RESOLVED: ")
    body = templates.email_text(NOTE)
    assert "Device:   core-sw-1" in body and "Started:  2026-05-01 10:42 UTC" in body and NOTE.link in body
    html = templates.email_html(Notification(**{**NOTE.to_dict(), "message": "<b>rtt</b> & loss",
                                                "started_at": NOTE.started_at}))  # type: ignore[arg-type]
    assert "&lt;b&gt;rtt&lt;/b&gt; &amp; loss" in html
    payload = templates.webhook_payload(NOTE)
    schema = templates.WEBHOOK_SCHEMA
    assert set(payload) == set(schema["required"])
    assert set(payload["alert"]) == set(schema["properties"]["alert"]["required"])
    assert payload["event"] == "alert" and payload["alert"]["started_at"] == "2026-05-01T10:42:07+00:00"
    assert payload["alert"]["resolved"] is False and Notification.from_dict(NOTE.to_dict()) == NOTE


def test_retry_schedule_grows_then_caps() -> None:
    policy = RetryPolicy(max_retries=6, min_backoff_ms=1000, max_backoff_ms=10_000)
    assert [policy.base_delay_ms(n) for n in range(1, 7)] == [1000, 2000, 4000, 8000, 10_000, 10_000]
    assert [policy.delay_ms(n, rng=lambda: 0.0) for n in (1, 2, 3)] == [1000, 2000, 4000]
    assert [policy.delay_ms(n, rng=lambda: 0.999) for n in (1, 2, 3, 4)] == [1249, 2499, 4999, 9998]
    assert policy.delay_ms(5, rng=lambda: 0.999) == 10_000  # jitter never passes the cap
    assert policy.delay_ms(1, retry_after_ms=3000, rng=lambda: 0.0) == 3000  # the provider's Retry-After wins
    assert policy.may_retry(6) and not policy.may_retry(7)


def test_config_is_checked_per_kind_with_named_keys() -> None:
    assert validate_config("sendgrid", {"to": ["a@example.com"]}) == {"to": ["a@example.com"]}
    with pytest.raises(ValidationError) as err:
        validate_config("sendgrid", {"to": ["a@example.com", "nope"], "url": "http://x"})
    assert err.value.message == ("invalid sendgrid channel config: url is not a sendgrid setting (allowed: to, "
                                 "from_email); to not email addresses: 'nope'")
    with pytest.raises(ValidationError, match="secret must be a string of at least 16"):
        validate_config("webhook", {"url": "https://hooks.example.com/x", "secret": "short"})
    with pytest.raises(ValidationError, match=r"to not phone numbers in international form .*'0711000111'"):
        validate_config("africastalking", {"to": ["0711000111"]})
    with pytest.raises(ValidationError, match="unknown channel kind 'pager'"):
        validate_config("pager", {})


def test_a_channel_without_its_settings_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="NETPULSE_SENDGRID_API_KEY is not set"):
        build_channel("sendgrid", {"to": ["a@example.com"]}, _settings())
    with pytest.raises(ConfigError, match="NETPULSE_AFRICASTALKING_USERNAME is not set"):
        build_channel("africastalking", {"to": ["+254711000111"]}, _settings())
    with pytest.raises(ConfigError, match="NETPULSE_SMTP_HOST is not set"):
        build_channel("smtp", {"to": ["a@example.com"]}, _settings())
    with pytest.raises(ConfigError, match="NETPULSE_EMAIL_FROM is not set"):
        build_channel("smtp", {"to": ["a@example.com"]}, _settings(email_from=None, smtp_host="127.0.0.1"))
    with pytest.raises(ConfigError, match="NETPULSE_NOTIFY_MAX_BACKOFF_MS=.* must be at least"):
        _settings(notify_min_backoff_ms=5000, notify_max_backoff_ms=1000)


# --- each channel against its stand-in ------------------------------------------------------------------

def test_sendgrid_posts_the_mail_with_bearer_key(http_stub: Callable[[], Stub]) -> None:
    api = http_stub()
    api.answer((202, "", {"X-Message-Id": "sg-msg-1"}))
    channel = build_channel("sendgrid", {"to": ["ops@example.com", "oncall@example.com"]},
                            _settings(sendgrid_api_key="SG.test-key", sendgrid_api_host=api.url))
    assert isinstance(channel, SendGridChannel)
    answer = channel.send(NOTE)
    assert (answer.ok, answer.status, answer.ids) == (True, 202, ("sg-msg-1",))
    [req] = api.seen
    assert (req.method, req.path) == ("POST", "/v3/mail/send")
    assert req.headers["Authorization"] == "Bearer SG.test-key"
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.body) == {
        "from": {"email": "netpulse@example.com"},
        "subject": "[NetPulse CRITICAL] Device down on core-sw-1",
        "personalizations": [{"to": [{"email": "ops@example.com"}]}, {"to": [{"email": "oncall@example.com"}]}],
        "content": [{"type": "text/plain", "value": templates.email_text(NOTE)},
                    {"type": "text/html", "value": templates.email_html(NOTE)}],
    }


def test_sendgrid_refusals_are_answers_and_only_5xx_429_retry(http_stub: Callable[[], Stub]) -> None:
    api = http_stub()
    refusal = '{"errors":[{"message":"The from address does not match a verified Sender Identity"}]}'
    api.answer((403, refusal, {}), (503, "busy", {}), (429, "slow down", {"Retry-After": "7"}))
    channel = SendGridChannel(api_key="k", api_host=api.url, from_email="x@example.com", to=["a@example.com"])
    first, second, third = channel.send(NOTE), channel.send(NOTE), channel.send(NOTE)
    assert (first.ok, first.status, first.body, first.retryable) == (False, 403, refusal, False)
    assert (second.status, second.retryable) == (503, True)
    assert (third.status, third.retryable, third.retry_after_ms) == (429, True, 7000)


def test_africastalking_sends_the_sdk_form_with_api_key(http_stub: Callable[[], Stub]) -> None:
    api = http_stub()
    api.answer((201, json.dumps({"SMSMessageData": {"Message": "Sent to 2/2", "Recipients": [
        {"statusCode": 101, "number": "+254711000111", "status": "Success", "messageId": "ATXid_1"},
        {"statusCode": 102, "number": "+254722000222", "status": "Queued", "messageId": "ATXid_2"}]}}), {}))
    settings = _settings(africastalking_username="netpulse", africastalking_api_key="at-key",
                         africastalking_sender_id="NETPULSE", africastalking_api_host=api.url)
    channel = build_channel("africastalking", {"to": ["+254711000111", "+254722000222"]}, settings)
    assert isinstance(channel, AfricasTalkingChannel)
    answer = channel.send(NOTE)
    assert (answer.ok, answer.status, answer.ids) == (True, 201, ("ATXid_1", "ATXid_2"))
    [req] = api.seen
    assert (req.method, req.path) == ("POST", "/version1/messaging")
    assert req.headers["apiKey"] == "at-key"
    assert req.headers["Accept"] == "application/json"
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(req.body.decode(), strict_parsing=True) == {
        "username": ["netpulse"], "to": ["+254711000111,+254722000222"], "message": [templates.sms_text(NOTE)],
        "bulkSMSMode": ["1"], "from": ["NETPULSE"]}


def test_africastalking_failures_keep_the_status(http_stub: Callable[[], Stub]) -> None:
    api = http_stub()
    api.answer((401, "The supplied authentication is invalid", {}), (500, "oops", {}),
               (201, json.dumps({"SMSMessageData": {"Message": "Sent to 0/1", "Recipients": [
                   {"statusCode": 405, "number": "+254711000111", "status": "InsufficientBalance",
                    "messageId": "None"}]}}), {}))
    channel = AfricasTalkingChannel(username="u", api_key="k", api_host=api.url, to=["+254711000111"])
    denied, broken, broke_user = channel.send(NOTE), channel.send(NOTE), channel.send(NOTE)
    assert (denied.ok, denied.status, denied.body, denied.retryable) == (
        False, 401, "The supplied authentication is invalid", False)
    assert (broken.status, broken.retryable) == (500, True)
    assert (broke_user.ok, broke_user.status, broke_user.ids, broke_user.retryable) == (False, 201, (), False)
    assert "InsufficientBalance" in broke_user.body


def test_slack_posts_text_and_blocks(http_stub: Callable[[], Stub]) -> None:
    hook = http_stub()
    channel = build_channel("slack", {"url": hook.url + "/services/T0/B0/xyz"}, _settings())
    assert isinstance(channel, SlackChannel)
    answer = channel.send(NOTE)
    assert (answer.ok, answer.status, answer.body) == (True, 200, "ok")
    [req] = hook.seen
    assert req.path == "/services/T0/B0/xyz" and req.headers["Content-Type"] == "application/json"
    body = json.loads(req.body)
    assert body == templates.slack_payload(NOTE)
    assert body["text"] == "CRITICAL: Device down on core-sw-1: No answer to 3 pings."
    assert body["blocks"][0] == {"type": "header",
                                 "text": {"type": "plain_text", "text": "CRITICAL: Device down on core-sw-1"}}
    assert {"type": "mrkdwn", "text": "*Site*\nNairobi DC"} in body["blocks"][1]["fields"]
    assert body["blocks"][-1]["elements"][0]["url"] == NOTE.link


def test_webhook_is_signed_over_timestamp_and_exact_body(http_stub: Callable[[], Stub]) -> None:
    receiver = http_stub()
    channel = build_channel("webhook", {"url": receiver.url + "/hooks/netpulse", "secret": SECRET,
                                        "headers": {"X-Tenant": "acme"}}, _settings())
    assert isinstance(channel, WebhookChannel)
    assert channel.send(NOTE).ok
    [req] = receiver.seen
    assert req.path == "/hooks/netpulse"
    assert req.headers["X-Tenant"] == "acme" and req.headers["X-NetPulse-Event"] == "alert"
    timestamp = req.headers["X-NetPulse-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-NetPulse-Signature"] == f"sha256={expected}"
    assert json.loads(req.body) == templates.webhook_payload(NOTE)
    assert verify(SECRET, req.body, timestamp, req.headers["X-NetPulse-Signature"])
    assert not verify(SECRET, req.body + b" ", timestamp, req.headers["X-NetPulse-Signature"])  # body changed
    assert not verify("another-secret-0123456789", req.body, timestamp, req.headers["X-NetPulse-Signature"])
    old = str(int(timestamp) - 3600)  # a replay an hour later, even re-signed by someone holding the key
    assert not verify(SECRET, req.body, old, sign(SECRET, int(old), req.body))


def test_smtp_delivers_text_and_html_after_login(smtp_server: Mailbox) -> None:
    settings = _settings(smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_starttls=False,
                         smtp_username="noc", smtp_password="pw")
    channel = build_channel("smtp", {"to": ["ops@example.com", "oncall@example.com"],
                                     "from_email": "alerts@example.org"}, settings)
    assert isinstance(channel, SmtpChannel)
    answer = channel.send(NOTE)
    assert answer.ok and answer.status == 250 and answer.ids[0].endswith("@example.org>")
    assert smtp_server.logins == [(b"noc", b"pw")]
    [(mail_from, rcpt, msg)] = smtp_server.messages
    assert mail_from == "alerts@example.org" and rcpt == ["ops@example.com", "oncall@example.com"]
    assert msg["Subject"] == "[NetPulse CRITICAL] Device down on core-sw-1"
    assert msg["From"] == "alerts@example.org" and msg["To"] == "ops@example.com, oncall@example.com"
    assert msg["Message-ID"] == answer.ids[0]
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == templates.email_text(NOTE)  # CRLF on the wire
    assert html.get_content().strip() == templates.email_html(NOTE)


def test_smtp_refused_login_is_a_failed_answer(smtp_server: Mailbox) -> None:
    channel = SmtpChannel(host="127.0.0.1", port=smtp_server.port, from_email="a@example.org",
                          to=["ops@example.com"], username="noc", password="wrong", starttls=False)
    answer = channel.send(NOTE)
    assert (answer.ok, answer.status, answer.retryable) == (False, 535, False)
    assert smtp_server.messages == []


def test_unreachable_providers_raise_transport_errors() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(TransportError, match="got no answer"):
        WebhookChannel(url=f"http://127.0.0.1:{port}/x", secret=SECRET, timeout_s=2).send(NOTE)
    with pytest.raises(TransportError, match="SendGrid"):
        SendGridChannel(api_key="k", api_host=f"http://127.0.0.1:{port}", from_email="a@example.com",
                        to=["b@example.com"], timeout_s=2).send(NOTE)
    with pytest.raises(TransportError, match="Africa's Talking"):
        AfricasTalkingChannel(username="u", api_key="k", api_host=f"http://127.0.0.1:{port}",
                              to=["+254711000111"], timeout_s=2).send(NOTE)
    with pytest.raises(TransportError, match="not reachable"):
        SmtpChannel(host="127.0.0.1", port=port, from_email="a@example.com", to=["b@example.com"],
                    starttls=False, timeout_s=2).send(NOTE)


def test_rate_limiter_shares_one_window_in_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    first, second = RateLimiter(client), RateLimiter(client)  # two workers
    assert [first.acquire(7, 3), second.acquire(7, 3), first.acquire(7, 3)] == [0, 0, 0]
    wait = second.acquire(7, 3)
    assert 59_000 < wait <= 60_000
    assert first.acquire(8, 3) == 0  # another channel has its own window
    assert client.zcard(first.key(7)) == 3  # a refused try is not counted
    client.close()


# --- deliveries through the actor -----------------------------------------------------------------------

@dataclass
class Scene:
    org: uuid.UUID
    alert: uuid.UUID
    db: psycopg.Connection

    def queue(self, names: list[str] | None = None) -> list[int]:
        """The alert's message on the enabled channels (those named, when given), committed, then sent
        at once the way the alert engine's callers do."""
        from analytics.notify import Message, alert_notifications, enabled_channels, enqueue
        from workers.notify import send_soon

        channels = [c for c, _ in enabled_channels(self.db, self.org, names)]
        note = alert_notifications(self.db, self.org, [self.alert])[self.alert]
        ids = enqueue(self.db, self.org, Message(kind="alert", key=f"alert:{self.alert}:opened:0", reason="opened",
                                                 tier=0, alert_ids=(self.alert,), notification=note),
                      channel_ids=channels)
        send_soon(ids)
        return ids

    def channel(self, name: str, kind: str, config: dict[str, Any], rate: int = 60) -> int:
        row = self.db.execute("INSERT INTO notification_channels (organization_id, name, kind, config, "
                              "rate_limit_per_minute) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                              (self.org, name, kind, Jsonb(config), rate)).fetchone()
        assert row is not None
        return int(row[0])

    def deliveries(self, channel_id: int) -> list[tuple[Any, ...]]:
        return self.db.execute(
            "SELECT attempt, status, provider_status, provider_answer, error, scheduled_at, finished_at, alert_id "
            "FROM notification_deliveries WHERE channel_id = %s ORDER BY id", (channel_id,)).fetchall()


@pytest.fixture
def scene(db: psycopg.Connection) -> Scene:
    org = make_org(db, "notify")
    site = db.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, 'Nairobi DC', 'nbo') "
                      "RETURNING id", (org,)).fetchone()
    device = db.execute("INSERT INTO devices (organization_id, name, address, device_type, site_id) "
                        "VALUES (%s, 'core-sw-1', '10.0.0.1', 'switch', %s) RETURNING id",
                        (org, site[0] if site else None)).fetchone()
    alert = db.execute("INSERT INTO alerts (organization_id, device_id, alert_type, severity, fingerprint, message) "
                       "VALUES (%s, %s, 'device_down', 'critical', 'fp-1', 'No answer to 3 pings.') RETURNING id",
                       (org, device[0] if device else None)).fetchone()
    assert alert is not None
    return Scene(org, alert[0], db)


@pytest.fixture
def worker(redis_url: str, db_url: str) -> Iterator[Callable[..., None]]:
    """A Redis broker and a Dramatiq worker; call the fixture with settings overrides for the actor."""
    import redis
    from dramatiq import Worker

    from workers import broker as broker_mod
    from workers import runtime

    runtime.configure(runtime.Runtime(db_url, redis=redis.Redis.from_url(redis_url)))
    b = broker_mod.install(broker_mod.make_broker(url=redis_url))
    assert "workers.deliver_outbox" in b.get_declared_actors()
    import workers.notify

    def configure(**overrides: Any) -> None:
        small = {"notify_min_backoff_ms": 300, "notify_max_backoff_ms": 5000, "notify_max_retries": 2,
                 "notify_link_base_url": "http://noc.example.com"}
        workers.notify.configure(_settings(**{**small, **overrides}))

    configure()
    w = Worker(b, worker_threads=2, worker_timeout=100)
    w.start()
    yield configure
    w.stop()
    b.close()
    workers.notify.configure(None)


def _wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _ms(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() * 1000


def test_5xx_twice_then_200_is_retried_with_growing_delays(scene: Scene, worker: Callable[..., None],
                                                           http_stub: Callable[[], Stub]) -> None:
    receiver = http_stub()
    receiver.answer((500, "down for maintenance", {}), (502, "bad gateway", {}), (200, "thanks", {}))
    channel = scene.channel("hooks", "webhook", {"url": receiver.url + "/in", "secret": SECRET})
    scene.channel("off", "webhook", {"url": receiver.url + "/off", "secret": SECRET})
    scene.db.execute("UPDATE notification_channels SET enabled = false WHERE name = 'off'")

    assert len(scene.queue()) == 1  # the disabled channel gets nothing
    _wait_for(lambda: [r[1] for r in scene.deliveries(channel)][-1:] == ["sent"])
    rows = scene.deliveries(channel)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (1, "failed", 500, "down for maintenance"), (2, "failed", 502, "bad gateway"), (3, "sent", 200, "thanks")]
    assert all(r[7] == scene.alert for r in rows)
    # The schedule: each retry due later than the one before (min 300 ms, doubling), and none made early.
    first_delay, second_delay = _ms(rows[0][6], rows[1][5]), _ms(rows[1][6], rows[2][5])
    assert 300 <= first_delay < second_delay and second_delay >= 600
    assert rows[1][6] >= rows[1][5] and rows[2][6] >= rows[2][5]
    assert _ms(rows[0][6], rows[2][6]) >= 900
    assert len(receiver.seen) == 3
    bodies = [json.loads(r.body) for r in receiver.seen]
    assert bodies[0] == bodies[2] and bodies[0]["alert"]["link"] == f"http://noc.example.com/alerts/{scene.alert}"
    # One message: every attempt carries its key, which the receiver can drop repeats by.
    assert {r.headers["Idempotency-Key"] for r in receiver.seen} == {f"alert:{scene.alert}:opened:0/{channel}"}
    assert scene.db.execute("SELECT notified_at IS NOT NULL, delivery_status FROM alerts").fetchone() == (
        True, "delivered")
    assert bodies[0]["alert"]["device"] == "core-sw-1" and bodies[0]["alert"]["site"] == "Nairobi DC"


def test_a_provider_that_always_fails_leaves_the_delivery_failed(scene: Scene, worker: Callable[..., None],
                                                                 http_stub: Callable[[], Stub]) -> None:
    api = http_stub()
    api.answer((503, '{"errors":[{"message":"unavailable"}]}', {}))
    worker(sendgrid_api_key="SG.k", sendgrid_api_host=api.url)
    channel = scene.channel("mail", "sendgrid", {"to": ["ops@example.com"]})
    before = scene.db.execute("SELECT status, resolved, message FROM alerts WHERE id = %s", (scene.alert,)).fetchone()

    scene.queue()
    _wait_for(lambda: len(scene.deliveries(channel)) == 3)
    time.sleep(1.0)  # nothing else comes after the last retry
    rows = scene.deliveries(channel)
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, "failed", 503), (2, "failed", 503), (3, "failed", 503)]
    assert rows[-1][3] == '{"errors":[{"message":"unavailable"}]}'
    assert len(api.seen) == 3
    after = scene.db.execute("SELECT status, resolved, message FROM alerts WHERE id = %s", (scene.alert,)).fetchone()
    assert after == before == ("firing", False, "No answer to 3 pings.")
    # Never delivered: not marked notified, and the alert says so.
    assert scene.db.execute("SELECT notified_at, delivery_status FROM alerts").fetchone() == (None, "failed")
    assert scene.db.execute("SELECT kind, note FROM alert_events ORDER BY id").fetchall() == [
        ("undelivered", "not delivered: every channel failed")]


def test_transport_errors_and_missing_settings(scene: Scene, worker: Callable[..., None]) -> None:
    worker(notify_max_retries=1)
    dead = scene.channel("dead", "slack", {"url": f"http://127.0.0.1:{free_port()}/services/x"})
    sms = scene.channel("sms", "africastalking", {"to": ["+254711000111"]})
    scene.channel("unrouted", "slack", {"url": "http://127.0.0.1:9/services/x"})
    scene.queue(["dead", "sms", "no-such-channel"])  # routed by name
    _wait_for(lambda: [r[1] for r in scene.deliveries(dead)] == ["failed", "failed"]
              and [r[1] for r in scene.deliveries(sms)] == ["failed"])
    transport = scene.deliveries(dead)
    assert transport[0][2] is None and "got no answer" in transport[0][4]  # retried once, then left failed
    [config] = scene.deliveries(sms)  # no retry can fix a missing setting
    assert "NETPULSE_AFRICASTALKING_USERNAME is not set" in config[4]
    assert scene.db.execute("SELECT count(*) FROM notification_deliveries").fetchone() == (3,)


def test_over_the_rate_limit_waits_and_delivers_later(scene: Scene, worker: Callable[..., None],
                                                      http_stub: Callable[[], Stub], redis_url: str) -> None:
    import redis

    receiver = http_stub()
    channel = scene.channel("hooks", "webhook", {"url": receiver.url + "/in", "secret": SECRET}, rate=1)
    # The minute's one send was made 59.4 s ago (by another worker): the window frees in about 0.6 s.
    client = redis.Redis.from_url(redis_url)
    seconds, micros = client.time()
    client.zadd(RateLimiter(client).key(channel), {"earlier-send": seconds * 1000 + micros // 1000 - 59_400})

    scene.queue()
    _wait_for(lambda: [r[1] for r in scene.deliveries(channel)] == ["rate_limited", "sent"])
    limited, sent = scene.deliveries(channel)
    assert (limited[0], sent[0]) == (1, 1)  # a wait is not a retry
    assert "over 1/min" in limited[4] and limited[2] is None
    assert _ms(limited[6], sent[6]) >= 300 and sent[6] >= sent[5]
    assert len(receiver.seen) == 1
    assert client.zcard(RateLimiter(client).key(channel)) == 1  # the earlier send left the window
    client.close()


# --- the CLI ----------------------------------------------------------------------------------------------

@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("NETPULSE_DATABASE_URL", db_url)
    monkeypatch.setenv("NETPULSE_EMAIL_FROM", "netpulse@example.com")
    monkeypatch.delenv("NETPULSE_NOTIFY_WEBHOOK_SECRET", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_add_list_and_test_send(cli: CliRunner, db: psycopg.Connection, http_stub: Callable[[], Stub]) -> None:
    make_org(db, "acme")
    receiver = http_stub()
    added = cli.invoke(main, ["notify", "channel", "add", "hooks", "--kind", "webhook", "--url",
                              receiver.url + "/in?token=abc", "--secret", SECRET])
    assert added.exit_code == 0, added.output
    assert "added webhook channel 'hooks'" in added.output and "at most 60/min" in added.output
    generated = cli.invoke(main, ["notify", "channel", "add", "hooks-2", "--kind", "webhook", "--url",
                                  receiver.url + "/two", "--rate-limit", "5", "--disabled"])
    assert generated.exit_code == 0, generated.output
    secret = generated.output.strip().splitlines()[-1].rsplit(" ", 1)[1]
    assert len(secret) == 64
    mail = cli.invoke(main, ["notify", "channel", "add", "mail", "--kind", "sendgrid",
                             "--config-json", '{"to": ["ops@example.com"]}', "--to", "noc@example.com"])
    assert mail.exit_code == 0, mail.output

    listed = cli.invoke(main, ["notify", "channel", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ID", "NAME", "KIND", "ENABLED", "PER", "MIN", "TARGET"]
    assert lines[2].split()[1:] == ["hooks", "webhook", "yes", "60", receiver.url + "/in"]
    assert lines[3].split()[1:] == ["hooks-2", "webhook", "no", "5", receiver.url + "/two"]
    assert lines[4].split()[1:] == ["mail", "sendgrid", "yes", "60", "noc@example.com"]  # the option won
    assert SECRET not in listed.output and secret not in listed.output and "token" not in listed.output

    receiver.answer((202, '{"received": true}', {}))
    sent = cli.invoke(main, ["notify", "test", "hooks"])
    assert sent.exit_code == 0, sent.output
    assert "sent test notification through 'hooks'" in sent.output
    assert 'provider answered 202 {"received": true}' in sent.output
    [req] = receiver.seen
    assert req.path == "/in?token=abc" and req.headers["X-NetPulse-Event"] == "test"
    assert verify(SECRET, req.body, req.headers["X-NetPulse-Timestamp"], req.headers["X-NetPulse-Signature"])
    assert json.loads(req.body)["alert"]["id"] is None

    receiver.answer((500, "receiver crashed", {}))
    failed = cli.invoke(main, ["notify", "test", "hooks"])
    assert failed.exit_code == 1
    assert failed.stderr.strip().splitlines() == [
        "Error: test notification through 'hooks' failed (delivery 2): provider answered 500 receiver crashed"]
    no_key = cli.invoke(main, ["notify", "test", "mail"])
    assert no_key.exit_code == 1 and "NETPULSE_SENDGRID_API_KEY is not set" in no_key.stderr
    rows = db.execute("SELECT c.name, d.attempt, d.status, d.provider_status, d.alert_id "
                      "FROM notification_deliveries d JOIN notification_channels c ON c.id = d.channel_id "
                      "ORDER BY d.id").fetchall()
    assert rows == [("hooks", 1, "sent", 202, None), ("hooks", 1, "failed", 500, None),
                    ("mail", 1, "failed", None, None)]


@pytest.mark.parametrize(("args", "message"), [
    (["notify", "test", "nope"], "Error: no notification channel named 'nope'; known: hooks"),
    (["notify", "channel", "add", "hooks", "--kind", "slack", "--url", "https://hooks.slack.com/services/x"],
     "Error: a notification channel named 'hooks' already exists"),
    (["notify", "channel", "add", "bad", "--kind", "sendgrid", "--to", "not-an-email"],
     "Error: invalid sendgrid channel config: to not email addresses: 'not-an-email'"),
    (["notify", "channel", "add", "bad", "--kind", "slack"], "Error: invalid slack channel config: url is required"),
    (["notify", "channel", "add", "bad", "--kind", "webhook", "--url", "ftp://x", "--secret", SECRET],
     "Error: invalid webhook channel config: url must be an http:// or https:// URL"),
])
def test_cli_errors_are_one_line(cli: CliRunner, db: psycopg.Connection, args: list[str], message: str) -> None:
    org = make_org(db, "acme")
    db.execute("INSERT INTO notification_channels (organization_id, name, kind, config) VALUES "
               "(%s, 'hooks', 'webhook', %s)", (org, Jsonb({"url": "http://127.0.0.1:9/x", "secret": SECRET})))
    result = cli.invoke(main, args)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [message]


def test_cli_bad_json_and_help(cli: CliRunner) -> None:
    bad = cli.invoke(main, ["notify", "channel", "add", "x", "--kind", "slack", "--config-json", "[1]"])
    assert bad.exit_code == 2 and "must be a JSON object" in bad.output
    for command in (["notify"], ["notify", "channel"], ["notify", "channel", "add"], ["notify", "channel", "list"],
                    ["notify", "test"]):
        helped = cli.invoke(main, [*command, "--help"])
        assert helped.exit_code == 0 and "Usage: main " + " ".join(command) in helped.output


# --- attachments (reports) ------------------------------------------------------------------------------

REPORT_NOTE = Notification(title="Availability report: Site Nairobi, October 2026", severity="info",
                           message="Availability: 99.912 %\n\nThe report is attached.",
                           started_at=datetime(2026, 10, 1, tzinfo=UTC), kind="report",
                           facts=(("Report", "availability"), ("Period", "October 2026 (Africa/Nairobi)")),
                           attachments=(Attachment("report.pdf", "application/pdf", b"%PDF-1.4 \x00\xff binary"),
                                        Attachment("report.csv", "text/csv; charset=utf-8", b"section,x\n")))


def test_sendgrid_carries_attachments(http_stub: Callable[[], Stub]) -> None:
    api = http_stub()
    api.answer((202, "", {}))
    channel = build_channel("sendgrid", {"to": ["boss@example.com"]},
                            _settings(sendgrid_api_key="SG.test-key", sendgrid_api_host=api.url))
    assert channel.send(REPORT_NOTE).ok
    body = json.loads(api.seen[0].body)
    assert body["subject"] == "[NetPulse REPORT] Availability report: Site Nairobi, October 2026"
    assert [(a["filename"], a["type"], a["disposition"], base64.b64decode(a["content"])) for a in body["attachments"]] \
        == [("report.pdf", "application/pdf", "attachment", b"%PDF-1.4 \x00\xff binary"),
            ("report.csv", "text/csv", "attachment", b"section,x\n")]
    assert "Period:   October 2026 (Africa/Nairobi)" in body["content"][0]["value"]
    assert "Severity" not in body["content"][0]["value"]


def test_smtp_carries_attachments_and_they_survive_the_actor_payload(smtp_server: Mailbox) -> None:
    settings = _settings(smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_starttls=False)
    channel = build_channel("smtp", {"to": ["boss@example.com"]}, settings)
    assert channel.send(Notification.from_dict(REPORT_NOTE.to_dict())).ok
    [(_, _, msg)] = smtp_server.messages
    files = [(p.get_filename(), p.get_content_type(), p.get_content()) for p in msg.iter_attachments()]
    assert files == [("report.pdf", "application/pdf", b"%PDF-1.4 \x00\xff binary"),
                     ("report.csv", "text/csv", "section,x\n")]
    assert msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None
