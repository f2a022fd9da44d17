"""Probe failures are data: a real snmpd refusing a wrong SNMPv3 password, probed by an in-process
Dramatiq worker on the Redis broker. The failure is stored with the batch (once per probe, also under
redelivery), logged once at warning, shown by `netpulse devices show` and the API, and raises the
built-in "SNMP polling failing" warning after N intervals while ICMP answers; it all clears when the
password is right again."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
import structlog
from click.testing import CliRunner
from dramatiq import Worker

from analytics.builtin import SNMP_FAILING
from cli import main
from dashboard.app import create_app
from ingest.icmp import icmp_permitted
from ingest.loader import Loader
from ingest.rows import MetricRows
from netpulse.config import load_settings
from netpulse.db import make_engine, make_sessionmaker
from netpulse.probe_status import ProbeKind, ProbeOutcome, probe_health, probe_states
from netpulse.schema import Role
from netpulse.users import create_user
from tests.conftest import REDIS_URL
from tests.factories import make_org
from tests.test_snmp import AUTH_PASS, PRIV_PASS, V3_USER, Agent, agent  # noqa: F401  (the snmpd fixture)
from workers import broker as broker_mod
from workers import runtime

SECRET = "test-secret-key-0123456789abcdef"
INTERVALS = 3


@pytest.fixture
def worker(db_url: str, redis_url: str) -> Iterator[tuple[Any, runtime.Runtime]]:
    if not icmp_permitted(True):
        pytest.skip("needs ICMP to 127.0.0.1 (root or CAP_NET_RAW): the rule watches SNMP failing while ICMP answers")
    rt = runtime.configure(runtime.Runtime(db_url, icmp_privileged=True, redis=redis.Redis.from_url(redis_url)))
    rt.evaluator.snmp_failing_intervals = INTERVALS
    b = broker_mod.install(broker_mod.make_broker(url=redis_url))
    w = Worker(b, worker_threads=2, worker_timeout=100)
    w.start()
    yield b, rt
    w.stop()
    b.close()


def _v3_device(db: psycopg.Connection, snmpd: Agent, org: Any, auth_password: str) -> tuple[int, int]:
    cred = db.execute("INSERT INTO snmp_credentials (organization_id, name, version, username, auth_protocol, "
                      "auth_password, priv_protocol, priv_password) "
                      "VALUES (%s, 'lab-v3', '3', %s, 'SHA', %s, 'AES', %s) RETURNING id",
                      (org, V3_USER, auth_password, PRIV_PASS)).fetchone()[0]
    device = db.execute("INSERT INTO devices (organization_id, name, address, device_type, snmp_port, "
                        "snmp_credential_id) VALUES (%s, 'edge-1', '127.0.0.1', 'router', %s, %s) RETURNING id",
                        (org, snmpd.port, cred)).fetchone()[0]
    return device, cred


def test_a_wrong_snmpv3_password_is_stored_logged_shown_and_alerted(
        agent: Agent, worker: tuple[Any, runtime.Runtime], db_url: str, db: psycopg.Connection,  # noqa: F811
        settings_env: None) -> None:
    from workers.actors import LOADS, PROBES, load_batch, probe_batch
    from workers.alerting import evaluate_organization

    broker, rt = worker
    org = make_org(db)
    device, cred = _v3_device(db, agent, org, "wrong-password")
    spec = [{"id": device, "name": "edge-1", "address": "127.0.0.1", "simulated": False, "count": 1,
             "timeout_s": 1.0, "interval_s": 60}]
    base = int(time.time()) - 10
    ticks = [(base + k) * 1_000_000 for k in range(INTERVALS + 1)]

    def probe_tick(tick_us: int) -> None:
        probe_batch.send(spec, tick_us)
        broker.join(PROBES)
        broker.join(LOADS)

    def evaluate() -> Any:
        from datetime import UTC, datetime
        return evaluate_organization(rt, org, datetime.now(UTC))

    with structlog.testing.capture_logs() as logs:
        for tick in ticks[:INTERVALS - 1]:
            probe_tick(tick)
        assert evaluate().opened == []             # N-1 failures: no alert yet
        probe_tick(ticks[INTERVALS - 1])

    snmp, icmp = (db.execute("SELECT ok, error, detail, fail_streak, failing_since, last_success_at, checked_at "
                             "FROM probe_status WHERE device_id = %s AND kind = %s", (device, kind)).fetchone()
                  for kind in ("snmp", "icmp"))
    assert snmp[:2] == (False, "auth_failed") and "wrongDigest" in snmp[2]
    assert snmp[3] == INTERVALS and snmp[5] is None
    assert int(snmp[4].timestamp()) == base and int(snmp[6].timestamp()) == base + INTERVALS - 1
    assert icmp[0] is True and icmp[3] == 0

    failing = [e for e in logs if e["event"] == "netpulse.ingest.probe_failing"]
    assert len(failing) == 1, failing                # once per change of state, not once per poll
    assert failing[0]["log_level"] == "warning" and failing[0]["probe"] == "snmp"
    assert failing[0]["device"] == "edge-1" and "wrongDigest" in failing[0]["detail"]
    assert "wrong-password" not in repr(logs)

    # A redelivered load of the last tick changes nothing: the streak counts each poll once.
    load_batch.send({**MetricRows.empty().to_message(), "p": [[device, "snmp", 0, ticks[INTERVALS - 1], False,
                                                               "auth_failed", "wrongDigest: again"]]})
    broker.join(LOADS)
    assert db.execute("SELECT fail_streak, detail FROM probe_status WHERE device_id = %s AND kind = 'snmp'",
                      (device,)).fetchone() == (INTERVALS, snmp[2])

    report = evaluate()
    assert len(report.opened) == 1
    alert = db.execute("SELECT severity, alert_type, rule_id, message, status FROM alerts WHERE id = %s",
                       (report.opened[0],)).fetchone()
    assert alert[:3] == ("warning", SNMP_FAILING, None) and alert[4] == "firing"
    assert f"failed {INTERVALS} times in a row" in alert[3] and "auth_failed (wrongDigest)" in alert[3]
    assert evaluate().opened == []                 # still failing: the same alert, not another

    cli = CliRunner().invoke(main, ["devices", "show", "edge-1"])
    assert cli.exit_code == 0, cli.output
    table = cli.output.split("\nprobes\n", 1)[1].split("\n\n")[0].splitlines()
    snmp_line = next(line for line in table if line.startswith("snmp "))
    assert f"FAILING x{INTERVALS}" in snmp_line and "auth_failed (wrongDigest)" in snmp_line and "never" in snmp_line
    assert next(line for line in table if line.startswith("icmp ")).split()[2] == "ok"
    assert "credential 'lab-v3'" in cli.output and "wrong-password" not in cli.output

    engine = make_engine(db_url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            create_user(session, org, "noc@acme.test", "correct-horse-battery", role=Role.VIEWER)
        app = create_app(load_settings(database_url=db_url,
                                    redis_url=REDIS_URL, secret_key=SECRET, env="testing"), engine=engine)
        http = app.test_client()
        token = http.post("/api/v1/auth/login", json={"email": "noc@acme.test", "password": "correct-horse-battery"}
                          ).get_json()["data"]["access_token"]
        for path in (f"/api/v1/devices/{device}", "/api/v1/devices"):
            body = http.get(path, headers={"Authorization": f"Bearer {token}"}).get_json()["data"]
            probes = {p["kind"]: p for p in (body if isinstance(body, dict) else body[0])["probes"]}
            assert probes["snmp"]["status"] == "failing" and probes["snmp"]["reason"] == "auth_failed (wrongDigest)"
            assert probes["snmp"]["consecutive_failures"] == INTERVALS and probes["snmp"]["last_success_at"] is None
            assert probes["icmp"]["status"] == "ok"
    finally:
        engine.dispose()

    # The right password again: SNMP answers, the state recovers (logged at info) and the alert clears.
    db.execute("UPDATE snmp_credentials SET auth_password = %s WHERE id = %s", (AUTH_PASS, cred))
    with structlog.testing.capture_logs() as logs:
        probe_tick(ticks[INTERVALS])
    recovered = [e for e in logs if e["event"] == "netpulse.ingest.probe_recovered"]
    assert len(recovered) == 1 and recovered[0]["log_level"] == "info" and recovered[0]["last_error"] == "auth_failed"
    state = probe_health(db, org)[device]["snmp"]
    assert state.ok and state.fail_streak == 0 and state.failing_since is None
    assert state.error == "auth_failed" and state.last_success_at is not None   # the last error is kept
    report = evaluate()
    assert report.resolved and db.execute("SELECT status FROM alerts WHERE id = %s", (report.resolved[0],)
                                          ).fetchone() == ("resolved",)


def test_an_unknown_snmpv3_user_and_refused_checks_are_recorded(agent: Agent, db_url: str,  # noqa: F811
                                                                 db: psycopg.Connection) -> None:
    from workers.probes import network_probe

    org = make_org(db)
    device, cred = _v3_device(db, agent, org, AUTH_PASS)
    db.execute("UPDATE snmp_credentials SET username = 'nobody' WHERE id = %s", (cred,))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    for kind, name, target in (("tcp", "ssh", {"port": closed}), ("http", "web", {"url": f"http://127.0.0.1:{closed}/"})):
        db.execute("INSERT INTO service_checks (organization_id, device_id, kind, name, port, url) "
                   "VALUES (%s, %s, %s, %s, %s, %s)", (org, device, kind, name, target.get("port"), target.get("url")))
    rt = runtime.Runtime(db_url, icmp_privileged=icmp_permitted(True),
                         icmp_allowed=icmp_permitted(True) or icmp_permitted(False))
    tick = int(time.time()) * 1_000_000
    probed = network_probe(rt, [{"id": device, "name": "edge-1", "address": "127.0.0.1", "simulated": False,
                                 "count": 1, "timeout_s": 1.0}], tick)
    Loader().load(db, probed.rows, probed.outcomes)
    Loader().load(db, probed.rows, probed.outcomes)   # a redelivery: nothing moves
    states = {(s.kind, s.check_name): s for s in probe_states(db, org)[device]}
    snmp = states[("snmp", None)]
    assert snmp.reason == "auth_failed (unknownUserName)" and snmp.fail_streak == 1
    assert states[("tcp", "ssh")].error == "connection refused" and not states[("tcp", "ssh")].ok
    assert states[("http", "web")].error == "connection refused" and states[("http", "web")].fail_streak == 1
    health = probe_health(db, org, [device])[device]
    assert set(health) >= {"snmp", "tcp", "http"} and not health["http"].ok
    # Another organization sees none of it.
    assert probe_states(db, make_org(db, "other")) == {}


def test_outcomes_of_a_deleted_device_are_dropped_and_the_worst_check_wins(db: psycopg.Connection) -> None:
    org = make_org(db)
    device = db.execute("INSERT INTO devices (organization_id, name, address, device_type) "
                        "VALUES (%s, 'web-1', '192.0.2.10', 'server') RETURNING id", (org,)).fetchone()[0]
    checks = [db.execute("INSERT INTO service_checks (organization_id, device_id, kind, name, url) "
                         "VALUES (%s, %s, 'http', %s, 'https://192.0.2.10/') RETURNING id", (org, device, n)
                         ).fetchone()[0] for n in ("a", "b")]
    t = 1_800_000_000_000_000
    Loader().load(db, MetricRows.empty(), [
        ProbeOutcome(device, ProbeKind.HTTP, t, True, check_id=checks[0]),
        ProbeOutcome(device, ProbeKind.HTTP, t, False, "certificate verify failed: self-signed certificate",
                     check_id=checks[1]),
        ProbeOutcome(device + 1000, ProbeKind.ICMP, t, False, "no reply"),      # no such device
    ])
    health = probe_health(db, org)[device]
    assert health["http"].check_name == "b" and health["http"].reason.startswith("certificate verify failed")
    db.execute("DELETE FROM service_checks WHERE id = %s", (checks[1],))
    assert probe_health(db, org)[device]["http"].check_name == "a"   # a removed check's state goes with it
    assert db.execute("SELECT count(*) FROM probe_status WHERE device_id = %s", (device + 1000,)).fetchone() == (0,)

