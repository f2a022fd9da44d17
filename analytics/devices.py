"""Device-level reads for the pages: the device grid, search, one device's card, its interfaces, service
checks, status timeline, maintenance windows and thresholds, and the dependency tree.

One function per question, each filtered by organization. Metric series themselves come from
:func:`analytics.frames.load_metrics`, anomaly scores from :func:`analytics.anomaly.load_scores` and
alerts from :func:`analytics.alerts.list_alerts`: this module answers what those do not.

The grid reads only the devices table (plus labels): the latest RTT and loss are columns the loader
keeps on the device row, so sorting 10,000 devices by them reads no metrics.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from analytics.fleet import CAUSES_CTE, bucket_floor, rollup_for
from analytics.rules import Rule, load_rules
from analytics.sla import scope_filter
from netpulse.errors import NotFound, ValidationError
from netpulse.metrics import MetricKind

__all__ = ["DeviceQuery", "SORTS", "OPER_STATUSES", "device_grid", "search_devices", "device_card",
           "device_interfaces", "service_checks", "status_timeline", "maintenance_windows", "thresholds",
           "dependency_tree", "label_names", "TIMELINE_SCHEMA", "INTERFACE_METRICS", "CHECK_METRICS"]

Conn = psycopg.Connection[Any]

OPER_STATUSES: tuple[str, ...] = ("up", "degraded", "down", "unknown")
# Sort keys the grid offers -> SQL (always followed by the name, so pages are stable).
SORTS: dict[str, str] = {
    "name": "d.name", "address": "d.address", "device_type": "d.device_type", "site": "s.name", "group": "g.name",
    "oper_status": "array_position(ARRAY['down','degraded','unknown','up']::text[], d.oper_status::text)",
    "last_rtt_ms": "d.last_rtt_ms", "last_loss_pct": "d.last_loss_pct", "last_seen": "d.last_seen",
    "snmp": "d.snmp_version", "parent": "p.name",
}
INTERFACE_METRICS = (MetricKind.IF_IN_BPS, MetricKind.IF_OUT_BPS, MetricKind.IF_UTIL_PCT, MetricKind.IF_ERRORS_PS)
CHECK_METRICS = (MetricKind.CHECK_OK, MetricKind.HTTP_STATUS, MetricKind.HTTP_RESPONSE_MS, MetricKind.TLS_CERT_DAYS,
                 MetricKind.TCP_CONNECT_MS)
TIMELINE_SCHEMA = pl.Schema({"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
                             "status": pl.String()})


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceQuery:
    """Which devices the grid lists, in what order, which page. ``None``/empty leaves a filter off."""

    search: str | None = None                 # substring of the name, address or site name
    statuses: Sequence[str] = ()              # operational statuses (up, degraded, down, unknown)
    site: str | None = None
    group: str | None = None
    tag: str | None = None
    sort: str = "name"
    descending: bool = False
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        errors = {}
        if self.sort not in SORTS:
            errors["sort"] = f"{self.sort!r} is not one of {', '.join(SORTS)}"
        bad = [s for s in self.statuses if s not in OPER_STATUSES]
        if bad:
            errors["statuses"] = f"{', '.join(map(repr, bad))}: use {', '.join(OPER_STATUSES)}"
        if not 1 <= self.limit <= 1000 or self.offset < 0:
            errors["page"] = "limit is 1..1000 and offset 0 or more"
        if errors:
            raise ValidationError("; ".join(f"{k}: {v}" for k, v in errors.items()), details=errors)


_GRID_FROM = """
FROM devices d
LEFT JOIN sites s ON s.id = d.site_id
LEFT JOIN device_groups g ON g.id = d.group_id
LEFT JOIN devices p ON p.id = d.parent_id
WHERE d.organization_id = %(org)s
  AND (%(search)s::text IS NULL OR d.name ILIKE %(search)s OR d.address ILIKE %(search)s OR s.name ILIKE %(search)s)
  AND (%(statuses)s::text[] IS NULL OR d.oper_status = ANY(%(statuses)s::text[]))
  AND (%(site)s::text IS NULL OR s.name = %(site)s)
  AND (%(group)s::text IS NULL OR g.name = %(group)s)
  AND (%(tag)s::text IS NULL OR EXISTS (SELECT 1 FROM device_tags dt JOIN tags t ON t.id = dt.tag_id
                                        WHERE dt.device_id = d.id AND t.name = %(tag)s))
"""


def device_grid(conn: Conn, org_id: uuid.UUID | str, query: DeviceQuery = DeviceQuery()) -> tuple[list[dict[str, Any]],
                                                                                                  int]:
    """One page of the organization's devices and how many match in all.

    Each row: ``id``, ``name``, ``address``, ``device_type``, ``status`` (lifecycle), ``oper_status``,
    ``oper_status_since``, ``site``, ``group``, ``parent``, ``parent_id``, ``tags`` (names),
    ``last_rtt_ms``, ``last_loss_pct``, ``last_seen``, ``last_checked``, ``snmp_version`` (None: not
    polled), ``probe_enabled`` and ``simulated``.
    """
    params = {"org": org_id, "search": _like(query.search.strip()) if query.search and query.search.strip() else None,
              "statuses": list(query.statuses) or None, "site": query.site or None, "group": query.group or None,
              "tag": query.tag or None, "limit": query.limit, "offset": query.offset}
    direction = "DESC NULLS LAST" if query.descending else "ASC NULLS LAST"
    order = f"{SORTS[query.sort]} {direction}, d.name, d.id"
    page = f"""
    SELECT d.id, d.name, d.address, d.device_type, d.status, d.oper_status, d.oper_status_since, s.name AS site,
           g.name AS "group", p.name AS parent, d.parent_id, d.last_rtt_ms, d.last_loss_pct, d.last_seen,
           d.last_checked, d.snmp_version, d.probe_enabled, d.simulated,
           ARRAY(SELECT t.name FROM device_tags dt JOIN tags t ON t.id = dt.tag_id WHERE dt.device_id = d.id
                 ORDER BY t.name) AS tags
    {_GRID_FROM} ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s"""
    with conn.cursor(row_factory=dict_row) as cur:
        total = cur.execute("SELECT count(*) AS n " + _GRID_FROM, params).fetchone()
        rows = cur.execute(page.encode(), params).fetchall()  # type: ignore[call-overload]
    return list(rows), int(total["n"]) if total else 0


def search_devices(conn: Conn, org_id: uuid.UUID | str, text: str, *, limit: int = 10) -> list[dict[str, Any]]:
    """Devices whose name, address or site contains ``text`` (case-insensitive): names that start with it
    first. Rows: ``id``, ``name``, ``address``, ``site``, ``oper_status``."""
    text = (text or "").strip()
    if not text:
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(
            "SELECT d.id, d.name, d.address, s.name AS site, d.oper_status FROM devices d"
            " LEFT JOIN sites s ON s.id = d.site_id"
            " WHERE d.organization_id = %(org)s AND (d.name ILIKE %(like)s OR d.address ILIKE %(like)s"
            " OR s.name ILIKE %(like)s)"
            " ORDER BY d.name NOT ILIKE %(prefix)s, d.name LIMIT %(limit)s",
            {"org": org_id, "like": _like(text), "prefix": _like(text)[1:], "limit": limit}).fetchall())


def label_names(conn: Conn, org_id: uuid.UUID | str) -> dict[str, list[str]]:
    """The organization's site, group and tag names, sorted (the grid's filter choices)."""
    out = {}
    for key, table in (("sites", "sites"), ("groups", "device_groups"), ("tags", "tags")):
        rows = conn.execute(sql.SQL("SELECT name FROM {} WHERE organization_id = %s ORDER BY name").format(
            sql.Identifier(table)), (org_id,)).fetchall()
        out[key] = [r[0] for r in rows]
    return out


_CARD = """
SELECT d.id, d.name, d.address, d.device_type, d.status, d.oper_status, d.oper_status_since, d.last_seen,
       d.last_checked, d.last_rtt_ms, d.last_loss_pct, d.snmp_version, d.snmp_port, d.probe_enabled,
       d.probe_interval_s, d.simulated, d.description, s.name AS site, g.name AS "group",
       p.id AS parent_id, p.name AS parent, p.oper_status AS parent_status,
       ARRAY(SELECT t.name FROM device_tags dt JOIN tags t ON t.id = dt.tag_id WHERE dt.device_id = d.id
             ORDER BY t.name) AS tags
FROM devices d
LEFT JOIN sites s ON s.id = d.site_id
LEFT JOIN device_groups g ON g.id = d.group_id
LEFT JOIN devices p ON p.id = d.parent_id
WHERE d.organization_id = %(org)s AND d.id = %(id)s
"""


def device_card(conn: Conn, org_id: uuid.UUID | str, device_id: int) -> dict[str, Any]:
    """One device with its labels, its parent (``parent_id``, ``parent``, ``parent_status``) and its
    children (``children``: id, name, oper_status, by name).

    Raises:
        NotFound: DEVICE_NOT_FOUND when the organization has no such device.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_CARD, {"org": org_id, "id": device_id}).fetchone()
        if row is None:
            raise NotFound(f"device with id {device_id} not found in this organization",
                           details={"device_id": str(device_id)}, code="DEVICE_NOT_FOUND")
        row["children"] = cur.execute(
            "SELECT id, name, oper_status FROM devices WHERE organization_id = %(org)s AND parent_id = %(id)s"
            " ORDER BY name", {"org": org_id, "id": device_id}).fetchall()
    return dict(row)


def device_interfaces(conn: Conn, org_id: uuid.UUID | str, device_id: int, start: datetime,
                      end: datetime) -> list[dict[str, Any]]:
    """Every interface of the device (as polled, or seen in its interface metrics over the range) with
    the range's figures from the rollup that fits it: ``in_bps``/``out_bps`` (average) and their
    peaks, ``util_pct`` (average) and ``util_max_pct``, ``errors_ps`` (average). By ifindex."""
    table = rollup_for(start, end)
    ids = [int(m) for m in INTERFACE_METRICS]
    query = sql.SQL("""
        SELECT r.ifindex, r.metric_id, sum(r.sum) / sum(r.count) AS avg, max(r.max) AS peak
        FROM {table} r JOIN devices d ON d.id = r.device_id
        WHERE d.organization_id = %(org)s AND r.device_id = %(id)s AND r.metric_id = ANY(%(metrics)s::int2[])
          AND r.ifindex > 0 AND r.bucket >= %(start)s AND r.bucket < %(end)s
        GROUP BY 1, 2""").format(table=sql.Identifier(table))
    with conn.cursor() as cur:
        figures = cur.execute(query, {"org": org_id, "id": device_id, "metrics": ids,
                                      "start": bucket_floor(start, table), "end": end}).fetchall()
        known = cur.execute(
            "SELECT i.ifindex, i.name, i.speed_bps, i.oper_status, i.last_seen FROM interfaces i"
            " JOIN devices d ON d.id = i.device_id WHERE d.organization_id = %s AND i.device_id = %s",
            (org_id, device_id)).fetchall()
    out: dict[int, dict[str, Any]] = {
        ifx: {"ifindex": ifx, "name": name or f"ifIndex {ifx}", "speed_bps": speed, "oper_status": status,
              "last_seen": seen} for ifx, name, speed, status, seen in known}
    keys = {int(MetricKind.IF_IN_BPS): ("in_bps", "in_max_bps"), int(MetricKind.IF_OUT_BPS): ("out_bps", "out_max_bps"),
            int(MetricKind.IF_UTIL_PCT): ("util_pct", "util_max_pct"),
            int(MetricKind.IF_ERRORS_PS): ("errors_ps", "errors_max_ps")}
    for ifx, metric, avg, peak in figures:
        entry = out.setdefault(ifx, {"ifindex": ifx, "name": f"ifIndex {ifx}", "speed_bps": None,
                                     "oper_status": "unknown", "last_seen": None})
        entry[keys[metric][0]], entry[keys[metric][1]] = avg, peak
    return [out[k] for k in sorted(out)]


def service_checks(conn: Conn, org_id: uuid.UUID | str, device_id: int, *,
                   since: timedelta = timedelta(days=1)) -> list[dict[str, Any]]:
    """The device's service checks with their latest result within ``since``: ``ok`` (None when not run
    lately), ``http_status``, ``response_ms`` (HTTP response or TCP connect time), ``tls_days``
    (days until the certificate expires) and ``checked_at``."""
    with conn.cursor(row_factory=dict_row) as cur:
        checks = cur.execute(
            "SELECT id, kind, name, port, url, enabled FROM service_checks"
            " WHERE organization_id = %s AND device_id = %s ORDER BY name", (org_id, device_id)).fetchall()
        if not checks:
            return []
        latest = cur.execute(
            "SELECT DISTINCT ON (m.metric_id, m.ifindex) m.metric_id, m.ifindex, m.value, m.time FROM metrics m"
            " WHERE m.device_id = %(id)s AND m.metric_id = ANY(%(metrics)s::int2[]) AND m.ifindex = ANY(%(checks)s)"
            " AND m.time >= %(since)s ORDER BY m.metric_id, m.ifindex, m.time DESC",
            {"id": device_id, "metrics": [int(m) for m in CHECK_METRICS], "checks": [c["id"] for c in checks],
             "since": datetime.now(UTC) - since}).fetchall()
    values = {(r["ifindex"], r["metric_id"]): (r["value"], r["time"]) for r in latest}
    out = []
    for c in checks:
        def value(kind: MetricKind, check: dict[str, Any] = c) -> Any:
            hit = values.get((check["id"], int(kind)))
            return hit[0] if hit else None

        ok = value(MetricKind.CHECK_OK)
        times = [t for (ifx, _), (_, t) in values.items() if ifx == c["id"]]
        response = value(MetricKind.HTTP_RESPONSE_MS) if c["kind"] == "http" else value(MetricKind.TCP_CONNECT_MS)
        out.append({**c, "ok": None if ok is None else ok >= 1, "http_status": value(MetricKind.HTTP_STATUS),
                    "response_ms": response, "tls_days": value(MetricKind.TLS_CERT_DAYS),
                    "checked_at": max(times) if times else None})
    return out


def status_timeline(conn: Conn, org_id: uuid.UUID | str, device_id: int, start: datetime,
                    end: datetime) -> pl.DataFrame:
    """The device's status as segments over ``start``..``end`` (``TIMELINE_SCHEMA``): the status at
    ``start`` (its last change before it, else unknown), then one segment per change."""
    with conn.cursor() as cur:
        before = cur.execute(
            "SELECT to_status FROM device_status_events WHERE organization_id = %(org)s AND device_id = %(id)s"
            " AND time <= %(start)s ORDER BY time DESC, confirmed_at DESC LIMIT 1",
            {"org": org_id, "id": device_id, "start": start}).fetchone()
        changes = cur.execute(
            "SELECT time, to_status FROM device_status_events WHERE organization_id = %(org)s AND device_id = %(id)s"
            " AND time > %(start)s AND time < %(end)s ORDER BY time, confirmed_at",
            {"org": org_id, "id": device_id, "start": start, "end": end}).fetchall()
    points = [(start, before[0] if before else "unknown"), *changes]
    rows: list[tuple[datetime, datetime, str]] = []
    for i, (at, status) in enumerate(points):
        until = points[i + 1][0] if i + 1 < len(points) else end
        if rows and rows[-1][2] == status:
            rows[-1] = (rows[-1][0], until, status)
        elif until > at:
            rows.append((at, until, status))
    return pl.DataFrame(rows, schema=TIMELINE_SCHEMA, orient="row")


def _device_labels(conn: Conn, org_id: uuid.UUID | str, device_id: int) -> pl.DataFrame:
    """A one-row frame (name, group, site, tags) for :func:`analytics.sla.scope_filter`."""
    row = conn.execute(
        "SELECT d.name, g.name, s.name, ARRAY(SELECT t.name FROM device_tags dt JOIN tags t ON t.id = dt.tag_id"
        " WHERE dt.device_id = d.id) FROM devices d LEFT JOIN device_groups g ON g.id = d.group_id"
        " LEFT JOIN sites s ON s.id = d.site_id WHERE d.organization_id = %s AND d.id = %s",
        (org_id, device_id)).fetchone()
    if row is None:
        raise NotFound(f"device with id {device_id} not found in this organization",
                       details={"device_id": str(device_id)}, code="DEVICE_NOT_FOUND")
    return pl.DataFrame({"name": [row[0]], "group": [row[1]], "site": [row[2]], "tags": [list(row[3])]},
                        schema={"name": pl.String, "group": pl.String, "site": pl.String,
                                "tags": pl.List(pl.String)})


def maintenance_windows(conn: Conn, org_id: uuid.UUID | str, device_id: int, start: datetime,
                        end: datetime) -> list[dict[str, Any]]:
    """Maintenance windows that cover the device (by device, group, site, tag or all) and overlap
    ``start``..``end``, by start: ``id``, ``scope``, ``scope_ref``, ``starts_at``, ``ends_at``, ``reason``."""
    labels = _device_labels(conn, org_id, device_id)
    with conn.cursor(row_factory=dict_row) as cur:
        windows = cur.execute(
            "SELECT id, scope, scope_ref, starts_at, ends_at, reason FROM maintenance_windows"
            " WHERE organization_id = %s AND starts_at < %s AND ends_at > %s ORDER BY starts_at, id",
            (org_id, end, start)).fetchall()
    return [w for w in windows if labels.filter(scope_filter(w["scope"], w["scope_ref"])).height]


def thresholds(conn: Conn, org_id: uuid.UUID | str, device_id: int) -> list[Rule]:
    """The enabled threshold rules that apply to the device (the lines its charts draw)."""
    labels = _device_labels(conn, org_id, device_id)
    return [r for r in load_rules(conn, org_id) if r.kind == "threshold" and r.metric is not None
            and labels.filter(scope_filter(r.scope, r.scope_ref)).height]


def dependency_tree(conn: Conn, org_id: uuid.UUID | str, *, site: str | None = None) -> list[dict[str, Any]]:
    """Every device (of ``site``, when given) with its parent link, for the topology: ``id``, ``name``,
    ``parent_id``, ``site``, ``device_type``, ``status`` (``unreachable`` for a down device behind a down
    ancestor), ``cause`` (that ancestor's id) and ``behind`` (devices down behind this one)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(
            CAUSES_CTE + """
            SELECT d.id, d.name, d.parent_id, s.name AS site, d.device_type,
                   CASE WHEN x.id IS NOT NULL AND d.oper_status = 'down' THEN 'unreachable'
                        ELSE d.oper_status END AS status,
                   x.cause, coalesce(n.behind, 0) AS behind
            FROM devices d LEFT JOIN sites s ON s.id = d.site_id LEFT JOIN behind x ON x.id = d.id
            LEFT JOIN (SELECT cause, count(*) AS behind FROM behind GROUP BY cause) n ON n.cause = d.id
            WHERE d.organization_id = %(org)s AND (%(site)s::text IS NULL OR s.name = %(site)s)
            ORDER BY d.id""", {"org": org_id, "site": site}).fetchall())
