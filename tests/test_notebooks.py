"""Every notebook in notebooks/ runs top to bottom (nbclient) against a database filled by the simulator,
through the data API (`netpulse.data`); any error fails the test, and each shows its figures as static
PNG as well as interactive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from ingest.loader import Loader
from ingest.rows import to_micros
from ingest.simulator import Fleet
from ingest.status import Hysteresis
from netpulse.rollups import advance_all

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _seed(conn: psycopg.Connection) -> Fleet:
    org = conn.execute("INSERT INTO organizations (name, slug) VALUES ('Notebook Networks', 'nb') RETURNING id"
                       ).fetchone()[0]
    fleet = Fleet(n_devices=30, n_sites=3, seed=5, incidents_per_device_day=0.2)
    sites, groups, ids = {}, {}, []
    for d in fleet.devices:
        if d.site not in sites:
            sites[d.site] = conn.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, %s, %s) "
                                         "RETURNING id", (org, d.site, d.site_slug)).fetchone()[0]
        if d.group not in groups:
            groups[d.group] = conn.execute("INSERT INTO device_groups (organization_id, name, slug) VALUES (%s, %s, %s)"
                                           " RETURNING id", (org, d.group, d.group.lower())).fetchone()[0]
        ids.append(conn.execute(
            "INSERT INTO devices (organization_id, name, address, device_type, site_id, group_id, parent_id, simulated)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, true) RETURNING id",
            (org, d.name, d.address, d.device_type, sites[d.site], groups[d.group],
             ids[d.parent_index] if d.parent_index is not None else None)).fetchone()[0])
    now = datetime.now(UTC)
    step = 300 * 1_000_000
    t0 = to_micros(now - timedelta(hours=26)) // step * step
    times = np.arange(t0, to_micros(now), step, dtype=np.int64)
    Loader(hysteresis=Hysteresis(down_after=1, up_after=1)).load(conn, fleet.sample(times, device_ids=np.array(ids)))
    advance_all(conn, now)
    return fleet


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, db_url: str, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    from netpulse.config import get_settings

    _seed(db)
    monkeypatch.setenv("NETPULSE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "stored with outputs: strip them"
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(o.get("text", "") for o in outputs)
    assert not [o for o in outputs if o.output_type == "error"]
    assert "static PNG figures are off" not in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
    assert "organization: Notebook Networks" in text
    if path.stem == "latency_and_loss":
        assert "sites: 3" in text and "hourly points: 0" not in text
    if path.stem == "sla_deep_dive":
        line = next(x for x in text.splitlines() if x.startswith("root outages explain"))
        explained, total = line.split()[3], line.split()[5]
        assert explained == total and float(total) > 0
    if path.stem == "anomaly_tuning":
        assert "NAB series from" in text and "NAB part skipped" not in text


def test_there_are_notebooks() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"latency_and_loss", "sla_deep_dive", "anomaly_tuning"}
