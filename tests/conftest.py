"""Fixtures against the machine's real PostgreSQL and Redis (never mocked).

Each test session (each xdist worker) gets its own database, migrated once with the real
migrations and dropped at the end. A missing service skips locally and fails in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest

if TYPE_CHECKING:
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


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        _unavailable("Redis", exc)
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def log_events() -> Iterator[list[dict[str, object]]]:
    """The structlog events written during the test, at every level (a CLI run earlier in the session
    may have configured structlog to drop the lower ones)."""
    import structlog
    from structlog.testing import capture_logs

    structlog.reset_defaults()
    with capture_logs() as events:
        yield events


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ virtual host of its own for this test session (made with rabbitmqctl, deleted after), on
    the machine's RabbitMQ (``NETPULSE_TEST_AMQP_HOST``, default 127.0.0.1:5672, guest/guest)."""
    host = os.environ.get("NETPULSE_TEST_AMQP_HOST", "127.0.0.1:5672")
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        _unavailable("RabbitMQ", FileNotFoundError("rabbitmqctl is not installed"))
    assert ctl is not None
    vhost = f"netpulse_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
    try:
        for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
            subprocess.run([ctl, *args], check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        _unavailable("RabbitMQ", RuntimeError(getattr(exc, "stderr", b"") or exc))
    try:
        yield f"amqp://guest:guest@{host}/{vhost}"
    finally:
        subprocess.run([ctl, "delete_vhost", vhost], capture_output=True, timeout=90)


@pytest.fixture
def settings_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the settings object (cached per process) at the test database for in-process CLI runs."""
    from netpulse.config import get_settings

    monkeypatch.setenv("NETPULSE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# Provider stand-ins (a scripted HTTP server, an SMTP server) for every test module that sends notifications.
from tests.stubs import http_stub, smtp_server  # noqa: E402, F401
