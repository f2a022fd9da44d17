"""The notebooks' data API: one organization by name (the only one by default), frames from the
functions that own them, with device names joined on; clear errors otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from analytics.sla import availability
from netpulse import data
from netpulse.errors import NotFound, ValidationError
from tests.factories import grid_rows, make_devices, make_org


def test_connect_picks_the_organization_and_frames_carry_names(db: psycopg.Connection, db_url: str) -> None:
    from ingest.loader import Loader

    org = make_org(db, "acme")
    ids = make_devices(db, org, 3)
    start = datetime.now(UTC) - timedelta(minutes=30)
    Loader().load(db, grid_rows(ids, start, 30, step_s=60))
    with data.connect(db_url) as nb:
        assert (nb.org_id, nb.organization) == (org, "Acme")
        devices = nb.devices()
        assert devices["name"].to_list() == ["dev-0", "dev-1", "dev-2"] and devices["tags"].to_list() == [[]] * 3
        rtt = nb.metrics("icmp_rtt_ms", since="1h")
        assert rtt.height == 90 and set(rtt["device"]) == {"dev-0", "dev-1", "dev-2"}
        assert nb.metrics("cpu_pct", start=start.isoformat(), end=datetime.now(UTC)).height == 90
        sla = nb.sla(since="2h")
        assert sla.columns == availability(db, org, start, start + timedelta(hours=1)).columns
        assert nb.alerts().is_empty() and nb.interfaces().is_empty() and nb.anomalies().is_empty()
        with pytest.raises(ValidationError, match="since: '3x' is not a duration"):
            nb.metrics("icmp_rtt_ms", since="3x")
        with pytest.raises(ValidationError, match="give since or start, not both"):
            nb.alerts(since="1d", start="2026-01-01")
    make_org(db, "globex")
    with pytest.raises(ValidationError, match="holds 2 organizations \\(Acme, Globex\\); choose one"):
        data.connect(db_url)
    assert data.connect(db_url, organization="globex").organization == "Globex"
    with pytest.raises(NotFound, match="no organization named 'initech'; known: Acme, Globex"):
        data.connect(db_url, organization="initech")
