"""Every notebook in notebooks/ runs top to bottom against a database with simulated history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from ingest.loader import Loader
from ingest.rows import to_micros
from ingest.simulator import Fleet
from netpulse.rollups import advance_all
from tests.factories import make_org

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _seed(conn: psycopg.Connection) -> Fleet:
    org = make_org(conn, "nb")
    fleet = Fleet(n_devices=30, n_sites=3, seed=5)
    sites = {}
    for d in fleet.devices:
        if d.site not in sites:
            sites[d.site] = conn.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, %s, %s) "
                                         "RETURNING id", (org, d.site, d.site_slug)).fetchone()[0]
    ids = [conn.execute("INSERT INTO devices (organization_id, name, address, device_type, site_id, simulated) "
                        "VALUES (%s, %s, %s, %s, %s, true) RETURNING id",
                        (org, d.name, d.address, d.device_type, sites[d.site])).fetchone()[0]
           for d in fleet.devices]
    now = datetime.now(UTC)
    step = 300 * 1_000_000
    t0 = to_micros(now - timedelta(hours=26)) // step * step
    times = np.arange(t0, to_micros(now), step, dtype=np.int64)
    Loader().load(conn, fleet.sample(times, device_ids=np.array(ids, np.int32)))
    advance_all(conn, now)
    return fleet


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, db_url: str, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    _seed(db)
    monkeypatch.setenv("NETPULSE_DATABASE_URL", db_url)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    if path.stem == "fleet_health":
        assert "sites: 3" in text
        assert "hourly points: " in text and "hourly points: 0" not in text


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ holds no notebook"
