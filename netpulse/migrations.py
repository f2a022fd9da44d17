"""The migration runner: numbered SQL files from ``sql/``, each in its own transaction.

``sql/migrations/NNNN_*.sql`` apply to every database. The metrics storage comes in two variants,
``sql/timescale/`` and ``sql/postgres/``, whose files share numbers; which one a database gets is
decided at its first migrate (TimescaleDB when the extension can be created) and recorded, so later
runs stay on it. Applied files are recorded with a checksum: a second run changes nothing, and an
applied file that was edited afterwards stops the run instead of being skipped silently.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

from netpulse.errors import MigrationError

Variant = Literal["postgres", "timescale"]
VARIANTS: tuple[Variant, ...] = ("postgres", "timescale")


def _sql_dir() -> Path:
    """``netpulse/sql`` in an installed wheel (setup.py copies it there), else the source tree's ``sql/``."""
    packaged = Path(__file__).resolve().parent / "sql"
    return packaged if (packaged / "migrations").is_dir() else Path(__file__).resolve().parent.parent / "sql"


SQL_DIR = _sql_dir()
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x6E70_6D67  # "npmg": serialises concurrent `netpulse migrate` runs

_TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS netpulse_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    variant     text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    variant: str  # "common", "postgres" or "timescale"
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def discover(variant: Variant, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The ordered migrations for one storage variant."""
    if not (sql_dir / "migrations").is_dir():
        raise MigrationError(f"SQL directory {sql_dir / 'migrations'} not found: this NetPulse was installed "
                             "without its migrations; install it from a wheel built by pip, or from its source tree")
    found: dict[int, Migration] = {}
    for folder, kind in (("migrations", "common"), (variant, variant)):
        for path in sorted((sql_dir / folder).glob("*.sql")):
            m = _FILE_RE.match(path.name)
            if not m:
                raise MigrationError(f"{path}: migration files are named NNNN_verb_object.sql")
            version = int(m.group(1))
            if version in found:
                raise MigrationError(f"{path}: version {version:04d} is also {found[version].path}")
            found[version] = Migration(version, m.group(2), kind, path)
    return [found[v] for v in sorted(found)]


def timescale_available(conn: psycopg.Connection) -> bool:
    """True when ``CREATE EXTENSION timescaledb`` can work: installed and preloaded by the server."""
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if row is None:
        return False
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    return preload is not None and "timescaledb" in str(preload[0])


def recorded_variant(conn: psycopg.Connection) -> Variant | None:
    """The storage variant this database was migrated with, or None before the first migrate."""
    exists = conn.execute("SELECT to_regclass('netpulse_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute(
        "SELECT variant FROM netpulse_migrations WHERE variant <> 'common' ORDER BY version LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def storage_variant(conn: psycopg.Connection) -> Variant:
    variant = recorded_variant(conn)
    if variant is None:
        raise MigrationError("the database has no NetPulse schema yet: run `netpulse migrate` first")
    return variant


def choose_variant(conn: psycopg.Connection, requested: str = "auto") -> Variant:
    recorded = recorded_variant(conn)
    if recorded is not None:
        if requested not in ("auto", recorded):
            raise MigrationError(
                f"this database already uses the {recorded} storage variant; "
                f"--storage {requested} would need a new database"
            )
        return recorded
    if requested == "auto":
        return "timescale" if timescale_available(conn) else "postgres"
    if requested == "timescale" and not timescale_available(conn):
        raise MigrationError(
            "--storage timescale: the timescaledb extension is not available on this server "
            "(install it and add it to shared_preload_libraries), or use --storage postgres"
        )
    if requested not in VARIANTS:
        raise MigrationError(f"unknown storage variant {requested!r}; choose auto, postgres or timescale")
    return requested  # type: ignore[return-value]


def pending(conn: psycopg.Connection, variant: Variant) -> list[Migration]:
    conn.execute(_TRACKING_DDL)
    applied = {v: (n, c) for v, n, c in conn.execute(
        "SELECT version, name, checksum FROM netpulse_migrations").fetchall()}
    todo = []
    for mig in discover(variant):
        if mig.version in applied:
            name, checksum = applied[mig.version]
            if checksum != mig.checksum:
                raise MigrationError(
                    f"migration {mig.label} was changed after it was applied; add a new numbered "
                    "migration instead of editing an applied one"
                )
            continue
        todo.append(mig)
    return todo


def unapplied(conn: psycopg.Connection) -> list[str]:
    """Labels of the migrations this code expects that the database lacks (read-only; for /ready)."""
    variant = recorded_variant(conn)
    if variant is None:
        return ["the database has no NetPulse schema"]
    applied = {r[0] for r in conn.execute("SELECT version FROM netpulse_migrations").fetchall()}
    return [m.label for m in discover(variant) if m.version not in applied]


def migrate(
    url: str, *, requested: str = "auto", on_apply: Callable[[Migration], None] | None = None
) -> tuple[Variant, list[Migration]]:
    """Apply every pending migration in order; returns the variant and what was applied."""
    from netpulse.db import connect

    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            variant = choose_variant(conn, requested)
            todo = pending(conn, variant)
            for mig in todo:
                if on_apply:
                    on_apply(mig)
                try:
                    with conn.transaction():
                        conn.execute(mig.sql.encode())
                        conn.execute(
                            "INSERT INTO netpulse_migrations (version, name, variant, checksum) "
                            "VALUES (%s, %s, %s, %s)",
                            (mig.version, mig.name, mig.variant, mig.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {mig.label} failed and was rolled back: "
                                         f"{str(exc).strip().splitlines()[0]}") from exc
            return variant, todo
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
