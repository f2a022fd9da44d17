"""Connections: one SQLAlchemy engine (its pool also lends raw psycopg connections for COPY)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from netpulse.errors import StorageError


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` as SQLAlchemy's psycopg 3 dialect URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise StorageError(f"not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg.connect) takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    # hide_parameters: a failed statement's message (and so its logged traceback) names no bound
    # values, which come from requests (search text, e-mail addresses) or hold secrets.
    return create_engine(
        sqlalchemy_url(url), pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
        hide_parameters=True, connect_args={"application_name": "netpulse"},
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A plain psycopg connection; a refused connection becomes one clear StorageError."""
    try:
        return psycopg.connect(libpq_url(url), autocommit=autocommit, application_name="netpulse")
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot connect to the database: {first}") from None


@contextmanager
def raw_connection(engine: Engine) -> Iterator[psycopg.Connection]:
    """Borrow a psycopg connection from the engine's pool (for COPY); returned to the pool after."""
    fairy = engine.raw_connection()
    try:
        conn = fairy.driver_connection
        assert isinstance(conn, psycopg.Connection)
        yield conn
    finally:
        fairy.close()
