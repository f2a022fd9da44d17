"""SLA targets: scopes that must exist, percentages, duplicates, other organizations, removal (which
resolves an open breach), the CLI, and ``evaluate_targets`` reading what was added."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from analytics.alerts import apply_sla
from analytics.sla import evaluate_targets
from analytics.sla_targets import add_sla_target, list_sla_targets, parse_target_pct, remove_sla_target
from cli import main
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.inventory import DeviceSpec, create_device
from netpulse.organizations import create_organization
from tests.factories import utc

NOW = utc(2026, 11, 20, 12)


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def orgs(session: Session) -> tuple[uuid.UUID, uuid.UUID]:
    acme, globex = create_organization(session, "Acme", "acme").id, create_organization(session, "Globex", "globex").id
    create_device(session, acme, DeviceSpec(name="core-1", address="10.0.0.1", device_type="router",
                                            site="Nairobi HQ", group="Core", tags=["edge"]))
    create_device(session, globex, DeviceSpec(name="gx-1", address="10.0.0.1", device_type="router", site="Lagos"))
    return acme, globex


@pytest.mark.parametrize(("text", "expected"), [("99.9", Decimal("99.9")), ("99.95%", Decimal("99.95")),
                                                ("100", Decimal("100")), (" 0.0001 % ", Decimal("0.0001"))])
def test_parse_target_pct(text: str, expected: Decimal) -> None:
    assert parse_target_pct(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("0", "target '0' must be above 0 and at most 100 (a percentage like 99.9)"),
    ("100.01", "target '100.01' must be above 0 and at most 100 (a percentage like 99.9)"),
    ("NaN", "target 'NaN' must be above 0 and at most 100 (a percentage like 99.9)"),
    ("99.99999", "target '99.99999' has more than four decimals"),
    ("three nines", "target 'three nines' is not a percentage like 99.9"),
])
def test_bad_percentages(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc_info:
        parse_target_pct(text)
    assert (exc_info.value.message, exc_info.value.details) == (message, {"target_pct": text})


def test_add_resolves_references_to_exact_names(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, _ = orgs
    site = add_sla_target(session, acme, scope="site", ref="nairobi-hq", target_pct="99.95", period="quarter")
    assert (site.scope, site.scope_ref, site.target_pct, site.period, site.severity) == (
        "site", "Nairobi HQ", Decimal("99.95"), "quarter", "critical")  # a slug names the site; its name is stored
    add_sla_target(session, acme, scope="device", ref="core-1", target_pct=99.9, severity="warning")
    add_sla_target(session, acme, scope="group", ref="Core", target_pct="99")
    add_sla_target(session, acme, scope="tag", ref="edge", target_pct="98")
    add_sla_target(session, acme, scope="all", ref=None, target_pct="99.5", period="day")
    assert [(t.scope, t.scope_ref) for t in list_sla_targets(session, acme)] == [
        ("site", "Nairobi HQ"), ("device", "core-1"), ("group", "Core"), ("tag", "edge"), ("all", None)]


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"scope": "device", "ref": "gx-1"}, NotFound, "no device named 'gx-1' in this organization (names are exact)"),
    ({"scope": "site", "ref": "Lagos"}, NotFound, "no site named 'Lagos' in this organization (names are exact, "
                                                  "slugs also match)"),
    ({"scope": "device", "ref": "Core-1"}, NotFound, "no device named 'Core-1' in this organization (names are "
                                                     "exact)"),
    ({"scope": "rack", "ref": "r1"}, ValidationError, "scope 'rack' is not one of device, group, site, tag, all"),
    ({"scope": "all", "ref": "x"}, ValidationError, "scope all takes no reference (got 'x'); leave it out"),
    ({"scope": "tag", "ref": None}, ValidationError, "scope tag needs a reference: the tag's name"),
    ({"scope": "all", "ref": None, "period": "fortnight"}, ValidationError,
     "invalid SLA target: period: period 'fortnight' is not one of day, week, month, quarter, year"),
    ({"scope": "all", "ref": None, "severity": "fatal"}, ValidationError,
     "invalid SLA target: severity: severity 'fatal' is not one of info, warning, critical"),
    ({"scope": "all", "ref": None, "target_pct": "101"}, ValidationError,
     "target '101' must be above 0 and at most 100 (a percentage like 99.9)"),
])
def test_bad_targets(session: Session, orgs: tuple[uuid.UUID, uuid.UUID], kwargs: dict[str, str],
                     error: type[Exception], message: str) -> None:
    args: dict[str, str | None] = {"target_pct": "99.9"} | kwargs
    with pytest.raises(error) as exc_info:
        add_sla_target(session, orgs[0], **args)  # type: ignore[arg-type]
    assert str(exc_info.value) == message
    assert list_sla_targets(session, orgs[0]) == []


def test_duplicates_and_other_organizations(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = orgs
    first = add_sla_target(session, acme, scope="all", ref=None, target_pct="99.9")
    with pytest.raises(Conflict) as exc_info:
        add_sla_target(session, acme, scope="all", ref=None, target_pct="99")
    assert exc_info.value.message == (f"all devices already has a monthly target of 99.9% (id {first.id}); remove it "
                                      "first to change it")
    add_sla_target(session, acme, scope="all", ref=None, target_pct="99", period="day")  # another period is fine
    add_sla_target(session, globex, scope="all", ref=None, target_pct="99.9")  # another organization too
    assert len(list_sla_targets(session, acme)) == 2 and len(list_sla_targets(session, globex)) == 1
    with pytest.raises(NotFound, match=rf"no SLA target with id {first.id} in this organization; known ids: "):
        remove_sla_target(session, globex, first.id)


def test_evaluated_and_removal_resolves_the_open_breach(session: Session, orgs: tuple[uuid.UUID, uuid.UUID],
                                                        db: psycopg.Connection) -> None:
    acme, _ = orgs
    target = add_sla_target(session, acme, scope="device", ref="core-1", target_pct="99.9", period="day")
    session.commit()
    device = db.execute("SELECT id FROM devices WHERE name = 'core-1'").fetchone()[0]
    day = NOW.replace(hour=0)
    for t, a, b in ((day, "unknown", "up"), (day + timedelta(hours=1), "up", "down")):
        db.execute("INSERT INTO device_status_events (organization_id, device_id, time, confirmed_at, from_status, "
                   "to_status) VALUES (%s, %s, %s, %s, %s, %s)", (acme, device, t, t, a, b))
    (result,) = evaluate_targets(db, acme, NOW)
    assert (result.target_id, result.scope_ref, result.target_pct, result.breached) == (target.id, "core-1", 99.9,
                                                                                        True)
    (alert_id,) = apply_sla(db, acme, [result], NOW).opened
    removed, resolved = remove_sla_target(session, acme, target.id)
    session.commit()
    assert (removed.id, resolved) == (target.id, 1)
    assert db.execute("SELECT status, resolution_note FROM alerts WHERE id = %s", (alert_id,)).fetchone() == (
        "resolved", "SLA target removed")
    assert db.execute("SELECT kind, note FROM alert_events WHERE alert_id = %s ORDER BY id DESC LIMIT 1",
                      (alert_id,)).fetchone() == ("resolved", "SLA target removed")
    assert evaluate_targets(db, acme, NOW) == []


def test_cli_add_list_remove(db: psycopg.Connection, settings_env: None) -> None:
    assert _cli("org", "create", "Acme")[0] == 0
    assert _cli("devices", "add", "core-1", "10.0.0.1", "--type", "router", "--site", "Nairobi")[0] == 0
    assert _cli("sla", "target", "add", "--scope", "all", "--target", "99.9") == (
        0, "added SLA target 1 to acme: all devices 99.9% per month, a breach opens a critical alert\n", "")
    assert _cli("sla", "target", "add", "--scope", "site", "--ref", "nairobi", "--target", "99.95%", "--period",
                "week", "--severity", "warning") == (
        0, "added SLA target 2 to acme: site 'Nairobi' 99.95% per week, a breach opens a warning alert\n", "")
    code, out, err = _cli("sla", "target", "list")
    lines = out.splitlines()
    assert code == 0 and [line.split()[:4] for line in lines[2:4]] == [["1", "all", "-", "month"],
                                                                      ["2", "site", "Nairobi", "week"]]
    assert lines[-1] == "2 target(s), 0 breached"
    for args, message in [
        (["add", "--scope", "device", "--ref", "nope", "--target", "99"],
         "no device named 'nope' in this organization (names are exact)"),
        (["add", "--scope", "device", "--target", "99"], "--scope device needs --ref NAME (the device's name)"),
        (["add", "--scope", "all", "--ref", "x", "--target", "99"], "--ref is not used with --scope all; leave it "
                                                                   "out"),
        (["add", "--scope", "all", "--target", "99.95"], "all devices already has a monthly target of 99.9% (id 1); "
                                                         "remove it first to change it"),
        (["add", "--scope", "all", "--target", "1000", "--period", "day"],
         "target '1000' must be above 0 and at most 100 (a percentage like 99.9)"),
        (["remove", "7"], "no SLA target with id 7 in this organization; known ids: 1, 2"),
    ]:
        assert _cli("sla", "target", *args) == (1, "", f"Error: {message}\n"), args
    assert _cli("sla", "target", "remove", "2") == (0, "removed SLA target 2: site 'Nairobi' 99.95% per week\n", "")
    assert db.execute("SELECT count(*) FROM sla_targets").fetchone() == (1,)
