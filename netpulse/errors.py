"""The error tree. Exceptions are for bugs and infrastructure; an unreachable device is data."""

from __future__ import annotations

from typing import Any


class NetPulseError(Exception):
    """Base of every error NetPulse raises on purpose.

    ``code`` is the API envelope's error code; ``status`` the HTTP status it maps to.
    """

    code = "INTERNAL_ERROR"
    status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code


class ConfigError(NetPulseError):
    """A setting is missing or malformed; the message names the variable."""

    code = "CONFIG_ERROR"


class StorageError(NetPulseError):
    """The database refused or could not do what was asked."""

    code = "DATABASE_ERROR"


class MigrationError(StorageError):
    code = "MIGRATION_ERROR"


class ValidationError(NetPulseError):
    """Input that breaks a rule. ``details`` maps field names to messages (NetBox's ``clean()``)."""

    code = "INVALID_INPUT"
    status = 422


class NotFound(NetPulseError):
    code = "NOT_FOUND"
    status = 404


class Conflict(NetPulseError):
    code = "ALREADY_EXISTS"
    status = 409


class InvalidCredentials(NetPulseError):
    code = "INVALID_CREDENTIALS"
    status = 401


class InsufficientPermissions(NetPulseError):
    code = "INSUFFICIENT_PERMISSIONS"
    status = 403


class RateLimited(NetPulseError):
    """Too many attempts; ``retry_after_s`` says when the next one may come."""

    code = "RATE_LIMIT_EXCEEDED"
    status = 429

    def __init__(self, message: str, *, retry_after_s: int, details: dict[str, Any] | None = None):
        super().__init__(message, details={"retry_after_s": retry_after_s, **(details or {})})
        self.retry_after_s = retry_after_s


class Unavailable(NetPulseError):
    """A service NetPulse needs (the database, Redis) does not answer now; worth trying again."""

    code = "SERVICE_UNAVAILABLE"
    status = 503


class ProbeError(NetPulseError):
    """A prober could not run at all (not: a target did not answer, which is a result)."""

    code = "PROBE_ERROR"


class ProbeTimeout(ProbeError):
    code = "PROBE_TIMEOUT"


class Retry(NetPulseError):  # noqa: N818 - control flow, named like dramatiq's Retry
    """Ask the worker to run the job again after ``delay`` milliseconds; not logged as an error."""

    def __init__(self, message: str = "retry", *, delay: int | None = None):
        super().__init__(message)
        self.delay = delay
