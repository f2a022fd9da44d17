from __future__ import annotations

import psycopg
import pytest

from netpulse.errors import MigrationError
from netpulse.metrics import MetricKind
from netpulse.migrations import discover, migrate, recorded_variant

RELATIONS = ("organizations", "users", "sites", "device_groups", "tags", "snmp_credentials", "devices",
             "device_tags", "alerts", "metric_kinds", "metrics", "metrics_1m", "metrics_1h", "metrics_1d")


def _schema_snapshot(url: str) -> list[tuple]:
    with psycopg.connect(url) as c:
        return c.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()


def test_migrate_fresh_database_then_again_changes_nothing(empty_db_url: str) -> None:
    variant, applied = migrate(empty_db_url, requested="postgres")
    assert variant == "postgres"
    assert [m.label for m in applied] == [m.label for m in discover("postgres")]
    before = _schema_snapshot(empty_db_url)
    with psycopg.connect(empty_db_url) as c:
        for rel in RELATIONS:
            assert c.execute("SELECT to_regclass(%s)", (rel,)).fetchone()[0] is not None, rel
        recorded = c.execute("SELECT version, variant FROM netpulse_migrations ORDER BY 1").fetchall()

    variant2, applied2 = migrate(empty_db_url)  # auto: stays on the recorded variant
    assert variant2 == "postgres" and applied2 == []
    assert _schema_snapshot(empty_db_url) == before
    with psycopg.connect(empty_db_url) as c:
        assert c.execute("SELECT version, variant FROM netpulse_migrations ORDER BY 1").fetchall() == recorded
        assert recorded_variant(c) == "postgres"


def test_metric_catalogue_matches_database(db: psycopg.Connection) -> None:
    rows = db.execute("SELECT id, name FROM metric_kinds ORDER BY id").fetchall()
    assert rows == [(int(m), m.metric_name) for m in MetricKind]


def test_edited_applied_migration_is_refused(empty_db_url: str, tmp_path, monkeypatch) -> None:
    import shutil

    import netpulse.migrations as mig

    sql_copy = tmp_path / "sql"
    shutil.copytree(mig.SQL_DIR, sql_copy)
    monkeypatch.setattr(mig, "SQL_DIR", sql_copy)
    monkeypatch.setattr(mig.discover, "__defaults__", (sql_copy,))
    migrate(empty_db_url, requested="postgres")
    path = sql_copy / "migrations" / "0002_seed_metric_kinds.sql"
    path.write_text(path.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="0002_seed_metric_kinds was changed after it was applied"):
        migrate(empty_db_url)


def test_failed_migration_rolls_back_and_is_not_recorded(empty_db_url: str, tmp_path, monkeypatch) -> None:
    import shutil

    import netpulse.migrations as mig

    sql_copy = tmp_path / "sql"
    shutil.copytree(mig.SQL_DIR, sql_copy)
    (sql_copy / "migrations" / "0900_break_things.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n")
    monkeypatch.setattr(mig.discover, "__defaults__", (sql_copy,))
    with pytest.raises(MigrationError, match="0900_break_things failed and was rolled back"):
        migrate(empty_db_url, requested="postgres")
    with psycopg.connect(empty_db_url) as c:
        assert c.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        assert c.execute("SELECT max(version) FROM netpulse_migrations").fetchone()[0] == max(
            m.version for m in discover("postgres", mig.SQL_DIR))


def test_variant_cannot_change_after_first_migrate(empty_db_url: str) -> None:
    migrate(empty_db_url, requested="postgres")
    with pytest.raises(MigrationError, match="already uses the postgres storage variant"):
        migrate(empty_db_url, requested="timescale")


def test_timescale_requested_without_extension_says_so(empty_db_url: str) -> None:
    from netpulse.migrations import timescale_available

    with psycopg.connect(empty_db_url) as c:
        if timescale_available(c):
            pytest.skip("timescaledb is available here; the refusal path cannot be shown")
    with pytest.raises(MigrationError, match="timescaledb extension is not available"):
        migrate(empty_db_url, requested="timescale")
