"""Make one report now: read the figures, lay them out, render PDF or CSV.

The CLI and the worker actor (for runs the API and the schedules request) all end here; :func:`resolve`
reads what a user asked for (a scope and a period as typed) the one way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from netpulse.errors import NotFound, ValidationError
from reports import alerts, availability, performance
from reports.csvout import render_csv
from reports.document import Report
from reports.period import ReportPeriod, parse_period
from reports.scope import Scope, parse_scope, report_time_zone, resolve_scope

__all__ = ["KINDS", "FORMATS", "CONTENT_TYPES", "GeneratedReport", "steps", "build_report", "generate", "check_kind",
           "check_format", "resolve"]

KINDS: tuple[str, ...] = ("availability", "performance", "alerts")
FORMATS: tuple[str, ...] = ("pdf", "csv")
CONTENT_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}
_BUILDERS = {"availability": availability, "performance": performance, "alerts": alerts}

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class GeneratedReport:
    report: Report
    format: str
    file_name: str
    content_type: str
    content: bytes
    pages: int | None  # PDF only
    duration_s: float

    @property
    def figures(self) -> dict[str, Any]:
        """The headline figures, JSON-safe (stored with a run)."""
        return dict(self.report.headline)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValidationError(f"report {kind!r}: use one of {', '.join(KINDS)}", details={"kind": kind})
    return kind


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValidationError(f"format {fmt!r}: use one of {', '.join(FORMATS)}", details={"format": fmt})
    return fmt


def resolve(conn: Any, org_id: uuid.UUID, scope: str, period: str, *, now: datetime,
            fields: tuple[str, str] = ("--scope", "--period")) -> tuple[Scope, ReportPeriod]:
    """The scope named by ``scope`` (``all``, ``site:NAME``, ...) as stored, and ``period`` (``last-month``,
    ``FROM..TO``, ...) read in that scope's time zone (its site's, else the organization's) relative to
    ``now``. Errors name ``fields`` (the CLI's options by default)."""
    resolved = resolve_scope(conn, org_id, parse_scope(scope, field=fields[0]))
    return resolved, parse_period(period, report_time_zone(conn, org_id, resolved), now=now, field=fields[1])


def steps(kind: str) -> int:
    """How many times ``progress`` is called for a report of ``kind`` (reading steps, then rendering)."""
    return int(_BUILDERS[check_kind(kind)].STEPS) + 1


def _noop(_: str) -> None:
    return None


def build_report(conn: Any, org_id: uuid.UUID, kind: str, scope: Scope, period: ReportPeriod, *,
                 now: datetime | None = None, progress: Progress = _noop) -> Report:
    """The report as data (see :mod:`reports.document`), for a scope of the organization."""
    row = conn.execute("SELECT name FROM organizations WHERE id = %s", (org_id,)).fetchone()
    if row is None:
        raise NotFound(f"no organization {org_id}", code="ORGANIZATION_NOT_FOUND")
    scope = resolve_scope(conn, org_id, scope)
    builder = _BUILDERS[check_kind(kind)]
    report: Report = builder.build(conn, org_id, str(row[0]), scope, period, now=now or datetime.now(UTC),
                                   progress=progress)
    return report


def generate(conn: Any, org_id: uuid.UUID, kind: str, scope: Scope, period: ReportPeriod, fmt: str, *,
             now: datetime | None = None, progress: Progress = _noop) -> GeneratedReport:
    """Make the report file: ``fmt`` is ``pdf`` or ``csv``."""
    check_format(fmt)
    began = time.perf_counter()
    report = build_report(conn, org_id, kind, scope, period, now=now, progress=progress)
    pages: int | None = None
    if fmt == "pdf":
        from reports.pdf import render_pdf

        rendered = render_pdf(report)
        content, pages = rendered.content, rendered.pages
    else:
        content = render_csv(report)
    progress("rendering")
    return GeneratedReport(report, fmt, report.file_name(fmt), CONTENT_TYPES[fmt], content, pages,
                           time.perf_counter() - began)
