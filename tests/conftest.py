"""Fixtures against the machine's real PostgreSQL and Redis (never mocked).

Each test session (each xdist worker) gets its own database, migrated once with the real
migrations and dropped at the end. A missing service skips locally and fails in CI.

The metrics storage variant of those databases is ``postgres`` (plain PostgreSQL) unless
``--storage timescale`` or ``NETPULSE_TEST_STORAGE=timescale`` asks for TimescaleDB; where the
extension is not available, every test that needs a database then skips with the reason. Fixtures
and tests are variant-neutral; tests of the plain variant's own mechanics (partitions, the ``*_mat``
tables, the rollup watermark) carry ``@pytest.mark.plain_storage`` and skip on TimescaleDB.
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
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ADMIN_URL = os.environ.get("NETPULSE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NETPULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Stored secrets in tests are encrypted with this key (tests of rotation build their own rings).
TEST_ENCRYPTION_KEY = "k0WvR8m1bVZtqFh3xHq2yS9pXjLm4N6cT7uE5aD0gJw="
TENANT_TABLES = ("alerts", "device_tags", "devices", "snmp_credentials", "tags", "device_groups", "sites",
                 "users", "organizations")


STORAGE_VARIANTS = ("postgres", "timescale")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--storage", choices=STORAGE_VARIANTS, default=None,
                     help="metrics storage variant of the test databases [env NETPULSE_TEST_STORAGE; "
                          "default: postgres]")


def requested_storage(config: pytest.Config) -> str:
    variant = config.getoption("--storage") or os.environ.get("NETPULSE_TEST_STORAGE") or "postgres"
    if variant not in STORAGE_VARIANTS:
        raise pytest.UsageError(f"NETPULSE_TEST_STORAGE={variant!r}: choose postgres or timescale")
    return str(variant)


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("plain_storage")
    if marker is not None and requested_storage(item.config) != "postgres":
        pytest.skip(marker.kwargs.get("reason") or "about the plain-PostgreSQL storage variant's own mechanics")


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
def storage(pytestconfig: pytest.Config) -> str:
    """The metrics storage variant the test databases are migrated with."""
    return requested_storage(pytestconfig)


@pytest.fixture(scope="session")
def db_url(storage: str) -> Iterator[str]:
    """A migrated database (the requested storage variant) shared by one test session."""
    from netpulse.migrations import migrate

    name, url = create_database()
    try:
        if storage == "timescale":
            skip_without_timescale(url)
        migrate(url, requested=storage)
        if storage == "timescale":
            pause_timescale_jobs(url)
        yield url
    finally:
        drop_database(name)


def skip_without_timescale(url: str) -> None:
    from netpulse.migrations import timescale_available

    with psycopg.connect(url) as c:
        if not timescale_available(c):
            pytest.skip("TimescaleDB storage requested, but the timescaledb extension is not installed and "
                        "preloaded (shared_preload_libraries) on this PostgreSQL server")


def pause_timescale_jobs(url: str) -> None:
    """Keep the background policies of a test database from running at moments no test chooses: a
    refresh moves an aggregate's watermark, compression and retention act on test data by its age.
    Their effect is tested where it is the subject (they are run by hand there with ``run_job``)."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                  "WHERE proc_name LIKE 'policy%'")


def truncate_all(url: str) -> None:
    """Empty every table and the rollups: on plain PostgreSQL the ``*_mat`` tables and the deltas,
    with the watermark and the fence back to "nothing materialized"; on TimescaleDB the continuous
    aggregates, which resets their watermarks (TRUNCATE of a continuous aggregate does, since
    TimescaleDB 2.15)."""
    from netpulse.migrations import storage_variant

    with psycopg.connect(url, autocommit=True) as c:
        variant = storage_variant(c)
        c.execute("TRUNCATE metrics")
        c.execute("TRUNCATE " + ", ".join(TENANT_TABLES) + " RESTART IDENTITY CASCADE")
        if variant == "postgres":
            c.execute("TRUNCATE metrics_1m_mat, metrics_1h_mat, metrics_1d_mat, rollup_deltas")
            c.execute("UPDATE rollup_watermark SET materialized_until = '-infinity', advanced_at = NULL")
            c.execute("UPDATE rollup_fence SET fenced_until = '-infinity'")
        else:
            for view in ("metrics_1d", "metrics_1h", "metrics_1m"):
                c.execute(f"TRUNCATE {view}")


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
