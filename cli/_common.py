"""What every command group shares: one transaction, the organization to work in, and plain tables.

Every command works in one organization: ``--org SLUG``, or the only organization when there is one.
Errors are NetPulse errors, which the ``netpulse`` group prints as one ``Error: ...`` line (exit 1).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from netpulse.config import get_settings
from netpulse.errors import NotFound, StorageError, ValidationError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from netpulse.schema import Organization

__all__ = ["session_scope", "organization", "org_option", "table", "connection", "state_cache_client"]


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: committed when the command succeeds, rolled back when it raises."""
    import psycopg
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from netpulse.db import make_engine, make_sessionmaker

    engine = make_engine(get_settings().require_database_url(), pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine).begin() as session:
            yield session
    except OperationalError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        raise StorageError(f"cannot use the database: {first}; check NETPULSE_DATABASE_URL") from None
    except ProgrammingError as exc:
        if isinstance(exc.orig, psycopg.errors.UndefinedTable):
            raise StorageError("the database has no NetPulse tables yet; run `netpulse migrate` first") from None
        raise
    finally:
        engine.dispose()


def state_cache_client() -> Any:
    """Redis of the web servers' cache of users' state (None when not configured), so that a command
    changing a user ends that user's sessions at once (netpulse.tokens.use_state_cache)."""
    global _state_cache
    if _state_cache is None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        url = get_settings().redis_url
        _state_cache = (redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2,
                                             retry=Retry(NoBackoff(), 0)) if url else False)
    return _state_cache or None


_state_cache: Any = None


def organization(session: Session, slug: str | None) -> Organization:
    """The organization named by ``--org``, or the only one; a clear error otherwise."""
    from sqlalchemy import select

    from netpulse.schema import Organization
    from netpulse.users import get_organization_by_slug

    if slug is not None:
        org = get_organization_by_slug(session, slug)
        if org is None:
            known = session.scalars(select(Organization.slug).order_by(Organization.slug).limit(20)).all()
            hint = f"known: {', '.join(known)}" if known else "the database has no organization yet"
            raise NotFound(f"no organization with slug {slug!r}; {hint}", details={"org": slug},
                           code="ORGANIZATION_NOT_FOUND")
        return org
    orgs = session.scalars(select(Organization).order_by(Organization.slug).limit(21)).all()
    if not orgs:
        raise NotFound("the database has no organization yet; create one with `netpulse org create NAME`",
                       code="ORGANIZATION_NOT_FOUND")
    if len(orgs) > 1:
        slugs = ", ".join(o.slug for o in orgs[:20]) + (", ..." if len(orgs) > 20 else "")
        raise ValidationError(f"the database holds several organizations ({slugs}); choose one with --org SLUG",
                              details={"org": "required when there is more than one organization"})
    return orgs[0]


@contextmanager
def connection(org_slug: str | None) -> Iterator[tuple[Any, Organization]]:
    """The psycopg connection of one transaction (committed when the command succeeds) and the organization."""
    import psycopg

    with session_scope() as session:
        org = organization(session, org_slug)
        try:
            yield session.connection().connection.driver_connection, org
        except psycopg.errors.UndefinedTable as exc:
            raise StorageError(f"the database lacks a table ({exc.diag.message_primary}); "
                               "run `netpulse migrate` first") from None


org_option = click.option(
    "--org", "org_slug", metavar="SLUG",
    help="Organization slug. May be left out when the database holds exactly one organization.")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a header and a rule, as ``psql`` prints them."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)
