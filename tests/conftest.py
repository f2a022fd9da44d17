"""Fixtures against the machine's real PostgreSQL and Redis (never mocked).

Each test session (each xdist worker) gets its own database, migrated once with the real
migrations and dropped at the end. A missing service skips locally and fails in CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ADMIN_URL = os.environ.get("NETPULSE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NETPULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Stored secrets in tests are encrypted with this key (tests of rotation build their own rings).
TEST_ENCRYPTION_KEY = "k0WvR8m1bVZtqFh3xHq2yS9pXjLm4N6cT7uE5aD0gJw="
TENANT_TABLES = ("alerts", "device_tags", "devices", "snmp_credentials", "tags", "device_groups", "sites",
                 "users", "organizations")


@pytest.fixture(autouse=True)
def secrets_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's keyring for stored secrets, as a composition root would install it (again for each
    test: an in-process CLI run installs its own, from NETPULSE_ENCRYPTION_KEY)."""
    from netpulse import crypto, tokens

    monkeypatch.setenv("NETPULSE_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY)
    crypto.use_keyring(crypto.Keyring.from_keys(TEST_ENCRYPTION_KEY))
    yield
    crypto.use_keyring(None)
    tokens.use_state_cache(None)  # installed by an app or a CLI run of the test


def _unavailable(what: str, exc: Exception) -> None:
    if CI:
        raise RuntimeError(f"{what} is required in CI: {exc}") from exc
    pytest.skip(f"{what} not reachable: {exc}")


def _url_for(dbname: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def create_database(prefix: str = "netpulse_test") -> tuple[str, str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    return name, _url_for(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_db_url() -> Iterator[str]:
    """A brand-new database with nothing in it, dropped after the test."""
    name, url = create_database("netpulse_empty")
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    """A migrated database (plain-PostgreSQL storage) shared by one test session."""
    from netpulse.migrations import migrate

    name, url = create_database()
    try:
        migrate(url, requested="postgres")
        yield url
    finally:
        drop_database(name)


def truncate_all(url: str) -> None:
    """Empty every table and put the rollup watermark back to "nothing materialized"."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("TRUNCATE metrics, metrics_1m_mat, metrics_1h_mat, metrics_1d_mat, " + ", ".join(TENANT_TABLES)
                  + " RESTART IDENTITY CASCADE")
        c.execute("UPDATE rollup_watermark SET materialized_until = '-infinity', advanced_at = NULL")


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the session database; every table is emptied after the test."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn
    truncate_all(db_url)


@pytest.fixture
def session(db_url: str, db: psycopg.Connection) -> Iterator[Session]:
    """An ORM session on the session database; closed (rolled back) before ``db`` empties the tables."""
    from netpulse.db import make_engine, make_sessionmaker

    engine = make_engine(db_url, pool_size=1)
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def empty_redis() -> str:
    """Empty this run's Redis database (login limits, cached user states) and name it."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        _unavailable("Redis", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[Engine]:
    """A small pool on the test database, shared by one module's tests (apps under test take it)."""
    from netpulse.db import make_engine

    eng = make_engine(db_url, pool_size=2, max_overflow=2)
    yield eng
    eng.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield empty_redis()
    empty_redis()


@pytest.fixture
def settings_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the settings object (cached per process) at the test database for in-process CLI runs."""
    from netpulse.config import get_settings

    monkeypatch.setenv("NETPULSE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
