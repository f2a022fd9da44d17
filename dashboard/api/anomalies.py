"""Anomaly scores (:mod:`analytics.anomaly`): the worst series of a period, and one device's scores.

A score is in [0, 1] per series and minute; 0.5 and above is an anomaly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_openapi3 import Tag
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from werkzeug.wrappers import Response

from analytics.anomaly import count_series, load_scores, top_anomalies
from dashboard.api.metrics import MetricNames
from dashboard.api.params import DevicePath, Paged, Period
from dashboard.api.routing import operation, page_of, pg, unit_of_work
from dashboard.api.schemas import Out
from dashboard.auth import current_org_id
from netpulse import inventory

TAG = Tag(name="anomalies", description="Anomaly scores of the stored series.")
DEFAULT_SPAN = timedelta(days=1)
MAX_SPAN = timedelta(days=90)


class TopSeries(Out):
    device_id: int
    name: str = Field(description="The device's name.")
    metric: str
    ifindex: int
    max_score: float
    peak_time: datetime | None = Field(description="The first minute at the highest score.")
    anomalous: int = Field(description="Minutes scoring 0.5 or more.")
    points: int = Field(description="Minutes scored.")


class Score(Out):
    time: datetime
    metric: str
    ifindex: int
    score: float


class TopQuery(Period, Paged):
    pass


class ScoreQuery(Period, Paged):
    per_page: int = Field(1000, ge=1, le=10_000, description="Rows per page (at most 10000).")
    metrics: MetricNames | SkipJsonSchema[None] = None
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="Only scores at or above this (0.5: anomalies).")


@operation("GET", "/anomalies/top", tag=TAG, permission="metrics:read", data=TopSeries, many=True, paginated=True)
def top_anomalous_series(query: TopQuery) -> Response:
    """The series with the highest scores of the period (default: the last day), worst first."""
    start, end = query.span(DEFAULT_SPAN, maximum=MAX_SPAN)
    with unit_of_work() as session:
        conn = pg(session)
        frame = top_anomalies(conn, current_org_id(), start, end, limit=query.offset + query.per_page)
        total = count_series(conn, current_org_id(), start, end)
    rows = frame.slice(query.offset, query.per_page).iter_rows(named=True)
    return page_of([TopSeries.model_validate(r) for r in rows], total, query)


@operation("GET", "/devices/<device_id>/anomalies", tag=TAG, permission="metrics:read", data=Score, many=True,
           paginated=True)
def device_anomalies(path: DevicePath, query: ScoreQuery) -> Response:
    """The device's scores over the period (default: the last day), by metric, interface and time."""
    start, end = query.span(DEFAULT_SPAN, maximum=MAX_SPAN)
    with unit_of_work() as session:
        inventory.get_device(session, current_org_id(), path.device_id)
        frame = load_scores(pg(session), current_org_id(), start=start, end=end, devices=[path.device_id],
                            metrics=query.metrics, min_score=query.min_score)
    page = frame.slice(query.offset, query.per_page)
    items = [Score(time=r["time"], metric=str(r["metric"]), ifindex=r["ifindex"], score=r["score"])
             for r in page.iter_rows(named=True)]
    return page_of(items, frame.height, query)
