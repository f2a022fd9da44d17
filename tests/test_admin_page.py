"""The administration page: in a real Chromium on the demo's data, and every callback that changes data
called with each role's token, as any signed-in client could call it.

The browser tests follow an admin through every tab (a user added and given another role, a
maintenance window, a rule backtested and then saved, an SNMP profile whose secret stays masked) and
check that an operator and a viewer see the tabs and the controls their roles allow. The permission
tests POST each writing callback for every role: the roles without the permission of the matching API
route get a 403 and the database is unchanged; the others change it. Each browser test ends with a
console free of errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
from flask import Flask
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy.orm import Session

from analytics import maintenance as windows
from analytics import notify, policies, sla_targets
from analytics import rules as rule_store
from dashboard import ids
from dashboard.admin import maintenance, rules, sla, snmp, users
from dashboard.admin import notify as channels
from dashboard.auth import role_allows
from dashboard.permissions import PERMISSION_ATTR
from netpulse.db import make_engine, make_sessionmaker
from netpulse.inventory import credentials
from netpulse.metrics import MetricKind
from netpulse.schema import Role
from tests.conftest import truncate_all
from tests.noc_data import NocData, seed_noc
from tests.test_alerts_page import click, save_full_page
from tests.test_dashboard_browser import WAIT_S, Browser, browser, live_server, module_browser
from tests.test_dashboard_permissions import _callbacks, _key, _token, app, call
from tests.test_noc_browser import sign_in_as, texts

FIXTURES = (app, browser, live_server, module_browser)
ROLES = (Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.API_USER)


@pytest.fixture(scope="module")
def noc(db_url: str) -> Iterator[NocData]:
    truncate_all(db_url)
    yield seed_noc(db_url)
    truncate_all(db_url)


@pytest.fixture(scope="module")
def tokens(app: Flask) -> dict[Role, str]:
    client = app.test_client()
    return {role: _token(client, role) for role in ROLES}


CLEANUP = ("DELETE FROM users WHERE email LIKE 'perm-%'", "DELETE FROM alert_rules WHERE name LIKE 'perm-%'",
           "DELETE FROM escalation_policies WHERE name LIKE 'perm-%'",
           "DELETE FROM notification_channels WHERE name LIKE 'perm-%'",
           "DELETE FROM maintenance_windows WHERE reason LIKE 'perm-%'",
           "DELETE FROM snmp_credentials WHERE name LIKE 'perm-%'",
           "DELETE FROM sla_targets WHERE scope_ref LIKE 'perm-%'", "DELETE FROM tags WHERE name LIKE 'perm-%'")


@pytest.fixture(autouse=True)
def forget_test_objects(db_url: str) -> Iterator[None]:
    """What a test adds through the callbacks is named perm-*: removed after it, so the browser tests (and
    the screenshot) see the demo's data and their own changes only, whatever the order of the tests."""
    yield
    with psycopg.connect(db_url) as conn:
        for sql in CLEANUP:
            conn.execute(sql)


@contextmanager
def core(db_url: str) -> Iterator[Session]:
    """A session on the test database, committed at the end (to set up what a test removes)."""
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            yield session
    finally:
        engine.dispose()


def scalar(db_url: str, sql: str, *args: Any) -> Any:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def said(answer: Any) -> str:
    """A callback's answer as text (JSON escapes < and >)."""
    return json.dumps(answer.get_json(), ensure_ascii=False)


def v(component_id: str, prop: str = "value") -> str:
    return f"{component_id}.{prop}"


# --- permissions: every callback that changes data ---------------------------------------------------------

@dataclass(frozen=True)
class Write:
    """One writing callback: what to send for a role (after setting up what it needs) and whether the
    change happened, read back from the database."""

    values: Callable[[str, NocData, str], dict[str, Any]]   # (db_url, noc, tag) -> "id.prop" -> value
    written: Callable[[str, str], bool]                      # (db_url, tag) -> the change is in the database


def _user_values(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    return {v(users.ADD, "n_clicks"): 1, v(users.EMAIL): f"{tag}@acme.test", v(users.ROLE): "viewer",
            v(users.PASSWORD): "long-enough-password"}


def _target_user(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    from netpulse import users as core_users

    with core(db_url) as s:
        uid = core_users.create_user(s, noc.org_id, f"{tag}@acme.test", "long-enough-password", role="viewer").id
    return {v(users.SET_ROLE, "n_clicks"): 1, v(users.GRID, "selectedRows"): [{"id": str(uid), "state": "active"}],
            v(users.NEW_ROLE): "operator"}


def _channel_values(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    return {v(channels.CH_ADD, "n_clicks"): 1, v(channels.CH_NAME): tag, v(channels.CH_KIND): "smtp",
            v(channels.CH_TO): "noc@example.com", v(channels.CH_RATE): 30}


def _policy_values(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    with core(db_url) as s:
        notify.create_channel(s, noc.org_id, f"{tag}-mail", "smtp", {"to": ["noc@example.com"]})
    return {v(channels.PO_ADD, "n_clicks"): 1, v(channels.PO_NAME): tag, v(channels.PO_TIERS): f"0:{tag}-mail",
            v(channels.PO_DIGEST): 900}


def _policy_to_remove(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    with core(db_url) as s:
        notify.create_channel(s, noc.org_id, f"{tag}-mail", "smtp", {"to": ["noc@example.com"]})
        added = policies.add_policy(s, noc.org_id, policies.PolicySpec(name=tag, tiers=[
            policies.Tier(0, (f"{tag}-mail",))]))
        policy_id = added.id
    return {v(channels.PO_REMOVE, "submit_n_clicks"): 1, v(channels.POLICIES, "selectedRows"): [{"id": policy_id}]}


def _rule_fields(tag: str) -> dict[str, Any]:
    form = {"name": tag, "kind": "threshold", "severity": "warning", "metric": "icmp_rtt_ms", "comparator": ">",
            "value": "150", "clear_value": "", "for": "60s", "scope": "all", "scope_ref": "", "k_mad": "",
            "baseline_weeks": 4, "escalation_policy": "", "enabled": True}
    return {v(rules.FIELD[k]): value for k, value in form.items()}


def _rule_values(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    return {v(rules.SAVE, "n_clicks"): 1, **_rule_fields(tag)}


def _rule_to_delete(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    with psycopg.connect(db_url) as conn:
        saved = rule_store.create_rule(conn, noc.org_id, rule_store.Rule(
            name=tag, kind="threshold", severity="info", metric=MetricKind.CPU_PCT, comparator=">", value=90.0))
    return {v(rules.DELETE, "submit_n_clicks"): 1, v(rules.GRID, "selectedRows"): [{"id": saved.id, "name": tag}]}


def _window_values(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(hours=1)
    return {v(maintenance.ADD, "n_clicks"): 1, v(maintenance.SCOPE): "site", v(maintenance.REF): noc.sites[0],
            v(maintenance.START): start.strftime("%Y-%m-%dT%H:%M"),
            v(maintenance.END): (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"), v(maintenance.REASON): tag}


def _window_to_remove(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=1)
    with core(db_url) as s:
        added = windows.add_window(s, noc.org_id, scope="all", scope_ref=None, start=start,
                                   end=start + timedelta(hours=1), reason=tag)
    return {v(maintenance.REMOVE, "submit_n_clicks"): 1, v(maintenance.GRID, "selectedRows"): [{"id": added.id}]}


def _snmp_values(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    return {v(snmp.ADD, "n_clicks"): 1, v(snmp.FIELD["name"]): tag, v(snmp.FIELD["version"]): "2c",
            v(snmp.FIELD["community"]): "not-public-42"}


def _snmp_to_remove(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    with core(db_url) as s:
        added = credentials.add_snmp_credential(s, noc.org_id, credentials.SnmpCredentialSpec(
            name=tag, version="2c", community="not-public-42"))
        credential_id = added.id
    return {v(snmp.REMOVE, "submit_n_clicks"): 1, v(snmp.GRID, "selectedRows"): [{"id": credential_id}]}


def _device_for(noc: NocData, tag: str) -> str:
    """A device of its own for each (callback, role): a target per scope and period is unique."""
    names = sorted(noc.ids)
    return names[sum(map(ord, tag)) % len(names)]


def _target_values(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    return {v(sla.ADD, "n_clicks"): 1, v(sla.SCOPE): "tag", v(sla.REF): tag, v(sla.PCT): "99.95",
            v(sla.PERIOD): "week", v(sla.SEVERITY): "warning"}


def _target_to_remove(db_url: str, noc: NocData, tag: str) -> dict[str, Any]:
    with core(db_url) as s:
        added = sla_targets.add_sla_target(s, noc.org_id, scope="tag", ref=tag, target_pct="99.9", period="day")
        target_id = added.id
    return {v(sla.REMOVE, "submit_n_clicks"): 1, v(sla.GRID, "selectedRows"): [{"id": target_id}]}


def _exists(sql: str) -> Callable[[str, str], bool]:
    return lambda db_url, tag: bool(scalar(db_url, sql, tag))


def _gone(sql: str) -> Callable[[str, str], bool]:
    return lambda db_url, tag: not scalar(db_url, sql, tag)


WRITES: dict[str, Write] = {
    "add_user": Write(_user_values, _exists("SELECT count(*) FROM users WHERE email = %s || '@acme.test'")),
    "change_user": Write(_target_user, _exists(
        "SELECT count(*) FROM users WHERE email = %s || '@acme.test' AND role = 'operator'")),
    "save_channel": Write(_channel_values, _exists("SELECT count(*) FROM notification_channels WHERE name = %s")),
    "add_policy": Write(_policy_values, _exists("SELECT count(*) FROM escalation_policies WHERE name = %s")),
    "remove_policy": Write(_policy_to_remove, _gone("SELECT count(*) FROM escalation_policies WHERE name = %s")),
    "rule_save": Write(_rule_values, _exists("SELECT count(*) FROM alert_rules WHERE name = %s")),
    "rule_delete": Write(_rule_to_delete, _gone("SELECT count(*) FROM alert_rules WHERE name = %s")),
    "add_maintenance": Write(_window_values, _exists("SELECT count(*) FROM maintenance_windows WHERE reason = %s")),
    "remove_maintenance": Write(_window_to_remove,
                                _gone("SELECT count(*) FROM maintenance_windows WHERE reason = %s")),
    "add_snmp_credential": Write(_snmp_values, _exists("SELECT count(*) FROM snmp_credentials WHERE name = %s")),
    "remove_snmp_credential": Write(_snmp_to_remove, _gone("SELECT count(*) FROM snmp_credentials WHERE name = %s")),
    "add_sla_target": Write(_target_values, _exists("SELECT count(*) FROM sla_targets WHERE scope_ref = %s")),
    "remove_sla_target": Write(_target_to_remove, _gone("SELECT count(*) FROM sla_targets WHERE scope_ref = %s")),
}


def _with_tags(db_url: str, noc: NocData, tag: str) -> None:
    """The tag an SLA target names must exist: one per test, on one device."""
    with psycopg.connect(db_url) as conn:
        tag_id = conn.execute("INSERT INTO tags (organization_id, name, slug) VALUES (%s, %s, %s) RETURNING id",
                              (noc.org_id, tag, tag)).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO device_tags (device_id, tag_id) VALUES (%s, %s)",
                     (noc.ids[_device_for(noc, tag)], tag_id))


def test_every_admin_callback_is_guarded_and_every_write_is_listed(app: Flask) -> None:
    mine = {spec["callback"].__name__: getattr(spec["callback"], PERMISSION_ATTR, None)
            for spec in _callbacks(app).values() if spec["callback"].__module__.startswith("dashboard.admin.")}
    assert None not in mine.values()
    loaders = {"rule_form", "channel_form", "rule_backtest"}   # fill a form or answer a backtest: nothing written
    readers = {name for name in mine if name.endswith(("_rows", "_selected"))} | loaders
    assert set(mine) == readers | set(WRITES)   # a new callback that writes needs a row in WRITES
    assert all(mine[name] in ("admin", "alert:write") for name in WRITES)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
@pytest.mark.parametrize("name", list(WRITES))
def test_a_write_is_refused_to_roles_without_the_permission_and_writes_nothing(
        app: Flask, tokens: dict[Role, str], noc: NocData, db_url: str, name: str, role: Role) -> None:
    write = WRITES[name]
    tag = f"perm-{name.replace('_', '-')}-{role.value.replace('_', '-')}"
    if name in ("add_sla_target", "remove_sla_target"):
        _with_tags(db_url, noc, tag)
    values = write.values(db_url, noc, tag)
    permission = getattr(_callbacks(app)[_key(app, name)]["callback"], PERMISSION_ATTR)
    answer = call(app, tokens[role], name, values)
    if role_allows(role.value, permission):
        assert answer.status_code == 200, answer.get_data(as_text=True)[:400]
        assert "np-admin-refused" not in answer.get_data(as_text=True)
        assert write.written(db_url, tag)
    else:
        assert answer.status_code == 403
        assert "lacks" in answer.get_data(as_text=True)
        assert not write.written(db_url, tag)


def test_operators_write_rules_and_windows_but_not_users_channels_credentials_or_targets(app: Flask) -> None:
    """The permission map of the API, as the page applies it."""
    writable = {name for name in WRITES
                if role_allows("operator", getattr(_callbacks(app)[_key(app, name)]["callback"], PERMISSION_ATTR))}
    assert writable == {"rule_save", "rule_delete", "add_maintenance", "remove_maintenance"}


def test_refusals_of_the_core_come_back_as_one_line(app: Flask, tokens: dict[Role, str], noc: NocData,
                                                    db_url: str) -> None:
    admin = tokens[Role.ADMIN]
    taken = call(app, admin, "add_user", {v(users.ADD, "n_clicks"): 1, v(users.EMAIL): "viewer@acme.test",
                                          v(users.PASSWORD): "long-enough-password", v(users.ROLE): "viewer"})
    assert taken.status_code == 200
    text = taken.get_data(as_text=True)
    assert "np-admin-refused" in text and "a user with e-mail viewer@acme.test already exists" in text
    assert "Traceback" not in text
    unknown = call(app, tokens[Role.OPERATOR], "add_maintenance", {
        v(maintenance.ADD, "n_clicks"): 1, v(maintenance.SCOPE): "device", v(maintenance.REF): "no-such-device",
        v(maintenance.START): "2030-01-01T00:00", v(maintenance.END): "2030-01-01T02:00", v(maintenance.REASON): "x"})
    assert "np-admin-refused" in unknown.get_data(as_text=True) and "no-such-device" in unknown.get_data(as_text=True)
    assert not scalar(db_url, "SELECT count(*) FROM maintenance_windows WHERE starts_at = '2030-01-01T00:00Z'")
    bad_rule = call(app, tokens[Role.OPERATOR], "rule_save", {v(rules.SAVE, "n_clicks"): 1, **{
        **_rule_fields("bad-rule"), v(rules.FIELD["value"]): ""}})
    assert "a threshold rule needs a finite value" in bad_rule.get_data(as_text=True)
    assert not scalar(db_url, "SELECT count(*) FROM alert_rules WHERE name = 'bad-rule'")


def test_a_backtest_counts_alerts_and_writes_nothing(app: Flask, tokens: dict[Role, str], noc: NocData,
                                                     db_url: str) -> None:
    """Backtesting reads (POST /api/v1/rules/backtest needs alert:read): a viewer may, an api_user may not."""
    before = scalar(db_url, "SELECT count(*) FROM alerts")
    fields = {v(rules.BACKTEST, "n_clicks"): 1, v(rules.PERIOD): "1d", **_rule_fields("loss"),
              v(rules.FIELD["metric"]): "icmp_loss_pct", v(rules.FIELD["value"]): "20"}
    answer = call(app, tokens[Role.VIEWER], "rule_backtest", fields)
    assert answer.status_code == 200
    text = said(answer)
    found = re.search(r"loss would have raised (\d+) alerts? over the last day[^(]*\(icmp_loss_pct > 20 for 60 s",
                      text)
    assert found, text[:600]
    assert int(found.group(1)) >= 1   # the leaf losing packets
    assert call(app, tokens[Role.API_USER], "rule_backtest", fields).status_code == 403
    assert scalar(db_url, "SELECT count(*) FROM alerts") == before
    assert not scalar(db_url, "SELECT count(*) FROM alert_rules WHERE name = 'loss'")


# --- in the browser --------------------------------------------------------------------------------------------

def _fill(browser: Browser, component_id: str, value: str) -> None:
    field = browser.driver.find_element(By.ID, component_id)
    field.clear()
    field.send_keys(value)


def _choose(browser: Browser, component_id: str, value: str) -> None:
    Select(browser.driver.find_element(By.ID, component_id)).select_by_value(value)


def _open_tab(browser: Browser, key: str) -> None:
    click(browser, f"#{ids.ADMIN_TAB_LINK[key]}")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: d.find_elements(By.ID, ids.admin_id(key, "panel")))
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: f"tab={key}" in urlparse(d.current_url).query)


def _grid_text(browser: Browser, grid_id: str) -> str:
    return "\n".join(texts(browser, f"#{grid_id} .ag-center-cols-container .ag-row"))


def _wait_for_row(browser: Browser, grid_id: str, text: str) -> None:
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: text in _grid_text(browser, grid_id))


def _select_row(browser: Browser, grid_id: str, row_id: str) -> None:
    click(browser, f"#{grid_id} .ag-center-cols-container .ag-row[row-id='{row_id}'] .ag-cell")


@pytest.mark.browser
def test_npadm001_an_admin_works_through_every_tab(noc: NocData, live_server: str, browser: Browser,
                                                    db_url: str) -> None:
    sign_in_as(browser, live_server, Role.ADMIN, "/admin")
    assert "Admin" in [a.text for a in browser.driver.find_elements(By.CSS_SELECTOR, ".np-navbar .nav-link")]
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: "operator@acme.test" in _grid_text(browser, users.GRID))

    # Each tab renders, and the URL names it.
    for key, grid_id, shows in (("notify", channels.POLICIES, None), ("rules", rules.GRID, "device down"),
                                ("maintenance", maintenance.GRID, "firmware upgrade"), ("snmp", snmp.GRID, None),
                                ("sla", sla.GRID, "all devices"), ("users", users.GRID, "admin@acme.test")):
        _open_tab(browser, key)
        browser.wait_for_element(f"#{grid_id}", timeout=WAIT_S)
        if shows:
            _wait_for_row(browser, grid_id, shows)

    # Users: add one with a generated password (shown once), then give it another role.
    _fill(browser, users.EMAIL, "new-analyst@acme.test")
    _choose(browser, users.ROLE, "viewer")
    click(browser, f"#{users.ADD}")
    browser.wait_for_contains_text(f"#{users.RESULT}", "Added new-analyst@acme.test as viewer", timeout=WAIT_S)
    assert len(browser.driver.find_element(By.CSS_SELECTOR, ".np-secret-once").text) >= 20
    uid = scalar(db_url, "SELECT id FROM users WHERE email = 'new-analyst@acme.test'")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: "new-analyst@acme.test" in _grid_text(browser, users.GRID))
    _select_row(browser, users.GRID, str(uid))
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: d.find_element(By.ID, users.SET_ROLE).is_enabled())
    _choose(browser, users.NEW_ROLE, "operator")
    click(browser, f"#{users.SET_ROLE}")
    browser.wait_for_contains_text(f"#{users.RESULT}", "new-analyst@acme.test is now operator", timeout=WAIT_S)
    assert scalar(db_url, "SELECT role FROM users WHERE id = %s", uid) == "operator"

    # Maintenance: a window for a site, from the defaults' times.
    _open_tab(browser, "maintenance")
    _choose(browser, maintenance.SCOPE, "site")
    _fill(browser, maintenance.REF, noc.sites[1])
    _fill(browser, maintenance.REASON, "core switch swap")
    click(browser, f"#{maintenance.ADD}")
    browser.wait_for_contains_text(f"#{maintenance.RESULT}", f"Added a maintenance window for site {noc.sites[1]}",
                                   timeout=WAIT_S)
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: "core switch swap" in _grid_text(browser, maintenance.GRID))
    assert scalar(db_url, "SELECT scope_ref FROM maintenance_windows WHERE reason = 'core switch swap'") == noc.sites[1]

    # Rules: write one, backtest it over the last day, then save it.
    _open_tab(browser, "rules")
    click(browser, f"#{rules.NEW}")
    _fill(browser, rules.FIELD["name"], "loss-high")
    _choose(browser, rules.FIELD["metric"], "icmp_loss_pct")
    _choose(browser, rules.FIELD["comparator"], ">")
    _fill(browser, rules.FIELD["value"], "20")
    _fill(browser, rules.FIELD["for"], "60s")
    _choose(browser, rules.PERIOD, "1d")
    click(browser, f"#{rules.BACKTEST}")
    browser.wait_for_contains_text(f"#{rules.BACKTEST_RESULT}", "loss-high would have raised", timeout=WAIT_S)
    assert "over the last day" in browser.driver.find_element(By.ID, rules.BACKTEST_RESULT).text
    assert not scalar(db_url, "SELECT count(*) FROM alert_rules WHERE name = 'loss-high'")
    click(browser, f"#{rules.SAVE}")
    browser.wait_for_contains_text(f"#{rules.RESULT}", "Added the rule loss-high", timeout=WAIT_S)
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: "loss-high" in _grid_text(browser, rules.GRID))
    assert scalar(db_url, "SELECT for_s FROM alert_rules WHERE name = 'loss-high'") == 60
    save_full_page(browser, "admin.png")

    # SNMP: a v2c profile; its community is shown masked and never sent back to the page.
    _open_tab(browser, "snmp")
    _fill(browser, snmp.FIELD["name"], "core-v2c")
    _fill(browser, snmp.FIELD["community"], "n0t-public-community")
    click(browser, f"#{snmp.ADD}")
    browser.wait_for_contains_text(f"#{snmp.RESULT}", "Added the SNMP 2c profile core-v2c", timeout=WAIT_S)
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: "core-v2c" in _grid_text(browser, snmp.GRID))
    row = _grid_text(browser, snmp.GRID)
    assert "n0t-public-community" not in row and "*" in row
    assert "n0t-public-community" not in browser.driver.page_source
    logs = browser.get_logs()
    assert logs == [], [e["message"][-300:] for e in logs]


@pytest.mark.browser
def test_npadm002_operators_and_viewers_see_what_their_roles_allow(noc: NocData, live_server: str,
                                                                   browser: Browser) -> None:
    sign_in_as(browser, live_server, Role.OPERATOR, "/admin")
    browser.driver.get(live_server + "/admin?tab=users")   # not theirs: the first tab they may read instead
    browser.wait_for_element(f"#{ids.admin_id('notify', 'panel')}", timeout=WAIT_S)
    tabs = [a.text for a in browser.driver.find_elements(By.CSS_SELECTOR, ".np-admin-tabs .nav-link")]
    assert tabs == ["Channels & policies", "Rules", "Maintenance", "SLA targets"]
    assert browser.driver.find_elements(By.ID, channels.CH_ADD) == []
    _open_tab(browser, "maintenance")
    browser.wait_for_element(f"#{maintenance.ADD}", timeout=WAIT_S)    # operators add windows
    _open_tab(browser, "sla")
    browser.wait_for_contains_text(".np-admin-actions", "Read only", timeout=WAIT_S)
    assert browser.driver.find_elements(By.ID, sla.ADD) == []
    logs = browser.get_logs()
    assert logs == [], [e["message"][-300:] for e in logs]
    browser.driver.delete_all_cookies()

    sign_in_as(browser, live_server, Role.VIEWER, "/admin")
    browser.driver.get(live_server + "/admin?tab=rules")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: "device down" in _grid_text(browser, rules.GRID))
    assert browser.driver.find_elements(By.ID, rules.SAVE) == []           # viewers backtest, never save
    assert browser.driver.find_element(By.ID, rules.BACKTEST).is_displayed()
    _open_tab(browser, "maintenance")
    browser.wait_for_contains_text(".np-admin-actions", "Read only", timeout=WAIT_S)
    assert browser.driver.find_elements(By.ID, maintenance.ADD) == []
    logs = browser.get_logs()
    assert logs == [], [e["message"][-300:] for e in logs]
    browser.driver.delete_all_cookies()

    sign_in_as(browser, live_server, Role.API_USER, "/admin")
    browser.wait_for_contains_text(".np-forbidden", "alert:read", timeout=WAIT_S)
    assert "Admin" not in [a.text for a in browser.driver.find_elements(By.CSS_SELECTOR, ".np-navbar .nav-link")]
    logs = browser.get_logs()
    assert logs == [], [e["message"][-300:] for e in logs]


# --- what the tabs do (through the callbacks, as the page's buttons call them) -----------------------------------

def call_as_button(app: Flask, token: str, name: str, button: str, values: dict[str, Any]) -> Any:
    """POST callback ``name`` as a click on ``button`` (one of its inputs) would."""
    from tests.test_dashboard_permissions import _dep

    key = _key(app, name)
    spec = _callbacks(app)[key]
    outputs = [{"id": o.component_id, "property": o.component_property} for o in spec["output"]]
    body = {"output": key, "outputs": outputs, "inputs": [_dep(d, values) for d in spec["inputs"]],
            "state": [_dep(d, values) for d in spec["state"]], "changedPropIds": [v(button, "n_clicks")]}
    return app.test_client().post("/_dash-update-component", json=body, headers={"Authorization": f"Bearer {token}"})


def test_an_admin_disables_enables_and_resets_a_user_but_keeps_an_admin(app: Flask, tokens: dict[Role, str],
                                                                         noc: NocData, db_url: str) -> None:
    from netpulse import users as core_users

    with core(db_url) as s:
        uid = core_users.create_user(s, noc.org_id, "perm-shift-lead@acme.test", "long-enough-password").id
    row = {v(users.GRID, "selectedRows"): [{"id": str(uid), "state": "active"}]}
    admin = tokens[Role.ADMIN]

    answer = call_as_button(app, admin, "change_user", users.DISABLE, row)
    assert "perm-shift-lead@acme.test can no longer sign in" in answer.get_data(as_text=True)
    assert scalar(db_url, "SELECT is_active FROM users WHERE id = %s", uid) is False
    answer = call_as_button(app, admin, "change_user", users.ENABLE, row)
    assert "can sign in again" in answer.get_data(as_text=True)
    assert scalar(db_url, "SELECT is_active FROM users WHERE id = %s", uid) is True

    answer = call_as_button(app, admin, "change_user", users.RESET, {**row, v(users.PASSWORD): "a-new-passphrase"})
    assert "New password set for perm-shift-lead@acme.test" in answer.get_data(as_text=True)
    assert "np-secret-once" not in answer.get_data(as_text=True)     # typed by the admin: not shown back
    client = app.test_client()
    login = client.post("/api/v1/auth/login",
                        json={"email": "perm-shift-lead@acme.test", "password": "a-new-passphrase"})
    assert login.status_code == 200
    generated = call_as_button(app, admin, "change_user", users.RESET, row)
    assert "np-secret-once" in generated.get_data(as_text=True)      # generated: shown once

    last = {v(users.GRID, "selectedRows"): [{"id": str(noc.users["admin"]), "state": "active"}]}
    refused = call_as_button(app, admin, "change_user", users.DISABLE, last)
    text = refused.get_data(as_text=True)
    assert "np-admin-refused" in text and "only active admin" in text
    assert scalar(db_url, "SELECT is_active FROM users WHERE id = %s", noc.users["admin"]) is True


def test_an_operator_edits_a_rule_through_the_form(app: Flask, tokens: dict[Role, str], noc: NocData,
                                                   db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        saved = rule_store.create_rule(conn, noc.org_id, rule_store.Rule(
            name="perm-cpu-hot", kind="threshold", severity="warning", metric=MetricKind.CPU_PCT, comparator=">",
            value=90.0, for_s=300))
    operator = tokens[Role.OPERATOR]
    loaded = call_as_button(app, operator, "rule_form", rules.EDIT,
                            {v(rules.GRID, "selectedRows"): [{"id": saved.id, "name": "perm-cpu-hot"}]})
    response = loaded.get_json()["response"]
    form = {k: response[rules.FIELD[k]]["value"] for k in rules.FIELDS}
    assert response[rules.EDITING]["data"] == saved.id
    assert form["metric"] == "cpu_pct" and form["value"] == "90" and form["for"] == "300s"

    form["value"], form["severity"] = "95", "critical"
    answer = call_as_button(app, operator, "rule_save", rules.SAVE, {
        v(rules.EDITING, "data"): saved.id, **{v(rules.FIELD[k]): value for k, value in form.items()}})
    assert "Saved the rule perm-cpu-hot: cpu_pct > 95 for 300 s (all devices)" in said(answer)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT value, severity FROM alert_rules WHERE id = %s",
                            (saved.id,)).fetchone() == (95.0, "critical")


def test_an_admin_points_a_channel_elsewhere_and_an_operator_may_not(app: Flask, tokens: dict[Role, str],
                                                                     noc: NocData, db_url: str) -> None:
    with core(db_url) as s:
        notify.create_channel(s, noc.org_id, "perm-noc-mail", "smtp", {"to": ["noc@acme.test"]})
    selected = {v(channels.CHANNELS, "selectedRows"): [{"id": 0, "name": "perm-noc-mail"}]}
    assert call_as_button(app, tokens[Role.OPERATOR], "channel_form", channels.CH_EDIT, selected).status_code == 403
    loaded = call_as_button(app, tokens[Role.ADMIN], "channel_form", channels.CH_EDIT, selected).get_json()["response"]
    assert loaded[channels.CH_EDITING]["data"] == "perm-noc-mail" and loaded[channels.CH_TO]["value"] == "noc@acme.test"
    assert loaded[channels.CH_NAME]["disabled"] is True

    form = {v(channels.CH_EDITING, "data"): "perm-noc-mail", v(channels.CH_TO): "noc@acme.test, oncall@acme.test"}
    refused = call_as_button(app, tokens[Role.OPERATOR], "save_channel", channels.CH_ADD, form)
    assert refused.status_code == 403
    answer = call_as_button(app, tokens[Role.ADMIN], "save_channel", channels.CH_ADD, form)
    assert "The smtp channel perm-noc-mail now sends to" in said(answer)
    with core(db_url) as s:
        assert notify.get_channel(s, noc.org_id, "perm-noc-mail").config["to"] == ["noc@acme.test", "oncall@acme.test"]
    bad = call_as_button(app, tokens[Role.ADMIN], "save_channel", channels.CH_ADD, {
        v(channels.CH_EDITING, "data"): "perm-noc-mail", v(channels.CH_TO): "not an address"})
    assert "np-admin-refused" in said(bad)
    with core(db_url) as s:
        assert notify.get_channel(s, noc.org_id, "perm-noc-mail").config["to"] == ["noc@acme.test", "oncall@acme.test"]


def test_a_v3_profile_is_added_and_its_secrets_never_come_back(app: Flask, tokens: dict[Role, str],
                                                                db_url: str) -> None:
    fields = {"name": "perm-edge-v3", "version": "3", "community": "", "username": "netpulse", "auth_protocol": "SHA",
              "auth_password": "authpass123", "priv_protocol": "AES", "priv_password": "privpass123"}
    answer = call_as_button(app, tokens[Role.ADMIN], "add_snmp_credential", snmp.ADD,
                            {v(snmp.FIELD[k]): value for k, value in fields.items()})
    assert "Added the SNMP 3 profile perm-edge-v3" in said(answer)
    assert all(answer.get_json()["response"][snmp.FIELD[k]]["value"] == "" for k in snmp.SECRETS)  # inputs emptied
    rows = said(call(app, tokens[Role.ADMIN], "snmp_rows", {v(snmp.VERSION, "data"): 1}))
    assert "perm-edge-v3" in rows and "authPriv" in rows and "SHA au****" in rows and "AES pr****" in rows
    assert "authpass123" not in rows and "privpass123" not in rows
    assert call(app, tokens[Role.OPERATOR], "snmp_rows", {v(snmp.VERSION, "data"): 1}).status_code == 403
    stored = scalar(db_url, "SELECT auth_password FROM snmp_credentials WHERE name = 'perm-edge-v3'")
    assert "authpass123" not in stored   # encrypted at rest
