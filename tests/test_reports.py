"""The three reports against a scripted history: every figure in the PDF (read back with pdftotext)
and in the CSV equals the same figure computed here by SQL of its own over the same period; each PDF
renders to PNG pages (pdftoppm); tables break across pages under their header; any device name
renders; CSV cells that a spreadsheet would run are escaped; the CLI writes both formats."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from cli import main
from netpulse.migrations import migrate
from reports.csvout import read_blocks
from reports.document import Column, Report, Section, Table, fmt
from reports.generate import GeneratedReport, generate
from reports.pdf import render_pdf
from reports.period import ReportPeriod
from reports.scope import Scope
from tests import history
from tests.conftest import create_database, drop_database

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
                                reason="poppler-utils (pdftotext, pdftoppm) is not installed; scripts/test.sh "
                                       "installs it")
SAMPLES = Path(__file__).resolve().parent.parent / "docs" / "samples"


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[str, history.History]]:
    name, url = create_database("netpulse_reports")
    try:
        migrate(url, requested="postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            yield url, history.seed(conn)
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def conn(seeded: tuple[str, history.History]) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded[0], autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def hist(seeded: tuple[str, history.History]) -> history.History:
    return seeded[1]


PERIOD = ReportPeriod(history.START, history.END, history.TZ, "span")
PRIOR = ReportPeriod(history.START - timedelta(days=2), history.START, history.TZ, "span")


ALL = Scope("all")


def _made(conn: psycopg.Connection, org: uuid.UUID, kind: str, fmt_: str, scope: Scope = ALL,
          period: ReportPeriod = PERIOD) -> GeneratedReport:
    return generate(conn, org, kind, scope, period, fmt_, now=history.END + timedelta(days=1))


def _pdf_text(content: bytes, tmp_path: Path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(content)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def _line(text: str, first: str, *, after: str | None = None) -> list[str]:
    """The tokens of the first line that starts with ``first`` (after the heading ``after``)."""
    lines = text.splitlines()
    if after is not None:
        lines = lines[[line.strip() for line in lines].index(after):]
    for line in lines:
        if line.strip().startswith(first + " ") or line.strip() == first:
            return line.split()
    raise AssertionError(f"no line starting with {first!r}")


def _csv(content: bytes) -> dict[str, list[dict[str, str]]]:
    return read_blocks(content.decode("utf-8"))


def _float(text: str) -> float | None:
    return None if text == "" else float(text)


# --- availability -----------------------------------------------------------------------------------------------
# Per device: down time outside maintenance, counted outages and monitored time over the period, from the
# status events with lead(); maintenance here is device windows only (what the history has).
DEVICE_SQL = """
WITH ev AS (
    SELECT e.device_id, e.time, e.to_status,
           lead(e.time) OVER (PARTITION BY e.device_id ORDER BY e.time, e.confirmed_at) AS next
    FROM device_status_events e WHERE e.organization_id = %(org)s
), down AS (
    SELECT device_id, greatest(time, %(start)s) AS s, least(coalesce(next, 'infinity'), %(end)s) AS e
    FROM ev WHERE to_status = 'down' AND time < %(end)s AND coalesce(next, 'infinity') > %(start)s
), maint AS (
    SELECT d.id AS device_id, greatest(w.starts_at, %(start)s) AS s, least(w.ends_at, %(end)s) AS e
    FROM maintenance_windows w JOIN devices d ON d.organization_id = w.organization_id AND d.name = w.scope_ref
    WHERE w.organization_id = %(org)s AND w.scope = 'device' AND w.starts_at < %(end)s AND w.ends_at > %(start)s
), counted AS (
    SELECT down.device_id, extract(epoch FROM down.e - down.s)
           - coalesce(sum(extract(epoch FROM least(down.e, m.e) - greatest(down.s, m.s)))
                      FILTER (WHERE m.s < down.e AND m.e > down.s), 0) AS down_s
    FROM down LEFT JOIN maint m ON m.device_id = down.device_id GROUP BY down.device_id, down.s, down.e
)
SELECT d.id, d.name, s.name AS site, g.name AS grp,
       extract(epoch FROM %(end)s - %(start)s::timestamptz)
       - coalesce((SELECT sum(extract(epoch FROM m.e - m.s)) FROM maint m WHERE m.device_id = d.id), 0) AS monitored_s,
       coalesce((SELECT sum(c.down_s) FROM counted c WHERE c.device_id = d.id), 0) AS down_s,
       (SELECT count(*) FROM counted c WHERE c.device_id = d.id AND c.down_s > 0) AS outages
FROM devices d JOIN sites s ON s.id = d.site_id JOIN device_groups g ON g.id = d.group_id
WHERE d.organization_id = %(org)s ORDER BY d.id
"""


def _availability_sql(conn: psycopg.Connection, org: uuid.UUID, period: ReportPeriod) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return [{k: float(v) if k.endswith("_s") else v for k, v in r.items()} for r in
                cur.execute(DEVICE_SQL, {"org": org, "start": period.start, "end": period.end}).fetchall()]


def _sum(rows: list[dict[str, Any]]) -> dict[str, Any]:
    monitored = sum(r["monitored_s"] for r in rows)
    down = sum(r["down_s"] for r in rows)
    outages = sum(r["outages"] for r in rows)
    active = sum(1 for r in rows if r["monitored_s"] > 0)
    return {"devices": len(rows), "monitored_s": monitored, "down_s": down, "outages": outages,
            "availability_pct": 100 * (monitored - down) / monitored,
            "mttr_s": down / outages if outages else None,
            "mtbf_s": (monitored - down) / active / outages if outages else None}


def test_availability_figures_equal_sql(conn: psycopg.Connection, hist: history.History, tmp_path: Path) -> None:
    devices = _availability_sql(conn, hist.org, PERIOD)
    before = _availability_sql(conn, hist.org, PRIOR)
    assert sum(r["outages"] for r in devices) >= 10 and sum(r["outages"] for r in before) >= 5
    pdf = _made(conn, hist.org, "availability", "pdf")
    text = _pdf_text(pdf.content, tmp_path)
    blocks = _csv(_made(conn, hist.org, "availability", "csv").content)

    total, total_before = _sum(devices), _sum(before)
    summary = {r["figure"]: r for r in blocks["summary"]}
    assert _float(summary["availability_pct"]["value"]) == pytest.approx(total["availability_pct"], abs=1e-9)
    assert _float(summary["down_device_h"]["value"]) == pytest.approx(total["down_s"] / 3600, abs=1e-9)
    assert int(summary["outages"]["value"]) == total["outages"]
    assert _float(summary["mttr_s"]["value"]) == pytest.approx(total["mttr_s"])
    assert _float(summary["mtbf_s"]["value"]) == pytest.approx(total["mtbf_s"])
    assert _float(summary["previous_availability_pct"]["value"]) == pytest.approx(total_before["availability_pct"])
    assert total["mtbf_s"] <= PERIOD.seconds and total["mttr_s"] <= PERIOD.seconds
    for figure, kind in (("availability_pct", "pct"), ("mttr_s", "duration"), ("mtbf_s", "duration")):
        assert fmt(total[figure], kind) in text, figure
    assert fmt(total["down_s"], "device_h") in text

    sites = {r["site"] for r in devices}
    rows = {r["site"]: r for r in blocks["sites"]}
    assert set(rows) == sites
    for site in sites:
        mine, theirs = _sum([r for r in devices if r["site"] == site]), _sum([r for r in before if r["site"] == site])
        row = rows[site]
        assert _float(row["availability_pct"]) == pytest.approx(mine["availability_pct"], abs=1e-9), site
        assert _float(row["down_device_h"]) == pytest.approx(mine["down_s"] / 3600, abs=1e-9), site
        assert int(row["outages"]) == mine["outages"] and int(row["devices"]) == mine["devices"]
        assert _float(row["change_pp"]) == pytest.approx(mine["availability_pct"] - theirs["availability_pct"])
        target = 99.95 if site == hist.fleet.sites[0].name else 99.5
        assert _float(row["target_pct"]) == target
        allowed = (1 - target / 100) * mine["monitored_s"]
        assert _float(row["budget_used_pct"]) == pytest.approx(100 * mine["down_s"] / allowed)
        line = _line(text, site, after="Sites and groups")
        expected = [fmt(mine["devices"], "count"), *fmt(mine["availability_pct"], "pct").split(),
                    *fmt(target, "target").split(), *fmt(100 * mine["down_s"] / allowed, "pct2").split(),
                    fmt(mine["down_s"], "device_h"), fmt(mine["outages"], "count"),
                    *fmt(mine["mttr_s"], "duration").split(), *fmt(mine["mtbf_s"], "duration").split(),
                    *fmt(mine["availability_pct"] - theirs["availability_pct"], "pp").split()]
        assert line[len(site.split()):] == expected, site
    # Breaches first: every flagged site sorts before every site that met its target.
    met = [float(r["availability_pct"]) >= float(r["target_pct"]) for r in blocks["sites"]]
    assert met == sorted(met)

    by_device = {r["device"]: r for r in blocks["devices"]}
    assert len(by_device) == len(devices)
    for r in devices:
        row = by_device[r["name"]]
        assert _float(row["down_s"]) == pytest.approx(r["down_s"]) and int(row["outages"]) == r["outages"]
        mtbf = (r["monitored_s"] - r["down_s"]) / r["outages"] if r["outages"] else None
        assert _float(row["mtbf_s"]) == (pytest.approx(mtbf) if mtbf is not None else None)
    assert _float(by_device[hist.name(0)]["target_pct"]) == 99.99  # the device's own target wins


def test_outages_name_the_parent_as_the_cause(conn: psycopg.Connection, hist: history.History) -> None:
    blocks = _csv(_made(conn, hist.org, "availability", "csv").content)
    # Down intervals by SQL; a child's outage that began while its parent (or grandparent) was down is
    # put down to the topmost one.
    rows = conn.execute("""
        WITH ev AS (SELECT device_id, time, to_status, lead(time) OVER (PARTITION BY device_id ORDER BY time) AS next
                    FROM device_status_events WHERE organization_id = %(org)s),
        down AS (SELECT device_id, greatest(time, %(start)s) AS s, least(coalesce(next, 'infinity'), %(end)s) AS e
                 FROM ev WHERE to_status = 'down' AND time < %(end)s AND coalesce(next, 'infinity') > %(start)s)
        SELECT d.name, c.s, (SELECT p.name FROM down pd JOIN devices p ON p.id = pd.device_id
                             WHERE (p.id = d.parent_id OR p.id = (SELECT parent_id FROM devices WHERE id = d.parent_id))
                               AND pd.s <= c.s AND pd.e > c.s
                             ORDER BY p.parent_id IS NULL DESC, p.id = d.parent_id LIMIT 1)
        FROM down c JOIN devices d ON d.id = c.device_id ORDER BY c.s, d.name""",
                        {"org": hist.org, "start": history.START, "end": history.END}).fetchall()
    listed = [(r["device"], datetime.fromisoformat(r["start"]).astimezone(UTC), r["cause"])
              for r in blocks["outages"]]
    assert sorted(listed) == sorted((name, start, "own" if cause is None else f"behind {cause}")
                                    for name, start, cause in rows)
    assert any(c != "own" for _, _, c in listed) and any(c == "own" for _, _, c in listed)
    # What drove the down time: each root outage with the device-hours of those behind it.
    for root in blocks["outage_causes"]:
        behind = [r for r in blocks["outages"] if r["cause"] == f"behind {root['device']}"
                  and abs(datetime.fromisoformat(r["start"]) - datetime.fromisoformat(root["start"]))
                  < timedelta(minutes=3)]
        assert int(root["devices_behind"]) == len(behind)
        own = float(root["duration_s"])
        assert float(root["total_device_h"]) == pytest.approx(
            (own + sum(float(r["duration_s"]) - float(r["maintenance_s"] or 0) for r in behind)) / 3600)


# --- performance ---------------------------------------------------------------------------------------------
PERF_SQL = """
WITH b AS (
    SELECT r.device_id, r.bucket, r.metric_id, r.avg, r.count FROM metrics_1m r JOIN devices d ON d.id = r.device_id
    WHERE d.organization_id = %(org)s AND r.metric_id IN (1, 4, 5) AND r.ifindex = 0
      AND r.bucket >= %(start)s AND r.bucket < %(end)s
), w AS (
    SELECT device_id, bucket, max(avg) FILTER (WHERE metric_id = 1) AS rtt,
           max(avg) FILTER (WHERE metric_id = 5) AS loss, max(count) FILTER (WHERE metric_id = 5) AS loss_n,
           max(avg) FILTER (WHERE metric_id = 4) AS jitter, max(count) FILTER (WHERE metric_id = 4) AS jitter_n
    FROM b GROUP BY device_id, bucket
)
SELECT s.name, count(DISTINCT w.device_id), percentile_cont(0.5) WITHIN GROUP (ORDER BY w.rtt),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY w.rtt), sum(w.loss * w.loss_n) / sum(w.loss_n),
       sum(w.jitter * w.jitter_n) / sum(w.jitter_n)
FROM w JOIN devices d ON d.id = w.device_id JOIN sites s ON s.id = d.site_id
WHERE w.rtt IS NOT NULL GROUP BY s.name ORDER BY s.name
"""


def test_performance_figures_equal_sql(conn: psycopg.Connection, hist: history.History, tmp_path: Path) -> None:
    params = {"org": hist.org, "start": history.START, "end": history.END}
    expected = {r[0]: r for r in conn.execute(PERF_SQL, params).fetchall()}
    before = {r[0]: r for r in conn.execute(PERF_SQL, {**params, "start": PRIOR.start, "end": PRIOR.end}).fetchall()}
    pdf = _made(conn, hist.org, "performance", "pdf")
    text = _pdf_text(pdf.content, tmp_path)
    blocks = _csv(_made(conn, hist.org, "performance", "csv").content)
    rows = {r["site"]: r for r in blocks["sites"]}
    assert set(rows) == set(expected) and len(expected) == 3
    for site, (_, devices, p50, p95, loss, jitter) in expected.items():
        row = rows[site]
        assert int(row["devices"]) == devices
        assert _float(row["p50_ms"]) == pytest.approx(p50) and _float(row["p95_ms"]) == pytest.approx(p95)
        assert _float(row["loss_pct"]) == pytest.approx(float(loss))
        assert _float(row["jitter_ms"]) == pytest.approx(jitter)
        assert _float(row["p95_change_ms"]) == pytest.approx(p95 - before[site][3])
        line = _line(text, site, after="Sites and groups")
        assert line[len(site.split()):] == [str(devices), fmt(p50, "ms"), fmt(p95, "ms"),
                                            *fmt(float(loss), "pct2").split(), fmt(jitter, "ms"),
                                            fmt(p95 - before[site][3], "ms")], site
    # Saturated links: buckets of if_util_pct at or above 90 %, by SQL.
    saturated = dict(conn.execute(
        "SELECT d.name, count(*) FROM metrics_1m r JOIN devices d ON d.id = r.device_id"
        " WHERE d.organization_id = %(org)s AND r.metric_id = 11 AND r.ifindex > 0"
        " AND r.bucket >= %(start)s AND r.bucket < %(end)s AND r.avg >= 90"
        " GROUP BY d.name", params).fetchall())
    assert saturated, "the history has a link saturation"
    assert {r["device"]: int(r["saturated_min"]) for r in blocks["saturated_links"]} == saturated
    summary = {r["figure"]: r for r in blocks["summary"]}
    assert int(summary["saturated_links"]["value"]) == len(saturated)
    assert "uplink Gi0/1" in text  # interface names from the interfaces table


# --- alerts ----------------------------------------------------------------------------------------------
def test_alert_figures_equal_sql(conn: psycopg.Connection, hist: history.History, tmp_path: Path) -> None:
    params = {"org": hist.org, "start": history.START, "end": history.END}
    where = "a.organization_id = %(org)s AND a.created_at >= %(start)s AND a.created_at < %(end)s"
    by_severity = dict(conn.execute(f"SELECT severity, count(*) FROM alerts a WHERE {where} GROUP BY 1",
                                    params).fetchall())
    by_rule = dict(conn.execute("SELECT coalesce(r.name, CASE a.alert_type WHEN 'sla_breach' THEN 'SLA breach' END),"
                                " count(*) FROM alerts a"
                                f" LEFT JOIN alert_rules r ON r.id = a.rule_id WHERE {where} GROUP BY 1",
                                params).fetchall())
    ack, resolve = conn.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - created_at))"
        "   FILTER (WHERE acknowledged_at < %(end)s),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))"
        "   FILTER (WHERE resolved_at < %(end)s)"
        f" FROM alerts a WHERE {where}", params).fetchone()
    suppressed, flapping = conn.execute(f"SELECT count(*) FILTER (WHERE suppressed), count(*) FILTER (WHERE flapping)"
                                        f" FROM alerts a WHERE {where}", params).fetchone()
    noisiest = conn.execute(f"SELECT d.name, count(*) FROM alerts a JOIN devices d ON d.id = a.device_id WHERE {where}"
                            " GROUP BY d.name ORDER BY 2 DESC, 1 LIMIT 1", params).fetchone()

    blocks = _csv(_made(conn, hist.org, "alerts", "csv").content)
    text = _pdf_text(_made(conn, hist.org, "alerts", "pdf").content, tmp_path)
    summary = {r["figure"]: r for r in blocks["summary"]}
    assert int(summary["alerts"]["value"]) == sum(by_severity.values()) == 12  # 14 scripted, 2 outside the period
    for severity, n in by_severity.items():
        assert int(summary[severity]["value"]) == n
        assert _line(text, severity, after="By severity")[1] == str(n)
    # A rule named like a spreadsheet formula is escaped in the CSV (a leading apostrophe keeps it text).
    formula = "=cmd|' /C calc'!A0"
    assert formula in by_rule and {r["rule"] for r in blocks["by_rule"]} >= {"'" + formula, "SLA breach"}
    assert {r["rule"].removeprefix("'"): int(r["alerts"]) for r in blocks["by_rule"]} == by_rule
    assert _float(summary["ack_median_s"]["value"]) == pytest.approx(float(ack))
    assert _float(summary["resolve_median_s"]["value"]) == pytest.approx(float(resolve))
    assert fmt(float(ack), "duration") in text and fmt(float(resolve), "duration") in text
    assert (int(summary["suppressed"]["value"]), int(summary["flapping"]["value"])) == (suppressed, flapping)
    assert (blocks["noisiest_devices"][0]["device"], int(blocks["noisiest_devices"][0]["alerts"])) == noisiest
    assert formula in text  # the PDF shows it as it is


# --- rendering --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["availability", "performance", "alerts"])
def test_each_report_renders_to_png_pages(kind: str, conn: psycopg.Connection, hist: history.History,
                                          tmp_path: Path) -> None:
    made = _made(conn, hist.org, kind, "pdf", Scope("site", hist.fleet.sites[1].name))
    assert made.content.startswith(b"%PDF") and made.pages and made.pages >= 3
    pdf = tmp_path / made.file_name
    pdf.write_bytes(made.content)
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == made.pages and all(p.stat().st_size > 2000 for p in pages)
    text = _pdf_text(made.content, tmp_path)
    assert f"Page 2 of {made.pages}" in text and f"Page {made.pages} of {made.pages}" in text
    assert "Acme Networks" in text and f"Site {hist.fleet.sites[1].name}" in text
    assert "Africa/Nairobi (UTC+03:00)" in text  # the period's time zone on the cover
    if os.environ.get("NETPULSE_WRITE_SAMPLES"):  # refresh docs/samples (see the README)
        SAMPLES.mkdir(parents=True, exist_ok=True)
        shutil.copy(pages[0], SAMPLES / f"{kind}-test-page-1.png")


def test_long_tables_repeat_their_header_and_any_name_renders(tmp_path: Path) -> None:
    names = ["Ωmega-сервер-01", "Αθήνα-core-2", "Zürich-ÆØÅ-ñ-ş", "x" * 70]  # DejaVu: Latin, Greek, Cyrillic
    rows = [(names[i % 4] + f"-{i}", 100.0 - i / 100) for i in range(240)]
    table = Table("devices", "Every device", [Column("device", "Device name"), Column("availability_pct",
                                                                                     "Availability", "pct")], rows)
    report = Report("availability", "Availability and SLA report", "Ørsted Networks", Scope("site", "Åre"), PERIOD,
                    datetime(2026, 11, 4, tzinfo=UTC), [Section("Devices", [table])])
    rendered = render_pdf(report)
    text = _pdf_text(rendered.content, tmp_path)
    pages = text.split("\f")
    with_rows = [p for p in pages if "-1" in p and "Page" in p and "%" in p]
    assert rendered.pages >= 4 and len(with_rows) >= 3
    assert all("Device name" in p and "Availability" in p for p in with_rows)  # the header on every page
    for name in names[:3]:
        assert name in text
    assert "Ørsted Networks" in text and "Site Åre" in text


# --- the CLI ----------------------------------------------------------------------------------------------------
def test_cli_writes_pdf_and_csv(seeded: tuple[str, history.History], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from netpulse.config import get_settings

    url, hist = seeded
    monkeypatch.setenv("NETPULSE_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        period = "2026-11-02..2026-11-04"
        site = hist.fleet.sites[0].name
        result = runner.invoke(main, ["report", "availability", "--scope", f"site:{site.lower()}", "--period", period,
                                      "-o", str(tmp_path / "a.pdf")])
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"wrote {tmp_path / 'a.pdf'}: availability report for Site {site}, "
                                        "2 Nov 2026 00:00 to 4 Nov 2026 00:00 in Africa/Nairobi (UTC+03:00), ")
        assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
        result = runner.invoke(main, ["report", "alerts", "--period", period, "-o", str(tmp_path / "a.csv")])
        assert result.exit_code == 0, result.output
        blocks = read_blocks((tmp_path / "a.csv").read_text())
        assert blocks["report"][2] == {"field": "organization", "value": "Acme Networks"}
        assert [r["value"] for r in blocks["report"] if r["field"] in ("start", "end")] == [
            "2026-11-02T00:00:00+03:00", "2026-11-04T00:00:00+03:00"]
        for args, message in [
            (["--scope", "site:Atlantis"], "Error: no site named 'Atlantis' in this organization"),
            (["--scope", "rack:1"], "Error: --scope: 'rack:1' is not a scope; use all, or site:NAME, group:NAME, "
                                    "device:NAME or tag:NAME"),
            (["--period", "2026-11-04..2026-11-02"], "Error: --period: 2026-11-01 21:00 UTC is not after "
                                                     "2026-11-03 21:00 UTC"),
            (["--period", "fortnight"], "Error: --period: 'fortnight' is not a period; use last-month"),
        ]:
            result = runner.invoke(main, ["report", "performance", *args, "-o", str(tmp_path / "x.pdf")])
            assert result.exit_code == 1 and result.stderr.startswith(message), result.stderr
            assert not (tmp_path / "x.pdf").exists()
    finally:
        get_settings.cache_clear()


def test_notebook_command_needs_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.demo.embedded import DATABASE
    from netpulse.config import get_settings, load_settings
    from netpulse.data import DEMO_DATABASE, demo_database_url
    from netpulse.errors import ConfigError

    assert DATABASE == DEMO_DATABASE
    monkeypatch.delenv("NETPULSE_DATABASE_URL", raising=False)
    monkeypatch.setenv("NETPULSE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["notebook", "--no-browser"])
        assert result.exit_code == 1
        assert result.stderr == (f"Error: no demo data in {tmp_path}: run `netpulse demo` once (or set "
                                 "NETPULSE_DATABASE_URL)\n")
    finally:
        get_settings.cache_clear()
    # A running demo is found from its postmaster.pid (this process stands in for the server).
    (tmp_path / "pgdata").mkdir()
    pid_file = tmp_path / "pgdata" / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{tmp_path}\n0\n5432\n/tmp/sock\n\n1 2\nready\n")
    assert demo_database_url(tmp_path) == "postgresql://postgres@/netpulse?host=/tmp/sock&port=5432"
    # Every CLI command takes it when NETPULSE_DATABASE_URL is unset (`netpulse report` beside the demo).
    assert load_settings(data_dir=tmp_path).require_database_url() == demo_database_url(tmp_path)
    (tmp_path / "secret-key.secret").write_text("the-demo's-own-key-kept-in-its-data-dir\n")
    assert load_settings(data_dir=tmp_path).require_secret_key() == "the-demo's-own-key-kept-in-its-data-dir"
    assert load_settings(data_dir=tmp_path, database_url="postgresql://elsewhere/db")._demo_secret_key() is None
    pid_file.write_text("99999999\nx\n0\n5432\n/tmp/sock\n\n1 2\nready\n")
    assert demo_database_url(tmp_path) is None
    with pytest.raises(ConfigError, match="NETPULSE_DATABASE_URL is not set"):
        load_settings(data_dir=tmp_path).require_database_url()
    with pytest.raises(ConfigError, match="NETPULSE_SECRET_KEY is not set"):
        load_settings(data_dir=tmp_path).require_secret_key()


def test_availability_lists_tags_as_the_sla_page_groups_them(conn: psycopg.Connection, hist: history.History,
                                                             tmp_path: Path) -> None:
    """The SLA page groups by site, group, tag or device, and its PDF report is this one: the tags have a
    table too (a device under each of its tags), equal to SQL of its own."""
    devices = {r["id"]: r for r in _availability_sql(conn, hist.org, PERIOD)}
    tagged: dict[str, list[dict[str, Any]]] = {}
    for device_id, tag in conn.execute("SELECT dt.device_id, t.name FROM device_tags dt JOIN tags t ON t.id = dt.tag_id"
                                       " WHERE t.organization_id = %s", (hist.org,)).fetchall():
        tagged.setdefault(tag, []).append(devices[device_id])
    assert len(tagged) >= 2
    blocks = _csv(_made(conn, hist.org, "availability", "csv").content)
    rows = {r["tag"]: r for r in blocks["tags"]}
    untagged = [r for r in devices.values() if not any(r in v for v in tagged.values())]
    assert set(rows) == set(tagged) | ({"(no tag)"} if untagged else set())
    for tag, members in tagged.items():
        mine = _sum(members)
        assert int(rows[tag]["devices"]) == mine["devices"] and int(rows[tag]["outages"]) == mine["outages"], tag
        assert _float(rows[tag]["availability_pct"]) == pytest.approx(mine["availability_pct"], abs=1e-9), tag
    text = _pdf_text(_made(conn, hist.org, "availability", "pdf").content, tmp_path)
    tag = sorted(tagged)[0]
    assert _line(text, tag, after="Tags")[len(tag.split())] == fmt(len(tagged[tag]), "count")
