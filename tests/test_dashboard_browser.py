"""The overview page in a real headless Chromium: login, live status counts, live latency chart, no console errors.

The app is the real one (``create_app``: Flask + JWT login + Dash) served by werkzeug on a free loopback
port in a background thread; the browser is driven through ``dash.testing``'s ``Browser`` (the object
behind ``dash_duo``), with Debian's chromium and chromedriver. Every test ends with
``browser.get_logs() == []`` (no SEVERE console entries), as plotly/dash's own integration tests do.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import psycopg
import pytest
from flask import Flask
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from dashboard import ids
from dashboard.app import create_app
from ingest.loader import Loader
from ingest.rows import MetricRows
from ingest.status import Hysteresis
from netpulse.config import load_settings
from netpulse.db import make_engine, make_sessionmaker
from netpulse.metrics import MetricKind
from netpulse.schema import Role
from netpulse.users import create_organization, create_user
from tests.conftest import CI, REDIS_URL

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "chromedriver"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
EMAIL, PASSWORD = "noc@acme.test", "correct-horse-battery"
SECRET = "browser-test-secret-0123456789abcdef"
STEP_S = 20
WAIT_S = 30

try:  # dash[testing] is a dev extra; without it these tests cannot run at all
    from dash.testing.browser import Browser
except ImportError:  # pragma: no cover
    Browser = None  # type: ignore[assignment,misc]


def chrome_options() -> Options:
    """RECIPES.md's options for Debian's chromium, plus a fixed window for comparable screenshots."""
    o = Options()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--window-size=1440,960", "--force-device-scale-factor=1"]:
        o.add_argument(a)
    o.binary_location = CHROMIUM
    return o


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` on 127.0.0.1:<free port>, served from a thread until the block ends; its base URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dash-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_server(db_url: str) -> Iterator[str]:
    """The real app on 127.0.0.1:<free port>, served from a thread for the whole module."""
    engine = make_engine(db_url, pool_size=4, max_overflow=4)
    app = create_app(load_settings(database_url=db_url, redis_url=REDIS_URL, secret_key=SECRET, env="testing"),
                     engine=engine)
    with serving(app) as url:
        yield url
    engine.dispose()


@pytest.fixture(scope="module")
def module_browser() -> Iterator[Browser]:
    """One Chromium per test module (starting one costs seconds)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing or Browser is None:
        reason = f"needs {' and '.join(missing) or 'dash[testing]'} (apt-get install chromium chromium-driver)"
        if CI:
            raise RuntimeError(reason)
        pytest.skip(reason)
    with Browser("chrome", options=[chrome_options()], percy_run=False, wait_timeout=WAIT_S) as b:
        yield b


@pytest.fixture
def browser(module_browser: Browser, redis_url: str) -> Iterator[Browser]:
    """The module's browser, signed out and on a blank page after each test. ``redis_url`` empties Redis
    around each test: every test signs in from 127.0.0.1, and the login limit (5 a minute per address)
    must not count the sign-ins of the tests before it."""
    yield module_browser
    driver: WebDriver = module_browser.driver
    driver.delete_all_cookies()  # of the page's site: sign out before leaving it
    driver.get("about:blank")
    driver.set_window_size(1440, 960)
    module_browser.get_logs()  # what a test left in the console is that test's business


# --- data --------------------------------------------------------------------------------------------

def make_user(db_url: str) -> uuid.UUID:
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            org = create_organization(session, "Acme Networks", "acme")
            create_user(session, org.id, EMAIL, PASSWORD, role=Role.VIEWER)
            return org.id
    finally:
        engine.dispose()


def add_site(db: psycopg.Connection, org: uuid.UUID, name: str) -> int:
    row = db.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, %s, %s) RETURNING id",
                     (org, name, name.lower().replace(" ", "-"))).fetchone()
    assert row is not None
    return int(row[0])


def add_device(db: psycopg.Connection, org: uuid.UUID, name: str, site_id: int | None) -> int:
    row = db.execute("INSERT INTO devices (organization_id, name, address, device_type, site_id)"
                     " VALUES (%s, %s, %s, 'router', %s) RETURNING id", (org, name, name, site_id)).fetchone()
    assert row is not None
    return int(row[0])


def probe_rows(dev: int, times: np.ndarray, *, rtt_ms: float, jitter: float, loss_pct: float, up: bool,
               seed: int) -> MetricRows:
    """What the ICMP prober emits per probe: RTT (when answered), loss and availability."""
    rng = np.random.default_rng(seed)
    n = len(times)
    t_us = (times.astype("datetime64[us]").astype(np.int64))
    wave = np.sin(np.linspace(0, 3 * np.pi, n)) * jitter
    rtt = np.clip(rtt_ms + wave + rng.normal(0, jitter / 3, n), 0.2, None)
    parts = [
        (t_us, np.full(n, int(MetricKind.AVAILABLE)), np.full(n, 1.0 if up else 0.0)),
        (t_us, np.full(n, int(MetricKind.ICMP_LOSS_PCT)), np.full(n, loss_pct if up else 100.0)),
    ]
    if up:
        parts.append((t_us, np.full(n, int(MetricKind.ICMP_RTT_MS)), rtt))
    return MetricRows.concat([MetricRows(t, np.full(n, dev), m, np.zeros(n), v) for t, m, v in parts])


def grid(start: datetime, end: datetime) -> np.ndarray:
    start_naive, end_naive = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return np.arange(np.datetime64(start_naive, "s"), np.datetime64(end_naive, "s"), np.timedelta64(STEP_S, "s"))


def seed_fleet(db: psycopg.Connection, org: uuid.UUID, now: datetime) -> dict[str, int]:
    """Seven devices in two sites (plus one unplaced): 3 up, 1 degraded, 2 down, 1 never probed."""
    nbo, mba = add_site(db, org, "Nairobi DC"), add_site(db, org, "Mombasa POP")
    devs = {name: add_device(db, org, name, site) for name, site in [
        ("nbo-core-01", nbo), ("nbo-core-02", nbo), ("nbo-access-01", nbo),
        ("mba-edge-01", mba), ("mba-edge-02", mba), ("mba-access-01", mba), ("lab-sw-01", None)]}
    hour, outage = grid(now - timedelta(minutes=60), now), now - timedelta(minutes=12)
    before, after = grid(now - timedelta(minutes=60), outage), grid(outage, now)
    batches = [
        probe_rows(devs["nbo-core-01"], hour, rtt_ms=9, jitter=2, loss_pct=0, up=True, seed=1),
        probe_rows(devs["nbo-core-02"], hour, rtt_ms=12, jitter=2, loss_pct=0, up=True, seed=2),
        probe_rows(devs["mba-edge-01"], hour, rtt_ms=31, jitter=5, loss_pct=0, up=True, seed=3),
        probe_rows(devs["mba-edge-02"], hour, rtt_ms=44, jitter=8, loss_pct=20, up=True, seed=4),
    ]
    for name, seed in (("nbo-access-01", 5), ("mba-access-01", 6)):
        batches.append(probe_rows(devs[name], before, rtt_ms=15, jitter=3, loss_pct=0, up=True, seed=seed))
        batches.append(probe_rows(devs[name], after, rtt_ms=0, jitter=0, loss_pct=100, up=False, seed=seed))
    load_like_live(db, MetricRows.concat(batches))
    return devs


def load_like_live(db: psycopg.Connection, rows: MetricRows) -> None:
    """One batch per probe round, in time order, as the workers deliver them (status-since stays exact)."""
    order = np.argsort(rows.time_us, kind="stable")
    rows = MetricRows(rows.time_us[order], rows.device_id[order], rows.metric_id[order], rows.ifindex[order],
                      rows.value[order])
    starts = np.flatnonzero(np.diff(rows.time_us, prepend=-1))
    loader = Loader(hysteresis=Hysteresis(down_after=1, degraded_after=1))  # one probe shows on the page
    for a, b in zip(starts, [*starts[1:], len(rows)], strict=True):
        loader.load(db, rows.slice(int(a), int(b)))


# --- browser helpers ---------------------------------------------------------------------------------

def sign_in(browser: Browser, base: str, path: str = "/") -> None:
    driver: WebDriver = browser.driver
    driver.get(base + path)
    WebDriverWait(driver, WAIT_S).until(lambda d: urlparse(d.current_url).path == "/login")
    driver.find_element(By.ID, "email").send_keys(EMAIL)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: urlparse(d.current_url).path == path)


def wait_for_counts(browser: Browser, **expected: str) -> None:
    for key, text in expected.items():
        target = ids.TOTAL_DEVICES if key == "total" else ids.STATUS_COUNT[key]
        browser.wait_for_text_to_equal(f"#{target}", text, timeout=WAIT_S)


_TRACES_JS = f"""
const el = document.querySelector('#{ids.LATENCY_GRAPH} .js-plotly-plot');
if (!el || !el.data) return null;
return el.data.map(t => [t.name, (t.y || []).filter(v => v !== null).length]);
"""


def wait_for_chart(browser: Browser, devices: list[str], min_points: int) -> list[list[object]]:
    """Until the worst-latency chart holds one line per device of ``devices`` (the first one first), each
    with at least ``min_points`` buckets."""

    def ready(driver: WebDriver) -> list[list[object]] | bool:
        traces = driver.execute_script(_TRACES_JS)
        if not traces or traces[0][0] != devices[0] or {t[0] for t in traces} != set(devices):
            return False
        return traces if all(int(t[1]) >= min_points for t in traces) else False

    result: list[list[object]] = WebDriverWait(browser.driver, WAIT_S).until(ready)
    return result


# --- tests -------------------------------------------------------------------------------------------

def test_npov001_overview_shows_status_counts_and_live_latency(live_server: str, db: psycopg.Connection,
                                                               browser: Browser, db_url: str) -> None:
    org = make_user(db_url)
    seed_fleet(db, org, datetime.now(UTC))

    sign_in(browser, live_server)
    wait_for_counts(browser, total="7", up="3", degraded="1", down="2", unknown="1")
    browser.wait_for_text_to_equal(f"#{ids.NAV_USER}", EMAIL, timeout=WAIT_S)
    browser.wait_for_contains_text(f"#{ids.STATUS_SHARE['up']}", "43 % of fleet", timeout=WAIT_S)
    browser.wait_for_contains_text(f"#{ids.LAST_DATA}", "UTC", timeout=WAIT_S)
    # The five devices with the highest round-trip time, worst first (the two down since 12 min had 15 ms).
    traces = wait_for_chart(browser, ["mba-edge-02", "mba-edge-01", "nbo-access-01", "mba-access-01", "nbo-core-02"],
                            min_points=40)
    assert len(traces) == 5
    browser.wait_for_text_to_equal(f"#{ids.ATTENTION_COUNT}", "3", timeout=WAIT_S)
    rows = browser.driver.find_elements(By.CSS_SELECTOR, f"#{ids.ATTENTION_LIST} tr")
    assert [r.find_element(By.CSS_SELECTOR, ".np-device").text for r in rows] == [
        "mba-access-01", "nbo-access-01", "mba-edge-02"]  # down first (longest first), then degraded
    assert rows[0].find_element(By.CSS_SELECTOR, ".np-since").text == "for 12 min"
    assert rows[2].find_element(By.CSS_SELECTOR, ".np-since").text.startswith("for 1 h")
    title = browser.driver.find_element(By.CSS_SELECTOR, f"#{ids.LATENCY_GRAPH} .gtitle").text
    assert "round-trip time" in title.lower()
    assert browser.driver.title.startswith("Overview")
    assert browser.get_logs() == []


def test_npov002_new_rows_appear_without_a_reload(live_server: str, db: psycopg.Connection, browser: Browser,
                                                  db_url: str) -> None:
    org = make_user(db_url)
    now = datetime.now(UTC)
    devs = seed_fleet(db, org, now)
    sign_in(browser, live_server)
    wait_for_counts(browser, total="7", up="3", down="2")
    wait_for_chart(browser, ["mba-edge-02", "mba-edge-01", "nbo-access-01", "mba-access-01", "nbo-core-02"],
                   min_points=40)

    # While the page is open: a new site comes online and an edge router goes down.
    ksm = add_device(db, org, "ksm-core-01", add_site(db, org, "Kisumu Hub"))
    later = datetime.now(UTC)
    load_like_live(db, MetricRows.concat([
        probe_rows(ksm, grid(later - timedelta(minutes=10), later), rtt_ms=22, jitter=3, loss_pct=0, up=True,
                   seed=7),
        probe_rows(devs["mba-edge-01"], grid(later - timedelta(seconds=STEP_S), later), rtt_ms=0, jitter=0,
                   loss_pct=100, up=False, seed=8),
    ]))

    wait_for_counts(browser, total="8", up="3", down="3")
    traces = wait_for_chart(browser, ["mba-edge-02", "ksm-core-01", "mba-edge-01", "nbo-access-01", "mba-access-01"],
                            min_points=9)
    assert [t[0] for t in traces][:3] == ["mba-edge-02", "mba-edge-01", "ksm-core-01"]  # 44, 31 and 22 ms
    assert browser.get_logs() == []


def test_npov003_login_is_required_and_sign_out_ends_the_session(live_server: str, db: psycopg.Connection,
                                                                 browser: Browser, db_url: str) -> None:
    make_user(db_url)
    driver: WebDriver = browser.driver
    driver.get(live_server + "/")
    WebDriverWait(driver, WAIT_S).until(lambda d: urlparse(d.current_url).path == "/login")
    assert "next=/" in driver.current_url

    sign_in(browser, live_server)
    wait_for_counts(browser, total="0", up="0")
    browser.wait_for_contains_text(f"#{ids.LAST_DATA}", "No data", timeout=WAIT_S)
    browser.wait_for_contains_text(f"#{ids.ATTENTION_LIST}", "All monitored devices are up", timeout=WAIT_S)
    driver.find_element(By.ID, ids.NAV_LOGOUT).click()
    WebDriverWait(driver, WAIT_S).until(lambda d: urlparse(d.current_url).path == "/login")
    driver.get(live_server + "/")
    WebDriverWait(driver, WAIT_S).until(lambda d: urlparse(d.current_url).path == "/login")
    assert browser.get_logs() == []
