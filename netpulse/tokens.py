"""Whom a login token speaks for now: the user's current state, checked on every request.

A token names its user (``sub``) and the user's token version at issue time (``ver``). The
database moves the version on whenever the user is disabled, changes role or organization, changes
password, or signs out (migration 0020's trigger), so a token whose version is behind is refused at
once; role and organization for permission checks are read from this state, never from the token.

The state is cached in Redis (``netpulse:auth:user:<id>``, a few seconds) so a request costs no
database round trip. NetPulse clears the entry whenever it changes a user: once a composition root
has called :func:`use_state_cache`, any ORM session of the process (web app, CLI) that commits a
change of a user's active flag, role, organization or password drops the entry as it commits; the
short TTL bounds only changes made in SQL by hand. When Redis is unreachable the state is read
from PostgreSQL on every request: slower, never less strict (the database is the authority).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis
import structlog
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from netpulse.schema import User

__all__ = ["UserState", "load_state", "UserStates", "KEY_PREFIX", "use_state_cache", "forget_state", "WATCHED"]

log = structlog.get_logger("netpulse.tokens")

KEY_PREFIX = "netpulse:auth:user:"


@dataclass(frozen=True, slots=True)
class UserState:
    id: str
    organization_id: str
    role: str
    email: str
    is_active: bool
    token_version: int

    def accepts(self, token_version: object) -> bool:
        """True when a token issued under ``token_version`` still speaks for this user."""
        return self.is_active and isinstance(token_version, int) and token_version == self.token_version


def load_state(session: Session, user_id: uuid.UUID) -> UserState | None:
    """The user's state from the database; None when the user no longer exists."""
    row = session.execute(select(User.id, User.organization_id, User.role, User.email, User.is_active,
                                 User.token_version).where(User.id == user_id)).one_or_none()
    if row is None:
        return None
    return UserState(str(row.id), str(row.organization_id), row.role, row.email, row.is_active, row.token_version)


class UserStates:
    """User states through a Redis cache. ``client``: a redis.Redis (or None: always the database);
    ``sessions``: a callable opening an ORM session."""

    def __init__(self, client: Any, sessions: Callable[[], Session], *, ttl_s: int) -> None:
        self.client = client
        self.sessions = sessions
        self.ttl_s = ttl_s

    def _from_db(self, user_id: uuid.UUID) -> UserState | None:
        with self.sessions() as session:
            return load_state(session, user_id)

    def get(self, user_id: uuid.UUID) -> UserState | None:
        key = f"{KEY_PREFIX}{user_id}"
        if self.client is not None:
            try:
                cached = self.client.get(key)
            except (redis.RedisError, OSError) as exc:  # fall back to the database
                log.warning("netpulse.tokens.cache_unavailable", error=type(exc).__name__)
                return self._from_db(user_id)
            if cached is not None:
                try:
                    return UserState(**json.loads(cached))
                except (TypeError, ValueError):
                    pass  # another version's entry: read it again
        state = self._from_db(user_id)
        if state is not None and self.client is not None:
            try:
                self.client.set(key, json.dumps(asdict(state)), ex=self.ttl_s)
            except (redis.RedisError, OSError) as exc:
                log.warning("netpulse.tokens.cache_unavailable", error=type(exc).__name__)
        return state

    def forget(self, user_id: uuid.UUID | str) -> bool:
        return forget_state(self.client, user_id)


def forget_state(client: Any, user_id: uuid.UUID | str) -> bool:
    """Drop a user's cached state after a change; False when Redis could not be told (the TTL then
    bounds how long the old state may still be served). ``client``: a redis.Redis or None."""
    if client is None:
        return True
    try:
        client.delete(f"{KEY_PREFIX}{user_id}")
    except (redis.RedisError, OSError) as exc:
        log.warning("netpulse.tokens.forget_failed", user_id=str(user_id), error=type(exc).__name__)
        return False
    return True


# What a token stands for (the database's trigger moves the token version when one of these changes).
WATCHED = ("is_active", "role", "is_superuser", "organization_id", "hashed_password", "token_version")
_CHANGED = "netpulse.users_changed"
_cache_client: Callable[[], Any] | None = None
_listening = False


def use_state_cache(client: Callable[[], Any] | None) -> None:
    """Install (a callable returning) the Redis client of the state cache; from then on, every ORM
    session of this process that commits a change of a user's :data:`WATCHED` fields, or deletes a
    user, drops that user's cached state as it commits. Composition roots call it (the web app, the
    CLI); None uninstalls it."""
    global _cache_client, _listening
    _cache_client = client
    if not _listening:
        event.listen(Session, "before_flush", _collect)
        event.listen(Session, "after_commit", _forget)
        event.listen(Session, "after_rollback", _drop)
        _listening = True


def _collect(session: Session, context: object, instances: object) -> None:
    for obj in (*session.dirty, *session.deleted):
        if not isinstance(obj, User):
            continue
        state = inspect(obj)
        if obj in session.deleted or any(state.attrs[a].history.has_changes() for a in WATCHED):
            session.info.setdefault(_CHANGED, set()).add(str(obj.id))


def _forget(session: Session) -> None:
    changed = session.info.pop(_CHANGED, set())
    client = _cache_client() if changed and _cache_client is not None else None
    if client is not None and not all([forget_state(client, user_id) for user_id in changed]):
        log.warning("netpulse.tokens.sessions_end_later", users=len(changed),
                    reason="Redis did not answer; the cached state expires by itself within seconds")


def _drop(session: Session) -> None:
    session.info.pop(_CHANGED, None)
