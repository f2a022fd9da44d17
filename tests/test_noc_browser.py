"""Every page in a real Chromium, on the demo's data during a distribution-switch outage.

One app server, one browser and one seeded organization serve the whole module (see
:mod:`tests.noc_data`). The tests follow an analyst: the overview names the cause first, the time
range and live pause live in the URL, the grid filters, an alert leads to its device and on to an
interface chart, a group is acknowledged at once, the topology shows the cause with its subtree
folded into it, the SLA page downloads its table, a CSV with a bad line is refused line by line. They
save the screenshots committed under docs/screenshots/. Each ends with a console free of errors.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from dashboard import ids
from netpulse.schema import Role
from tests.conftest import truncate_all
from tests.noc_data import PASSWORD, NocData, email, seed_noc
from tests.test_alerts_page import click, css_id, save_full_page
from tests.test_dashboard_browser import WAIT_S, Browser, browser, live_server, module_browser

pytestmark = pytest.mark.browser

FIXTURES = (browser, live_server, module_browser)


@pytest.fixture(scope="module")
def noc(db_url: str, live_server: str) -> Iterator[NocData]:
    truncate_all(db_url)
    yield seed_noc(db_url)
    truncate_all(db_url)


def sign_in_as(browser: Browser, base: str, role: Role, path: str = "/") -> None:
    driver: WebDriver = browser.driver
    driver.get(base + path)
    WebDriverWait(driver, WAIT_S).until(lambda d: urlparse(d.current_url).path == "/login")
    driver.find_element(By.ID, "email").send_keys(email(role))
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: urlparse(d.current_url).path == path)


def query(browser: Browser) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(browser.driver.current_url).query).items()}


def texts(browser: Browser, selector: str) -> list[str]:
    def ready(driver: WebDriver) -> list[str] | bool:
        try:
            found = [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]
        except StaleElementReferenceException:
            return False
        return found or False

    result: list[str] = WebDriverWait(browser.driver, WAIT_S).until(ready)
    return result


def figure(browser: Browser, graph_id: str, script: str) -> object:
    """Until ``script`` (given ``el``, the graph's plotly div) returns something truthy; then that."""
    js = f"const el = document.querySelector('#{graph_id} .js-plotly-plot'); if (!el || !el.data) return null; {script}"
    return WebDriverWait(browser.driver, WAIT_S).until(lambda d: d.execute_script(js))


# React owns the input's value: set it through the native setter and tell React with an input event.
_SET_VALUE = """
const [el, value] = arguments;
Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, value);
el.dispatchEvent(new Event('input', {bubbles: true}));
"""


def grid_names(browser: Browser) -> list[str]:
    return texts(browser, f"#{ids.GRID} .ag-center-cols-container [col-id='name'], "
                          f"#{ids.GRID} .ag-pinned-left-cols-container [col-id='name']")


# --- tests -----------------------------------------------------------------------------------------------

def test_npnoc001_the_overview_names_the_down_parent_first(noc: NocData, live_server: str,
                                                           browser: Browser) -> None:
    sign_in_as(browser, live_server, Role.OPERATOR)
    browser.wait_for_text_to_equal(f"#{ids.STATUS_COUNT['down']}", "1", timeout=WAIT_S)
    browser.wait_for_text_to_equal(f"#{ids.STATUS_COUNT['unreachable']}", str(len(noc.behind)), timeout=WAIT_S)
    browser.wait_for_text_to_equal(f"#{ids.ATTENTION_COUNT}", "2", timeout=WAIT_S)
    first = texts(browser, f"#{ids.ATTENTION_LIST} tr")[0]
    assert first.splitlines()[1] == noc.parent and f"{len(noc.behind)} devices behind it" in first
    assert noc.lossy in texts(browser, f"#{ids.ATTENTION_LIST} tr")[1]
    # The outage shows as a count of devices down, not hidden in a mean.
    peak = figure(browser, ids.DOWN_GRAPH, "const t = el.data.find(x => x.name === 'Down'); "
                                           "return t ? Math.max(...t.y) : null;")
    assert peak == 1 + len(noc.behind)
    figure(browser, ids.LATENCY_GRAPH, "return el.data.length === 5 ? el.data : null;")
    tiles = texts(browser, ".np-site-tile")
    assert any("1 down" in t and f"{len(noc.behind)} unreachable" in t for t in tiles)
    save_full_page(browser, "overview.png")

    click(browser, f"#{ids.WALL}")  # wall mode: no chrome, large tiles, kept in the URL
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: query(browser).get("wall") == "1")
    assert not browser.driver.find_element(By.CSS_SELECTOR, ".np-navbar").is_displayed()
    save_full_page(browser, "overview-wall.png")
    click(browser, f"#{ids.WALL_EXIT}")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: d.find_element(By.CSS_SELECTOR, ".np-navbar").is_displayed())
    assert browser.get_logs() == []


def test_npnoc002_the_time_range_and_live_pause_are_in_the_url(noc: NocData, live_server: str,
                                                               browser: Browser) -> None:
    lossy = noc.ids[noc.lossy]
    sign_in_as(browser, live_server, Role.VIEWER, f"/devices/{lossy}")
    span = ("const r = el.layout.xaxis.range; if (!el.data.length || !r || typeof r[0] !== 'string') return null;"
            " return (new Date(r[1]) - new Date(r[0])) / 3600000;")
    assert round(float(figure(browser, ids.SMOKE_GRAPH, span))) == 6  # type: ignore[arg-type]
    Select(browser.driver.find_element(By.ID, ids.RANGE_PRESET)).select_by_value("24h")
    browser.wait_for_contains_text(f"#{ids.RANGE_LABEL}", "Last 24 hours · hourly buckets", timeout=WAIT_S)
    WebDriverWait(browser.driver, WAIT_S).until(
        lambda d: round(d.execute_script(f"const el = document.querySelector('#{ids.SMOKE_GRAPH} .js-plotly-plot');"
                                         f" {span}") or 0) == 24)
    assert query(browser).get("range") == "24h"
    click(browser, f"#{ids.LIVE}")
    browser.wait_for_contains_text(f"#{ids.LIVE}", "PAUSED", timeout=WAIT_S)  # capitals by its style
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: query(browser).get("live") == "0")

    browser.driver.get(browser.driver.current_url)  # the shared link: same range, still paused
    browser.wait_for_contains_text(f"#{ids.RANGE_LABEL}", "Last 24 hours · hourly buckets · UTC · paused",
                                   timeout=WAIT_S)
    assert Select(browser.driver.find_element(By.ID, ids.RANGE_PRESET)).first_selected_option.text == "Last 24 hours"

    Select(browser.driver.find_element(By.ID, ids.RANGE_PRESET)).select_by_value("custom")
    for field, at in ((ids.RANGE_FROM, noc.now - timedelta(minutes=50)), (ids.RANGE_TO, noc.now)):
        browser.driver.execute_script(_SET_VALUE, browser.driver.find_element(By.ID, field),
                                      at.strftime("%Y-%m-%dT%H:%M"))
    click(browser, f"#{ids.RANGE_APPLY}")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: "from" in query(browser) and "to" in query(browser))
    browser.wait_for_contains_text(f"#{ids.RANGE_LABEL}", "every probe", timeout=WAIT_S)
    assert browser.get_logs() == []


def test_npnoc003_the_grid_filters_and_opens_a_device(noc: NocData, live_server: str, browser: Browser) -> None:
    sign_in_as(browser, live_server, Role.OPERATOR, "/devices")
    browser.wait_for_text_to_equal(f"#{ids.GRID_COUNT}", f"{len(noc.ids)} devices", timeout=WAIT_S)
    grid_names(browser)
    save_full_page(browser, "devices.png")
    click(browser, f"#{ids.GRID_STATUS_OPTION['down']}")
    browser.wait_for_text_to_equal(f"#{ids.GRID_COUNT}", f"{1 + len(noc.behind)} devices", timeout=WAIT_S)
    WebDriverWait(browser.driver, WAIT_S).until(
        lambda d: set(grid_names(browser)) == {noc.parent, *noc.behind})
    assert query(browser).get("status") == "down"
    search = browser.driver.find_element(By.ID, ids.GRID_SEARCH)
    search.send_keys(noc.parent + "\n")
    browser.wait_for_text_to_equal(f"#{ids.GRID_COUNT}", "1 device", timeout=WAIT_S)
    click(browser, f"#{ids.GRID} [col-id='name'].np-cell-link")
    WebDriverWait(browser.driver, WAIT_S).until(
        lambda d: urlparse(d.current_url).path == f"/devices/{noc.ids[noc.parent]}")
    browser.wait_for_contains_text(f"#{ids.DEVICE_RELATIVES}", f"CHILDREN ({len(noc.behind)}, {len(noc.behind)} DOWN)",
                                   timeout=WAIT_S)

    # The search box of every page: a device by its address.
    address = next(d.address for d in noc.fleet.devices if d.name == noc.lossy)
    click(browser, f"#{ids.SEARCH}")
    browser.driver.find_element(By.CSS_SELECTOR, "input.dash-dropdown-search").send_keys(address)
    click(browser, ".np-search-option")
    WebDriverWait(browser.driver, WAIT_S).until(
        lambda d: urlparse(d.current_url).path == f"/devices/{noc.ids[noc.lossy]}")
    assert browser.get_logs() == []


def test_npnoc004_an_alert_leads_to_its_device_and_an_interface_chart(noc: NocData, live_server: str,
                                                                      browser: Browser) -> None:
    sign_in_as(browser, live_server, Role.OPERATOR, "/alerts")
    n = 1 + len(noc.behind)
    browser.wait_for_text_to_equal(f"#{ids.ALERTS_COUNT}", f"{n + 1} open · 2 root causes", timeout=WAIT_S)
    heads = texts(browser, f"#{ids.ALERTS_TABLE} > table > tbody > tr.np-alert-row")
    assert heads[0].splitlines()[2] == noc.parent  # the cause first, its children folded under it
    assert f"{len(noc.behind)} suppressed alerts behind it" in heads[0]
    click(browser, ".np-fold-summary")
    folded = texts(browser, ".np-folded-table tr.np-alert-row")
    assert len(folded) == len(noc.behind) and all(f"Behind {noc.parent} (down)" in f for f in folded)
    save_full_page(browser, "alerts.png")

    click(browser, f"#{ids.ALERTS_HIDE_SUPPRESSED}")
    browser.wait_for_text_to_equal(f"#{ids.ALERTS_COUNT}", "2 open", timeout=WAIT_S)
    assert query(browser).get("hide") == "1"

    lossy = noc.ids[noc.lossy]
    click(browser, f"#{ids.ALERTS_TABLE} a[href='/devices/{lossy}']")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: urlparse(d.current_url).path == f"/devices/{lossy}")
    browser.wait_for_contains_text(f"#{ids.DEVICE_HEADER}", noc.lossy, timeout=WAIT_S)
    browser.wait_for_contains_text(f"#{ids.DEVICE_ALERTS}", "icmp_loss_pct", timeout=WAIT_S)
    click(browser, css_id({"type": ids.INTERFACE_ROW, "index": 1}))  # type: ignore[dict-item]
    points = figure(browser, ids.INTERFACE_GRAPH,
                    "const t = el.data.find(x => x.name === 'In'); return t ? t.y.filter(v => v !== null).length : 0;")
    assert int(points) > 50  # type: ignore[call-overload]
    assert query(browser).get("if") == "1"
    figure(browser, ids.SMOKE_GRAPH, "return el.data.some(t => (t.name || '').startsWith('loss >') || "
                                     "(t.name || '').startsWith('loss ≤ 50')) ? true : null;")
    # The stored anomaly scores of the latency spike shade the latency chart, an hour long.
    shaded = figure(browser, ids.SMOKE_GRAPH, "const s = (el.layout.shapes || []).filter(x => x.type === 'rect');"
                                              " return s.length ? s.map(x => (new Date(x.x1) - new Date(x.x0)) / 60000)"
                                              " : null;")
    assert [round(float(m)) for m in shaded] == [61]  # type: ignore[union-attr]
    save_full_page(browser, "device.png")
    assert browser.get_logs() == []


def test_npnoc005_acknowledging_a_group_takes_every_alert_in_it(noc: NocData, live_server: str, browser: Browser,
                                                               db_url: str) -> None:
    sign_in_as(browser, live_server, Role.OPERATOR, "/alerts")
    pick = css_id({"type": ids.ALERT_PICK, "index": f"d{noc.ids[noc.parent]}"})
    click(browser, pick)
    WebDriverWait(browser.driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.CSS_SELECTOR, pick).is_selected())
    time.sleep(11)  # a live refresh comes and goes: the tick stays
    click(browser, f"#{ids.ALERTS_BULK_ACK}")
    done = f"Acknowledged {1 + len(noc.behind)} alerts in 1 group"
    browser.wait_for_contains_text(f"#{ids.ALERTS_BULK_RESULT}", done, timeout=WAIT_S)
    browser.wait_for_text_to_equal(f"#{ids.ALERT_KPI['acknowledged']}", str(1 + len(noc.behind)), timeout=WAIT_S)
    with psycopg.connect(db_url) as conn:
        statuses = conn.execute(
            "SELECT a.status, count(*) FROM alerts a JOIN devices d ON d.id = a.device_id"
            " WHERE d.name = ANY(%s) GROUP BY 1", ([noc.parent, *noc.behind],)).fetchall()
    assert statuses == [("acknowledged", 1 + len(noc.behind))]
    assert browser.get_logs() == []


def test_npnoc006_the_topology_shows_the_cause_first(noc: NocData, live_server: str, browser: Browser) -> None:
    sign_in_as(browser, live_server, Role.VIEWER, "/topology")
    causes = texts(browser, f"#{ids.TOPOLOGY_CAUSES} li")
    assert causes[0].split("\n")[:2] == ["DOWN", noc.parent] or noc.parent in causes[0].splitlines()[1]
    assert f"{len(noc.behind)} devices behind it" in causes[0]
    WebDriverWait(browser.driver, WAIT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#{ids.TOPOLOGY} canvas"))
    time.sleep(1)  # the layout settles before the picture
    save_full_page(browser, "topology.png")
    click(browser, f"#{ids.TOPOLOGY_CAUSES} a[href='/devices/{noc.ids[noc.parent]}']")
    WebDriverWait(browser.driver, WAIT_S).until(
        lambda d: urlparse(d.current_url).path == f"/devices/{noc.ids[noc.parent]}")
    assert browser.get_logs() == []


def test_npnoc007_the_sla_page_downloads_its_table(noc: NocData, live_server: str, browser: Browser,
                                                  tmp_path: Path) -> None:
    sign_in_as(browser, live_server, Role.VIEWER, "/sla")
    browser.driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    rows = texts(browser, f"#{ids.SLA_TABLE} .ag-center-cols-container .ag-row")
    assert len(rows) >= 2
    browser.wait_for_contains_text(f"#{ids.SLA_SUMMARY}", "99.5 %", timeout=WAIT_S)  # the demo's target
    browser.wait_for_contains_text(f"#{ids.SLA_OUTAGES}", noc.parent, timeout=WAIT_S)
    assert any(f"behind {noc.parent}" in t for t in texts(browser, f"#{ids.SLA_OUTAGES} tr"))
    save_full_page(browser, "sla.png")
    click(browser, f"#{ids.SLA_DOWNLOAD_BUTTON}")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: list(tmp_path.glob("netpulse-sla-by-site-*.csv")))
    (csv_file,) = tmp_path.glob("netpulse-sla-by-site-*.csv")
    lines = csv_file.read_text().splitlines()
    assert lines[0].startswith("name,devices,availability,target,state,budget_min")
    assert any(line.startswith(noc.sites[0]) for line in lines[1:])
    assert browser.get_logs() == []


def test_npnoc008_a_csv_with_a_bad_line_imports_nothing(noc: NocData, live_server: str, browser: Browser,
                                                       tmp_path: Path) -> None:
    sign_in_as(browser, live_server, Role.OPERATOR, "/devices")
    total = f"{len(noc.ids)} devices"
    browser.wait_for_text_to_equal(f"#{ids.GRID_COUNT}", total, timeout=WAIT_S)
    bad = tmp_path / "new-devices.csv"
    bad.write_text("name,address,type,site\nlab-1,192.0.2.10,router,Lab\nlab-2,192.0.2.300,switch,Lab\n"
                   f"lab-3,192.0.2.12,switch,Lab\n{noc.parent},192.0.2.13,switch,Lab\n")
    browser.driver.find_element(By.CSS_SELECTOR, f"#{ids.IMPORT_UPLOAD} input[type=file]").send_keys(str(bad))
    errors = texts(browser, ".np-line-error")
    assert [e.split("\n")[0] for e in errors] == ["Line 3", "Line 5"]
    assert "192.0.2.300" in errors[0] and noc.parent in errors[1]
    browser.wait_for_contains_text(f"#{ids.DEVICES_RESULT}", "nothing was imported", timeout=WAIT_S)
    save_full_page(browser, "devices-import.png")
    browser.wait_for_text_to_equal(f"#{ids.GRID_COUNT}", total, timeout=WAIT_S)
    assert browser.get_logs() == []


def test_npnoc009_viewers_read_and_api_users_see_no_alerts(noc: NocData, live_server: str, browser: Browser) -> None:
    sign_in_as(browser, live_server, Role.VIEWER, "/devices")
    browser.wait_for_contains_text(".np-actions-bar", "View only", timeout=WAIT_S)
    assert browser.driver.find_elements(By.ID, ids.DEVICE_ADD) == []
    assert browser.get_logs() == []
    browser.driver.delete_all_cookies()
    sign_in_as(browser, live_server, Role.API_USER, "/alerts")
    browser.wait_for_contains_text(".np-forbidden", "alert:read", timeout=WAIT_S)
    nav = [a.text for a in browser.driver.find_elements(By.CSS_SELECTOR, ".np-navbar .nav-link")]
    assert "Alerts" not in nav and "Devices" in nav
    browser.driver.get(live_server + "/")
    browser.wait_for_text_to_equal(f"#{ids.STATUS_COUNT['down']}", "1", timeout=WAIT_S)
    assert browser.driver.find_elements(By.ID, ids.OPEN_ALERTS_CARD) == []
    assert browser.get_logs() == []
