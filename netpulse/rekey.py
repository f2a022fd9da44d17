"""Bringing every stored secret under the current key: plaintext written before encryption existed
(``netpulse migrate`` encrypts it) and values under an older key (``netpulse secrets rotate``).

Both are idempotent: a value already encrypted with the first key of the ring is left alone, so a
re-run (or a run interrupted and started again, with the old key still in the ring) only finishes the
job. Each table is done in one transaction holding its rows' locks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from netpulse.crypto import Keyring, is_encrypted
from netpulse.errors import ConfigError
from netpulse.schema import SECRET_CONFIG_KEYS, map_config_secrets

__all__ = ["SECRET_COLUMNS", "RekeyReport", "plaintext_count", "secret_rows", "rekey"]

# The text columns holding secrets, per table; notification_channels.config holds them by key.
SECRET_COLUMNS: dict[str, tuple[str, ...]] = {
    "snmp_credentials": ("community", "auth_password", "priv_password"),
    "devices": ("snmp_community",),
}
CHANNELS = "notification_channels"


@dataclass
class RekeyReport:
    rows: int = 0          # rows holding at least one secret
    changed: int = 0       # rows rewritten
    by_table: dict[str, int] = field(default_factory=dict)


def _config_values(config: Any) -> Iterator[str]:
    if not isinstance(config, dict):
        return
    for key in SECRET_CONFIG_KEYS:
        value = config.get(key)
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from (v for v in value.values() if isinstance(v, str))


def _select(table: str, columns: tuple[str, ...], *, lock: bool) -> sql.Composed:
    return sql.SQL("SELECT id, {cols} FROM {t} WHERE {cond} ORDER BY id{lock}").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)), t=sql.Identifier(table),
        cond=sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns),
        lock=sql.SQL(" FOR UPDATE" if lock else ""))


def secret_rows(conn: psycopg.Connection) -> int:
    """How many rows hold a secret (the length of a rekey's progress bar)."""
    total = 0
    for table, columns in SECRET_COLUMNS.items():
        count = sql.SQL("SELECT count(*) FROM ({q}) s").format(q=_select(table, columns, lock=False))
        total += int(conn.execute(count).fetchone()[0])  # type: ignore[index]
    row = conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(t=sql.Identifier(CHANNELS))).fetchone()
    return total + int(row[0]) if row else total


def plaintext_count(conn: psycopg.Connection) -> int:
    """How many stored secrets are still plaintext (needs no key to answer)."""
    n = 0
    for table, columns in SECRET_COLUMNS.items():
        for row in conn.execute(_select(table, columns, lock=False)):
            n += sum(1 for v in row[1:] if v is not None and not is_encrypted(v))
    for (config,) in conn.execute(sql.SQL("SELECT config FROM {t}").format(t=sql.Identifier(CHANNELS))):
        n += sum(1 for v in _config_values(config) if not is_encrypted(v))
    return n


def _convert(ring: Keyring, value: str, rotate: bool) -> str:
    if not is_encrypted(value) or (rotate and not ring.is_current(value)):
        return ring.reencrypt(value)
    return value


@contextmanager
def _naming(table: str, row_id: object) -> Iterator[None]:
    """A value that no key of the ring decrypts stops the run (its table rolls back), naming the row."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(f"{table} row {row_id}: {exc.message}", details={"table": table, "id": row_id}) from None


def rekey(conn: psycopg.Connection, ring: Keyring, *, rotate: bool,
          on_row: Callable[[], None] | None = None) -> RekeyReport:
    """Encrypt plaintext secrets with the ring's first key; with ``rotate``, also re-encrypt those
    under an older key. ``conn`` must not be inside a transaction (each table commits on its own)."""
    report = RekeyReport()
    for table, columns in SECRET_COLUMNS.items():
        changed = 0
        with conn.transaction():
            rows = conn.execute(_select(table, columns, lock=True)).fetchall()
            updates = []
            for row in rows:
                with _naming(table, row[0]):
                    new = [None if v is None else _convert(ring, v, rotate) for v in row[1:]]
                if new != list(row[1:]):
                    updates.append((*new, row[0]))
                if on_row is not None:
                    on_row()
            if updates:
                stmt = sql.SQL("UPDATE {t} SET {sets} WHERE id = %s").format(
                    t=sql.Identifier(table),
                    sets=sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns))
                conn.cursor().executemany(stmt, updates)
                changed = len(updates)
        report.rows += len(rows)
        report.changed += changed
        report.by_table[table] = changed
    changed = 0
    with conn.transaction():
        rows = conn.execute(sql.SQL("SELECT id, config FROM {t} ORDER BY id FOR UPDATE").format(
            t=sql.Identifier(CHANNELS))).fetchall()
        updates = []
        for channel_id, config in rows:
            with _naming(CHANNELS, channel_id):
                new_config = (map_config_secrets(config, lambda v: _convert(ring, v, rotate))
                              if isinstance(config, dict) else config)
            if new_config != config:
                updates.append((Jsonb(new_config), channel_id))
            if on_row is not None:
                on_row()
        if updates:
            conn.cursor().executemany(sql.SQL("UPDATE {t} SET config = %s WHERE id = %s").format(
                t=sql.Identifier(CHANNELS)), updates)
            changed = len(updates)
    report.rows += len(rows)
    report.changed += changed
    report.by_table[CHANNELS] = changed
    return report
