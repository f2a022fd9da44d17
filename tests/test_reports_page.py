"""The Reports page and the SLA page's PDF report, in a real Chromium, with a real Dramatiq worker.

The app is built as ``netpulse serve`` builds it: runs asked for are sent on the Redis broker, and a
worker in this process (the report actors, on the test database) makes them. An operator asks for a
report, sees it pending, and gets the PDF when the worker made it; the history's link downloads it
with the session cookie; a schedule is added, run now and removed; the SLA page downloads the
availability report of the period it shows. Then, without a browser, every callback that changes
something is called by each role: those without ``report:write`` are refused and nothing is written.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from dashboard import ids
from dashboard.app import create_app
from netpulse.config import load_settings
from netpulse.db import make_engine
from netpulse.schema import Role
from tests.conftest import REDIS_URL, empty_redis, truncate_all
from tests.noc_data import PASSWORD, NocData, email, seed_noc
from tests.test_alerts_page import click, save_full_page
from tests.test_dashboard_browser import SECRET, WAIT_S, Browser, browser, module_browser, serving
from tests.test_noc_browser import sign_in_as, texts

FIXTURES = (browser, module_browser)
MADE_S = 120  # a report made by the worker on a busy 2-core machine


@pytest.fixture(scope="module")
def noc(db_url: str) -> Iterator[NocData]:
    truncate_all(db_url)
    yield seed_noc(db_url, devices=24)
    truncate_all(db_url)


@pytest.fixture(scope="module")
def worker(db_url: str, noc: NocData) -> Iterator[Any]:
    """The workers' side: the report actors on the Redis broker, a Dramatiq worker running them."""
    from dramatiq import Worker

    from workers import broker as broker_mod
    from workers import reports as report_actors
    from workers import runtime as runtime_mod

    runtime_mod.configure(runtime_mod.Runtime(db_url))
    report_actors.configure(load_settings(database_url=db_url, env="testing"))
    broker = broker_mod.install(broker_mod.make_broker(url=REDIS_URL))
    running = Worker(broker, worker_threads=1, worker_timeout=100)
    running.start()
    yield broker
    running.stop()
    report_actors.configure(None)
    broker.close()


def make_app(db_url: str, engine: Any, *, workers: bool = True) -> Flask:
    from workers.broker import make_broker
    from workers.client import report_sender

    send = report_sender(make_broker(url=REDIS_URL)) if workers else None
    return create_app(load_settings(database_url=db_url, redis_url=REDIS_URL, secret_key=SECRET, env="testing"),
                      engine=engine, send_report=send)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection that leaves the module's data in place."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def live_server(db_url: str, worker: Any) -> Iterator[str]:
    engine = make_engine(db_url, pool_size=4, max_overflow=4)
    with serving(make_app(db_url, engine)) as url:
        yield url
    engine.dispose()


def downloaded(browser: Browser, folder: Path, pattern: str) -> Path:
    """The file matching ``pattern`` once the browser finished writing it."""
    def done(_: Any) -> Path | bool:
        found = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        return found[0] if found and found[0].stat().st_size > 0 else False

    path: Path = WebDriverWait(browser.driver, MADE_S).until(done)
    return path


def pdf_text(path: Path) -> str:
    assert path.read_bytes().startswith(b"%PDF")
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def choose(browser: Browser, toggle_id: str, label: str) -> None:
    """Click the option ``label`` of a toggle (radio buttons drawn as a button group)."""
    browser.driver.find_element(By.XPATH, f"//*[@id='{toggle_id}']//label[normalize-space()='{label}']").click()


def _value(browser: Browser, component_id: str, value: str) -> None:
    field = browser.driver.find_element(By.ID, component_id)
    field.clear()
    field.send_keys(value)


# --- in the browser ---------------------------------------------------------------------------------------------

@pytest.mark.browser
def test_npreports001_generate_download_and_schedules(noc: NocData, live_server: str, browser: Browser,
                                                      tmp_path: Path, db: psycopg.Connection) -> None:
    sign_in_as(browser, live_server, Role.OPERATOR, "/reports")
    browser.driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.wait_for_contains_text(f"#{ids.REPORTS_HISTORY}", "No reports yet", timeout=WAIT_S)
    assert "Reports" in texts(browser, ".np-navbar .nav-link")

    # The availability report of the global time range (the last 6 hours: the outage is in it), as a PDF.
    Select(browser.driver.find_element(By.ID, ids.REPORTS_PERIOD)).select_by_value("range")
    Select(browser.driver.find_element(By.ID, ids.REPORTS_SCOPE)).select_by_value(f"site:{noc.sites[0]}")
    click(browser, f"#{ids.REPORTS_GENERATE}")
    browser.wait_for_contains_text(f"#{ids.REPORTS_RESULT}", "Asked for the availability / sla report of Site",
                                   timeout=WAIT_S)
    pdf = downloaded(browser, tmp_path, "netpulse-availability-site-*.pdf")
    text = pdf_text(pdf)
    assert "Availability and SLA report" in text and f"Site {noc.sites[0]}" in text
    browser.wait_for_contains_text(f"#{ids.REPORTS_RESULT}", f"Made {pdf.name}", timeout=WAIT_S)
    (run_id, status, made_by) = db.execute("SELECT id, status, requested_by IS NOT NULL FROM report_runs").fetchone()
    assert (status, made_by) == ("succeeded", True)
    row = texts(browser, f"#report-run-{run_id}")[0]
    assert "succeeded" in row and "available" in row and f"Site {noc.sites[0]}" in row

    # The history's link is the API's download route, signed in by the session cookie (a GET: no CSRF).
    href = browser.driver.find_element(By.CSS_SELECTOR, f"#report-run-{run_id} a.np-report-link").get_attribute("href")
    assert href.endswith(f"/api/v1/reports/{run_id}/file")
    answer = browser.driver.execute_async_script(
        "const done = arguments[1]; fetch(arguments[0]).then(r => r.arrayBuffer().then("
        "b => done([r.status, r.headers.get('content-type'), new TextDecoder().decode(b.slice(0, 5))])));", href)
    assert answer == [200, "application/pdf", "%PDF-"]

    # A CSV of the alerts over whole days chosen by hand.
    choose(browser, ids.REPORTS_KIND, "Alerts")
    choose(browser, ids.REPORTS_FORMAT, "CSV")
    Select(browser.driver.find_element(By.ID, ids.REPORTS_PERIOD)).select_by_value("custom")
    WebDriverWait(browser.driver, WAIT_S).until(lambda d: d.find_element(By.ID, ids.REPORTS_FROM).is_displayed())
    click(browser, f"#{ids.REPORTS_GENERATE}")
    csv = downloaded(browser, tmp_path, "netpulse-alerts-site-*.csv")
    assert csv.read_text().strip()

    # A schedule: added, run now (its run shows in the history with its name), removed.
    f = ids.REPORTS_SCHEDULE_FIELD
    _value(browser, f["name"], "weekly-noc")
    Select(browser.driver.find_element(By.ID, f["frequency"])).select_by_value("weekly")
    WebDriverWait(browser.driver, WAIT_S).until(
        lambda d: d.find_element(By.ID, f["day"]).get_attribute("value") == "mon")
    _value(browser, f["time_zone"], "Africa/Nairobi")
    click(browser, f"#{ids.REPORTS_SCHEDULE_ADD}")
    browser.wait_for_contains_text(f"#{ids.REPORTS_SCHEDULE_RESULT}", "Added schedule weekly-noc (weekly, 0 6 * * 1)",
                                   timeout=WAIT_S)
    browser.wait_for_contains_text(f"#{ids.REPORTS_SCHEDULES}", "weekly-noc", timeout=WAIT_S)
    assert db.execute("SELECT name, frequency, cron, time_zone FROM report_schedules").fetchall() == [
        ("weekly-noc", "weekly", "0 6 * * 1", "Africa/Nairobi")]
    click(browser, "[id*='\"action\":\"run\"'][id*='weekly-noc']")
    browser.wait_for_contains_text(f"#{ids.REPORTS_SCHEDULE_RESULT}", "Asked for weekly-noc's report of Week of",
                                   timeout=WAIT_S)
    browser.wait_for_contains_text(f"#{ids.REPORTS_HISTORY}", "schedule weekly-noc", timeout=WAIT_S)
    WebDriverWait(browser.driver, MADE_S).until(lambda d: db.execute(
        "SELECT status FROM report_runs WHERE schedule_name = 'weekly-noc'").fetchone() == ("succeeded",))
    browser.wait_for_contains_text(f"#{ids.REPORTS_HISTORY} tbody tr:first-child", "succeeded", timeout=WAIT_S)
    save_full_page(browser, "reports.png")

    click(browser, "[id*='\"action\":\"remove\"'][id*='weekly-noc']")
    browser.wait_for_contains_text(f"#{ids.REPORTS_SCHEDULE_RESULT}", "Removed schedule weekly-noc", timeout=WAIT_S)
    browser.wait_for_contains_text(f"#{ids.REPORTS_SCHEDULES}", "No schedules yet", timeout=WAIT_S)
    assert db.execute("SELECT count(*) FROM report_schedules").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM report_runs").fetchone() == (3,)  # its report stays
    assert browser.get_logs() == []


@pytest.mark.browser
def test_npreports002_the_sla_page_downloads_its_pdf_report(noc: NocData, live_server: str, browser: Browser,
                                                           tmp_path: Path, db: psycopg.Connection) -> None:
    sign_in_as(browser, live_server, Role.OPERATOR, "/sla")
    browser.driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    Select(browser.driver.find_element(By.ID, ids.RANGE_PRESET)).select_by_value("24h")
    browser.wait_for_contains_text(f"#{ids.RANGE_LABEL}", "Last 24 hours", timeout=WAIT_S)
    browser.wait_for_contains_text(f"#{ids.SLA_OUTAGES}", noc.parent, timeout=WAIT_S)
    before = db.execute("SELECT count(*) FROM report_runs").fetchone()[0]
    click(browser, f"#{ids.SLA_REPORT_BUTTON}")
    browser.wait_for_contains_text(f"#{ids.SLA_REPORT_STATUS}", "Making the availability report of", timeout=WAIT_S)
    pdf = downloaded(browser, tmp_path, "netpulse-availability-all-*.pdf")
    text = pdf_text(pdf)
    assert "Availability and SLA report" in text and "All devices" in text and noc.parent in text
    start, end, kind, scope = db.execute("SELECT period_start, period_end, kind, scope FROM report_runs"
                                         " ORDER BY id DESC LIMIT 1").fetchone()
    assert (kind, scope) == ("availability", "all") and (end - start).total_seconds() == pytest.approx(86400, abs=120)
    assert db.execute("SELECT count(*) FROM report_runs").fetchone()[0] == before + 1
    browser.wait_for_contains_text(f"#{ids.SLA_REPORT_STATUS}", f"Downloaded {pdf.name}", timeout=WAIT_S)
    assert browser.get_logs() == []


@pytest.mark.browser
def test_npreports003_a_viewer_reads_and_downloads_but_asks_for_nothing(noc: NocData, live_server: str,
                                                                        browser: Browser) -> None:
    sign_in_as(browser, live_server, Role.VIEWER, "/reports")
    browser.wait_for_contains_text(".np-panel", "Asking for reports needs the report:write permission",
                                   timeout=WAIT_S)
    assert not browser.driver.find_elements(By.ID, ids.REPORTS_GENERATE)
    assert not browser.driver.find_elements(By.ID, ids.REPORTS_SCHEDULE_ADD)
    browser.driver.get(live_server + "/sla")
    browser.wait_for_contains_text(f"#{ids.SLA_OUTAGES}", noc.parent, timeout=WAIT_S)
    assert not browser.driver.find_elements(By.ID, ids.SLA_REPORT_BUTTON)
    assert browser.get_logs() == []


# --- every role against every callback that changes something -------------------------------------------------

@pytest.fixture(scope="module")
def app(db_url: str, noc: NocData) -> Iterator[Flask]:
    """The app without workers (the scheduler would hand its runs out): what it asks for stays pending."""
    engine = make_engine(db_url, pool_size=2, max_overflow=2)
    yield make_app(db_url, engine, workers=False)
    engine.dispose()


@pytest.fixture(scope="module")
def tokens(app: Flask) -> dict[Role, str]:
    empty_redis()  # the login limit must not count the browser tests' sign-ins
    out = {}
    for role in (Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.API_USER):
        answer = app.test_client().post("/api/v1/auth/login", json={"email": email(role), "password": PASSWORD})
        assert answer.status_code == 200, answer.get_json()
        out[role] = str(answer.get_json()["data"]["access_token"])
    return out


def call(app: Flask, bearer: str, name: str, values: dict[str, Any], trigger: dict[str, Any] | None = None) -> Any:
    """POST callback ``name`` of the Reports or SLA page as the renderer would; ``values``: "id.property" ->
    value; ``trigger``: the one component of a wildcard input that was clicked."""
    dash_app = app.extensions["netpulse.dash"]
    page, _, fn = name.rpartition(".")
    (key,) = [k for k, s in dash_app.callback_map.items() if "callback" in s and s["callback"].__name__ == fn
              and s["callback"].__module__.endswith(f".{page}")]
    spec = dash_app.callback_map[key]

    def dep(d: dict[str, Any]) -> Any:
        if isinstance(d["id"], str) and d["id"].startswith("{"):  # a wildcard id, as the map keeps it
            return [trigger] if trigger else []
        return {"id": d["id"], "property": d["property"], "value": values.get(f"{d['id']}.{d['property']}")}

    def out(o: Any) -> Any:
        return {"id": o.component_id, "property": o.component_property}

    first = spec["inputs"][0]
    changed = (f"{_json_id(trigger['id'])}.n_clicks" if trigger else f"{first['id']}.{first['property']}")
    body = {"output": key, "outputs": [out(o) for o in spec["output"]] if isinstance(spec["output"], list)
            else out(spec["output"]), "inputs": [dep(d) for d in spec["inputs"]],
            "state": [dep(d) for d in spec["state"]], "changedPropIds": [changed]}
    return app.test_client().post("/_dash-update-component", json=body, headers={"Authorization": f"Bearer {bearer}"})


def _json_id(component_id: dict[str, str]) -> str:
    import json

    return json.dumps(component_id, sort_keys=True, separators=(",", ":"))


GENERATE = {f"{ids.REPORTS_GENERATE}.n_clicks": 1, f"{ids.REPORTS_KIND}.value": "availability",
            f"{ids.REPORTS_SCOPE}.value": "all", f"{ids.REPORTS_PERIOD}.value": "last-7d",
            f"{ids.REPORTS_FORMAT}.value": "pdf"}
ADD = {f"{ids.REPORTS_SCHEDULE_ADD}.n_clicks": 1, **{f"{ids.REPORTS_SCHEDULE_FIELD[k]}.value": v for k, v in {
    "name": "nightly", "kind": "alerts", "scope": "all", "format": "csv", "frequency": "daily", "at": "05:30"}.items()}}
SLA_PDF = {f"{ids.SLA_REPORT_BUTTON}.n_clicks": 1, f"{ids.RANGE}.data": {"range": "24h"}}


def _counts(db: psycopg.Connection) -> tuple[int, int]:
    runs = db.execute("SELECT count(*) FROM report_runs").fetchone()[0]
    return runs, db.execute("SELECT count(*) FROM report_schedules").fetchone()[0]


def test_callbacks_that_change_reports_refuse_roles_without_report_write(app: Flask, tokens: dict[Role, str],
                                                                         db: psycopg.Connection) -> None:
    db.execute("DELETE FROM report_runs")
    db.execute("DELETE FROM report_schedules")
    db.execute("INSERT INTO report_schedules (organization_id, name, kind, scope, format, frequency, cron)"
               " SELECT id, 'kept', 'availability', 'all', 'pdf', 'daily', '0 6 * * *' FROM organizations")
    before = _counts(db)
    for role in (Role.VIEWER, Role.API_USER):
        bearer = tokens[role]
        for name, values, trigger in (
                ("reports.generate", GENERATE, None), ("reports.add_schedule", ADD, None),
                ("reports.schedule_action", {}, {"id": ids.schedule_action("remove", "kept"), "property": "n_clicks",
                                                 "value": 1}),
                ("reports.schedule_action", {}, {"id": ids.schedule_action("run", "kept"), "property": "n_clicks",
                                                 "value": 1}),
                ("sla.ask_for_pdf", SLA_PDF, None)):
            answer = call(app, bearer, name, values, trigger)
            assert answer.status_code == 403, (role, name, answer.status_code)
            assert "lacks the report:write permission" in answer.get_data(as_text=True)
        assert _counts(db) == before, role
    # The api_user role cannot read reports either (GET /api/v1/reports is refused to it).
    answer = call(app, tokens[Role.API_USER], "reports.refresh_history", {})
    assert answer.status_code == 403


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN])
def test_roles_with_report_write_ask_and_change_schedules(app: Flask, tokens: dict[Role, str],
                                                         db: psycopg.Connection, role: Role) -> None:
    db.execute("DELETE FROM report_runs")
    db.execute("DELETE FROM report_schedules")
    bearer = tokens[role]
    assert call(app, bearer, "reports.generate", GENERATE).status_code == 200
    assert call(app, bearer, "sla.ask_for_pdf", SLA_PDF).status_code == 200
    assert db.execute("SELECT kind, scope, format, status FROM report_runs ORDER BY id").fetchall() == [
        ("availability", "all", "pdf", "pending"), ("availability", "all", "pdf", "pending")]
    added = call(app, bearer, "reports.add_schedule", ADD)
    assert added.status_code == 200 and "Added schedule nightly (daily, 30 5 * * *)" in added.get_data(as_text=True)
    bad = call(app, bearer, "reports.add_schedule", {**ADD, f"{ids.REPORTS_SCHEDULE_FIELD['at']}.value": "25:00"})
    assert "is not a time of day" in bad.get_data(as_text=True)
    ran = call(app, bearer, "reports.schedule_action", {}, {"id": ids.schedule_action("run", "nightly"),
                                                            "property": "n_clicks", "value": 1})
    assert ran.status_code == 200 and "Asked for nightly's report" in ran.get_data(as_text=True)
    assert db.execute("SELECT count(*) FROM report_runs WHERE schedule_name = 'nightly'").fetchone() == (1,)
    removed = call(app, bearer, "reports.schedule_action", {}, {"id": ids.schedule_action("remove", "nightly"),
                                                                "property": "n_clicks", "value": 1})
    assert removed.status_code == 200 and _counts(db) == (3, 0)
    # Buttons drawn anew (not clicked) change nothing.
    assert call(app, bearer, "reports.schedule_action", {}, {"id": ids.schedule_action("remove", "x"),
                                                             "property": "n_clicks", "value": None}).status_code == 204
