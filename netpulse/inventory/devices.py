"""Devices: create, read, list with filters, update, delete, and status counts."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Connection, Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from netpulse.errors import Conflict, NotFound, StorageError, ValidationError
from netpulse.inventory.labels import get_or_create_group, get_or_create_site, get_or_create_tag
from netpulse.inventory.validation import (
    _OPER,
    SPEC_FIELDS,
    DeviceSpec,
    _clean,
    _credential_problem,
    _invalid,
    _ip_of,
    slugify,
)
from netpulse.schema import (
    Device,
    DeviceGroup,
    DeviceStatus,
    DeviceType,
    OperStatus,
    Site,
    SnmpCredential,
    Tag,
    device_tags,
)


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
    """Names are unique ignoring case (``Core-1`` and ``core-1`` would read as one device), addresses exactly."""
    stmt = select(Device.id, Device.name, Device.address).where(
        Device.organization_id == org_id, or_(func.lower(Device.name) == name.lower(), Device.address == address))
    if exclude_id is not None:
        stmt = stmt.where(Device.id != exclude_id)
    details: dict[str, str] = {}
    for row in session.execute(stmt):
        if row.name == name:
            details["name"] = (f"a device named {name!r} already exists (id {row.id}); choose another name "
                               f"or update that device")
        elif row.name.lower() == name.lower():
            details["name"] = (f"{name!r} differs only by case from device {row.name!r} (id {row.id}); device "
                               f"names must be unique ignoring case")
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
    # An id no integer column can hold names no device (asking PostgreSQL would be an out-of-range error).
    fits = -2**31 <= device_id < 2**31
    device = session.scalar(_loaded(select(Device).where(Device.organization_id == org_id,
                                                         Device.id == device_id))) if fits else None
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


def delete_devices(session: Session, org_id: uuid.UUID, device_ids: Iterable[int]) -> int:
    """Delete several devices, all or none: when any id is not a device of the organization, nothing
    is deleted and NotFound (DEVICE_NOT_FOUND) lists every missing id. Returns how many were deleted."""
    wanted = sorted(set(device_ids))
    found = set(session.scalars(select(Device.id).where(Device.organization_id == org_id, Device.id.in_(wanted))))
    missing = [i for i in wanted if i not in found]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (", ..." if len(missing) > 20 else "")
        raise NotFound(f"{len(missing)} of the devices are not in this organization ({shown}); nothing was deleted",
                       details={"device_ids": [str(i) for i in missing]}, code="DEVICE_NOT_FOUND")
    for device in session.scalars(select(Device).where(Device.organization_id == org_id, Device.id.in_(wanted))):
        session.delete(device)
    session.flush()
    return len(wanted)


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
