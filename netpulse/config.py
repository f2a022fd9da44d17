"""The one settings object, read from ``NETPULSE_*`` variables and an optional env file.

Only composition roots (the CLI, ``dashboard.app``, ``workers.broker``) call :func:`get_settings`;
library code takes the values it needs as arguments.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from netpulse.crypto import Keyring, derive_key, mask
from netpulse.errors import ConfigError

ENV_PREFIX = "NETPULSE_"
# A secret key must be long and varied: at least this many characters, this many distinct ones, and
# this many bits by the Shannon estimate of its own characters (sixteen "a"s have 0 bits; a
# token_urlsafe(48) key has about 330).
SECRET_MIN_LENGTH = 32
SECRET_MIN_DISTINCT = 10
SECRET_MIN_BITS = 96
# argon2id password hashes. Verifying one hash on this project's 2-core machine while other work kept
# it busy (bench/login.py; noisy): 19 MiB, t=2, p=1 (OWASP's first choice, taken here) 24 ms median,
# 18 ms fastest at load average 5 (49 ms median at load 9); argon2-cffi's default, 64 MiB, t=3, p=4,
# 150 ms median (399 ms at load 9). Changing them rehashes each password at its next login.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19_456
ARGON2_PARALLELISM = 1
SECRET_KEY_HOWTO = "generate one with `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"


def secret_weakness(value: str) -> str | None:
    """Why ``value`` is too weak to be a secret key, or None when it will do.

    >>> secret_weakness("a" * 16)
    'is 16 characters long; at least 32 are needed'
    >>> secret_weakness("ab" * 20)
    'is too predictable (2 distinct characters, about 40 bits); it needs at least 10 distinct characters and 96 bits'
    >>> secret_weakness("Vw3k9Qp1ZtXr7LmN2bHc8YdF5gJs4Ua6") is None
    True
    """
    if len(value) < SECRET_MIN_LENGTH:
        return f"is {len(value)} characters long; at least {SECRET_MIN_LENGTH} are needed"
    counts = Counter(value)
    bits = -sum(n * math.log2(n / len(value)) for n in counts.values())
    if len(counts) < SECRET_MIN_DISTINCT or bits < SECRET_MIN_BITS:
        return (f"is too predictable ({len(counts)} distinct characters, about {bits:.0f} bits); it needs at "
                f"least {SECRET_MIN_DISTINCT} distinct characters and {SECRET_MIN_BITS} bits")
    return None


DEMO_DATABASE = "netpulse"  # the database the demo's embedded PostgreSQL holds (cli.demo.embedded)


def demo_database_url(data_dir: Path) -> str | None:
    """The URL of the demo's embedded PostgreSQL when it runs from ``data_dir``, else None.

    Read from the server's ``postmaster.pid`` (its socket directory and port), so finding it needs
    neither the pgserver wheel nor a start of its own.
    """
    pid_file = Path(data_dir) / "pgdata" / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, socket_dir, port = int(lines[0]), lines[4].strip(), lines[3].strip()
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, run by another user (pgserver's as root)
        pass
    host = socket_dir or "127.0.0.1"
    return f"postgresql://postgres@/{DEMO_DATABASE}?host={host}&port={port}"


def default_data_dir() -> Path:
    """Where the embedded stack keeps its data: ``$XDG_DATA_HOME/netpulse`` or ``~/.local/share/netpulse``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "netpulse"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=os.environ.get("NETPULSE_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    env: Literal["production", "development", "testing"] = "production"
    # Production: PostgreSQL/TimescaleDB and Redis. Empty means "embedded" (only `netpulse demo`).
    database_url: str | None = None
    redis_url: str | None = None
    # The message broker: amqp://user:pass@host:5672/vhost (RabbitMQ: a killed worker's messages go
    # back to the queue at once) or redis://...; unset: Redis at NETPULSE_REDIS_URL. Redis is needed
    # either way, for probe leases, rate limits, counters and the scheduler's leader lease.
    broker_url: str | None = None
    # A message that failed all its retries is kept this long in the dead-letter queue, then dropped.
    broker_dead_letter_ttl_s: int = Field(default=3600, ge=60, le=7 * 86400)
    # Scheduler leader lease: a second scheduler takes over within this long after the leader dies.
    scheduler_lease_s: int = Field(default=15, ge=3, le=600)
    data_dir: Path = Field(default_factory=default_data_dir)
    # Signs login tokens (and, without ENCRYPTION_KEY, derives the key of stored secrets).
    secret_key: str | None = None
    # Encrypts stored secrets (SNMP communities and passwords, webhook secrets, Slack URLs): a Fernet key
    # (`netpulse secrets new-key`). Unset: derived from SECRET_KEY. To rotate, set the new key here, the
    # old one in ENCRYPTION_KEY_OLD (comma-separated; a former SECRET_KEY works too) and run
    # `netpulse secrets rotate`.
    encryption_key: str | None = None
    encryption_key_old: str | None = None
    # Unset: each process picks its own (the servers info, one-shot CLI commands warning).
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    log_format: Literal["console", "json"] = "console"   # json: one object per line, for log shippers

    # Storage
    metrics_retention_days: int = Field(default=90, ge=1)
    partitions_ahead_days: int = Field(default=3, ge=1, le=60)

    # Probing defaults (per device settings override them)
    probe_interval_s: int = Field(default=60, ge=1, le=86400)
    probe_timeout_s: float = Field(default=2.0, gt=0, le=60)
    probe_count: int = Field(default=3, ge=1, le=100)
    probe_batch_size: int = Field(default=250, ge=1, le=5000)
    probe_privileged: bool = True
    # Echo requests per second per worker; unset sends as fast as the schedule allows (fine on a
    # LAN, too bursty for firewalls and rate-limited routers on a WAN).
    probe_pps: float | None = Field(default=None, gt=0)
    # Hysteresis: consecutive failed probes before a device is down, answers before it is up again;
    # consecutive answers that lost packets before it is degraded, answers without loss before it is up again.
    status_down_after: int = Field(default=3, ge=1, le=100)
    status_up_after: int = Field(default=2, ge=1, le=100)
    status_degraded_after: int = Field(default=3, ge=1, le=100)
    status_clean_after: int = Field(default=10, ge=1, le=100)

    # Workers and web
    worker_threads: int = Field(default=4, ge=1, le=64)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8050, ge=1, le=65535)
    # Reverse proxies in front of `netpulse serve` whose X-Forwarded-For/-Proto/-Host are trusted (0: none,
    # the client connects directly). With TLS ended at a proxy, set 1 so cookies are marked Secure.
    proxy_hops: int = Field(default=0, ge=0, le=5)
    # Secure cookie flag: auto follows the request's scheme (https directly or per a trusted proxy).
    cookie_secure: Literal["auto", "always", "never"] = "auto"

    # Login: attempts per minute per user and per client address (the spec's 5/minute), and how long a
    # user's current role/organization/token version is cached in Redis (changes made through NetPulse
    # clear it at once; this bounds only changes made in SQL by hand).
    login_rate_limit: int = Field(default=5, ge=1, le=1000)
    auth_state_ttl_s: int = Field(default=10, ge=1, le=3600)
    # argon2id cost of one login (see ARGON2_* above for the measurement).
    argon2_time_cost: int = Field(default=ARGON2_TIME_COST, ge=1, le=20)
    argon2_memory_kib: int = Field(default=ARGON2_MEMORY_KIB, ge=8_192, le=1_048_576)
    argon2_parallelism: int = Field(default=ARGON2_PARALLELISM, ge=1, le=16)

    # Self-monitoring. /metrics needs no login; with a token set it answers only
    # ``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials: ...}``).
    metrics_token: str | None = None
    # /health turns unhealthy when more messages than this wait in one queue (a backlog the workers
    # are not draining).
    health_max_queue_depth: int = Field(default=10_000, ge=1)
    # The built-in rule: a warning when SNMP polling of a device failed this many intervals in a row
    # while ICMP answers; 0 turns the rule off.
    snmp_failing_intervals: int = Field(default=3, ge=0, le=1000)

    # Notifications (analytics.notify). Credentials stay None until a channel of that kind is used; the
    # channel then fails with a ConfigError naming the variable. Recipients live in each channel's config.
    email_from: str | None = None  # the From: address of SendGrid and SMTP email
    sendgrid_api_key: str | None = None
    sendgrid_api_host: str = "https://api.sendgrid.com"  # https://api.eu.sendgrid.com for EU-pinned accounts
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None  # login only when set
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False  # implicit TLS (usually port 465); STARTTLS is then not used
    africastalking_username: str | None = None  # "sandbox" for the sandbox account
    africastalking_api_key: str | None = None
    africastalking_sender_id: str | None = None  # a registered sender id or short code; None: the shared one
    africastalking_api_host: str = "https://api.africastalking.com"
    # Failed deliveries (transport errors, 5xx, 429) are retried after min * 2^(attempt-1) ms, capped at max.
    notify_max_retries: int = Field(default=5, ge=0, le=50)
    notify_min_backoff_ms: int = Field(default=15_000, ge=1, le=86_400_000)
    notify_max_backoff_ms: int = Field(default=3_600_000, ge=1, le=86_400_000)
    notify_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # How often the outbox sweeper sends what is due (new messages also go out at once when the broker is up).
    notify_sweep_s: int = Field(default=15, ge=1, le=3600)
    # Links in notifications point here (e.g. https://noc.example.com); unset: http://HTTP_HOST:HTTP_PORT.
    notify_link_base_url: str | None = None
    # Scheduled reports: a run that fails (or whose email the provider refuses for now) is tried this
    # many times in all, this long apart, then recorded as failed with its error.
    report_max_attempts: int = Field(default=3, ge=1, le=20)
    report_retry_delay_ms: int = Field(default=60_000, ge=1, le=86_400_000)

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if len(v) < 16:
            raise ValueError("must be at least 16 characters (generate one with "
                             "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        return v

    @field_validator("notify_max_backoff_ms")
    @classmethod
    def _check_max_backoff(cls, v: int, info: ValidationInfo) -> int:
        low = info.data.get("notify_min_backoff_ms")
        if low is not None and v < low:
            raise ValueError(f"must be at least NETPULSE_NOTIFY_MIN_BACKOFF_MS ({low})")
        return v

    def notify_link_base(self) -> str:
        return (self.notify_link_base_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("must be a postgresql:// URL, e.g. postgresql://user:pass@host:5432/netpulse")
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL, e.g. redis://localhost:6379/0")
        return v

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("amqp://", "amqps://", "redis://", "rediss://", "unix://")):
            raise ValueError("must be an amqp:// (RabbitMQ) or redis:// URL, e.g. amqp://netpulse:secret@rabbitmq:5672/"
                             "netpulse")
        return v

    def require_broker_url(self) -> str:
        """The broker's URL: NETPULSE_BROKER_URL, else Redis at NETPULSE_REDIS_URL."""
        return self.broker_url or self.require_redis_url()

    def require_database_url(self) -> str:
        """NETPULSE_DATABASE_URL, else the database of the demo running from the data directory (so
        the CLI works beside `netpulse demo` as it does in production)."""
        if self.database_url:
            return self.database_url
        demo = demo_database_url(self.data_dir)
        if demo is None:
            raise ConfigError(
                "NETPULSE_DATABASE_URL is not set: point it at PostgreSQL/TimescaleDB "
                "(e.g. postgresql://netpulse@localhost:5432/netpulse), or run `netpulse demo` for the embedded stack"
            )
        return demo

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise ConfigError("NETPULSE_REDIS_URL is not set: point it at Redis (e.g. redis://localhost:6379/0)")
        return self.redis_url

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        weakness = secret_weakness(v)
        if weakness is not None:
            raise ValueError(f"the secret key {weakness}; {SECRET_KEY_HOWTO}")
        return v

    def _demo_secret_key(self) -> str | None:
        """The running demo's key (kept in its data directory), for commands that use its database."""
        if self.database_url or demo_database_url(self.data_dir) is None:
            return None
        try:
            return (Path(self.data_dir) / "secret-key.secret").read_text().strip() or None
        except OSError:
            return None

    def require_secret_key(self) -> str:
        key = self.secret_key or self._demo_secret_key()
        if not key:
            raise ConfigError(f"NETPULSE_SECRET_KEY is not set: it signs login tokens; {SECRET_KEY_HOWTO}")
        return key

    def keyring(self) -> Keyring:
        """The keys of stored secrets: ENCRYPTION_KEY (or one derived from SECRET_KEY), then the old ones."""
        older = [k for k in (self.encryption_key_old or "").split(",") if k.strip()]
        if self.encryption_key:
            return Keyring.from_keys(self.encryption_key, older)
        key = self.secret_key or self._demo_secret_key()
        if not key:
            raise ConfigError("stored secrets need a key: set NETPULSE_SECRET_KEY or NETPULSE_ENCRYPTION_KEY; "
                              + SECRET_KEY_HOWTO)
        return Keyring.from_keys(derive_key(key), older)


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one line that names the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raw = err.get("input")
        shown = mask(str(raw)) if any(w in field for w in ("key", "password", "secret")) else repr(raw)
        raise ConfigError(
            f"{ENV_PREFIX}{field.upper()}={shown} is invalid: {err['msg']}",
            details={"variable": f"{ENV_PREFIX}{field.upper()}"},
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
