"""The demo's local notification sink, fed by the real webhook and Slack channels, and the demo's
channel set-up and history replay on the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from sqlalchemy.orm import Session

from analytics.notify.base import Notification
from analytics.notify.slack import SlackChannel
from analytics.notify.webhook import WebhookChannel, verify
from cli.demo.notify_sink import NotificationSink
from netpulse.config import load_settings
from tests.factories import make_org

SECRET = "s" * 32


def _sink(lines: list[str]) -> NotificationSink:
    return NotificationSink(echo=lines.append, verify=lambda body, ts, sig: verify(SECRET, body, ts, sig)).start()


def test_the_sink_prints_signed_webhooks_and_slack_messages() -> None:
    lines: list[str] = []
    sink = _sink(lines)
    try:
        n = Notification(title="Packet loss on core-1", severity="critical", message="icmp_loss_pct 23 >= 8",
                         started_at=datetime.now(UTC), device="core-1")
        assert WebhookChannel(url=f"{sink.url}/webhook", secret=SECRET).send(n).ok
        assert SlackChannel(url=f"{sink.url}/slack").send(n).ok
        forged = WebhookChannel(url=f"{sink.url}/webhook", secret="x" * 32).send(n)
        assert not forged.ok and forged.status == 401
    finally:
        sink.stop()
    assert lines[0] == ("  [notification via webhook, signature ok] CRITICAL Packet loss on core-1: "
                        "icmp_loss_pct 23 >= 8")
    assert lines[1].startswith("  [notification via slack] ") and "Packet loss on core-1" in lines[1]
    assert "BAD SIGNATURE" in lines[2]
    assert [r.signature_ok for r in sink.received] == [True, None, False]


def test_demo_channels_reach_the_sink_and_history_replay_opens_alerts(db: psycopg.Connection, session: Session) -> None:
    from analytics.notify.channels import get_channel
    from analytics.notify.delivery import send_test
    from cli.demo.run import ensure_demo_channels, ensure_demo_rules, replay_recent_alerts
    from ingest.loader import Loader
    from ingest.simulator import Fleet
    from ingest.status import Hysteresis

    org = make_org(db)
    lines: list[str] = []
    sink = _sink(lines)
    try:
        ensure_demo_channels(session, org, "http://127.0.0.1:9", SECRET)
        session.commit()
        ensure_demo_channels(session, org, sink.url, SECRET)  # the next run points them at its sink
        session.commit()
        assert db.execute("SELECT count(*) FROM notification_channels").fetchone() == (2,)
        # Made by the core functions: secrets encrypted at rest, the policy checked like any other.
        stored = db.execute("SELECT config->>'secret' FROM notification_channels WHERE name = 'demo-webhook'"
                            ).fetchone()[0]
        assert stored.startswith("fernet:") and get_channel(session, org, "demo-webhook").config == {
            "url": f"{sink.url}/webhook", "secret": SECRET}
        assert db.execute("SELECT name, steps FROM escalation_policies").fetchall() == [
            ("default", [{"after_s": 0, "channels": ["demo-webhook", "demo-slack"]},
                         {"after_s": 600, "channels": ["demo-webhook"]}])]
        for name in ("demo-webhook", "demo-slack"):
            assert send_test(session, org, name, settings=load_settings()).ok
        session.commit()
    finally:
        sink.stop()
    assert len(lines) == 2 and "signature ok" in lines[0] and "Test notification" in lines[0]

    # The rules of the demo over simulated history: the scripted loss and saturation incidents open alerts.
    fleet = Fleet(n_devices=30, n_sites=2, seed=5, interval_s=300, incidents_per_device_day=0.0)
    ids = []
    for d in fleet.devices:
        ids.append(db.execute("INSERT INTO devices (organization_id, name, address, device_type, simulated) "
                              "VALUES (%s, %s, %s, %s, true) RETURNING id", (org, d.name, d.address, d.device_type)
                              ).fetchone()[0])
    now = datetime.now(UTC)
    start = now - timedelta(hours=12)
    times = fleet.aligned_times(start, now)
    Loader(hysteresis=Hysteresis(3, 2)).load(db, fleet.sample(times, device_ids=np.array(ids, np.int32)))
    ensure_demo_rules(db, org, 10)
    opened, still = replay_recent_alerts(db, org, hours=12, step_s=300)
    kinds = {i.kind.value for i in fleet.incidents(start + timedelta(minutes=10), now)}
    assert opened >= 1 and {"packet_loss", "link_saturation"} & kinds
    assert replay_recent_alerts(db, org, hours=12, step_s=300) == (0, 0)  # only once
    assert db.execute("SELECT count(*) FROM notification_deliveries WHERE alert_id IS NOT NULL").fetchone() == (0,)
