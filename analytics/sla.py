"""Uptime and SLAs from the device status history: availability, outages, MTTR/MTBF and SLA targets.

Everything is computed from ``device_status_events`` (written by the loader, see ``ingest.status``) over
a period ``[start, end)``:

- A device's status at ``start`` is the one set by its last event at or before ``start``; a device
  with no such event is ``unknown`` until its first event. Event times are when a status *began*
  (an outage from its first failed probe), so the figures are exact to the probe interval.
- Statuses fall into three classes: ``unknown`` (not monitored), ``down``, and available, which is
  ``up`` **and ``degraded``** (a device that answers with packet loss is still available).
- Maintenance windows (``maintenance_windows`` overlapping the period, matched to devices by scope:
  the device's name, its group's, its site's, one of its tags' names, or ``all``) are taken out of
  both monitored and down time. Overlapping windows of one device (its own and its site's) count once.
- Per device: ``maintenance_s`` is the time in maintenance, ``unknown_s`` and ``monitored_s`` the
  unknown and known time outside it (the three add up to the period), ``down_s`` the down time
  outside maintenance, and availability % = 100 * (monitored - down) / monitored (None when nothing
  was monitored).
- An outage is a stretch of ``down``, clipped to the period. It *counts* when some of it falls outside
  maintenance. Neither figure below can exceed the period (both None without outages):

  - MTTR (mean time to repair) = down time / counted outages: how long an outage lasted on average.
  - MTBF (mean time between failures) = available time of the average monitored device / counted
    outages: how often, in wall-clock time, an outage began somewhere in the scope. For one device it
    is its available time per outage; for a site of ten devices with five outages in a week of full
    availability it is 7 d / 5 = 1.4 d, not the 14 d that summed device time would give.

- Groups, sites, tags and the organization are time-weighted over their devices: sums of device
  seconds, so a device monitored for a day weighs 24 times one monitored for an hour, and their
  ``down_s`` is device-seconds (ten devices down for an hour: 36,000), never wall-clock time. A device
  with several tags counts under each; devices without a group, site or tag are gathered under name None.
- :func:`outages` with ``causes=True`` names, for an outage that began while an ancestor in the
  dependency tree (``devices.parent_id``) was down, the topmost such ancestor as its cause.

The interval arithmetic is vectorised over all devices at once (numpy on arrays sorted by device and
time); Python loops only run over maintenance windows and SLA targets, never over events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg
from psycopg import sql

from analytics.copy_decode import PgType, fetch_columns

__all__ = ["BY", "PERIODS", "SCOPES", "AVAILABILITY_COLUMNS", "OUTAGE_SCHEMA", "CAUSE_SCHEMA", "CAUSE_SLACK", "By",
           "SlaResult", "StatusEvent", "Target", "Availability", "availability", "availability_over", "list_targets",
           "outages", "status_history", "calendar_period", "evaluate_targets", "scope_filter", "trend", "TREND_SCHEMA"]

Conn = psycopg.Connection[Any]
I64 = npt.NDArray[np.int64]
By = Literal["device", "group", "site", "tag", "org"]
BY: tuple[str, ...] = ("device", "group", "site", "tag", "org")
SCOPES: tuple[str, ...] = ("device", "group", "site", "tag", "all")
PERIODS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")

# The figures every availability row carries, after its key columns.
AVAILABILITY_COLUMNS = ("availability_pct", "monitored_s", "down_s", "unknown_s", "maintenance_s", "outages",
                        "mttr_s", "mtbf_s")
OUTAGE_SCHEMA = pl.Schema({"device_id": pl.Int64(), "device": pl.String(), "start": pl.Datetime("us", "UTC"),
                           "end": pl.Datetime("us", "UTC"), "duration_s": pl.Float64(),
                           "maintenance_s": pl.Float64(), "counted": pl.Boolean()})
CAUSE_SCHEMA = pl.Schema({"cause_device_id": pl.Int64(), "cause_device": pl.String(),
                          "cause_start": pl.Datetime("us", "UTC")})
# How much earlier than its parent's a child's outage may begin and still be put down to it.
CAUSE_SLACK = timedelta(minutes=2)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000
_UNKNOWN, _AVAILABLE, _DOWN = 0, 1, 2
_CLASS_SQL = "CASE {0} WHEN 'unknown' THEN 0 WHEN 'down' THEN 2 ELSE 1 END"

_DEVICES = f"""
SELECT d.id, d.name, s.name, g.name, d.parent_id, {_CLASS_SQL.format("coalesce(last.to_status, 'unknown')")}
FROM devices d
LEFT JOIN sites s ON s.id = d.site_id
LEFT JOIN device_groups g ON g.id = d.group_id
LEFT JOIN LATERAL (
    SELECT e.to_status FROM device_status_events e
    WHERE e.device_id = d.id AND e.time <= %(start)s
    ORDER BY e.time DESC, e.confirmed_at DESC LIMIT 1
) last ON true
WHERE d.organization_id = %(org)s
ORDER BY d.id
"""

_TAGS = """
SELECT dt.device_id, t.name FROM device_tags dt JOIN tags t ON t.id = dt.tag_id
WHERE t.organization_id = %(org)s ORDER BY dt.device_id, t.name
"""

# Only changes of class matter: up <-> degraded flips (frequent with lossy links) stay in the database.
# A change at exactly ``end`` is read too: it makes an empty segment that ends the outage before it.
# Read as numpy columns (no Python object per event); sorted by (device, time, confirmed_at) in numpy.
_EVENTS = sql.SQL(f"""
SELECT e.device_id::int8 AS device_id, (extract(epoch FROM e.time) * 1000000)::int8 AS t,
       ({_CLASS_SQL.format("e.to_status")})::int8 AS cls, (extract(epoch FROM e.confirmed_at) * 1000000)::int8 AS c
FROM device_status_events e
WHERE e.organization_id = %(org)s AND e.time > %(start)s AND e.time <= %(end)s
  AND ((e.from_status = 'down') <> (e.to_status = 'down') OR (e.from_status = 'unknown') <> (e.to_status = 'unknown'))
""")
_EVENT_FIELDS: list[tuple[str, PgType]] = [("device_id", "int8"), ("t", "int8"), ("cls", "int8"), ("c", "int8")]

_WINDOWS = """
SELECT scope, scope_ref, (extract(epoch FROM greatest(starts_at, %(start)s)) * 1000000)::int8,
       (extract(epoch FROM least(ends_at, %(end)s)) * 1000000)::int8
FROM maintenance_windows
WHERE organization_id = %(org)s AND starts_at < %(end)s AND ends_at > %(start)s
ORDER BY id
"""


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1)


def _require_period(start: datetime, end: datetime) -> None:
    for name, ts in (("start", start), ("end", end)):
        if ts.tzinfo is None:
            raise ValueError(f"{name}={ts!r} is naive: pass a timezone-aware datetime (UTC)")
    if end <= start:
        raise ValueError(f"empty period: start {start.isoformat()} is not before end {end.isoformat()}")


def scope_filter(scope: str, ref: str | None) -> pl.Expr:
    """Which rows of a device frame (columns ``name``, ``group``, ``site``, ``tags``) a scope covers:
    the device named ``ref``, the devices of the group, site or tag named ``ref``, or all of them."""
    if scope == "all":
        return pl.lit(True)
    if scope in ("device", "group", "site"):
        return pl.col("name" if scope == "device" else scope).eq(ref).fill_null(False)
    if scope == "tag":
        return pl.col("tags").list.contains(pl.lit(ref, pl.String)).fill_null(False)
    raise ValueError(f"scope {scope!r}: use one of {', '.join(SCOPES)}")


# --- interval arithmetic on sorted arrays ------------------------------------------------------------------
def _merge(rank: I64, start: I64, end: I64) -> tuple[I64, I64, I64]:
    """The union of each device's intervals as disjoint intervals sorted by (device rank, start).

    A sweep: +1 at each start, -1 at each end, in (device, time) order with starts first at a tie, so
    touching intervals join. Each device's steps sum to zero, so one running sum serves every device.
    """
    if not len(rank):
        return rank, start, end
    r = np.concatenate([rank, rank])
    t = np.concatenate([start, end])
    step = np.concatenate([np.ones(len(rank), np.int64), -np.ones(len(rank), np.int64)])
    order = np.lexsort((-step, t, r))
    r, t, step = r[order], t[order], step[order]
    depth = np.cumsum(step)
    opens = (step == 1) & (depth == 1)
    closes = depth == 0
    return r[opens], t[opens], t[closes]


def _covered_before(q_rank: I64, q_time: I64, m_rank: I64, m_start: I64, m_end: I64) -> I64:
    """For each query (device rank, time): maintenance time before that time, offset by a constant per
    device, so the difference of two queries of one device is the maintenance time between them.

    ``m_*`` are disjoint intervals sorted by (rank, start) (see ``_merge``). Each query finds the last
    interval that starts at or before it, by a running maximum over the merged (device, time) order.
    """
    if not len(m_start):
        return np.zeros(len(q_time), np.int64)
    nm = len(m_start)
    length = m_end - m_start
    through = np.cumsum(length)  # all intervals up to and including k, over every device
    is_query = np.concatenate([np.zeros(nm, bool), np.ones(len(q_time), bool)])
    order = np.lexsort((is_query, np.concatenate([m_start, q_time]), np.concatenate([m_rank, q_rank])))
    last = np.maximum.accumulate(np.where(is_query[order], -1, order))
    q_sorted = is_query[order]
    k, qi = last[q_sorted], order[q_sorted] - nm
    kk = np.maximum(k, 0)
    own = (k >= 0) & (m_rank[kk] == q_rank[qi])
    inside = np.clip(q_time[qi] - m_start[kk], 0, length[kk])
    # Before a device's first interval the value is the total of all earlier devices' intervals.
    value = np.where(own, through[kk] - length[kk] + inside, np.where(k >= 0, through[kk], 0))
    out = np.empty(len(q_time), np.int64)
    out[qi] = value
    return out


@dataclass(frozen=True, slots=True)
class _Timeline:
    """Figures of one period in microseconds: per device (by rank) and per outage."""

    monitored: npt.NDArray[np.float64]
    down: npt.NDArray[np.float64]
    unknown: npt.NDArray[np.float64]
    maintenance: I64
    outages: I64
    out_rank: I64
    out_start: I64
    out_end: I64
    out_ongoing: npt.NDArray[np.bool_]
    out_maintenance: I64


def _timeline(start: int, end: int, initial: I64, ev_rank: I64, ev_time: I64, ev_class: I64,
              m_rank: I64, m_start: I64, m_end: I64) -> _Timeline:
    """Segments of constant status class per device, from ``initial`` (the class at ``start`` per
    device rank) and the class changes in ``(start, end]`` (sorted by rank, then time), less the
    maintenance intervals (clipped to the period)."""
    n = len(initial)
    rank = np.concatenate([np.arange(n, dtype=np.int64), ev_rank])
    time = np.concatenate([np.full(n, start, np.int64), ev_time])
    cls = np.concatenate([initial, ev_class])
    order = np.lexsort((time, rank))  # stable: the initial status leads each device
    rank, time, cls = rank[order], time[order], cls[order]
    first = np.ones(len(rank), bool)
    first[1:] = rank[1:] != rank[:-1]
    keep = first.copy()
    keep[1:] |= cls[1:] != cls[:-1]  # a change into the same class extends the segment
    rank, time, cls, first = rank[keep], time[keep], cls[keep], first[keep]
    last = np.append(first[1:], True)
    seg_end = np.where(last, end, np.append(time[1:], end))

    # One lookup for every boundary: segment ends and starts, then each device's period end and start.
    devices = np.arange(n, dtype=np.int64)
    k = len(rank)
    covered = _covered_before(np.concatenate([rank, rank, devices, devices]),
                              np.concatenate([seg_end, time, np.full(n, end, np.int64), np.full(n, start, np.int64)]),
                              *_merge(m_rank, m_start, m_end))
    maint = covered[:k] - covered[k:2 * k]
    counted = seg_end - time - maint

    def per_device(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        return np.bincount(rank[mask], weights=counted[mask], minlength=n).astype(np.float64)

    down = cls == _DOWN
    listed = down & (seg_end > time)  # not the empty segment of a change at exactly ``end``
    return _Timeline(
        monitored=per_device(cls != _UNKNOWN), down=per_device(down), unknown=per_device(cls == _UNKNOWN),
        maintenance=covered[2 * k:2 * k + n] - covered[2 * k + n:],
        outages=np.bincount(rank[down & (counted > 0)], minlength=n).astype(np.int64),
        out_rank=rank[listed], out_start=time[listed], out_end=seg_end[listed], out_ongoing=last[listed],
        out_maintenance=maint[listed])


# --- reading the database ------------------------------------------------------------------------------------
_DEVICE_SCHEMA = pl.Schema({"device_id": pl.Int64(), "name": pl.String(), "site": pl.String(),
                            "group": pl.String(), "parent_id": pl.Int64(), "initial": pl.Int64()})
_TAG_SCHEMA = pl.Schema({"device_id": pl.Int64(), "tag": pl.String()})


def _frame(rows: list[tuple[Any, ...]], schema: pl.Schema) -> pl.DataFrame:
    """Rows as a frame, built column by column (several times faster than row by row)."""
    columns = list(zip(*rows, strict=True)) or [() for _ in schema]
    return pl.DataFrame([pl.Series(name, values, dtype=dtype)
                         for (name, dtype), values in zip(schema.items(), columns, strict=True)])


def _compute(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime, *,
             with_tags: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-device figures (with name, site, group and tags) and the outages of the organization.
    ``with_tags=False`` leaves every device's tags empty unless a maintenance window is scoped by tag
    (the tags are then read to match it): no figure depends on them otherwise."""
    _require_period(start, end)
    params = {"org": org_id, "start": start, "end": end}
    with conn.cursor(binary=True) as cur:
        windows = cur.execute(_WINDOWS, params).fetchall()
        devices = _frame(cur.execute(_DEVICES, params).fetchall(), _DEVICE_SCHEMA)
        read_tags = with_tags or any(w[0] == "tag" for w in windows)
        tags = _frame(cur.execute(_TAGS, params).fetchall() if read_tags else [], _TAG_SCHEMA)
    columns = fetch_columns(conn, _EVENTS, params, _EVENT_FIELDS)
    order = np.lexsort((columns["c"], columns["t"], columns["device_id"]))
    events = np.stack([columns["device_id"][order], columns["t"][order], columns["cls"][order]], axis=1)
    devices = devices.join(tags.group_by("device_id").agg(tags="tag"), on="device_id", how="left",
                           maintain_order="left").with_columns(pl.col("tags").fill_null([]))
    ids = devices["device_id"].to_numpy()
    ev = events.astype(np.int64).reshape(-1, 3)
    ev_rank = np.searchsorted(ids, ev[:, 0])
    known = ev_rank < len(ids)
    known[known] &= ids[ev_rank[known]] == ev[known, 0]
    ev, ev_rank = ev[known], ev_rank[known]

    # Windows are few: each is matched to its devices by scope, then all are handled as arrays.
    m_rank, m_start, m_end = [], [], []
    rank_of = devices.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("rank"), "name", "group", "site", "tags")
    for scope, ref, w_start, w_end in windows:
        ranks = rank_of.filter(scope_filter(scope, ref))["rank"].to_numpy()
        m_rank.append(ranks)
        m_start.append(np.full(len(ranks), w_start, np.int64))
        m_end.append(np.full(len(ranks), w_end, np.int64))

    def cat(parts: list[I64]) -> I64:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    tl = _timeline(_micros(start), _micros(end), devices["initial"].to_numpy().astype(np.int64), ev_rank,
                   ev[:, 1], ev[:, 2], cat(m_rank), cat(m_start), cat(m_end))
    figures = devices.drop("initial").with_columns(
        monitored_s=pl.Series(tl.monitored / _US), down_s=pl.Series(tl.down / _US),
        unknown_s=pl.Series(tl.unknown / _US), maintenance_s=pl.Series(tl.maintenance / _US),
        outages=pl.Series(tl.outages, dtype=pl.Int64))
    duration = tl.out_end - tl.out_start
    outage_frame = pl.DataFrame({
        "device_id": ids[tl.out_rank], "device": devices["name"].gather(tl.out_rank),
        "start": pl.Series(tl.out_start, dtype=pl.Int64), "end": pl.Series(tl.out_end, dtype=pl.Int64),
        "ongoing": tl.out_ongoing, "duration_s": duration / _US, "maintenance_s": tl.out_maintenance / _US,
        "counted": duration > tl.out_maintenance,
    }, schema_overrides={"device_id": pl.Int64, "device": pl.String, "ongoing": pl.Boolean,
                         "duration_s": pl.Float64, "maintenance_s": pl.Float64, "counted": pl.Boolean})
    outage_frame = outage_frame.with_columns(
        start=pl.from_epoch("start", time_unit="us").dt.replace_time_zone("UTC"),
        end=pl.when(~pl.col("ongoing")).then(pl.from_epoch("end", time_unit="us")).dt.replace_time_zone("UTC"),
    ).select(OUTAGE_SCHEMA.names()).cast(OUTAGE_SCHEMA).sort("start", "device_id")
    return figures, outage_frame


def _ratios(frame: pl.DataFrame) -> pl.DataFrame:
    """Availability, MTTR and MTBF from the sums; ``monitored_devices`` (devices with monitored time)
    turns the device-seconds of available time into the average device's, so MTBF stays wall-clock."""
    up = pl.col("monitored_s") - pl.col("down_s")
    n = pl.col("outages")
    return frame.with_columns(
        availability_pct=pl.when(pl.col("monitored_s") > 0).then(100.0 * up / pl.col("monitored_s")),
        mttr_s=pl.when(n > 0).then(pl.col("down_s") / n),
        mtbf_s=pl.when(n > 0).then(up / pl.col("monitored_devices") / n),
    )


def _worst_first(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(["availability_pct", "down_s", "name"], descending=[False, True, False], nulls_last=True)


_SUMS = [pl.len().cast(pl.Int64).alias("devices"), pl.col("monitored_s").sum(), pl.col("down_s").sum(),
         pl.col("unknown_s").sum(), pl.col("maintenance_s").sum(), pl.col("outages").sum(),
         (pl.col("monitored_s") > 0).sum().cast(pl.Int64).alias("monitored_devices")]


def _aggregate(figures: pl.DataFrame, by: str, org_name: str) -> pl.DataFrame:
    if by == "device":
        return figures.select("device_id", "name", "site", "group", *AVAILABILITY_COLUMNS[1:6],
                              monitored_devices=(pl.col("monitored_s") > 0).cast(pl.Int64))
    if by == "org":
        return figures.select(_SUMS).with_columns(name=pl.lit(org_name, pl.String)).select("name", pl.exclude("name"))
    if by not in BY:
        raise ValueError(f"by={by!r}: use one of {', '.join(BY)}")
    # An empty tag list explodes to one null: untagged devices gather under name None.
    source = figures.explode("tags", empty_as_null=True).rename({"tags": "tag"}) if by == "tag" else figures
    return source.group_by(pl.col(by).alias("name")).agg(_SUMS)


def availability(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime, *,
                 by: By = "device", scope: str = "all", ref: str | None = None) -> pl.DataFrame:
    """Availability over ``[start, end)`` per device, group, site, tag or for the organization, worst first.

    Columns: the key (``by="device"``: ``device_id``, ``name``, ``site``, ``group``; otherwise ``name``
    and ``devices``, the number of devices), then ``availability_pct`` (None when nothing was
    monitored), ``monitored_s``, ``down_s``, ``unknown_s``, ``maintenance_s`` (seconds; device-seconds
    for several devices), ``outages`` (counted outages), ``mttr_s`` and ``mtbf_s`` (None without outages;
    both at most the period, see the module docstring).
    ``degraded`` counts as available. Rows are sorted by availability (no data last), then by down time.
    ``scope``/``ref`` keep the devices of one device, group, site or tag (see :func:`scope_filter`).

    Raises:
      ValueError: a naive or empty period, or an unknown ``by``.
    """
    if by not in BY:
        raise ValueError(f"by={by!r}: use one of {', '.join(BY)}")
    return availability_over(conn, org_id, start, end, scope=scope, ref=ref).by(by)


@dataclass(frozen=True, slots=True)
class Availability:
    """One period's figures, read once and then aggregated as often as needed (a report wants them per
    device, group, site and in all): ``devices`` per device (as :func:`availability` with ``by="device"``,
    plus ``tags`` and ``parent_id``, unsorted) and ``outage_list`` (as :func:`outages` with causes)."""

    devices: pl.DataFrame
    outage_list: pl.DataFrame
    org_name: str

    def by(self, by: By) -> pl.DataFrame:
        """The rows :func:`availability` returns for ``by``."""
        frame = _ratios(_aggregate(self.devices, by, self.org_name))
        keys = ["device_id", "name", "site", "group"] if by == "device" else ["name", "devices"]
        return _worst_first(frame.select(*keys, *AVAILABILITY_COLUMNS))


def availability_over(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime, *, scope: str = "all",
                      ref: str | None = None, slack: timedelta = CAUSE_SLACK, with_tags: bool = True) -> Availability:
    """The devices of ``scope``/``ref`` over ``[start, end)``: their figures and their outages with
    causes (see :class:`Availability`), from one read of the status history. ``with_tags=False``: a
    caller that neither groups nor scopes by tag skips reading them (``devices.tags`` are then empty)."""
    if scope == "tag":
        with_tags = True
    figures, frame = _compute(conn, org_id, start, end, with_tags=with_tags)
    frame = _with_causes(frame, figures, slack)
    if scope != "all":
        figures = figures.filter(scope_filter(scope, ref))
        frame = frame.filter(pl.col("device_id").is_in(figures["device_id"].implode()))
    row = conn.execute("SELECT name FROM organizations WHERE id = %s", (org_id,)).fetchone()
    return Availability(figures, frame, row[0] if row else str(org_id))


def outages(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime, *, causes: bool = False,
            slack: timedelta = CAUSE_SLACK, scope: str = "all", ref: str | None = None) -> pl.DataFrame:
    """Every stretch of ``down`` over ``[start, end)``, clipped to the period, by start then device.

    Columns: ``device_id``, ``device`` (name), ``start`` (the period's start for an outage that began
    before it), ``end`` (None when the device was still down at ``end``), ``duration_s`` (within the
    period), ``maintenance_s`` (the part of it in maintenance) and ``counted`` (whether any of it fell
    outside maintenance, i.e. whether it counts against availability and in ``outages``).

    With ``causes``, three more (``CAUSE_SCHEMA``): ``cause_device_id``, ``cause_device`` and
    ``cause_start``, the outage of the topmost ancestor (parent, grandparent, ...) that was down when
    this one began (up to ``slack`` earlier: a child's first failed probe may come a probe interval
    before its parent's); None for an outage of the device's own. ``scope``/``ref`` keep the outages of
    one device, group, site or tag's devices (their causes may lie outside it).
    """
    if causes:
        return availability_over(conn, org_id, start, end, scope=scope, ref=ref, slack=slack).outage_list
    figures, frame = _compute(conn, org_id, start, end)
    if scope != "all":
        frame = frame.filter(pl.col("device_id").is_in(figures.filter(scope_filter(scope, ref))["device_id"].implode()))
    return frame


def _with_causes(frame: pl.DataFrame, figures: pl.DataFrame, slack: timedelta) -> pl.DataFrame:
    parent = dict(zip(figures["device_id"].to_list(), figures["parent_id"].to_list(), strict=True))
    chains: list[tuple[int, int, int]] = []
    for device in frame["device_id"].unique().to_list():
        seen, up, depth = {device}, parent.get(device), 1
        while up is not None and up not in seen:  # a cycle cannot be stored, but never loop on one
            chains.append((device, up, depth))
            seen.add(up)
            up, depth = parent.get(up), depth + 1
    ancestors = pl.DataFrame(chains, schema={"device_id": pl.Int64, "cause_device_id": pl.Int64, "depth": pl.Int64},
                             orient="row")
    theirs = frame.select(cause_device_id="device_id", cause_device="device", cause_start="start", cause_end="end")
    numbered = frame.with_row_index("row")
    found = (numbered.select("row", "device_id", "start").join(ancestors, on="device_id")
             .join(theirs, on="cause_device_id")
             .filter((pl.col("cause_start") - slack <= pl.col("start"))
                     & (pl.col("cause_end").is_null() | (pl.col("start") < pl.col("cause_end"))))
             .sort("row", "depth", descending=[False, True]).unique("row", keep="first", maintain_order=True)
             .select("row", *CAUSE_SCHEMA.names()))
    schema: dict[str, pl.DataType] = {**dict(OUTAGE_SCHEMA), **dict(CAUSE_SCHEMA)}
    return numbered.join(found, on="row", how="left", maintain_order="left").drop("row").cast(schema)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """One change of a device's probed status: ``time`` is when the new status began, ``confirmed_at``
    when the probes' hysteresis decided it (see :mod:`ingest.status`)."""

    id: int
    device_id: int
    device: str
    time: datetime
    confirmed_at: datetime
    from_status: str
    to_status: str


_HISTORY_WHERE = """
FROM device_status_events e JOIN devices d ON d.id = e.device_id AND d.organization_id = e.organization_id
WHERE e.organization_id = %(org)s AND e.time >= %(start)s AND e.time < %(end)s
  AND (%(device)s::integer IS NULL OR e.device_id = %(device)s)
"""


def status_history(conn: Conn, org_id: uuid.UUID | str, start: datetime, end: datetime, *,
                   device_id: int | None = None, limit: int = 100, offset: int = 0) -> tuple[list[StatusEvent], int]:
    """The status changes that began in ``[start, end)`` (of one device, or of every device), newest
    first, one page of them and how many there are in all: the events availability is computed from."""
    _require_period(start, end)
    params = {"org": org_id, "start": start, "end": end, "device": device_id, "limit": limit, "offset": offset}
    total = conn.execute("SELECT count(*) " + _HISTORY_WHERE, params).fetchone()
    rows = conn.execute("SELECT e.id, e.device_id, d.name, e.time, e.confirmed_at, e.from_status, e.to_status "
                        + _HISTORY_WHERE + " ORDER BY e.time DESC, e.id DESC LIMIT %(limit)s OFFSET %(offset)s",
                        params).fetchall()
    return [StatusEvent(*r) for r in rows], int(total[0]) if total else 0


# --- SLA targets -----------------------------------------------------------------------------------------------
def _add_months(ts: datetime, months: int) -> datetime:
    total = ts.year * 12 + ts.month - 1 + months
    return ts.replace(year=total // 12, month=total % 12 + 1)


def calendar_period(period: str, at: datetime) -> tuple[datetime, datetime]:
    """The calendar ``period`` (day, week from Monday, month, quarter, year; UTC) that holds ``at``, as (start, end).

    >>> calendar_period("quarter", datetime(2026, 11, 27, 3, 30, tzinfo=UTC))[0].isoformat()
    '2026-10-01T00:00:00+00:00'
    """
    if at.tzinfo is None:
        raise ValueError(f"at={at!r} is naive: pass a timezone-aware datetime (UTC)")
    at = at.astimezone(UTC)
    day = datetime(at.year, at.month, at.day, tzinfo=UTC)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    if period == "month":
        first = day.replace(day=1)
        return first, _add_months(first, 1)
    if period == "quarter":
        first = datetime(at.year, 3 * ((at.month - 1) // 3) + 1, 1, tzinfo=UTC)
        return first, _add_months(first, 3)
    if period == "year":
        return datetime(at.year, 1, 1, tzinfo=UTC), datetime(at.year + 1, 1, 1, tzinfo=UTC)
    raise ValueError(f"period {period!r}: use one of {', '.join(PERIODS)}")


@dataclass(frozen=True, slots=True)
class SlaResult:
    """One SLA target evaluated over its calendar period so far.

    ``achieved_pct`` is the time-weighted availability of the scope's devices from ``period_start`` to
    ``evaluated_at`` (None when nothing was monitored: the target is then not breached). ``breached``
    means achieved < target now. ``error_budget_min`` is the down time (minutes; device-minutes for
    several devices) still allowed until ``period_end`` if the rest of the period is monitored:
    ``(1 - target) * (monitored so far + time left * monitored devices) - down so far``; negative once
    overspent, None when no device of the scope was monitored.
    """

    target_id: int
    scope: str
    scope_ref: str | None
    period: str
    severity: str
    target_pct: float
    period_start: datetime
    period_end: datetime
    evaluated_at: datetime
    devices: int
    monitored_s: float
    down_s: float
    achieved_pct: float | None
    breached: bool
    error_budget_min: float | None


@dataclass(frozen=True, slots=True)
class Target:
    """An SLA target as stored: ``target_pct`` availability for the devices of ``scope``/``scope_ref``
    over each calendar ``period``."""

    id: int
    scope: str
    scope_ref: str | None
    target_pct: float
    period: str
    severity: str


def list_targets(conn: Conn, org_id: uuid.UUID | str) -> list[Target]:
    """The organization's SLA targets, by id."""
    rows = conn.execute("SELECT id, scope, scope_ref, target_pct, period, severity FROM sla_targets"
                        " WHERE organization_id = %s ORDER BY id", (org_id,)).fetchall()
    return [Target(i, scope, ref, float(pct), period, severity) for i, scope, ref, pct, period, severity in rows]


def evaluate_targets(conn: Conn, org_id: uuid.UUID | str, now: datetime) -> list[SlaResult]:
    """Every SLA target of the organization against its current calendar period up to ``now``, by id.

    Only reads: turning breaches into alerts is the alert engine's job.
    """
    if now.tzinfo is None:
        raise ValueError(f"now={now!r} is naive: pass a timezone-aware datetime (UTC)")
    figures: dict[str, pl.DataFrame | None] = {}
    results = []
    for t in list_targets(conn, org_id):
        target_id, scope, ref, target_pct, period = t.id, t.scope, t.scope_ref, t.target_pct, t.period
        severity = t.severity
        period_start, period_end = calendar_period(period, now)
        if period not in figures:
            figures[period] = _compute(conn, org_id, period_start, now)[0] if now > period_start else None
        frame = figures[period]
        mine = frame.filter(scope_filter(scope, ref)) if frame is not None else None
        devices = mine.height if mine is not None else 0
        monitored = float(mine["monitored_s"].sum()) if mine is not None else 0.0
        down = float(mine["down_s"].sum()) if mine is not None else 0.0
        active = int((mine["monitored_s"] > 0).sum()) if mine is not None else 0
        target = float(target_pct)
        achieved = 100.0 * (monitored - down) / monitored if monitored > 0 else None
        left_s = (period_end - max(now, period_start)).total_seconds()
        budget = ((1.0 - target / 100.0) * (monitored + left_s * active) - down) / 60.0 if active else None
        results.append(SlaResult(
            target_id=target_id, scope=scope, scope_ref=ref, period=period, severity=severity, target_pct=target,
            period_start=period_start, period_end=period_end, evaluated_at=now, devices=devices,
            monitored_s=monitored, down_s=down, achieved_pct=achieved,
            breached=achieved is not None and achieved < target, error_budget_min=budget))
    return results


# --- the trend of a period ---------------------------------------------------------------------------------------
TREND_SCHEMA = pl.Schema({"bucket": pl.Datetime("us", "UTC"), "availability_pct": pl.Float64(),
                          "down_s": pl.Float64()})


def trend(figures: Availability, start: datetime, end: datetime, step: timedelta) -> pl.DataFrame:
    """Availability per ``step`` of the period ``figures`` were read for (``[start, end)``): each
    bucket's down time is exact (the counted outages' seconds inside it, less their maintenance share),
    measured against the period's monitored time spread evenly over its buckets. Columns ``bucket``,
    ``availability_pct`` (None when nothing was monitored) and ``down_s``."""
    _require_period(start, end)
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    t0, t1, w = _micros(start), _micros(end), step // timedelta(microseconds=1)
    n = max(1, -(-(t1 - t0) // w))
    edges = t0 + np.arange(n + 1, dtype=np.int64) * w
    edges[-1] = t1
    down = np.zeros(n)
    counted = figures.outage_list.filter(pl.col("counted"))
    if counted.height:
        o_start = counted["start"].dt.epoch("us").to_numpy().astype(np.int64)
        o_end = counted["end"].dt.epoch("us").fill_null(t1).to_numpy().astype(np.int64)
        share = 1.0 - (counted["maintenance_s"].to_numpy() / np.maximum(counted["duration_s"].to_numpy(), 1e-9))
        for i in range(n):
            overlap = np.clip(np.minimum(o_end, edges[i + 1]) - np.maximum(o_start, edges[i]), 0, None)
            down[i] = float((overlap * share).sum()) / _US
    monitored = float(figures.devices["monitored_s"].sum())
    per_bucket = (edges[1:] - edges[:-1]) / (t1 - t0) * monitored
    pct = [100.0 * (m - d) / m if m > 0 else None for m, d in zip(per_bucket.tolist(), down.tolist(), strict=True)]
    buckets = [datetime.fromtimestamp(int(e) / _US, UTC) for e in edges[:-1]]
    return pl.DataFrame({"bucket": buckets, "availability_pct": pct, "down_s": down.tolist()}, schema=TREND_SCHEMA)
