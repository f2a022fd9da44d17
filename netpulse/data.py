"""The data API for notebooks: an organization's devices, metrics, alerts, SLAs and anomaly scores as
Polars frames, in five lines.

    from netpulse import data
    db = data.connect()                                   # NETPULSE_DATABASE_URL, or the running demo
    rtt = db.metrics("icmp_rtt_ms", since="1d", site="Nairobi")
    worst = db.sla(since="30d", by="site")
    db.alerts(since="7d").group_by("rule").len()

A thin facade: every frame comes from the function that owns it (``analytics.frames.load_metrics``,
``analytics.sla.availability``, ``analytics.alerts.alerts_frame``, ``analytics.anomaly.load_scores``,
``netpulse.inventory.list_devices``), with device names joined on. Times are ``since`` (a duration:
``"7d"``) or ``start``/``end`` (ISO text or aware datetimes), parsed by :mod:`netpulse.timespec`.

It is the one module of the core that imports a layer above it (analytics): it is the product-named
front door for notebooks, and nothing in the core imports it (import-linter contracts in
pyproject.toml). ``connect`` is a composition root: it reads the settings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from netpulse.config import DEMO_DATABASE, demo_database_url
from netpulse.errors import ConfigError, NotFound, ValidationError
from netpulse.timespec import parse_duration, parse_time

__all__ = ["DEMO_DATABASE", "Database", "connect", "demo_database_url"]


_DEVICE_SCHEMA = pl.Schema({"device_id": pl.Int32(), "name": pl.String(), "address": pl.String(),
                            "device_type": pl.String(), "site": pl.String(), "group": pl.String(),
                            "parent": pl.String(), "tags": pl.List(pl.String()), "status": pl.String(),
                            "oper_status": pl.String(), "last_seen": pl.Datetime("us", "UTC"),
                            "simulated": pl.Boolean()})


def _time(value: str | datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(f"{field}: {value!r} is naive; give a timezone-aware datetime",
                                  details={field: "naive"})
        return value.astimezone(UTC)
    return parse_time(value, field=field)


def _window(since: str | int | float | None, start: str | datetime | None, end: str | datetime | None,
            default: str) -> tuple[datetime, datetime]:
    """``[start, end)``: ``start``/``end`` when given (``end`` defaults to now), else the ``since`` before now."""
    stop = _time(end, "end") or datetime.now(UTC)
    begin = _time(start, "start")
    if begin is not None and since is not None:
        raise ValidationError("give since or start, not both", details={"since": "conflicts with start"})
    if begin is None:
        begin = stop - parse_duration(since if since is not None else default, field="since")
    if stop <= begin:
        raise ValidationError(f"end ({stop:%Y-%m-%d %H:%M}) is not after start ({begin:%Y-%m-%d %H:%M})",
                              details={"end": "before start"})
    return begin, stop


@dataclass
class Database:
    """One organization of one NetPulse database. Frames are read when asked for, never cached."""

    url: str
    org_id: uuid.UUID
    organization: str
    _conn: Any = field(repr=False, default=None)
    _engine: Any = field(repr=False, default=None)

    @property
    def conn(self) -> Any:
        """The psycopg connection (autocommit), for the analytics functions this facade does not wrap."""
        if self._conn is None or self._conn.closed:
            from netpulse.db import connect as pg_connect

            self._conn = pg_connect(self.url, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _names(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with the device's ``name``, ``site`` and ``group`` joined on by ``device_id``."""
        from analytics.frames import device_frame

        names = device_frame(self.conn, self.org_id).rename({"name": "device"})
        return frame.join(names.cast({"device_id": frame.schema["device_id"]}), on="device_id", how="left")

    # -- frames -------------------------------------------------------------------------------------------------
    def devices(self, *, site: str | None = None, group: str | None = None, tag: str | None = None) -> pl.DataFrame:
        """The organization's devices (``netpulse.inventory.list_devices``): id, name, address, type, site,
        group, parent, tags, lifecycle and operational status, last seen, simulated; by name."""
        from sqlalchemy.orm import Session

        from netpulse.db import make_engine
        from netpulse.inventory import list_devices

        if self._engine is None:
            self._engine = make_engine(self.url, pool_size=1, max_overflow=0)
        with Session(self._engine) as session:
            found, total = list_devices(session, self.org_id, site=site, group=group, tag=tag, limit=1_000_000)
            rows = [(d.id, d.name, d.address, d.device_type, d.site.name if d.site else None,
                     d.group.name if d.group else None, d.parent.name if d.parent else None,
                     sorted(t.name for t in d.tags), d.status, d.oper_status, d.last_seen, d.simulated)
                    for d in found]
        return pl.DataFrame(rows, schema=_DEVICE_SCHEMA, orient="row")

    def metrics(self, metrics: str | Iterable[str], *, since: str | None = None, start: str | datetime | None = None,
                end: str | datetime | None = None, devices: int | str | Sequence[int | str] | None = None,
                site: str | None = None, group: str | None = None, tag: str | None = None,
                resolution: str = "auto") -> pl.DataFrame:
        """Samples of ``metrics`` (names such as ``"icmp_rtt_ms"``) over the window (default: the last
        day), from ``analytics.frames.load_metrics`` (raw rows up to an hour, else the rollup that fits,
        or ``resolution`` = raw, 1m, 1h, 1d), with ``device``, ``site`` and ``group`` joined on."""
        from analytics.frames import load_metrics

        begin, stop = _window(since, start, end, "1d")
        frame = load_metrics(self.conn, self.org_id, metrics=metrics, start=begin, end=stop, devices=devices,
                             site=site, group=group, tag=tag, resolution=resolution)  # type: ignore[arg-type]
        return self._names(frame)

    def interfaces(self) -> pl.DataFrame:
        """Interfaces as SNMP last found them (``analytics.frames.interface_frame``)."""
        from analytics.frames import interface_frame

        return interface_frame(self.conn, self.org_id)

    def alerts(self, *, since: str | None = None, start: str | datetime | None = None,
               end: str | datetime | None = None, scope: str = "all", ref: str | None = None) -> pl.DataFrame:
        """Alerts that opened in the window (default: the last 7 days), ``analytics.alerts.alerts_frame``."""
        from analytics.alerts import alerts_frame

        begin, stop = _window(since, start, end, "7d")
        return alerts_frame(self.conn, self.org_id, begin, stop, scope=scope, ref=ref)

    def sla(self, *, since: str | None = None, start: str | datetime | None = None,
            end: str | datetime | None = None, by: str = "device", scope: str = "all",
            ref: str | None = None) -> pl.DataFrame:
        """Availability, down time, outages, MTTR and MTBF over the window (default: the last 30 days) per
        device, group, site, tag or for the organization (``analytics.sla.availability``), worst first."""
        from analytics.sla import availability

        begin, stop = _window(since, start, end, "30d")
        return availability(self.conn, self.org_id, begin, stop, by=by, scope=scope, ref=ref)  # type: ignore[arg-type]

    def outages(self, *, since: str | None = None, start: str | datetime | None = None,
                end: str | datetime | None = None, scope: str = "all", ref: str | None = None) -> pl.DataFrame:
        """Every outage in the window (default: the last 30 days), with the parent outage behind it
        (``analytics.sla.outages`` with causes)."""
        from analytics.sla import outages

        begin, stop = _window(since, start, end, "30d")
        return outages(self.conn, self.org_id, begin, stop, causes=True, scope=scope, ref=ref)

    def anomalies(self, *, since: str | None = None, start: str | datetime | None = None,
                  end: str | datetime | None = None, devices: int | str | Sequence[int | str] | None = None,
                  metrics: str | Iterable[str] | None = None, min_score: float = 0.0) -> pl.DataFrame:
        """Stored anomaly scores in the window (default: the last day), ``analytics.anomaly.load_scores``,
        with ``device``, ``site`` and ``group`` joined on; ``min_score=0.5`` keeps the anomalous minutes."""
        from analytics.anomaly import load_scores

        begin, stop = _window(since, start, end, "1d")
        frame = load_scores(self.conn, self.org_id, start=begin, end=stop, devices=devices, metrics=metrics,
                            min_score=min_score)
        return self._names(frame)


def connect(url: str | None = None, *, organization: str | None = None, data_dir: Path | str | None = None) -> Database:
    """A :class:`Database` for one organization, chosen by name or slug (the only one by default).

    The database: ``url``, else ``NETPULSE_DATABASE_URL``, else the demo's embedded PostgreSQL while
    ``netpulse demo`` runs from ``data_dir`` (default ``NETPULSE_DATA_DIR``, ~/.local/share/netpulse).
    """
    from netpulse.config import get_settings
    from netpulse.db import connect as pg_connect

    settings = get_settings()
    chosen = url or settings.database_url
    if chosen is None:
        where = Path(data_dir) if data_dir is not None else settings.data_dir
        chosen = demo_database_url(where)
        if chosen is None:
            raise ConfigError(f"no database: set NETPULSE_DATABASE_URL, or start `netpulse demo` (no demo runs from "
                              f"{where})")
    conn = pg_connect(chosen, autocommit=True)
    rows = conn.execute("SELECT id, name, slug FROM organizations ORDER BY name").fetchall()
    if organization is not None:
        match = [r for r in rows if organization in (r[1], r[2])]
        if not match:
            conn.close()
            known = ", ".join(r[1] for r in rows[:20]) or "none"
            raise NotFound(f"no organization named {organization!r}; known: {known}", code="ORGANIZATION_NOT_FOUND")
        rows = match
    if len(rows) != 1:
        conn.close()
        if not rows:
            raise NotFound("the database has no organization yet", code="ORGANIZATION_NOT_FOUND")
        raise ValidationError(f"the database holds {len(rows)} organizations ({', '.join(r[1] for r in rows[:20])}); "
                              "choose one: data.connect(organization=NAME)", details={"organization": "required"})
    return Database(chosen, rows[0][0], rows[0][1], _conn=conn)
