"""The alerts page in a real headless Chromium: counts, tenant isolation, filters, history, acknowledge,
resolve (with its note rule), errors shown inline, and what a viewer may not do.

Alerts are made the way production makes them: rules saved with ``analytics.rules.save_rules`` and
findings run through ``analytics.alerts.AlertEngine``. The server, browser and helpers are the overview
tests' (``tests/test_dashboard_browser.py``); every test ends with ``browser.get_logs() == []``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import psycopg
import pytest
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from analytics.alerts import AlertEngine, Finding, acknowledge, resolve
from analytics.rules import Rule, save_rules
from dashboard import ids
from netpulse.db import make_engine, make_sessionmaker
from netpulse.metrics import MetricKind
from netpulse.schema import Role
from netpulse.users import create_organization, create_user
from tests.factories import make_org
from tests.test_dashboard_browser import (
    EMAIL,
    PASSWORD,
    SCREENSHOTS,
    WAIT_S,
    Browser,
    add_device,
    add_site,
    browser,
    live_server,
    make_user,
    module_browser,
    sign_in,
)

pytestmark = pytest.mark.browser

FIXTURES = (browser, live_server, module_browser)  # the overview tests' fixtures, imported to be used here

# Most severe first, then newest: the five open alerts of the seeded organization, by device.
OPEN_DEVICES = ["mba-edge-01", "nbo-core-01", "nbo-access-01", "mba-edge-01", "lab-sw-01"]


# --- data --------------------------------------------------------------------------------------------

def make_operator(db_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """Acme's organization and its operator (EMAIL), who may acknowledge and resolve."""
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            org = create_organization(session, "Acme Networks", "acme")
            user = create_user(session, org.id, EMAIL, PASSWORD, role=Role.OPERATOR)
            return org.id, user.id
    finally:
        engine.dispose()


def seed_alerts(db: psycopg.Connection, org: uuid.UUID, user: uuid.UUID | None, now: datetime) -> dict[str, uuid.UUID]:
    """Five open alerts (critical: one firing, one acknowledged; warning: one suppressed by maintenance,
    one flapping; info: one) and two resolved ones, opened over the last five hours."""
    nbo, mba = add_site(db, org, "Nairobi DC"), add_site(db, org, "Mombasa POP")
    devs = {name: add_device(db, org, name, site) for name, site in [
        ("nbo-core-01", nbo), ("mba-edge-01", mba), ("nbo-access-01", nbo), ("lab-sw-01", None)]}
    latency, loss, cpu = save_rules(db, org, [
        Rule("High latency", "threshold", "critical", metric=MetricKind.ICMP_RTT_MS, comparator=">", value=100),
        Rule("Packet loss", "threshold", "warning", metric=MetricKind.ICMP_LOSS_PCT, comparator=">", value=5),
        Rule("CPU busy", "threshold", "info", metric=MetricKind.CPU_PCT, comparator=">", value=90)])
    db.execute("INSERT INTO maintenance_windows (organization_id, scope, scope_ref, starts_at, ends_at, reason) "
               "VALUES (%s, 'device', 'mba-edge-01', %s, %s, 'fibre splicing')",
               (org, now - timedelta(minutes=16), now + timedelta(hours=1)))
    engine = AlertEngine(flap_threshold=2)

    def apply(rule: Rule, device: str, minutes_ago: float, value: float, message: str,
              firing: bool = True) -> list[uuid.UUID]:
        at = now - timedelta(minutes=minutes_ago)
        finding = Finding(rule, devs[device], firing, at, value=value, started_at=at - timedelta(minutes=2),
                          message=message)
        report = engine.apply(db, org, [finding], at)
        return report.opened or report.resolved

    out = {}
    (out["resolved_loss"],) = apply(loss, "nbo-core-01", 300, 12.0, "Packet loss 12 % above 5 %")
    apply(loss, "nbo-core-01", 240, 0.0, "", firing=False)
    (out["firing"],) = apply(latency, "nbo-core-01", 40, 182.0, "Round-trip time 182 ms above 100 ms")
    apply(latency, "nbo-core-01", 39, 190.0, "")   # repeats bump the open alert
    apply(latency, "nbo-core-01", 38, 176.0, "")
    (out["acknowledged"],) = apply(latency, "mba-edge-01", 20, 240.0, "Round-trip time 240 ms above 100 ms")
    acknowledge(db, org, out["acknowledged"], user, "ISP ticket 4411 opened", now - timedelta(minutes=18))
    (out["suppressed"],) = apply(loss, "mba-edge-01", 15, 30.0, "Packet loss 30 % above 5 %")
    (out["resolved_flap"],) = apply(loss, "nbo-access-01", 25, 9.0, "Packet loss 9 % above 5 %")
    apply(loss, "nbo-access-01", 22, 0.0, "", firing=False)
    (out["flapping"],) = apply(loss, "nbo-access-01", 10, 11.0, "Packet loss 11 % above 5 %")
    (out["info"],) = apply(cpu, "lab-sw-01", 5, 97.0, "CPU 97 % above 90 %")
    return out


def seed_other_org(db: psycopg.Connection, now: datetime) -> uuid.UUID:
    """Globex, another tenant of the same database, with one critical alert of its own."""
    org = make_org(db, "globex")
    dev = add_device(db, org, "gx-core-01", add_site(db, org, "Globex HQ"))
    (rule,) = save_rules(db, org, [Rule("Globex latency", "threshold", "critical", metric=MetricKind.ICMP_RTT_MS,
                                        comparator=">", value=100)])
    at = now - timedelta(minutes=3)
    (alert_id,) = AlertEngine().apply(db, org, [Finding(rule, dev, True, at, value=500.0,
                                                        message="Globex secret outage")], at).opened
    return alert_id


# --- browser helpers ---------------------------------------------------------------------------------

def css_id(component_id: dict[str, str]) -> str:
    """The CSS selector of a pattern-matching id (Dash writes it as compact JSON with sorted keys)."""
    return "[id='" + json.dumps(component_id, sort_keys=True, separators=(",", ":")) + "']"


ACTION_ANY = "[id*='\"type\":\"" + ids.ALERT_ACTION + "\"']"
NOTE = css_id(ids.ALERT_NOTE_ID)


def click(browser: Browser, selector: str) -> None:
    """Click, retrying while a live refresh replaces the element under the pointer."""

    def attempt(driver: WebDriver) -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return False
        return True

    WebDriverWait(browser.driver, WAIT_S, ignored_exceptions=(NoSuchElementException,)).until(attempt)


def table_rows(browser: Browser, n: int) -> list[list[str]]:
    """Until the table shows ``n`` alert rows; then their cells' texts, row by row."""

    def ready(driver: WebDriver) -> list[list[str]] | bool:
        try:
            rows = driver.find_elements(By.CSS_SELECTOR, f"#{ids.ALERTS_TABLE} tr.np-alert-row")
            texts = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]
        except StaleElementReferenceException:
            return False
        return texts if len(texts) == n else False

    result: list[list[str]] = WebDriverWait(browser.driver, WAIT_S).until(ready)
    return result


def wait_for_kpis(browser: Browser, **expected: str) -> None:
    for key, text in expected.items():
        browser.wait_for_text_to_equal(f"#{ids.ALERT_KPI[key]}", text, timeout=WAIT_S)


def history(browser: Browser, n: int) -> list[str]:
    """Until the selected alert's history lists ``n`` events; then their texts."""

    def ready(driver: WebDriver) -> list[str] | bool:
        try:
            items = [li.text for li in driver.find_elements(By.CSS_SELECTOR, f"#{ids.ALERT_HISTORY} li.np-ev")]
        except StaleElementReferenceException:
            return False
        return items if len(items) == n else False

    result: list[str] = WebDriverWait(browser.driver, WAIT_S).until(ready)
    return result


def select(browser: Browser, alert_id: uuid.UUID, message: str) -> None:
    click(browser, css_id(ids.alert_row(str(alert_id))))
    browser.wait_for_contains_text(f"#{ids.ALERT_DETAIL}", message, timeout=WAIT_S)


def save_full_page(browser: Browser, name: str) -> None:
    """A screenshot of the whole page (the window's height stretched to the content), from the top."""
    driver = browser.driver
    driver.execute_script("window.scrollTo(0, 0)")
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    size = driver.get_window_size()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": int(size["width"]), "height": max(height, 600), "deviceScaleFactor": 1, "mobile": False})
    try:
        assert driver.save_screenshot(str(SCREENSHOTS / name))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


_CHART_JS = f"""
const el = document.querySelector('#{ids.ALERTS_CHART} .js-plotly-plot');
if (!el || !el.data) return null;
return el.data.map(t => [t.name, (t.y || []).reduce((a, b) => a + b, 0)]);
"""


# --- tests -------------------------------------------------------------------------------------------

def test_npal001_lists_the_open_alerts_of_the_org_with_counts(live_server: str, db: psycopg.Connection,
                                                              browser: Browser, db_url: str) -> None:
    org, user = make_operator(db_url)
    now = datetime.now(UTC)
    seeded = seed_alerts(db, org, user, now)
    seed_other_org(db, now)

    sign_in(browser, live_server, "/alerts")
    wait_for_kpis(browser, critical="2", warning="2", info="1", acknowledged="1", suppressed="1", flapping="1")
    browser.wait_for_text_to_equal(f"#{ids.ALERT_KPI_SUB['critical']}", "1 firing · 1 acknowledged", timeout=WAIT_S)
    browser.wait_for_text_to_equal(f"#{ids.ALERT_KPI_SUB['suppressed']}", "1 maintenance", timeout=WAIT_S)
    browser.wait_for_text_to_equal(f"#{ids.ALERTS_COUNT}", "5 open", timeout=WAIT_S)
    rows = table_rows(browser, 5)
    assert [r[3].splitlines()[0] for r in rows] == OPEN_DEVICES
    assert [r[1] for r in rows] == ["CRITICAL", "CRITICAL", "WARNING", "WARNING", "INFO"]
    assert [r[2] for r in rows] == ["Acknowledged", "Firing", "Firing", "Firing", "Firing"]
    # The firing critical: began two minutes before it opened, seen three times, no notes.
    assert rows[1][3:] == ["nbo-core-01\nNairobi DC", "Round-trip time 182 ms above 100 ms", "42 min ago",
                           "40 min ago", "3", "No channel"]  # not delivered: the org has no channel
    assert rows[3][8] == "Maintenance" and rows[2][8] == "Flapping"
    assert rows[4][3] == "lab-sw-01\nNo site"

    overflow = browser.driver.execute_script(
        f"const el = document.getElementById('{ids.ALERTS_TABLE}'); return el.scrollWidth - el.clientWidth;")
    assert overflow <= 0, f"the table needs {overflow} px more than its panel at 1440 px"

    body = browser.driver.find_element(By.TAG_NAME, "body").text
    assert "Globex" not in body and "gx-core-01" not in body

    # The chart counts this organization's alerts opened in the last 24 h (resolved ones too), by severity.
    traces = WebDriverWait(browser.driver, WAIT_S).until(lambda d: d.execute_script(_CHART_JS))
    assert dict(traces) == {"Critical": 2, "Warning": 4, "Info": 1}
    nav = browser.driver.find_element(By.CSS_SELECTOR, ".np-navbar a.nav-link[href='/alerts']")
    assert nav.text == "Alerts" and "active" in str(nav.get_attribute("class"))
    assert browser.driver.title.startswith("Alerts")

    select(browser, seeded["acknowledged"], "Round-trip time 240 ms above 100 ms")
    events = history(browser, 3)  # opened, not delivered (no channel), acknowledged
    assert events[2].startswith(f"Acknowledged by {EMAIL}") and "“ISP ticket 4411 opened”" in events[2]
    assert browser.get_logs() == []


def test_npal002_filters_show_resolved_alerts_and_pick_severities(live_server: str, db: psycopg.Connection,
                                                                  browser: Browser, db_url: str) -> None:
    org, user = make_operator(db_url)
    seed_alerts(db, org, user, datetime.now(UTC))
    seed_other_org(db, datetime.now(UTC))

    sign_in(browser, live_server, "/alerts")
    table_rows(browser, 5)
    click(browser, f"#{ids.ALERTS_STATUS_OPTION['all']}")
    rows = table_rows(browser, 7)
    browser.wait_for_text_to_equal(f"#{ids.ALERTS_COUNT}", "7 in all", timeout=WAIT_S)
    assert [r[2] for r in rows].count("Resolved") == 2
    assert {r[3].splitlines()[0] for r in rows if r[2] == "Resolved"} == {"nbo-core-01", "nbo-access-01"}

    click(browser, f"#{ids.ALERTS_SEVERITY_OPTION['critical']}")  # untick: warning and info only
    rows = table_rows(browser, 5)
    assert {r[1] for r in rows} == {"WARNING", "INFO"}

    click(browser, f"#{ids.ALERTS_STATUS_OPTION['open']}")
    rows = table_rows(browser, 3)
    assert [r[3].splitlines()[0] for r in rows] == ["nbo-access-01", "mba-edge-01", "lab-sw-01"]
    assert browser.get_logs() == []


def test_npal003_selecting_shows_history_and_acknowledge_records_it(live_server: str, db: psycopg.Connection,
                                                                    browser: Browser, db_url: str) -> None:
    org, user = make_operator(db_url)
    seeded = seed_alerts(db, org, user, datetime.now(UTC))

    sign_in(browser, live_server, "/alerts")
    table_rows(browser, 5)
    select(browser, seeded["suppressed"], "Packet loss 30 % above 5 %")
    events = history(browser, 2)
    assert events[0].startswith("Opened") and "rule Packet loss · value 30" in events[0]
    assert events[1].startswith("Suppressed") and events[1].endswith("maintenance")

    select(browser, seeded["firing"], "Round-trip time 182 ms above 100 ms")
    opened, undelivered = history(browser, 2)  # the organization has no notification channel
    assert opened.startswith("Opened") and undelivered.startswith("Not delivered")
    assert "not delivered: no channel" in undelivered
    detail = browser.driver.find_element(By.ID, ids.ALERT_DETAIL).text
    assert "nbo-core-01 · Nairobi DC" in detail and "icmp_rtt_ms = 176 (threshold 100)" in detail
    browser.driver.find_element(By.CSS_SELECTOR, NOTE).send_keys("Looking at the upstream link")
    click(browser, css_id(ids.alert_action("acknowledge")))

    browser.wait_for_contains_text(f"#{ids.ALERT_ACTION_RESULT}", "Acknowledged", timeout=WAIT_S)
    events = history(browser, 3)
    assert events[2].startswith(f"Acknowledged by {EMAIL}") and "“Looking at the upstream link”" in events[2]
    wait_for_kpis(browser, acknowledged="2")
    WebDriverWait(browser.driver, WAIT_S).until(
        lambda d: not d.find_element(By.CSS_SELECTOR, css_id(ids.alert_action("acknowledge"))).is_enabled())
    assert browser.driver.find_element(By.CSS_SELECTOR, NOTE).get_attribute("value") == ""
    row = db.execute("SELECT status, acknowledged_by, acknowledged_note FROM alerts WHERE id = %s",
                     (seeded["firing"],)).fetchone()
    assert row == ("acknowledged", user, "Looking at the upstream link")
    assert browser.get_logs() == []


def test_npal004_resolve_needs_a_note_then_leaves_the_open_list(live_server: str, db: psycopg.Connection,
                                                                browser: Browser, db_url: str) -> None:
    org, user = make_operator(db_url)
    seeded = seed_alerts(db, org, user, datetime.now(UTC))

    sign_in(browser, live_server, "/alerts")
    table_rows(browser, 5)
    select(browser, seeded["acknowledged"], "Round-trip time 240 ms above 100 ms")
    click(browser, css_id(ids.alert_action("resolve")))
    feedback = browser.driver.find_element(By.ID, ids.ALERT_NOTE_FEEDBACK)
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: feedback.is_displayed())
    assert "Resolving needs a note" in feedback.text
    assert "is-invalid" in str(browser.driver.find_element(By.CSS_SELECTOR, NOTE).get_attribute("class"))
    assert db.execute("SELECT status FROM alerts WHERE id = %s", (seeded["acknowledged"],)).fetchone() == (
        "acknowledged",)

    browser.driver.find_element(By.CSS_SELECTOR, NOTE).send_keys("ISP repaired the fibre")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: not feedback.is_displayed())  # typing clears the mark
    click(browser, css_id(ids.alert_action("resolve")))
    browser.wait_for_contains_text(f"#{ids.ALERT_ACTION_RESULT}", "Resolved.", timeout=WAIT_S)
    rows = table_rows(browser, 4)
    assert [r[3].splitlines()[0] for r in rows] == ["nbo-core-01", "nbo-access-01", "mba-edge-01", "lab-sw-01"]
    assert not browser.driver.find_elements(By.CSS_SELECTOR, css_id(ids.alert_row(str(seeded["acknowledged"]))))
    events = history(browser, 4)  # opened, not delivered (no channel), acknowledged, resolved
    assert events[3].startswith(f"Resolved by {EMAIL}") and "“ISP repaired the fibre”" in events[3]
    assert not browser.driver.find_element(By.ID, ids.ALERT_ACTIONS).is_displayed()  # nothing left to do
    wait_for_kpis(browser, critical="1", acknowledged="0")

    # Resolved elsewhere (another analyst, the engine) while the page still offers the buttons: an
    # inline message, not a crash. Right after a refresh, so the page cannot catch up before the click.
    select(browser, seeded["firing"], "Round-trip time 182 ms above 100 ms")
    before = browser.driver.find_element(By.ID, ids.ALERTS_UPDATED_AT).text
    WebDriverWait(browser.driver, WAIT_S).until(
        lambda d: d.find_element(By.ID, ids.ALERTS_UPDATED_AT).text != before)
    resolve(db, org, seeded["firing"], None, "cleared on the router", datetime.now(UTC))
    click(browser, css_id(ids.alert_action("acknowledge")))
    browser.wait_for_contains_text(f"#{ids.ALERT_ACTION_RESULT}", "already resolved", timeout=WAIT_S)
    history(browser, 3)  # the page catches up: opened, not delivered, resolved
    table_rows(browser, 3)
    assert browser.get_logs() == []


def test_npal005_a_viewer_sees_alerts_and_history_but_no_buttons(live_server: str, db: psycopg.Connection,
                                                                 browser: Browser, db_url: str) -> None:
    org = make_user(db_url)  # the overview tests' user: a viewer
    seeded = seed_alerts(db, org, None, datetime.now(UTC))

    sign_in(browser, live_server, "/alerts")
    wait_for_kpis(browser, critical="2", warning="2", info="1")
    table_rows(browser, 5)
    select(browser, seeded["acknowledged"], "Round-trip time 240 ms above 100 ms")
    events = history(browser, 3)
    assert events[2].startswith("Acknowledged") and "“ISP ticket 4411 opened”" in events[2]
    browser.wait_for_contains_text(f"#{ids.ALERT_ACTIONS}", "View only", timeout=WAIT_S)
    assert browser.driver.find_elements(By.CSS_SELECTOR, ACTION_ANY) == []
    assert browser.driver.find_elements(By.CSS_SELECTOR, NOTE) == []
    assert "Acknowledge" not in browser.driver.find_element(By.ID, ids.ALERT_ACTIONS).text
    assert browser.get_logs() == []


def test_npal006_the_overview_card_counts_open_alerts_and_links_here(live_server: str, db: psycopg.Connection,
                                                                     browser: Browser, db_url: str) -> None:
    org, user = make_operator(db_url)
    seed_alerts(db, org, user, datetime.now(UTC))
    seed_other_org(db, datetime.now(UTC))

    sign_in(browser, live_server, "/")
    browser.wait_for_text_to_equal(f"#{ids.OPEN_ALERTS}", "5", timeout=WAIT_S)
    browser.wait_for_text_to_equal(f"#{ids.OPEN_ALERTS_SUB}", "2 critical · 2 warning · 1 info", timeout=WAIT_S)
    assert "np-kpi-down" in str(browser.driver.find_element(By.ID, ids.OPEN_ALERTS_CARD).get_attribute("class"))
    click(browser, f"#{ids.OPEN_ALERTS_CARD}")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: urlparse(d.current_url).path == "/alerts")
    wait_for_kpis(browser, critical="2")
    table_rows(browser, 5)
    assert browser.get_logs() == []
