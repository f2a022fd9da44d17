"""SNMP credential profiles: named v2c communities and v3 users that devices refer to.

A v2c profile holds a community. A v3 profile holds a user name and its security level:
noAuthNoPriv (user only), authNoPriv (an auth protocol and password) or authPriv (both, plus a
privacy protocol and password). Passwords need at least 8 characters, as net-snmp requires.
Protocol names are the poller's (``ingest.snmp.AUTH_PROTOCOLS``/``PRIV_PROTOCOLS``; a test keeps them
equal). Secrets are shown through :func:`credential_view`, masked.

A profile in use is not removed unless asked to: ``force=True`` detaches its devices, which keep an
inline v2c community if they have one and otherwise stop SNMP polling until they get another profile.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from netpulse.crypto import mask
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.schema import Device, SnmpCredential

__all__ = ["AUTH_PROTOCOLS", "PRIV_PROTOCOLS", "MIN_SNMP_PASSWORD", "SnmpCredentialSpec", "CredentialUsage",
           "add_snmp_credential", "list_snmp_credentials", "get_snmp_credential", "remove_snmp_credential",
           "credential_view", "security_level"]

AUTH_PROTOCOLS: tuple[str, ...] = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
# AES192/AES256: net-snmp's key extension (Blumenthal); AES192C/AES256C: Cisco's (Reeder).
PRIV_PROTOCOLS: tuple[str, ...] = ("DES", "AES", "AES192", "AES256", "AES192C", "AES256C")
MIN_SNMP_PASSWORD = 8  # net-snmp refuses shorter keys (snmpusm: "passphrase chosen is below the length")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,99}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, kw_only=True)
class SnmpCredentialSpec:
    """A profile's input fields; protocol names are case-insensitive."""

    name: str
    version: str  # "2c" or "3"
    community: str | None = None  # v2c
    username: str | None = None  # v3
    auth_protocol: str | None = None
    auth_password: str | None = None
    priv_protocol: str | None = None
    priv_password: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialUsage:
    credential: SnmpCredential
    devices: int


def _blank(value: str | None) -> str | None:
    return None if value is None or value == "" else value


def _secret_problem(value: str, what: str, *, min_len: int = 1, max_len: int = 255) -> str | None:
    if len(value) < min_len:
        return f"the {what} must have at least {min_len} characters (got {len(value)}), as net-snmp requires"
    if len(value) > max_len:
        return f"the {what} must have at most {max_len} characters (got {len(value)})"
    if _CONTROL.search(value):
        return f"the {what} must not contain control characters"
    return None


def _protocol(value: str | None, known: tuple[str, ...], what: str, errors: dict[str, str], key: str) -> str | None:
    if value is None:
        return None
    upper = value.strip().upper()
    if upper not in known:
        errors[key] = f"unknown {what} protocol {value!r}; use one of {', '.join(known)}"
        return None
    return upper


def _checked(spec: SnmpCredentialSpec) -> dict[str, Any]:
    """The normalized column values of ``spec``, or a ValidationError naming every bad field."""
    errors: dict[str, str] = {}
    name = (spec.name or "").strip()
    if not _NAME.match(name):
        errors["name"] = (f"profile name {name!r} must be 1 to 100 letters, digits, spaces or . _ @ + -, "
                          "starting with a letter or digit")
    community, username = _blank(spec.community), _blank(spec.username)
    auth_pw, priv_pw = _blank(spec.auth_password), _blank(spec.priv_password)
    out: dict[str, Any] = {"name": name, "version": spec.version, "community": None, "username": None,
                           "auth_protocol": None, "auth_password": None, "priv_protocol": None, "priv_password": None}
    v3_fields = {"username": username, "auth_protocol": spec.auth_protocol, "auth_password": auth_pw,
                 "priv_protocol": spec.priv_protocol, "priv_password": priv_pw}
    if spec.version == "2c":
        if community is None:
            errors["community"] = "an SNMP v2c profile needs a community"
        else:
            problem = _secret_problem(community, "community")
            if problem:
                errors["community"] = problem
        for key, value in v3_fields.items():
            if value is not None:
                errors[key] = f"{key} is only used by SNMP v3 profiles; leave it out or use version 3"
        out["community"] = community
    elif spec.version == "3":
        if community is not None:
            errors["community"] = "SNMP v3 uses no community; leave it out or use version 2c"
        if username is None:
            errors["username"] = "an SNMP v3 profile needs a username (the agent's USM user)"
        elif len(username) > 32 or _CONTROL.search(username):
            errors["username"] = f"username {username[:40]!r} must be at most 32 printable characters (USM's limit)"
        auth = _protocol(spec.auth_protocol, AUTH_PROTOCOLS, "auth", errors, "auth_protocol")
        priv = _protocol(spec.priv_protocol, PRIV_PROTOCOLS, "privacy", errors, "priv_protocol")
        if spec.auth_protocol is None and auth_pw is not None:
            errors["auth_protocol"] = f"an auth password needs an auth protocol ({', '.join(AUTH_PROTOCOLS)})"
        if spec.priv_protocol is None and priv_pw is not None:
            errors["priv_protocol"] = f"a privacy password needs a privacy protocol ({', '.join(PRIV_PROTOCOLS)})"
        if spec.priv_protocol is not None and spec.auth_protocol is None:
            errors["auth_protocol"] = "privacy (authPriv) needs authentication too: give an auth protocol and password"
        for key, proto, pw in (("auth_password", spec.auth_protocol, auth_pw),
                               ("priv_password", spec.priv_protocol, priv_pw)):
            what = "auth password" if key == "auth_password" else "privacy password"
            if proto is not None and pw is None:
                kind = "an auth" if key == "auth_password" else "a privacy"
                errors[key] = f"the {what} is required with {kind} protocol"
            elif pw is not None:
                problem = _secret_problem(pw, what, min_len=MIN_SNMP_PASSWORD)
                if problem:
                    errors[key] = problem
        out.update(username=username, auth_protocol=auth, auth_password=auth_pw if auth else None,
                   priv_protocol=priv, priv_password=priv_pw if priv else None)
    else:
        errors["version"] = f"SNMP version {spec.version!r} is not supported; use 2c or 3"
    if errors:
        raise ValidationError(f"invalid SNMP credential profile {name!r}: "
                              + "; ".join(f"{k}: {v}" for k, v in errors.items()), details=errors)
    return out


def security_level(credential: SnmpCredential) -> str:
    """``community`` for v2c; noAuthNoPriv, authNoPriv or authPriv for v3."""
    if credential.version == "2c":
        return "community"
    if credential.auth_protocol is None:
        return "noAuthNoPriv"
    return "authNoPriv" if credential.priv_protocol is None else "authPriv"


def add_snmp_credential(session: Session, organization_id: uuid.UUID, spec: SnmpCredentialSpec) -> SnmpCredential:
    """A new profile; its name is unique in the organization."""
    values = _checked(spec)
    existing = session.scalar(select(SnmpCredential.id).where(SnmpCredential.organization_id == organization_id,
                                                              SnmpCredential.name == values["name"]))
    if existing is not None:
        raise Conflict(f"an SNMP credential profile named {values['name']!r} already exists (id {existing}); "
                       "choose another name or remove it first", details={"name": values["name"]},
                       code="SNMP_CREDENTIAL_ALREADY_EXISTS")
    credential = SnmpCredential(organization_id=organization_id, **values)
    session.add(credential)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent add of the same name
        raise Conflict(f"an SNMP credential profile named {values['name']!r} already exists",
                       details={"name": values["name"]}, code="SNMP_CREDENTIAL_ALREADY_EXISTS") from None
    return credential


def list_snmp_credentials(session: Session, organization_id: uuid.UUID) -> Sequence[CredentialUsage]:
    """The organization's profiles by name, each with how many devices use it."""
    used = (select(Device.snmp_credential_id, func.count().label("n"))
            .where(Device.organization_id == organization_id, Device.snmp_credential_id.is_not(None))
            .group_by(Device.snmp_credential_id).subquery())
    rows = session.execute(select(SnmpCredential, func.coalesce(used.c.n, 0))
                           .outerjoin(used, used.c.snmp_credential_id == SnmpCredential.id)
                           .where(SnmpCredential.organization_id == organization_id)
                           .order_by(SnmpCredential.name)).all()
    return [CredentialUsage(c, int(n)) for c, n in rows]


def get_snmp_credential(session: Session, organization_id: uuid.UUID, ref: int | str) -> SnmpCredential:
    """The profile with this id (int) or name (str); NotFound listing known names otherwise."""
    stmt = select(SnmpCredential).where(SnmpCredential.organization_id == organization_id)
    stmt = stmt.where(SnmpCredential.id == ref) if isinstance(ref, int) else stmt.where(SnmpCredential.name == ref)
    credential = session.scalar(stmt)
    if credential is None:
        names = session.scalars(select(SnmpCredential.name).where(SnmpCredential.organization_id == organization_id)
                                .order_by(SnmpCredential.name).limit(20)).all()
        hint = (f"known: {', '.join(names)}" if names
                else "none is defined yet; add one with `netpulse snmp credential add`")
        raise NotFound(f"no SNMP credential profile {ref!r} in this organization; {hint}",
                       details={"credential": str(ref)}, code="SNMP_CREDENTIAL_NOT_FOUND")
    return credential


def remove_snmp_credential(session: Session, organization_id: uuid.UUID, ref: int | str, *,
                           force: bool = False) -> list[str]:
    """Delete the profile; returns the names of the devices it was detached from (force only).

    Without ``force`` a profile that devices use is refused (Conflict naming them). With it, each such
    device loses the profile; one with an inline community keeps polling v2c with it, the others
    stop SNMP polling (version cleared) until they get another profile.
    """
    credential = get_snmp_credential(session, organization_id, ref)
    users = session.scalars(select(Device).where(Device.organization_id == organization_id,
                                                 Device.snmp_credential_id == credential.id)
                            .order_by(Device.name).with_for_update()).all()
    names = [d.name for d in users]
    if users and not force:
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise Conflict(f"SNMP credential profile {credential.name!r} is used by {len(names)} device(s): {shown}; "
                       "give them another profile first, or remove it with --force to detach them (their SNMP "
                       "polling stops unless they have a v2c community of their own)",
                       details={"devices": names}, code="SNMP_CREDENTIAL_IN_USE")
    for device in users:
        device.snmp_credential_id = None
        if device.snmp_community is None:
            device.snmp_version = None
        else:
            device.snmp_version = "2c"
    session.delete(credential)
    session.flush()
    return names


def credential_view(credential: SnmpCredential, *, devices: int | None = None) -> dict[str, Any]:
    """The profile as the CLI and the API show it: every secret masked."""
    view: dict[str, Any] = {
        "id": credential.id, "name": credential.name, "version": credential.version,
        "security_level": security_level(credential), "community": None, "username": credential.username,
        "auth_protocol": credential.auth_protocol, "auth_password": None,
        "priv_protocol": credential.priv_protocol, "priv_password": None,
    }
    for key in ("community", "auth_password", "priv_password"):
        value = getattr(credential, key)
        view[key] = mask(value) if value is not None else None
    if devices is not None:
        view["devices"] = devices
    return view
