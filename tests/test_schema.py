"""The ORM models mirror the migrated catalogue: every mapped table has exactly the database's columns,
with the same nullability and type family (``sql/`` is the schema of record)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.dialects import postgresql

from netpulse.schema import Base

# information_schema's data_type, for the SQL types the models use
_FAMILY = {
    "INTEGER": "integer", "SMALLINT": "smallint", "BIGINT": "bigint", "BOOLEAN": "boolean", "TEXT": "text",
    "UUID": "uuid", "INET": "inet", "JSONB": "jsonb", "REAL": "real", "FLOAT": "double precision",
    "DOUBLE PRECISION": "double precision", "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "TEXT[]": "ARRAY", "CHAR": "character", "VARCHAR": "character varying", "SMALLINT[]": "ARRAY", "INTEGER[]": "ARRAY",
    "UUID[]": "ARRAY", "BYTEA": "bytea",
}


def _family(column: object) -> str:
    compiled = column.type.compile(dialect=postgresql.dialect())  # type: ignore[attr-defined]
    base = compiled.split("(")[0].strip()
    return _FAMILY.get(base, base.lower())


@pytest.mark.parametrize("table", sorted(Base.metadata.tables))
def test_model_columns_match_the_migrated_table(table: str, db: psycopg.Connection) -> None:
    rows = db.execute("SELECT column_name, is_nullable = 'YES', data_type FROM information_schema.columns "
                      "WHERE table_schema = 'public' AND table_name = %s", (table,)).fetchall()
    assert rows, f"table {table} is mapped but not migrated"
    in_db = {name: (nullable, dtype) for name, nullable, dtype in rows}
    model = Base.metadata.tables[table]
    mapped = {c.name: (bool(c.nullable) and not c.primary_key, _family(c)) for c in model.columns}
    assert sorted(set(in_db) - set(mapped)) == [], f"{table}: columns in the database but not in the model"
    assert sorted(set(mapped) - set(in_db)) == [], f"{table}: columns in the model but not in the database"
    differ = {name: {"model": mapped[name], "database": in_db[name]} for name in mapped if mapped[name] != in_db[name]}
    assert differ == {}, f"{table}: nullability or type differ"
