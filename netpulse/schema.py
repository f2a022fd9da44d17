"""ORM models for the inventory and users. ``sql/`` is the schema of record; these mirror it.

Metrics are not mapped: they are written with COPY (ingest.loader) and read as frames.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, CHAR, DOUBLE_PRECISION, INET, JSONB, REAL, TIMESTAMP, UUID
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from netpulse import crypto

__all__ = [
    "Base", "Organization", "User", "Role", "Site", "DeviceGroup", "Tag", "SnmpCredential", "Device",
    "DeviceType", "DeviceStatus", "OperStatus", "Alert", "device_tags", "Interface", "CheckKind", "ServiceCheck",
    "ChannelKind", "DeliveryStatus", "NotificationChannel", "NotificationDelivery", "EscalationPolicy", "SlaTarget",
    "EncryptedText", "EncryptedConfig", "SECRET_CONFIG_KEYS", "map_config_secrets", "OutboxStatus",
    "AlertDelivery", "NotificationOutbox", "NotificationAttachment",
]

NAMING = {
    "ix": "%(table_name)s_%(column_0_name)s_idx",
    "uq": "%(table_name)s_%(column_0_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}
TZ = TIMESTAMP(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class EncryptedText(TypeDecorator[str]):
    """A secret column: encrypted with the process's keyring on write, decrypted on read
    (:mod:`netpulse.crypto`); plaintext written before encryption reads as itself."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return crypto.encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return crypto.decrypt(value)


# The keys of a channel's config that hold secrets: a Slack hook URL is its own credential, a webhook
# URL may carry a token, its signing secret and extra headers (e.g. Authorization) are credentials.
SECRET_CONFIG_KEYS = ("url", "secret", "headers")


def map_config_secrets(config: dict[str, Any], convert: Callable[[str], Any]) -> dict[str, Any]:
    """A copy of a channel config with ``convert`` applied to each secret value (text, or each text
    value of a mapping such as ``headers``)."""
    out = dict(config)
    for key in SECRET_CONFIG_KEYS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = convert(value)
        elif isinstance(value, dict):
            out[key] = {k: convert(v) if isinstance(v, str) else v for k, v in value.items()}
    return out


class EncryptedConfig(TypeDecorator[dict[str, Any]]):
    """A channel's JSONB config whose :data:`SECRET_CONFIG_KEYS` values are stored encrypted."""

    impl = JSONB
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else map_config_secrets(value, crypto.encrypt)

    def process_result_value(self, value: dict[str, Any] | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else map_config_secrets(value, crypto.decrypt)


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
    API_USER = "api_user"


class DeviceType(StrEnum):
    ROUTER = "router"
    SWITCH = "switch"
    FIREWALL = "firewall"
    SERVER = "server"
    ACCESS_POINT = "access_point"
    LOAD_BALANCER = "load_balancer"
    WIRELESS_CONTROLLER = "wireless_controller"
    STORAGE = "storage"
    OTHER = "other"


class DeviceStatus(StrEnum):
    """Lifecycle status, NetBox's seven values."""

    OFFLINE = "offline"
    ACTIVE = "active"
    PLANNED = "planned"
    STAGED = "staged"
    FAILED = "failed"
    INVENTORY = "inventory"
    DECOMMISSIONING = "decommissioning"


class OperStatus(StrEnum):
    """What the probes last saw."""

    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class CheckKind(StrEnum):
    """What a service check probes: a TCP port of the device's address, or an HTTP(S) URL."""

    TCP = "tcp"
    HTTP = "http"


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=text("gen_random_uuid()"))
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # IANA name; reports' periods and schedules are in it unless their site has its own.
    time_zone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))


class User(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=text("gen_random_uuid()"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(255), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), server_default="viewer")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    is_superuser: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    last_login_at: Mapped[datetime | None] = mapped_column(TZ)
    # Moved on by the database whenever active, role, organization or password change (and at sign-out):
    # tokens carry the version they were issued under and stop working when it moves.
    token_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))

    organization: Mapped[Organization] = relationship()


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(100))
    time_zone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))


class DeviceGroup(Base):
    __tablename__ = "device_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(100))
    color: Mapped[str] = mapped_column(CHAR(6), server_default="9e9e9e")


class SnmpCredential(Base):
    __tablename__ = "snmp_credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(2))
    community: Mapped[str | None] = mapped_column(EncryptedText)
    username: Mapped[str | None] = mapped_column(String(255))
    auth_protocol: Mapped[str | None] = mapped_column(String(10))
    auth_password: Mapped[str | None] = mapped_column(EncryptedText)
    priv_protocol: Mapped[str | None] = mapped_column(String(10))
    priv_password: Mapped[str | None] = mapped_column(EncryptedText)


device_tags = Table(
    "device_tags", Base.metadata,
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(String(255))
    ip_address: Mapped[str | None] = mapped_column(INET)
    device_type: Mapped[str] = mapped_column(String(50))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("device_groups.id", ondelete="SET NULL"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), server_default="active")
    oper_status: Mapped[str] = mapped_column(String(10), server_default="unknown")
    last_seen: Mapped[datetime | None] = mapped_column(TZ)
    last_checked: Mapped[datetime | None] = mapped_column(TZ)
    oper_status_since: Mapped[datetime | None] = mapped_column(TZ)
    # Hysteresis (ingest.status): the run of identical probe outcomes and when its first probe was.
    fail_streak: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    ok_streak: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    streak_since: Mapped[datetime | None] = mapped_column(TZ)
    # ... and the runs of lossy and of clean answers, and the answer quality they decided (up, degraded).
    loss_streak: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    clean_streak: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    quality: Mapped[str] = mapped_column(String(10), server_default="up")
    # The latest probe's figures, written by the loader with the status (the device grid sorts by them).
    last_rtt_ms: Mapped[float | None] = mapped_column(REAL)
    last_loss_pct: Mapped[float | None] = mapped_column(REAL)
    probe_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    probe_interval_s: Mapped[int | None] = mapped_column(Integer)
    probe_timeout_s: Mapped[float | None] = mapped_column(REAL)
    probe_count: Mapped[int | None] = mapped_column(SmallInteger)
    snmp_version: Mapped[str | None] = mapped_column(String(2))
    snmp_port: Mapped[int] = mapped_column(Integer, server_default=text("161"))
    snmp_community: Mapped[str | None] = mapped_column(EncryptedText)
    snmp_credential_id: Mapped[int | None] = mapped_column(ForeignKey("snmp_credentials.id", ondelete="SET NULL"))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"), onupdate=text("now()"))

    site: Mapped[Site | None] = relationship()
    group: Mapped[DeviceGroup | None] = relationship()
    parent: Mapped[Device | None] = relationship(remote_side=[id])
    tags: Mapped[list[Tag]] = relationship(secondary=device_tags)


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, server_default=text("gen_random_uuid()"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    alert_type: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), server_default="firing")
    fingerprint: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    occurrences: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    acknowledged: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    acknowledged_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(TZ)
    resolved: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    resolved_at: Mapped[datetime | None] = mapped_column(TZ)
    last_seen: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    rule_id: Mapped[int | None] = mapped_column(Integer)  # alert_rules.id (rules are read with SQL, not mapped)
    metric: Mapped[str | None] = mapped_column(String(64))
    ifindex: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    value: Mapped[float | None] = mapped_column(DOUBLE_PRECISION)
    threshold: Mapped[float | None] = mapped_column(DOUBLE_PRECISION)
    # When the condition began (its first breaching sample); created_at is when the alert fired.
    started_at: Mapped[datetime | None] = mapped_column(TZ)
    suppressed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    suppressed_reason: Mapped[str | None] = mapped_column(String(20))  # parent_down or maintenance
    flapping: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    escalation_level: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    notified_at: Mapped[datetime | None] = mapped_column(TZ)
    acknowledged_note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    delivery_status: Mapped[str | None] = mapped_column(String(10))  # AlertDelivery; None: nothing to deliver


class Interface(Base):
    __tablename__ = "interfaces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    ifindex: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255), server_default="")
    speed_bps: Mapped[int | None] = mapped_column(BigInteger)
    oper_status: Mapped[str] = mapped_column(String(20), server_default="unknown")
    last_seen: Mapped[datetime] = mapped_column(TZ)

    device: Mapped[Device] = relationship()


class ServiceCheck(Base):
    """A TCP port or HTTP(S) URL checked on a device; its metric rows carry ``id`` in ``ifindex``."""

    __tablename__ = "service_checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(100))
    port: Mapped[int | None] = mapped_column(Integer)  # tcp
    url: Mapped[str | None] = mapped_column(String(2048))  # http
    method: Mapped[str] = mapped_column(String(4), server_default="GET")
    expected_status: Mapped[int | None] = mapped_column(SmallInteger)  # None: any 2xx or 3xx
    expected_body: Mapped[str | None] = mapped_column(String(1024))
    timeout_s: Mapped[float] = mapped_column(REAL, server_default=text("5"))
    verify_tls: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))

    device: Mapped[Device] = relationship()


class ChannelKind(StrEnum):
    SENDGRID = "sendgrid"
    SMTP = "smtp"
    AFRICASTALKING = "africastalking"
    SLACK = "slack"
    WEBHOOK = "webhook"


class DeliveryStatus(StrEnum):
    """How one attempt ended (``unknown``: its worker stopped before recording the outcome)."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"
    UNKNOWN = "unknown"


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class AlertDelivery(StrEnum):
    """Where an alert's notification stands (``alerts.delivery_status``)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    NO_CHANNEL = "no_channel"


class NotificationChannel(Base):
    __tablename__ = "notification_channels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]] = mapped_column(EncryptedConfig, server_default=text("'{}'"))
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))


class NotificationDelivery(Base):
    """One attempt to deliver one notification through one channel (a retry is another row)."""

    __tablename__ = "notification_deliveries"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("notification_channels.id", ondelete="RESTRICT"))
    alert_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    attempt: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(20), server_default="queued")
    provider_status: Mapped[int | None] = mapped_column(Integer)
    provider_answer: Mapped[str | None] = mapped_column(Text)
    provider_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    error: Mapped[str | None] = mapped_column(Text)
    scheduled_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    finished_at: Mapped[datetime | None] = mapped_column(TZ)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("notification_outbox.id", ondelete="CASCADE"))

    channel: Mapped[NotificationChannel] = relationship()


class NotificationOutbox(Base):
    """One message to send through one channel, written in the transaction that decided it."""

    __tablename__ = "notification_outbox"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("notification_channels.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(10))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    alert_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID), server_default=text("'{}'"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(10), server_default="queued")
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    max_attempts: Mapped[int | None] = mapped_column(SmallInteger)
    next_attempt_at: Mapped[datetime | None] = mapped_column(TZ, server_default=text("now()"))
    claim_token: Mapped[uuid.UUID | None] = mapped_column(UUID)
    claimed_until: Mapped[datetime | None] = mapped_column(TZ)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    sent_at: Mapped[datetime | None] = mapped_column(TZ)


class NotificationAttachment(Base):
    __tablename__ = "notification_attachments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("notification_outbox.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class EscalationPolicy(Base):
    """Who hears about an alert, by severity: critical alerts go through ``steps`` (tier 0 at once, tier k
    after ``after_s`` while unacknowledged), warnings into the digest to ``warning_channels`` (None: tier 0's
    channels), info alerts are logged only. Channels are notification channel names. Rules name a policy;
    a rule without one, and SLA alerts, use the policy named "default"."""

    __tablename__ = "escalation_policies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'"))
    digest_every_s: Mapped[int] = mapped_column(Integer, server_default=text("900"))
    warning_channels: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))


class SlaTarget(Base):
    """An availability target for a scope (a device, group, site or tag by name, or all devices) over a
    calendar period; evaluated by ``analytics.sla.evaluate_targets``."""

    __tablename__ = "sla_targets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(10))
    scope_ref: Mapped[str | None] = mapped_column(String(100))
    target_pct: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    period: Mapped[str] = mapped_column(String(10), server_default="month")
    severity: Mapped[str] = mapped_column(String(20), server_default="critical")
