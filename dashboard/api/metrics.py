"""Metrics as time series (:func:`analytics.frames.load_metrics`): one device's, or a scope's (site,
group, tag, devices, or the whole organization), raw or from a rollup, as JSON or CSV; the metric
catalogue; a device's interfaces with their latest rates.

``resolution=auto`` reads raw samples up to an hour and the rollup that fits longer periods; rollup
rows carry the bucket's average as ``value`` and its ``count``, ``min`` and ``max``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import polars as pl
from flask_openapi3 import Tag
from pydantic import BeforeValidator, Field, JsonValue
from pydantic.json_schema import SkipJsonSchema
from werkzeug.wrappers import Response

from analytics.frames import device_frame, load_metrics, pick_resolution
from analytics.interfaces import interface_rates
from dashboard.api.params import DeviceId, DevicePath, OptionalText, Paged, Period, split_list
from dashboard.api.routing import csv_answer, operation, page_of, pg, unit_of_work
from dashboard.api.schemas import Out
from dashboard.auth import current_org_id
from netpulse import inventory
from netpulse.metrics import UNITS, MetricKind

TAG = Tag(name="metrics", description="Measurements as time series, and interfaces with their latest rates.")
DEFAULT_SPAN = timedelta(hours=1)
NAMES: list[JsonValue] = [k.metric_name for k in sorted(MetricKind)]
_COLUMNS = ("time", "device_id", "device", "metric", "ifindex", "value", "count", "min", "max")

MetricName = Annotated[str, Field(json_schema_extra={"enum": NAMES})]
MetricNames = Annotated[list[MetricName], BeforeValidator(split_list),
                        Field(min_length=1, max_length=len(NAMES), json_schema_extra={"example": ["icmp_rtt_ms"]},
                              description="Metric names, repeated or comma-separated, e.g. icmp_rtt_ms,icmp_loss_pct.")]


class Sample(Out):
    time: datetime = Field(description="The sample time, or the bucket's start for rollups.")
    device_id: int
    device: str
    metric: str
    ifindex: int = Field(description="0: the device itself; an SNMP ifIndex; or a service check's id.")
    value: float | None = Field(description="The sample, or the bucket's average.")
    count: int | None = Field(None, description="Rollups: samples in the bucket.")
    min: float | None = None
    max: float | None = None


class SeriesOut(Out):
    from_: datetime = Field(alias="from")
    to: datetime
    resolution: str = Field(description="What was read: raw, 1m, 1h or 1d.")
    metrics: list[str]
    items: list[Sample]


class SeriesQuery(Period, Paged):
    per_page: int = Field(1000, ge=1, le=10_000, description="Rows per page (at most 10000).")
    metrics: MetricNames
    resolution: Literal["auto", "raw", "1m", "1h", "1d"] = "auto"
    format: Literal["json", "csv"] = Field("json", description="csv: the same page as a CSV download.")


class ScopeQuery(SeriesQuery):
    device: list[DeviceId] | SkipJsonSchema[None] = Field(None, description="Device ids (repeat for several).")
    site: OptionalText = Field(None, description="A site name or slug.")
    group: OptionalText = Field(None, description="A group name or slug.")
    tag: OptionalText = Field(None, description="A tag name or slug.")


class MetricKindOut(Out):
    id: int
    name: str
    unit: str


class InterfaceOut(Out):
    ifindex: int
    name: str
    speed_bps: int | None
    oper_status: str
    last_seen: datetime
    sampled_at: datetime | None = Field(description="The newest of its rate samples (None: none recent).")
    rates: dict[str, float | None] = Field(description="if_in_bps, if_out_bps, if_util_pct, if_errors_ps.")


def _series(query: SeriesQuery, *, devices: list[int] | None = None, site: str | None = None,
            group: str | None = None, tag: str | None = None, filename: str) -> Response:
    start, end = query.span(DEFAULT_SPAN)
    level = pick_resolution(start, end, query.resolution)
    org_id = current_org_id()
    with unit_of_work() as session:
        conn = pg(session)
        frame = load_metrics(conn, org_id, metrics=query.metrics, start=start, end=end, devices=devices, site=site,
                             group=group, tag=tag, resolution=level)
        names = device_frame(conn, org_id).select("device_id", pl.col("name").alias("device"))
    page = frame.slice(query.offset, query.per_page).join(names, on="device_id", how="left", maintain_order="left")
    rows = [_row(r) for r in page.iter_rows(named=True)]
    total = frame.height
    if query.format == "csv":
        columns = [c for c in _COLUMNS if c in page.columns]
        pages = max(1, -(-total // query.per_page))
        return csv_answer(filename, columns, ([r[c] for c in columns] for r in rows),
                          extra_headers={"X-Total-Count": str(total), "X-Page": str(query.page),
                                         "X-Total-Pages": str(pages), "X-Resolution": level})
    out = SeriesOut.model_validate({"from": start, "to": end, "resolution": level, "metrics": query.metrics,
                                    "items": rows})
    return page_of(out.model_dump(mode="json", by_alias=True), total, query)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["metric"] = str(row["metric"])
    out["time"] = row["time"].astimezone(UTC).isoformat().replace("+00:00", "Z")
    for key in ("value", "min", "max"):
        value = out.get(key)
        if isinstance(value, float) and value != value:
            out[key] = None
    return out


@operation("GET", "/devices/<device_id>/metrics", tag=TAG, permission="metrics:read", data=SeriesOut, paginated=True,
           content=(("text/csv", "With format=csv: time,device_id,device,metric,ifindex,value[,count,min,max]"),))
def device_metrics(path: DevicePath, query: SeriesQuery) -> Response:
    """One device's metrics over the period (default: the last hour), by metric, interface and time."""
    with unit_of_work() as session:
        inventory.get_device(session, current_org_id(), path.device_id)  # 404 for a device not of this organization
    return _series(query, devices=[path.device_id], filename=f"device-{path.device_id}-metrics.csv")


@operation("GET", "/metrics", tag=TAG, permission="metrics:read", data=SeriesOut, paginated=True,
           content=(("text/csv", "With format=csv: time,device_id,device,metric,ifindex,value[,count,min,max]"),))
def scope_metrics(query: ScopeQuery) -> Response:
    """Metrics of a scope: devices (ids), a site, a group or a tag (filters combine), or the whole
    organization when none is given; by device, metric, interface and time."""
    return _series(query, devices=query.device, site=query.site, group=query.group, tag=query.tag,
                   filename="metrics.csv")


@operation("GET", "/metrics/kinds", tag=TAG, permission="metrics:read", data=MetricKindOut, many=True,
           paginated=True)
def metric_kinds(query: Paged) -> Response:
    """The metric catalogue: every name the ``metrics`` parameters take, and its unit."""
    kinds = [MetricKindOut(id=int(k), name=k.metric_name, unit=UNITS.get(k, "")) for k in sorted(MetricKind)]
    return page_of(query.window(kinds), len(kinds), query)


@operation("GET", "/devices/<device_id>/interfaces", tag=TAG, permission="metrics:read", data=InterfaceOut,
           many=True, paginated=True)
def device_interfaces(path: DevicePath, query: Paged) -> Response:
    """The device's interfaces (as its SNMP polls found them) by ifIndex, with their rates of the last
    15 minutes: in and out bit/s, utilisation and errors per second."""
    with unit_of_work() as session:
        inventory.get_device(session, current_org_id(), path.device_id)
        found = interface_rates(pg(session), current_org_id(), path.device_id, datetime.now(UTC))
    return page_of([InterfaceOut.model_validate(i) for i in query.window(found)], len(found), query)
