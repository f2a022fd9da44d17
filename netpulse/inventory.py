"""The device inventory: CRUD, filters, status counts, the all-or-nothing CSV import, and the service
checks of devices (a TCP port or an HTTP(S) URL, probed by ingest.tcp and ingest.http).

Every query filters by organization. Sites, groups and tags referenced by name are created on
demand (slugified names). Functions flush but never commit: the caller owns the transaction.

Validation errors are field-keyed and name the values (NetBox's ``clean()``)::

    ValidationError(details={"address": "'300.1.1.1' is not a valid IP address or hostname"})
"""

from __future__ import annotations

import csv
import dataclasses
import io
import ipaddress
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from sqlalchemy import Connection, Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from netpulse.errors import Conflict, NotFound, StorageError, ValidationError
from netpulse.schema import (
    CheckKind,
    Device,
    DeviceGroup,
    DeviceStatus,
    DeviceType,
    OperStatus,
    ServiceCheck,
    Site,
    SnmpCredential,
    Tag,
    device_tags,
)

__all__ = [
    "DeviceSpec", "ImportReport", "DeviceImportError", "slugify",
    "create_device", "get_device", "get_device_by_name", "list_devices", "update_device", "delete_device",
    "get_or_create_site", "get_or_create_group", "get_or_create_tag", "status_counts", "import_devices_csv",
    "CSV_COLUMNS", "CSV_REQUIRED",
    "ServiceCheckSpec", "RunnableCheck", "HTTP_METHODS", "DEFAULT_CHECK_TIMEOUT_S", "http_url_problem",
    "add_service_check", "list_service_checks", "get_service_check", "remove_service_check",
    "runnable_service_checks",
]

_TYPES = ", ".join(t.value for t in DeviceType)
_STATUSES = ", ".join(s.value for s in DeviceStatus)
_OPER = ", ".join(s.value for s in OperStatus)
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_CHUNK = 1000  # values per IN (...) list: far below the protocol's 65,535 parameters


@dataclass(frozen=True, kw_only=True)
class DeviceSpec:
    """A device's input fields. ``site``/``group``/``tags`` are names (or slugs), created on demand;
    ``parent`` and ``snmp_credential`` name existing rows of the same organization.
    """

    name: str
    address: str  # IPv4/IPv6 literal or hostname; literals also fill ``ip_address``
    device_type: DeviceType | str
    site: str | None = None
    group: str | None = None
    tags: Sequence[str] = ()
    parent: str | None = None
    status: DeviceStatus | str = DeviceStatus.ACTIVE
    probe_enabled: bool = True
    probe_interval_s: int | None = None  # None: the global default from settings
    probe_timeout_s: float | None = None
    probe_count: int | None = None
    snmp_version: str | None = None  # None: do not poll SNMP; "2c" or "3"
    snmp_port: int = 161
    snmp_community: str | None = None  # v2c only
    snmp_credential: str | None = None  # name of a snmp_credentials profile (required for v3)
    simulated: bool = False
    description: str = ""


SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DeviceSpec))


def slugify(value: str) -> str:
    """``"Lagos HQ / Rack 2"`` -> ``"lagos-hq-rack-2"`` (ASCII letters, digits and dashes, at most 100)."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:100].rstrip("-")


# --------------------------------------------------------------------------------------------------
# Field validation: each check returns the normalized value or raises _Invalid naming the value.


class _Invalid(Exception):
    pass


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Invalid(f"{value!r} is not text")


def _optional_text(value: object, max_len: int) -> str | None:
    text = _text(value)
    if not text:
        return None
    if len(text) > max_len:
        raise _Invalid(f"{text[:40]!r}... is longer than {max_len} characters")
    return text


def _is_hostname(text: str) -> bool:
    host = text[:-1] if text.endswith(".") else text
    if not host or len(host) > 253:
        return False
    labels = host.split(".")
    # An all-numeric last label is a mistyped IPv4 address, not a host name (RFC 3696 section 2).
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _check_name(value: object) -> str:
    name = _text(value)
    if not name:
        raise _Invalid("a name is required")
    if len(name) > 255:
        raise _Invalid(f"{name[:40]!r}... is longer than 255 characters")
    return name


def _check_address(value: object) -> str:
    text = _text(value)
    if not text:
        raise _Invalid("an address is required: an IPv4 or IPv6 address or a hostname")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        if _is_hostname(text):
            return text.lower().rstrip(".")
        raise _Invalid(f"{text!r} is not a valid IP address or hostname") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        raise _Invalid(f"{text!r} carries a zone index (%{ip.scope_id}), which is not supported; "
                       f"give the address without it")
    return str(ip)  # canonical spelling, so '2001:DB8::1' and '2001:db8:0::1' are one address


def _check_type(value: object) -> DeviceType:
    text = _text(value)
    if not text:
        raise _Invalid(f"a device type is required; use one of: {_TYPES}")
    try:
        return DeviceType(re.sub(r"[\s-]+", "_", text.lower()))
    except ValueError:
        raise _Invalid(f"{text!r} is not a device type; use one of: {_TYPES}") from None


def _check_status(value: object) -> DeviceStatus:
    text = _text(value)
    if not text:
        return DeviceStatus.ACTIVE
    try:
        return DeviceStatus(text.lower())
    except ValueError:
        raise _Invalid(f"{text!r} is not a device status; use one of: {_STATUSES}") from None


def _check_label(value: object) -> str | None:
    """A site, group or tag name: at most 100 characters, with letters or digits for its slug."""
    name = _optional_text(value, 100)
    if name is not None and not slugify(name):
        raise _Invalid(f"{name!r} has no letters or digits to build a slug from")
    return name


def _check_tags(value: object) -> list[str]:
    if value is None:
        return []
    items: Iterable[object] = re.split(r"[;|]", value) if isinstance(value, str) else value  # type: ignore[assignment]
    if not isinstance(items, Iterable):
        raise _Invalid(f"{value!r} is not a list of tag names")
    tags: dict[str, str] = {}
    for item in items:
        try:
            name = _check_label(item)
        except _Invalid as exc:
            raise _Invalid(f"tag {exc}") from None
        if name is not None:
            tags.setdefault(slugify(name), name)  # 'Core' and 'core' are one tag
    return list(tags.values())


def _check_bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise _Invalid(f"{value!r} is not true or false")


def _check_int(value: object, lo: int, hi: int, unit: str, default: int | None = None) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool):
        raise _Invalid(f"{value!r} is not a whole number; use {lo} to {hi} {unit}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        number = int(value.strip())
    else:
        raise _Invalid(f"{value!r} is not a whole number; use {lo} to {hi} {unit}")
    if not lo <= number <= hi:
        raise _Invalid(f"{number} is out of range; use {lo} to {hi} {unit}")
    return number


def _check_timeout(value: object) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: float | None = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or number != number:  # NaN
        raise _Invalid(f"{value!r} is not a number of seconds; use more than 0 and at most 60")
    if not 0 < number <= 60:
        raise _Invalid(f"{number:g} is out of range; use more than 0 and at most 60 seconds")
    return number


def _check_snmp_version(value: object) -> str | None:
    text = _text(value)
    if not text:
        return None
    version = text.lower().removeprefix("v")
    if version not in ("2c", "3"):
        raise _Invalid(f"{text!r} is not a supported SNMP version; use 2c or 3, "
                       f"or leave it empty to not poll SNMP")
    return version


_CHECKS: dict[str, Callable[[object], Any]] = {
    "name": _check_name,
    "address": _check_address,
    "device_type": _check_type,
    "site": _check_label,
    "group": _check_label,
    "tags": _check_tags,
    "parent": lambda v: _optional_text(v, 255),
    "status": _check_status,
    "probe_enabled": lambda v: _check_bool(v, True),
    "probe_interval_s": lambda v: _check_int(v, 1, 86400, "seconds"),
    "probe_timeout_s": _check_timeout,
    "probe_count": lambda v: _check_int(v, 1, 100, "probes"),
    "snmp_version": _check_snmp_version,
    "snmp_port": lambda v: _check_int(v, 1, 65535, "(a UDP port)", default=161),
    "snmp_community": lambda v: _optional_text(v, 255),
    "snmp_credential": lambda v: _optional_text(v, 100),
    "simulated": lambda v: _check_bool(v, False),
    "description": lambda v: _text(v),
}
assert set(_CHECKS) == set(SPEC_FIELDS)


def _clean(values: Mapping[str, object]) -> tuple[dict[str, Any], dict[str, str]]:
    """Normalized values of the valid fields, and a message for each invalid one (no database)."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, check in _CHECKS.items():
        try:
            out[field] = check(values.get(field))
        except _Invalid as exc:
            errors[field] = str(exc)
    if errors.keys() & {"snmp_version", "snmp_community", "snmp_credential"}:
        return out, errors
    version, community, credential = out["snmp_version"], out["snmp_community"], out["snmp_credential"]
    if version is None and community is not None and credential is None:
        out["snmp_version"] = version = "2c"  # a community alone means v2c
    if version == "3" and community is not None:
        errors["snmp_community"] = (f"a community ({community!r}) is only used with SNMP v2c; remove it "
                                    f"or set snmp_version to 2c")
    elif version == "3" and credential is None:
        errors["snmp_credential"] = ("SNMP v3 needs a credential profile holding the user and keys; "
                                     "name one in snmp_credential")
    elif version == "2c" and community is None and credential is None:
        errors["snmp_community"] = ("SNMP v2c needs a community; set snmp_community or name a "
                                    "credential profile in snmp_credential")
    return out, errors


def _credential_problem(name: str, credential: SnmpCredential | None, version: str | None,
                        community: str | None, known: Iterable[str]) -> str | None:
    if credential is None:
        names = sorted(known)
        hint = f"known profiles: {', '.join(names)}" if names else "none are defined yet"
        return f"no SNMP credential profile named {name!r} in this organization; {hint}"
    if version is not None and version != credential.version:
        return (f"profile {name!r} is for SNMP v{credential.version} but snmp_version is {version!r}; "
                f"make them match or leave snmp_version empty")
    if credential.version == "3" and community is not None:
        return (f"profile {name!r} is for SNMP v3, which uses no community; remove snmp_community "
                f"({community!r})")
    return None


def _ip_of(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _invalid(errors: Mapping[str, str], name: object) -> ValidationError:
    fields = set(errors)
    code = ("INVALID_IP_ADDRESS" if fields == {"address"} else
            "INVALID_DEVICE_TYPE" if fields == {"device_type"} else "INVALID_INPUT")
    what = f"device {name!r}" if isinstance(name, str) and name.strip() else "device"
    summary = "; ".join(f"{field}: {message}" for field, message in errors.items())
    return ValidationError(f"invalid {what}: {summary}", details=dict(errors), code=code)


# --------------------------------------------------------------------------------------------------
# Sites, groups and tags by name


_Named = TypeVar("_Named", Site, DeviceGroup, Tag)


def _chunks(values: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _find_named(session: Session, model: type[_Named], org_id: uuid.UUID,
                names: Iterable[str]) -> dict[str, _Named]:
    """The existing row for each name, matched by exact name first, then by slug."""
    wanted = sorted(set(names))
    by_name: dict[str, _Named] = {}
    by_slug: dict[str, _Named] = {}
    for chunk in _chunks(wanted):
        rows = session.scalars(select(model).where(
            model.organization_id == org_id,
            or_(model.name.in_(chunk), model.slug.in_([slugify(n) for n in chunk])),
        ).order_by(model.id))
        for row in rows:
            by_name.setdefault(row.name, row)
            by_slug.setdefault(row.slug, row)
    found: dict[str, _Named] = {}
    for name in wanted:
        match = by_name.get(name) or by_slug.get(slugify(name))
        if match is not None:
            found[name] = match
    return found


def _get_or_create(session: Session, model: type[_Named], org_id: uuid.UUID, name: str, what: str) -> _Named:
    try:
        clean = _check_label(name)
    except _Invalid as exc:
        raise ValidationError(f"invalid {what}: {exc}", details={what: str(exc)}) from None
    if clean is None:
        raise ValidationError(f"invalid {what}: a name is required", details={what: "a name is required"})
    row: _Named | None = _find_named(session, model, org_id, [clean]).get(clean)
    if row is None:
        row = model(organization_id=org_id, name=clean, slug=slugify(clean))
        session.add(row)
        session.flush()
    return row


def get_or_create_site(session: Session, org_id: uuid.UUID, name: str) -> Site:
    """The site called ``name`` (or whose slug is ``slugify(name)``), created when there is none."""
    return _get_or_create(session, Site, org_id, name, "site")


def get_or_create_group(session: Session, org_id: uuid.UUID, name: str) -> DeviceGroup:
    return _get_or_create(session, DeviceGroup, org_id, name, "group")


def get_or_create_tag(session: Session, org_id: uuid.UUID, name: str) -> Tag:
    return _get_or_create(session, Tag, org_id, name, "tag")


# --------------------------------------------------------------------------------------------------
# CRUD


@dataclass
class _Refs:
    parent: Device | None
    credential: SnmpCredential | None


def _validated(session: Session, org_id: uuid.UUID, values: Mapping[str, object],
               device: Device | None = None) -> tuple[DeviceSpec, _Refs]:
    """Field checks plus the references that need the database (parent, credential profile)."""
    out, errors = _clean(values)
    parent: Device | None = None
    if out.get("parent") is not None and out["parent"] == out.get("name"):
        errors["parent"] = f"a device cannot be its own parent ({out['name']!r})"
    elif out.get("parent") is not None:
        parent = session.scalar(select(Device).where(Device.organization_id == org_id,
                                                     Device.name == out["parent"]))
        if parent is None:
            errors["parent"] = (f"no device named {out['parent']!r} in this organization; "
                                f"add it first or leave parent empty")
        elif device is not None:
            problem = _cycle(device, parent)
            if problem:
                errors["parent"] = problem
    credential: SnmpCredential | None = None
    if out.get("snmp_credential") is not None and "snmp_version" not in errors:
        known = {c.name: c for c in session.scalars(
            select(SnmpCredential).where(SnmpCredential.organization_id == org_id))}
        credential = known.get(out["snmp_credential"])
        problem = _credential_problem(out["snmp_credential"], credential, out["snmp_version"],
                                      out["snmp_community"], known)
        if problem:
            errors["snmp_credential"] = problem
        elif credential is not None and out["snmp_version"] is None:
            out["snmp_version"] = credential.version
    if errors:
        raise _invalid(errors, values.get("name"))
    return DeviceSpec(**out), _Refs(parent, credential)


def _cycle(device: Device, parent: Device) -> str | None:
    """A message when making ``parent`` the parent of ``device`` would close a loop."""
    if parent.id == device.id:
        return f"a device cannot be its own parent ({device.name!r})"
    chain = [parent]
    seen = {parent.id}
    node = parent.parent
    while node is not None and node.id not in seen:
        chain.append(node)
        if node.id == device.id:
            path = " -> ".join([device.name, *(n.name for n in chain)])
            return (f"{parent.name!r} is below {device.name!r} ({path}); a device cannot be its own "
                    f"ancestor, so choose another parent or first move {parent.name!r}")
        seen.add(node.id)
        node = node.parent
    return None


def _check_unique(session: Session, org_id: uuid.UUID, name: str, address: str,
                  exclude_id: int | None = None) -> None:
    stmt = select(Device.id, Device.name, Device.address).where(
        Device.organization_id == org_id, or_(Device.name == name, Device.address == address))
    if exclude_id is not None:
        stmt = stmt.where(Device.id != exclude_id)
    details: dict[str, str] = {}
    for row in session.execute(stmt):
        if row.name == name:
            details["name"] = (f"a device named {name!r} already exists (id {row.id}); choose another name "
                               f"or update that device")
        if row.address == address:
            details["address"] = f"{address!r} is already the address of device {row.name!r} (id {row.id})"
    if details:
        raise Conflict("; ".join(f"{k}: {v}" for k, v in details.items()), details=details,
                       code="DEVICE_ALREADY_EXISTS")


def _fill(device: Device, spec: DeviceSpec, credential: SnmpCredential | None) -> None:
    """Copy the scalar fields of a validated spec onto the row."""
    device.name = spec.name
    device.address = spec.address
    device.ip_address = _ip_of(spec.address)
    device.device_type = DeviceType(spec.device_type).value
    device.status = DeviceStatus(spec.status).value
    device.probe_enabled = spec.probe_enabled
    device.probe_interval_s = spec.probe_interval_s
    device.probe_timeout_s = spec.probe_timeout_s
    device.probe_count = spec.probe_count
    device.snmp_version = spec.snmp_version
    device.snmp_port = spec.snmp_port
    device.snmp_community = spec.snmp_community
    device.snmp_credential_id = credential.id if credential is not None else None
    device.simulated = spec.simulated
    device.description = spec.description


def _conflict_from(exc: IntegrityError, what: str) -> Exception:
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None) or ""
    if constraint in ("devices_organization_id_name_key", "devices_organization_id_address_key"):
        field = "name" if constraint.endswith("name_key") else "address"
        return Conflict(f"{what}: another device with this {field} was saved at the same time; try again",
                        details={field: "already exists"}, code="DEVICE_ALREADY_EXISTS")
    first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return StorageError(f"{what}: the database refused the change: {first}")


def _save(session: Session, org_id: uuid.UUID, device: Device, spec: DeviceSpec, refs: _Refs) -> None:
    """Apply a validated spec inside a savepoint, so a refused write leaves the session usable."""
    try:
        with session.begin_nested():
            _fill(device, spec, refs.credential)
            device.site = get_or_create_site(session, org_id, spec.site) if spec.site else None
            device.group = get_or_create_group(session, org_id, spec.group) if spec.group else None
            device.tags = [get_or_create_tag(session, org_id, t) for t in spec.tags]
            device.parent = refs.parent
            session.add(device)
            session.flush()
    except IntegrityError as exc:
        raise _conflict_from(exc, f"device {spec.name!r}") from None


def create_device(session: Session, org_id: uuid.UUID, spec: DeviceSpec) -> Device:
    """Validate ``spec`` and insert the device (sites, groups and tags are created on demand).

    Raises:
        ValidationError: field-keyed details (codes INVALID_IP_ADDRESS, INVALID_DEVICE_TYPE, INVALID_INPUT).
        Conflict: DEVICE_ALREADY_EXISTS when the name or the address is taken in the organization.
    """
    clean, refs = _validated(session, org_id, dataclasses.asdict(spec))
    _check_unique(session, org_id, clean.name, clean.address)
    device = Device(organization_id=org_id)
    _save(session, org_id, device, clean, refs)
    return device


def _loaded(stmt: Select[Device]) -> Select[Device]:
    return stmt.options(selectinload(Device.site), selectinload(Device.group), selectinload(Device.tags),
                        selectinload(Device.parent))


def get_device(session: Session, org_id: uuid.UUID, device_id: int) -> Device:
    device = session.scalar(_loaded(select(Device).where(Device.organization_id == org_id,
                                                         Device.id == device_id)))
    if device is None:
        raise NotFound(f"device with id {device_id} not found in this organization",
                       details={"device_id": str(device_id)}, code="DEVICE_NOT_FOUND")
    return device


def get_device_by_name(session: Session, org_id: uuid.UUID, name: str) -> Device:
    device = session.scalar(_loaded(select(Device).where(Device.organization_id == org_id,
                                                         Device.name == name)))
    if device is None:
        raise NotFound(f"no device named {name!r} in this organization", details={"name": name},
                       code="DEVICE_NOT_FOUND")
    return device


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_devices(session: Session, org_id: uuid.UUID, *, site: str | None = None, group: str | None = None,
                 tag: str | None = None, oper_status: OperStatus | str | None = None,
                 search: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[Device], int]:
    """One page of devices ordered by name, and the total that match.

    ``site``/``group``/``tag`` match a name or a slug; ``search`` is a case-insensitive substring of the
    name, address or description. An unknown site, group or tag matches nothing.
    """
    errors: dict[str, str] = {}
    if oper_status is not None and oper_status not in {s.value for s in OperStatus}:
        errors["oper_status"] = f"{oper_status!r} is not an operational status; use one of: {_OPER}"
    if limit < 0:
        errors["limit"] = f"{limit} is negative; use 0 or more"
    if offset < 0:
        errors["offset"] = f"{offset} is negative; use 0 or more"
    if errors:
        raise ValidationError("invalid device filter: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                              details=errors)
    stmt = select(Device).where(Device.organization_id == org_id)
    if site:
        stmt = stmt.join(Site, Device.site_id == Site.id).where(
            Site.organization_id == org_id, or_(Site.name == site, Site.slug == slugify(site)))
    if group:
        stmt = stmt.join(DeviceGroup, Device.group_id == DeviceGroup.id).where(
            DeviceGroup.organization_id == org_id,
            or_(DeviceGroup.name == group, DeviceGroup.slug == slugify(group)))
    if tag:
        tagged = (select(device_tags.c.device_id).join(Tag, Tag.id == device_tags.c.tag_id)
                  .where(Tag.organization_id == org_id, or_(Tag.name == tag, Tag.slug == slugify(tag))))
        stmt = stmt.where(Device.id.in_(tagged))
    if oper_status is not None:
        stmt = stmt.where(Device.oper_status == str(oper_status))
    if search:
        pattern = _like(search.strip())
        stmt = stmt.where(or_(Device.name.ilike(pattern, escape="\\"),
                              Device.address.ilike(pattern, escape="\\"),
                              Device.description.ilike(pattern, escape="\\")))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = session.scalars(_loaded(stmt.order_by(Device.name, Device.id).limit(limit).offset(offset)))
    return list(page), total


def _spec_values(session: Session, device: Device) -> dict[str, object]:
    credential = (session.get(SnmpCredential, device.snmp_credential_id)
                  if device.snmp_credential_id is not None else None)
    return {
        "name": device.name, "address": device.address, "device_type": device.device_type,
        "site": device.site.name if device.site else None,
        "group": device.group.name if device.group else None,
        "tags": [t.name for t in device.tags],
        "parent": device.parent.name if device.parent else None,
        "status": device.status, "probe_enabled": device.probe_enabled,
        "probe_interval_s": device.probe_interval_s, "probe_timeout_s": device.probe_timeout_s,
        "probe_count": device.probe_count, "snmp_version": device.snmp_version, "snmp_port": device.snmp_port,
        "snmp_community": device.snmp_community,
        "snmp_credential": credential.name if credential is not None else None,
        "simulated": device.simulated, "description": device.description,
    }


def update_device(session: Session, org_id: uuid.UUID, device_id: int,
                  changes: Mapping[str, object]) -> Device:
    """Change some fields of a device; ``changes`` is keyed by :class:`DeviceSpec` field names.

    ``tags`` replaces the whole tag list; ``None`` clears an optional field (site, group, parent, ...).
    """
    unknown = sorted(set(changes) - set(SPEC_FIELDS))
    if unknown:
        raise ValidationError(
            f"unknown device field(s) {', '.join(map(repr, unknown))}; use: {', '.join(SPEC_FIELDS)}",
            details={k: f"{k!r} is not a device field" for k in unknown})
    device = get_device(session, org_id, device_id)
    values = {**_spec_values(session, device), **changes}
    clean, refs = _validated(session, org_id, values, device=device)
    _check_unique(session, org_id, clean.name, clean.address, exclude_id=device.id)
    _save(session, org_id, device, clean, refs)
    return device


def delete_device(session: Session, org_id: uuid.UUID, device_id: int) -> None:
    """Delete a device; its alerts go with it and the devices below it lose their parent."""
    device = get_device(session, org_id, device_id)
    session.delete(device)
    session.flush()


def status_counts(db: Session | Connection | psycopg.Connection, org_id: uuid.UUID) -> dict[str, int]:
    """Devices per operational status; every status is a key (``{"unknown": 0, "up": 3, ...}``)."""
    counts = {s.value: 0 for s in OperStatus}
    if isinstance(db, psycopg.Connection):
        rows: Iterable[Any] = db.execute(
            "SELECT oper_status, count(*) FROM devices WHERE organization_id = %s GROUP BY oper_status",
            (org_id,)).fetchall()
    else:
        rows = db.execute(select(Device.oper_status, func.count()).where(Device.organization_id == org_id)
                          .group_by(Device.oper_status)).all()
    for status, n in rows:
        counts[status] = int(n)
    return counts


# --------------------------------------------------------------------------------------------------
# Service checks: a TCP port or an HTTP(S) URL checked on a device (probed by ingest.tcp/ingest.http)

HTTP_METHODS: tuple[str, ...] = ("GET", "HEAD")
DEFAULT_CHECK_TIMEOUT_S = 5.0
_KINDS = ", ".join(k.value for k in CheckKind)


@dataclass(frozen=True, kw_only=True)
class ServiceCheckSpec:
    """A service check's input fields. ``tcp`` checks need ``port`` (of the device's address); ``http``
    checks need ``url`` and may set the fields after it. ``name`` defaults to ``tcp-PORT`` or, for
    http, ``SCHEME-PORT`` plus the URL's path (``https-443``, ``http-8080/health``).
    """

    kind: CheckKind | str
    name: str | None = None
    port: int | None = None  # tcp
    url: str | None = None  # http: http:// or https://
    method: str = "GET"  # http: GET or HEAD
    expected_status: int | None = None  # http; None: any 2xx or 3xx passes
    expected_body: str | None = None  # http: text that must appear in the first MiB of the body
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
    verify_tls: bool = True  # https: refuse certificates that do not verify (expiry is recorded anyway)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class RunnableCheck:
    """A service check as a prober needs it: the check's fields and its device's address."""

    id: int
    device_id: int
    kind: CheckKind
    name: str
    address: str
    port: int | None
    url: str | None
    method: str
    expected_status: int | None
    expected_body: str | None
    timeout_s: float
    verify_tls: bool


def http_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be checked (not http/https, no host, a bad port), or None when it can."""
    if not url:
        return "a URL is required, e.g. https://example.com/health"
    if len(url) > 2048:
        return f"{url[:40]!r}... is longer than 2048 characters"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return f"{url!r} contains white space or control characters; percent-encode them (%20)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"{url!r} is not a valid URL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"{url!r} is not an http:// or https:// URL"
    host = parts.hostname
    if not host:
        return f"{url!r} has no host; write it as {parts.scheme.lower()}://HOST/PATH"
    if _ip_of(host) is None and not _is_hostname(host):
        return f"{url!r}: {host!r} is not a valid IP address or hostname"
    if port == 0:
        return f"{url!r} has port 0; use 1 to 65535"
    return None


def _check_kind(value: object) -> CheckKind:
    text = _text(value)
    try:
        return CheckKind(text.lower())
    except ValueError:
        raise _Invalid(f"{text!r} is not a kind of service check; use one of: {_KINDS}") from None


def _check_url(value: object) -> str:
    url = _text(value)
    problem = http_url_problem(url)
    if problem is not None:
        raise _Invalid(problem)
    return url


def _check_method(value: object) -> str:
    method = _text(value).upper() or "GET"
    if method not in HTTP_METHODS:
        raise _Invalid(f"{_text(value)!r} is not a supported method; use GET or HEAD")
    return method


def _check_expected_body(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{value!r} is not text")
    if len(value) > 1024:  # not stripped: leading or trailing spaces may be part of the text
        raise _Invalid(f"{value[:40]!r}... is longer than 1024 characters")
    return value


def _default_check_name(kind: CheckKind, port: int | None, url: str | None) -> str:
    if kind is CheckKind.TCP:
        return f"tcp-{port}"
    parts = urlsplit(url or "")
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}-{port}{parts.path.rstrip('/')}"[:100]


def _clean_check(spec: ServiceCheckSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """Normalized values of the valid fields, and a message for each invalid one (no database)."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}

    def check(field: str, fn: Callable[[object], Any]) -> None:
        try:
            out[field] = fn(getattr(spec, field))
        except _Invalid as exc:
            errors[field] = str(exc)

    check("kind", _check_kind)
    check("name", lambda v: _optional_text(v, 100))
    check("timeout_s", _check_timeout)
    check("verify_tls", lambda v: _check_bool(v, True))
    check("enabled", lambda v: _check_bool(v, True))
    if out.get("timeout_s", 0) is None:
        out["timeout_s"] = DEFAULT_CHECK_TIMEOUT_S
    kind = out.get("kind")
    if kind is CheckKind.TCP:
        check("port", lambda v: _check_int(v, 1, 65535, "(a TCP port)"))
        if "port" not in errors and out["port"] is None:
            errors["port"] = "a tcp check needs a port (1 to 65535)"
        for field, default in (("url", None), ("expected_status", None), ("expected_body", None),
                               ("method", "GET")):
            if getattr(spec, field) not in (default, ""):
                errors[field] = f"{field} is only for http checks; remove it from this tcp check"
        out.update(url=None, method="GET", expected_status=None, expected_body=None)
    elif kind is CheckKind.HTTP:
        check("url", _check_url)
        check("method", _check_method)
        check("expected_status", lambda v: _check_int(v, 100, 599, "(an HTTP status)"))
        check("expected_body", _check_expected_body)
        if spec.port is not None:
            errors["port"] = "port is only for tcp checks; give the port in the URL (https://host:8443/)"
        out["port"] = None
        if out.get("method") == "HEAD" and out.get("expected_body") is not None:
            errors["expected_body"] = ("a HEAD response has no body to look for "
                                       f"{out['expected_body']!r} in; use GET or drop the expected text")
    if not errors and out["name"] is None:
        out["name"] = _default_check_name(kind, out["port"], out["url"])  # type: ignore[arg-type]
    return out, errors


def _invalid_check(errors: Mapping[str, str], name: object) -> ValidationError:
    what = f"service check {name!r}" if isinstance(name, str) and name.strip() else "service check"
    summary = "; ".join(f"{field}: {message}" for field, message in errors.items())
    return ValidationError(f"invalid {what}: {summary}", details=dict(errors))


def add_service_check(session: Session, org_id: uuid.UUID, device_id: int, spec: ServiceCheckSpec) -> ServiceCheck:
    """Validate ``spec`` and add the check to the device.

    Raises:
        NotFound: DEVICE_NOT_FOUND when the device is not in the organization.
        ValidationError: field-keyed details.
        Conflict: CHECK_ALREADY_EXISTS when the device already has a check of that name.
    """
    device = get_device(session, org_id, device_id)
    out, errors = _clean_check(spec)
    if errors:
        raise _invalid_check(errors, spec.name)
    taken = session.scalar(select(ServiceCheck.id).where(ServiceCheck.device_id == device.id,
                                                         ServiceCheck.name == out["name"]))
    if taken is not None:
        raise _check_conflict(out["name"], device.name)
    check = ServiceCheck(organization_id=org_id, device_id=device.id, kind=out["kind"].value, name=out["name"],
                         port=out["port"], url=out["url"], method=out["method"],
                         expected_status=out["expected_status"], expected_body=out["expected_body"],
                         timeout_s=out["timeout_s"], verify_tls=out["verify_tls"], enabled=out["enabled"])
    try:
        with session.begin_nested():
            session.add(check)
            session.flush()
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None) or ""
        if constraint == "service_checks_device_id_name_key":
            raise _check_conflict(out["name"], device.name) from None
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise StorageError(f"service check {out['name']!r}: the database refused it: {first}") from None
    return check


def _check_conflict(name: str, device_name: str) -> Conflict:
    return Conflict(f"device {device_name!r} already has a check named {name!r}; choose another name "
                    f"(--name) or remove that check first", details={"name": "already exists"},
                    code="CHECK_ALREADY_EXISTS")


def list_service_checks(session: Session, org_id: uuid.UUID, device_id: int | None = None) -> list[ServiceCheck]:
    """The organization's service checks (or one device's), ordered by device name and check name."""
    stmt = (select(ServiceCheck).join(Device, Device.id == ServiceCheck.device_id)
            .where(ServiceCheck.organization_id == org_id, Device.organization_id == org_id)
            .options(selectinload(ServiceCheck.device)).order_by(Device.name, ServiceCheck.name))
    if device_id is not None:
        get_device(session, org_id, device_id)  # an unknown device is an error, not an empty list
        stmt = stmt.where(ServiceCheck.device_id == device_id)
    return list(session.scalars(stmt))


def get_service_check(session: Session, org_id: uuid.UUID, device_id: int, name: str) -> ServiceCheck:
    """The device's check called ``name``; NotFound (CHECK_NOT_FOUND) names the checks it has."""
    device = get_device(session, org_id, device_id)
    check = session.scalar(select(ServiceCheck).where(ServiceCheck.organization_id == org_id,
                                                      ServiceCheck.device_id == device.id, ServiceCheck.name == name))
    if check is None:
        names = session.scalars(select(ServiceCheck.name).where(
            ServiceCheck.organization_id == org_id, ServiceCheck.device_id == device.id).order_by(ServiceCheck.name))
        known = ", ".join(names)
        hint = f"its checks: {known}" if known else "it has no checks"
        raise NotFound(f"device {device.name!r} has no check named {name!r}; {hint}",
                       details={"name": name}, code="CHECK_NOT_FOUND")
    return check


def remove_service_check(session: Session, org_id: uuid.UUID, device_id: int, name: str) -> None:
    """Remove the device's check ``name``; its metric rows stay (they age out with retention)."""
    session.delete(get_service_check(session, org_id, device_id, name))
    session.flush()


_RUNNABLE = """
SELECT c.id, c.device_id, c.kind, c.name, d.address, c.port, c.url, c.method, c.expected_status,
       c.expected_body, c.timeout_s, c.verify_tls
FROM service_checks c JOIN devices d ON d.id = c.device_id AND d.organization_id = c.organization_id
WHERE c.device_id = ANY(%(ids)s) AND (%(org)s::uuid IS NULL OR c.organization_id = %(org)s::uuid)
  AND (%(all)s OR (c.enabled AND d.probe_enabled AND NOT d.simulated))
ORDER BY c.device_id, c.id
"""


def runnable_service_checks(db: Session | psycopg.Connection, device_ids: Iterable[int], *,
                            org_id: uuid.UUID | None = None, include_disabled: bool = False) -> list[RunnableCheck]:
    """The checks to run for these devices: enabled ones of devices that are probed (not simulated,
    probe_enabled). ``include_disabled`` takes every check of the devices, for a run on request.

    Device ids come from the scheduler, which has already chosen them per organization; ``org_id``
    narrows to one organization besides.
    """
    params = {"ids": sorted({int(d) for d in device_ids}), "org": org_id, "all": include_disabled}
    if not params["ids"]:
        return []
    if isinstance(db, psycopg.Connection):
        rows: Iterable[Any] = db.execute(_RUNNABLE, params).fetchall()
    else:
        rows = db.connection().exec_driver_sql(_RUNNABLE, params).all()
    return [RunnableCheck(id=r[0], device_id=r[1], kind=CheckKind(r[2]), name=r[3], address=r[4], port=r[5],
                          url=r[6], method=r[7], expected_status=r[8], expected_body=r[9],
                          timeout_s=round(float(r[10]), 3),  # a real: 0.1 comes back as 0.10000000149
                          verify_tls=r[11]) for r in rows]


# --------------------------------------------------------------------------------------------------
# CSV import

CSV_COLUMNS: tuple[str, ...] = ("name", "address", "type", "site", "group", "tags", "parent", "snmp_version",
                                "snmp_community", "snmp_credential", "snmp_port", "probe_interval_s",
                                "description")
CSV_REQUIRED: tuple[str, ...] = ("name", "address", "type")
_CSV_ALIASES = {"ip": "address", "ip_address": "address", "hostname": "address", "device_type": "type"}
_CSV_TO_SPEC = {"type": "device_type"}


@dataclass(frozen=True)
class ImportReport:
    """What an import created (or, with ``dry_run``, would create)."""

    devices: int
    sites: int
    groups: int
    tags: int
    dry_run: bool = False

    def summary(self) -> str:
        created = f"{self.sites} site(s), {self.groups} group(s), {self.tags} tag(s)"
        if self.dry_run:
            return (f"dry run: {self.devices} device(s) would be imported, creating {created}; "
                    f"nothing was written")
        return f"imported {self.devices} device(s); created {created}"


class DeviceImportError(ValidationError):
    """Bad lines in an import file; nothing was imported.

    ``errors`` lists ``(line_number, message)`` in line order; line numbers are physical lines of the
    file (the header is line 1), so a quoted value spanning lines does not shift the ones after it.
    """

    def __init__(self, source: str, errors: Sequence[tuple[int, str]]):
        self.source = source
        self.errors = sorted(errors, key=lambda e: e[0])
        self.bad_lines = len({line for line, _ in self.errors})
        super().__init__(f"{self.bad_lines} bad line(s) in {source}; nothing was imported",
                         details={"lines": [{"line": n, "message": m} for n, m in self.errors]})


@dataclass
class _Row:
    line: int
    values: dict[str, Any]  # the normalized fields that are valid
    spec: DeviceSpec | None = None
    credential: SnmpCredential | None = None


def _read(path_or_text: str | Path) -> tuple[str, str]:
    """(label for messages, text). A Path or a one-line string is a file name; other strings are CSV."""
    if isinstance(path_or_text, str) and ("\n" in path_or_text or "\r" in path_or_text):
        return "<text>", path_or_text
    path = Path(path_or_text)
    try:
        return str(path), path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path} is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8",
                              details={"file": str(path)}) from None
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror or exc}",
                              details={"file": str(path)}) from None


def _records(source: str, text: str) -> list[tuple[int, list[str]]]:
    """(first physical line, fields) of each non-blank record."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    previous = 0
    try:
        for record in reader:
            start, previous = previous + 1, reader.line_num
            if any(cell.strip() for cell in record):
                records.append((start, record))
    except csv.Error as exc:
        raise DeviceImportError(source, [(previous + 1, f"cannot parse the CSV: {exc}; check the quotes "
                                                        f"on this line")]) from None
    return records


def _header(line: int, cells: list[str]) -> tuple[list[str], dict[str, str], list[tuple[int, str]]]:
    """Canonical column per cell, the label of each column as written, and header problems."""
    columns: list[str] = []
    labels: dict[str, str] = {}
    unknown: list[str] = []
    errors: list[tuple[int, str]] = []
    for i, cell in enumerate(cells, start=1):
        written = cell.strip()
        key = re.sub(r"[\s-]+", "_", written.lower())
        column = _CSV_ALIASES.get(key, key)
        if not written:
            errors.append((line, f"column {i} has no name in the header; name it or remove the column"))
        elif column not in CSV_COLUMNS:
            unknown.append(written)
        elif column in labels:
            errors.append((line, f"columns {labels[column]!r} and {written!r} both give the {column}; "
                                 f"keep one"))
        else:
            labels[column] = written
        columns.append(column)
    if unknown:
        errors.append((line, f"unknown column(s) {', '.join(map(repr, unknown))}; the columns are: "
                             f"{', '.join(CSV_COLUMNS)} (address may be headed ip or hostname)"))
    missing = [c for c in CSV_REQUIRED if c not in labels]
    if missing:
        errors.append((line, f"missing required column(s) {', '.join(missing)}; every file needs "
                             f"{', '.join(CSV_REQUIRED)}"))
    return columns, labels, errors


def _topological_levels(rows: Sequence[_Row]) -> list[list[_Row]]:
    """Rows grouped by depth below the parents that are in the same file (no cycles by now)."""
    by_name = {r.values["name"]: r for r in rows}
    depth: dict[int, int] = {}

    def level(row: _Row) -> int:
        chain: list[_Row] = []
        node: _Row | None = row
        while node is not None and node.line not in depth:
            chain.append(node)
            parent = node.values.get("parent")
            node = by_name.get(parent) if parent is not None else None
        base = depth[node.line] if node is not None else -1
        for r in reversed(chain):
            base += 1
            depth[r.line] = base
        return depth[row.line]

    levels: dict[int, list[_Row]] = {}
    for row in rows:
        levels.setdefault(level(row), []).append(row)
    return [levels[d] for d in sorted(levels)]


def import_devices_csv(session: Session, org_id: uuid.UUID, path_or_text: str | Path, *,
                       dry_run: bool = False,
                       progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import devices from CSV, all or nothing.

    Every line is checked first (fields, duplicates in the file and in the database, parents, cycles,
    credential profiles); any bad line raises :class:`DeviceImportError` listing every one, and nothing
    is written. Otherwise the devices are inserted parents first, within one savepoint of the caller's
    transaction. ``progress(done, total)`` is called as devices are inserted.
    """
    source, text = _read(path_or_text)
    records = _records(source, text)
    if not records:
        raise DeviceImportError(source, [(1, f"the file is empty; the first line must be a header such as "
                                             f"{','.join(CSV_COLUMNS)}")])
    header_line, header = records[0]
    columns, labels, errors = _header(header_line, header)
    if errors:
        raise DeviceImportError(source, errors)

    def label(field: str) -> str:
        column = next((c for c, f in _CSV_TO_SPEC.items() if f == field), field)
        return labels.get(column, column)

    rows: list[_Row] = []
    for line, record in records[1:]:
        if len(record) > len(columns) and any(cell.strip() for cell in record[len(columns):]):
            errors.append((line, f"{len(record)} fields but the header has {len(columns)} columns; "
                                 f"quote values that contain commas"))
            continue
        raw: dict[str, object] = {_CSV_TO_SPEC.get(c, c): (record[i] if i < len(record) else "")
                                  for i, c in enumerate(columns)}
        raw["tags"] = raw.get("tags") or None
        values, problems = _clean(raw)
        errors.extend((line, f"{label(field)}: {message}") for field, message in problems.items())
        rows.append(_Row(line, values))

    # Duplicates within the file (the later line is the bad one) and with the database.
    first_name: dict[str, _Row] = {}
    first_address: dict[str, _Row] = {}
    for row in rows:
        name, address = row.values.get("name"), row.values.get("address")
        if name is not None:
            if name in first_name:
                errors.append((row.line, f"{label('name')}: {name!r} is already used on line "
                                         f"{first_name[name].line}; device names must be unique"))
            else:
                first_name[name] = row
        if address is not None:
            if address in first_address:
                earlier = first_address[address]
                owner = repr(earlier.values["name"]) if earlier.values.get("name") else "the device"
                errors.append((row.line, f"{label('address')}: {address!r} is already the address of "
                                         f"{owner} on line {earlier.line}; "
                                         f"each device needs its own address"))
            else:
                first_address[address] = row
    db_names: dict[str, int] = {}
    db_addresses: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(sorted(first_name)):
        db_names.update(session.execute(select(Device.name, Device.id).where(
            Device.organization_id == org_id, Device.name.in_(chunk))).all())
    for chunk in _chunks(sorted(first_address)):
        for dev_id, dev_name, dev_address in session.execute(
                select(Device.id, Device.name, Device.address).where(
                    Device.organization_id == org_id, Device.address.in_(chunk))):
            db_addresses[dev_address] = (dev_id, dev_name)
    for row in rows:
        name, address = row.values.get("name"), row.values.get("address")
        if name in db_names:
            errors.append((row.line, f"{label('name')}: a device named {name!r} already exists in this "
                                     f"organization (id {db_names[name]}); rename the row or remove it"))
        if address in db_addresses:
            dev_id, dev_name = db_addresses[address]
            errors.append((row.line, f"{label('address')}: {address!r} is already the address of device "
                                     f"{dev_name!r} (id {dev_id}) in the database"))

    # Parents: in the file (any line, even later ones) or in the database; no cycles.
    parents = {r.values["parent"] for r in rows if r.values.get("parent") is not None}
    db_parents: dict[str, int] = {}
    for chunk in _chunks(sorted(parents - set(first_name))):
        db_parents.update(session.execute(select(Device.name, Device.id).where(
            Device.organization_id == org_id, Device.name.in_(chunk))).all())
    for row in rows:
        parent = row.values.get("parent")
        if parent is None:
            continue
        if parent == row.values.get("name"):
            errors.append((row.line, f"{label('parent')}: a device cannot be its own parent ({parent!r})"))
        elif parent not in first_name and parent not in db_parents:
            errors.append((row.line, f"{label('parent')}: {parent!r} is neither in this file nor in the "
                                     f"database; add it to the file or leave parent empty"))
    errors.extend(_cycles(first_name, label("parent")))

    # SNMP credential profiles.
    known = {c.name: c for c in session.scalars(
        select(SnmpCredential).where(SnmpCredential.organization_id == org_id))}
    for row in rows:
        name = row.values.get("snmp_credential")
        if name is None or "snmp_version" not in row.values:
            continue
        credential = known.get(name)
        problem = _credential_problem(name, credential, row.values["snmp_version"],
                                      row.values.get("snmp_community"), known)
        if problem:
            errors.append((row.line, f"{label('snmp_credential')}: {problem}"))
        else:
            row.credential = credential
            if row.values["snmp_version"] is None and credential is not None:
                row.values["snmp_version"] = credential.version

    if errors:
        raise DeviceImportError(source, errors)

    for row in rows:
        row.spec = DeviceSpec(**row.values)
    sites = _find_named(session, Site, org_id, (r.values["site"] for r in rows if r.values["site"]))
    groups = _find_named(session, DeviceGroup, org_id, (r.values["group"] for r in rows if r.values["group"]))
    tags = _find_named(session, Tag, org_id, (t for r in rows for t in r.values["tags"]))
    new_sites = _missing(sites, (r.values["site"] for r in rows if r.values["site"]))
    new_groups = _missing(groups, (r.values["group"] for r in rows if r.values["group"]))
    new_tags = _missing(tags, (t for r in rows for t in r.values["tags"]))
    report = ImportReport(devices=len(rows), sites=len(new_sites), groups=len(new_groups), tags=len(new_tags),
                          dry_run=dry_run)
    if dry_run:
        return report
    try:
        with session.begin_nested():
            _insert(session, org_id, rows, db_parents, (sites, new_sites), (groups, new_groups),
                    (tags, new_tags), progress)
    except IntegrityError as exc:
        raise _conflict_from(exc, f"import of {source} (nothing was imported)") from None
    return report


def _missing(found: Mapping[str, _Named], names: Iterable[str]) -> dict[str, str]:
    """slug -> name (first spelling) of the names that match no existing row."""
    missing: dict[str, str] = {}
    for name in names:
        if name not in found:
            missing.setdefault(slugify(name), name)
    return missing


def _cycles(rows_by_name: Mapping[str, _Row], column: str) -> list[tuple[int, str]]:
    """An error on every line of each parent cycle within the file (self-parents are reported apart)."""
    errors: list[tuple[int, str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in rows_by_name:
        path: list[str] = []
        node: str | None = start
        while node is not None and node in rows_by_name and node not in state:
            state[node] = 1
            path.append(node)
            parent = rows_by_name[node].values.get("parent")
            node = parent if parent != node else None
        if node is not None and state.get(node) == 1:
            cycle = path[path.index(node):]
            first = min(range(len(cycle)), key=lambda i: rows_by_name[cycle[i]].line)
            ordered = cycle[first:] + cycle[:first]
            chain = " -> ".join([*ordered, ordered[0]])
            lines = ", ".join(str(rows_by_name[n].line) for n in ordered)
            for n in ordered:
                errors.append((rows_by_name[n].line,
                               f"{column}: {rows_by_name[n].values['parent']!r} closes a cycle {chain} "
                               f"(lines {lines}); leave one of these parents empty"))
        for n in path:
            state[n] = 2
    return errors


def _insert(session: Session, org_id: uuid.UUID, rows: Sequence[_Row], db_parents: Mapping[str, int],
            sites: tuple[dict[str, Site], dict[str, str]],
            groups: tuple[dict[str, DeviceGroup], dict[str, str]],
            tags: tuple[dict[str, Tag], dict[str, str]],
            progress: Callable[[int, int], None] | None) -> None:
    site_by_slug = _create_missing(session, Site, org_id, sites[1])
    group_by_slug = _create_missing(session, DeviceGroup, org_id, groups[1])
    tag_by_slug = _create_missing(session, Tag, org_id, tags[1])

    def site_of(name: str | None) -> Site | None:
        return None if name is None else sites[0].get(name) or site_by_slug[slugify(name)]

    def group_of(name: str | None) -> DeviceGroup | None:
        return None if name is None else groups[0].get(name) or group_by_slug[slugify(name)]

    ids = dict(db_parents)
    done = 0
    for level in _topological_levels(rows):
        for start in range(0, len(level), 500):
            batch: list[tuple[str, Device]] = []
            for row in level[start:start + 500]:
                assert row.spec is not None
                device = Device(organization_id=org_id)
                _fill(device, row.spec, row.credential)
                device.site = site_of(row.spec.site)
                device.group = group_of(row.spec.group)
                device.tags = [tags[0].get(t) or tag_by_slug[slugify(t)] for t in row.spec.tags]
                device.parent_id = ids[row.spec.parent] if row.spec.parent is not None else None
                batch.append((row.spec.name, device))
            session.add_all(d for _, d in batch)
            session.flush()
            ids.update((name, d.id) for name, d in batch)
            done += len(batch)
            if progress is not None:
                progress(done, len(rows))


def _create_missing(session: Session, model: type[_Named], org_id: uuid.UUID,
                    missing: Mapping[str, str]) -> dict[str, _Named]:
    created = {slug: model(organization_id=org_id, name=name, slug=slug) for slug, name in missing.items()}
    session.add_all(created.values())
    session.flush()
    return created
