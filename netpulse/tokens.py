"""Whom a login token speaks for now: the user's current state, checked on every request.

A token names its user (``sub``) and the user's token version at issue time (``ver``). The
database moves the version on whenever the user is disabled, changes role or organization, changes
password, or signs out (migration 0020's trigger), so a token whose version is behind is refused at
once; role and organization for permission checks are read from this state, never from the token.

The state is cached in Redis (``netpulse:auth:user:<id>``, a few seconds) so a request costs no
database round trip; NetPulse clears the entry whenever it changes a user (:meth:`UserStates.forget`),
and the short TTL bounds changes made in SQL by hand. When Redis is unreachable the state is read
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
from sqlalchemy import select
from sqlalchemy.orm import Session

from netpulse.schema import User

__all__ = ["UserState", "load_state", "UserStates", "KEY_PREFIX"]

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
        """Drop the cached state after a change; False when Redis could not be told (the TTL then
        bounds how long the old state may still be served)."""
        if self.client is None:
            return True
        try:
            self.client.delete(f"{KEY_PREFIX}{user_id}")
        except (redis.RedisError, OSError) as exc:
            log.warning("netpulse.tokens.forget_failed", user_id=str(user_id), error=type(exc).__name__)
            return False
        return True
