"""Escalation policies: validation against the organization's channels, duplicates, other
organizations, removal while rules name them, the CLI, and the alert engine reading what they store."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from analytics.alerts import AlertEngine, Finding, digest, escalate
from analytics.notify import create_channel
from analytics.policies import (
    PolicySpec,
    Tier,
    add_policy,
    get_policy,
    list_policies,
    parse_tier,
    policy_view,
    remove_policy,
)
from analytics.rules import Rule, save_rules
from cli import main
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.metrics import MetricKind
from netpulse.organizations import create_organization
from tests.factories import make_devices, utc

NOW = utc(2026, 11, 20, 12)
CHANNELS = ("noc-email", "noc-slack", "oncall-sms", "manager-email")


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _channels(session: Session, org: uuid.UUID, names: tuple[str, ...] = CHANNELS) -> None:
    for name in names:
        create_channel(session, org, name, "webhook", {"url": f"http://127.0.0.1:9/{name}", "secret": "s" * 32})


@pytest.fixture
def orgs(session: Session) -> tuple[uuid.UUID, uuid.UUID]:
    acme, globex = create_organization(session, "Acme", "acme").id, create_organization(session, "Globex", "globex").id
    _channels(session, acme)
    _channels(session, globex, ("globex-only",))
    return acme, globex


def test_parse_tier() -> None:
    assert parse_tier("0:noc-email") == Tier(0, ("noc-email",))
    assert parse_tier(" 1h30m : a , b ") == Tier(5400, ("a", "b"))
    with pytest.raises(ValidationError, match=r"tier 'noc-email' must be DELAY:CHANNEL\[,CHANNEL...\]"):
        parse_tier("noc-email")
    with pytest.raises(ValidationError, match="tier delay: 'soon' is not a duration"):
        parse_tier("soon:noc-email")


def test_add_and_list(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = orgs
    p = add_policy(session, acme, PolicySpec(name="default", tiers=[Tier(0, ("noc-email", "noc-slack")),
                                                                   Tier(900, ("oncall-sms",))]))
    assert p.steps == [{"after_s": 0, "channels": ["noc-email", "noc-slack"]},
                       {"after_s": 900, "channels": ["oncall-sms"]}]
    assert p.warning_channels is None
    add_policy(session, acme, PolicySpec(name="pager", tiers=[Tier(0, ("oncall-sms",))],
                                         warning_channels=["noc-email"]))
    add_policy(session, acme, PolicySpec(name="quiet", tiers=[Tier(0, ("noc-slack",))], warning_channels=[]))
    save_rules(session.connection().connection.driver_connection, acme,
               [Rule("latency", "threshold", "critical", metric=MetricKind.ICMP_RTT_MS, comparator=">", value=100,
                     escalation_policy="pager")])
    listed = list_policies(session, acme)
    assert [(u.policy.name, u.rules) for u in listed] == [("default", 0), ("pager", 1), ("quiet", 0)]
    views = {u.policy.name: policy_view(u.policy) for u in listed}
    assert views["default"]["critical"] == [{"tier": 0, "after_s": 0, "channels": ["noc-email", "noc-slack"]},
                                            {"tier": 1, "after_s": 900, "channels": ["oncall-sms"]}]
    assert (views["default"]["warning"], views["pager"]["warning"], views["quiet"]["warning"]) == (
        ["noc-email", "noc-slack"], ["noc-email"], [])
    assert list_policies(session, globex) == []


@pytest.mark.parametrize(("spec", "details"), [
    (PolicySpec(name="p", tiers=[]), {"tiers": "a policy needs at least one tier, e.g. 0:noc-email"}),
    (PolicySpec(name="p", tiers=[Tier(60, ("noc-email",))]),
     {"tiers": "tier 0 is notified when an alert opens, so its delay must be 0 (got 1m 00s)"}),
    (PolicySpec(name="p", tiers=[Tier(0, ("noc-email",)), Tier(900, ("oncall-sms",)), Tier(600, ("noc-slack",))]),
     {"tiers": "tier 2 must come later than tier 1 (10m 00s is not after 15m 00s); delays count from when the alert "
               "opened"}),
    (PolicySpec(name="p", tiers=[Tier(0, ("noc-email",)), Tier(8 * 86400, ("oncall-sms",))]),
     {"tiers": "tier 1 delay must be at most 7d (got 8d 0h)"}),
    (PolicySpec(name="p", tiers=[Tier(0, ())]), {"tiers": "tier 0 names no channel"}),
    (PolicySpec(name="p", tiers=[Tier(0, ("noc-email", "noc-email"))]),
     {"tiers": "tier 0 names a channel twice (noc-email, noc-email)"}),
    (PolicySpec(name="p", tiers=[Tier(0, ("noc-email", "nope", "globex-only"))]),
     {"tiers": "no notification channel named 'nope', 'globex-only'; known: manager-email, noc-email, noc-slack, "
               "oncall-sms"}),
    (PolicySpec(name="p", tiers=[Tier(0, ("noc-email",))], warning_channels=["ghost"]),
     {"warning_channels": "no notification channel named 'ghost'; known: manager-email, noc-email, noc-slack, "
                          "oncall-sms"}),
    (PolicySpec(name=" ", tiers=[Tier(0, ("noc-email",))]),
     {"name": "policy name '' must be 1 to 100 letters, digits, spaces or . _ @ + -, starting with a letter or "
              "digit"}),
    (PolicySpec(name="p", tiers=[Tier(i * 60, ("noc-email",)) for i in range(11)]), {"tiers": "at most 10 tiers "
                                                                                              "(got 11)"}),
])
def test_bad_policies(session: Session, orgs: tuple[uuid.UUID, uuid.UUID], spec: PolicySpec,
                      details: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as exc_info:
        add_policy(session, orgs[0], spec)
    assert exc_info.value.details == details
    assert list_policies(session, orgs[0]) == []


def test_duplicates_other_organizations_and_removal(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = orgs
    first = add_policy(session, acme, PolicySpec(name="pager", tiers=[Tier(0, ("oncall-sms",))]))
    with pytest.raises(Conflict, match=rf"an escalation policy named 'pager' already exists \(id {first.id}\)"):
        add_policy(session, acme, PolicySpec(name="pager", tiers=[Tier(0, ("noc-email",))]))
    add_policy(session, globex, PolicySpec(name="pager", tiers=[Tier(0, ("globex-only",))]))
    conn = session.connection().connection.driver_connection
    save_rules(conn, acme, [Rule(n, "threshold", "critical", metric=MetricKind.ICMP_RTT_MS, comparator=">", value=1,
                                 escalation_policy="pager") for n in ("latency", "loss")])
    with pytest.raises(Conflict) as exc_info:
        remove_policy(session, acme, "pager")
    assert exc_info.value.message == (
        "escalation policy 'pager' is named by 2 alert rule(s): latency, loss; point them at another policy first, "
        "or remove it with --force (they then use the policy named 'default')")
    assert remove_policy(session, acme, "pager", force=True) == ["latency", "loss"]
    assert conn.execute("SELECT count(*) FROM alert_rules WHERE escalation_policy_id IS NULL").fetchone() == (2,)
    with pytest.raises(NotFound, match="no escalation policy 'pager' in this organization; none is defined yet"):
        get_policy(session, acme, "pager")
    assert get_policy(session, globex, "pager").steps == [{"after_s": 0, "channels": ["globex-only"]}]


# --- what the engine reads ---------------------------------------------------------------------------


def test_the_engine_routes_by_what_the_policies_hold(session: Session, orgs: tuple[uuid.UUID, uuid.UUID],
                                                     db: psycopg.Connection) -> None:
    acme, _ = orgs
    add_policy(session, acme, PolicySpec(name="default", tiers=[parse_tier("0:noc-email,noc-slack"),
                                                                parse_tier("10m:oncall-sms"),
                                                                parse_tier("30m:manager-email")],
                                         warning_channels=["noc-email"]))
    add_policy(session, acme, PolicySpec(name="quiet", tiers=[parse_tier("0:noc-slack")], warning_channels=[]))
    session.commit()
    rtt = MetricKind.ICMP_RTT_MS
    crit, warn, quiet = save_rules(db, acme, [
        Rule("latency", "threshold", "critical", metric=rtt, comparator=">", value=100),
        Rule("slow", "threshold", "warning", metric=rtt, comparator=">", value=50),
        Rule("slow-quiet", "threshold", "warning", metric=rtt, comparator=">", value=50, escalation_policy="quiet")])
    a, b, c = make_devices(db, acme, 3)
    report = AlertEngine().apply(db, acme, [Finding(crit, a, True, NOW, value=150.0),
                                            Finding(warn, b, True, NOW, value=70.0),
                                            Finding(quiet, c, True, NOW, value=70.0)], NOW)
    assert [(n.reason, n.channels) for n in report.notify] == [("opened", ("noc-email", "noc-slack"))]
    with db.transaction():
        sent = digest(db, acme, NOW + timedelta(minutes=15))
    # Warnings go to each policy's warning channels: "default" to noc-email only, "quiet" to none.
    assert sorted((n.reason, len(n.alert_ids), n.channels) for n in sent) == [("digest", 1, ("noc-email",))]
    with db.transaction():
        tiers = escalate(db, acme, NOW + timedelta(minutes=10))
    assert [(n.reason, n.channels) for n in tiers] == [("escalated", ("oncall-sms",))]
    with db.transaction():
        tiers = escalate(db, acme, NOW + timedelta(minutes=31))
    assert [(n.reason, n.channels) for n in tiers] == [("escalated", ("manager-email",))]


# --- the CLI --------------------------------------------------------------------------------------------


def test_cli_add_list_remove(db: psycopg.Connection, settings_env: None) -> None:
    assert _cli("org", "create", "Acme")[0] == 0
    for name in ("noc-email", "oncall-sms"):
        assert _cli("notify", "channel", "add", name, "--kind", "webhook", "--url", "http://127.0.0.1:9/",
                    "--secret", "s" * 32)[0] == 0
    code, out, err = _cli("notify", "policy", "list")
    assert out == ("no escalation policies in acme yet; add the one rules use by default with "
                   "`netpulse notify policy add default --tier 0:CHANNEL`\n")
    code, out, err = _cli("notify", "policy", "add", "default", "--tier", "0:noc-email", "--tier", "15m:oncall-sms")
    assert (code, out, err) == (0, "added escalation policy 'default' (id 1) to acme: critical at once: noc-email; "
                                   "after 15m 00s: oncall-sms; warning digest noc-email; info logged only\n", "")
    code, out, err = _cli("notify", "policy", "add", "pager", "--tier", "0:oncall-sms", "--no-warning-digest")
    assert out.endswith("critical at once: oncall-sms; warning digest to no channel; info logged only\n"), err
    code, out, err = _cli("notify", "policy", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "CRITICAL", "WARNING", "DIGEST", "RULES"]
    assert lines[2].split() == ["1", "default", "at", "once:", "noc-email;", "after", "15m", "00s:", "oncall-sms",
                                "noc-email", "(tier", "0)", "0"]
    assert lines[3].split() == ["2", "pager", "at", "once:", "oncall-sms", "-", "0"]
    assert len(lines) == 4
    for args, message in [
        (["add", "x", "--tier", "5m:noc-email"], "invalid escalation policy 'x': tiers: tier 0 is notified when an "
                                                 "alert opens, so its delay must be 0 (got 5m 00s)"),
        (["add", "x", "--tier", "0:sms"], "invalid escalation policy 'x': tiers: no notification channel named "
                                          "'sms'; known: noc-email, oncall-sms"),
        (["add", "x", "--tier", "0:oncall-sms", "--warning-channels", "noc-email", "--no-warning-digest"],
         "use either --warning-channels or --no-warning-digest, not both"),
        (["add", "default", "--tier", "0:oncall-sms"], "an escalation policy named 'default' already exists (id 1); "
                                                      "choose another name or remove it first"),
        (["remove", "nope"], "no escalation policy 'nope' in this organization; known: default, pager"),
    ]:
        assert _cli("notify", "policy", *args) == (1, "", f"Error: {message}\n"), args
    assert _cli("notify", "policy", "remove", "default") == (
        0, "removed escalation policy 'default'\nrules without a policy of their own, and SLA breaches, have no "
           "escalation tiers until a policy named default exists again\n", "")
    code, out, err = _cli("notify", "policy", "list")
    assert out.splitlines()[-1] == ("no policy named default: rules without a policy of their own, and SLA "
                                    "breaches, have no escalation tiers")
