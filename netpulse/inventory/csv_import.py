"""The all-or-nothing CSV import: every bad line reported by its line number, nothing half-imported."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from netpulse.errors import ValidationError
from netpulse.inventory.devices import _conflict_from, _fill
from netpulse.inventory.labels import _chunks, _find_named, _Named
from netpulse.inventory.validation import DeviceSpec, _clean, _credential_problem, slugify
from netpulse.schema import (
    Device,
    DeviceGroup,
    Site,
    SnmpCredential,
    Tag,
)
from netpulse.text import unescape_cell

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

    rows = _parse_rows(records[1:], columns, label, errors)
    first_name = _check_duplicates(session, org_id, rows, label, errors)
    db_parents = _check_parents(session, org_id, rows, first_name, label, errors)
    _attach_credentials(session, org_id, rows, label, errors)
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


_Label = Callable[[str], str]
_Errors = list[tuple[int, str]]


def _parse_rows(records: Sequence[tuple[int, list[str]]], columns: Sequence[str], label: _Label,
                errors: _Errors) -> list[_Row]:
    """Each record's fields checked on their own; a row keeps the fields that are valid."""
    rows: list[_Row] = []
    for line, record in records:
        if len(record) > len(columns) and any(cell.strip() for cell in record[len(columns):]):
            errors.append((line, f"{len(record)} fields but the header has {len(columns)} columns; "
                                 f"quote values that contain commas"))
            continue
        # A cell the CSV writer escaped ('=x) is read back as it was written before (=x).
        raw: dict[str, object] = {_CSV_TO_SPEC.get(c, c): unescape_cell(record[i]) if i < len(record) else ""
                                  for i, c in enumerate(columns)}
        raw["tags"] = raw.get("tags") or None
        values, problems = _clean(raw)
        errors.extend((line, f"{label(field)}: {message}") for field, message in problems.items())
        rows.append(_Row(line, values))
    return rows


def _check_duplicates(session: Session, org_id: uuid.UUID, rows: Sequence[_Row], label: _Label,
                      errors: _Errors) -> dict[str, _Row]:
    """Names (ignoring case) and addresses unique within the file (the later line is the bad one) and
    with the database.

    Returns the first row of each name in the file.
    """
    first_name: dict[str, _Row] = {}
    first_folded: dict[str, _Row] = {}
    first_address: dict[str, _Row] = {}
    for row in rows:
        name, address = row.values.get("name"), row.values.get("address")
        if name is not None:
            earlier = first_folded.get(name.lower())
            if earlier is not None and earlier.values["name"] == name:
                errors.append((row.line, f"{label('name')}: {name!r} is already used on line "
                                         f"{earlier.line}; device names must be unique"))
            elif earlier is not None:
                errors.append((row.line, f"{label('name')}: {name!r} differs only by case from "
                                         f"{earlier.values['name']!r} on line {earlier.line}; device names "
                                         f"must be unique ignoring case"))
            else:
                first_name[name] = first_folded[name.lower()] = row
        if address is not None:
            if address in first_address:
                earlier = first_address[address]
                owner = repr(earlier.values["name"]) if earlier.values.get("name") else "the device"
                errors.append((row.line, f"{label('address')}: {address!r} is already the address of "
                                         f"{owner} on line {earlier.line}; "
                                         f"each device needs its own address"))
            else:
                first_address[address] = row
    db_names: dict[str, tuple[int, str]] = {}
    db_addresses: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(sorted({n.lower() for n in first_name})):
        for dev_id, dev_name in session.execute(select(Device.id, Device.name).where(
                Device.organization_id == org_id, func.lower(Device.name).in_(chunk))):
            db_names[dev_name.lower()] = (dev_id, dev_name)
    for chunk in _chunks(sorted(first_address)):
        for dev_id, dev_name, dev_address in session.execute(
                select(Device.id, Device.name, Device.address).where(
                    Device.organization_id == org_id, Device.address.in_(chunk))):
            db_addresses[dev_address] = (dev_id, dev_name)
    for row in rows:
        name, address = row.values.get("name"), row.values.get("address")
        if name is not None and name.lower() in db_names:
            dev_id, dev_name = db_names[name.lower()]
            if dev_name == name:
                errors.append((row.line, f"{label('name')}: a device named {name!r} already exists in this "
                                         f"organization (id {dev_id}); rename the row or remove it"))
            else:
                errors.append((row.line, f"{label('name')}: {name!r} differs only by case from device "
                                         f"{dev_name!r} (id {dev_id}) in this organization; device names must "
                                         f"be unique ignoring case"))
        if address in db_addresses:
            dev_id, dev_name = db_addresses[address]
            errors.append((row.line, f"{label('address')}: {address!r} is already the address of device "
                                     f"{dev_name!r} (id {dev_id}) in the database"))
    return first_name


def _check_parents(session: Session, org_id: uuid.UUID, rows: Sequence[_Row], first_name: Mapping[str, _Row],
                   label: _Label, errors: _Errors) -> dict[str, int]:
    """Parents in the file (any line, even later ones) or in the database, and no cycles.

    Returns the ids of the parents found in the database, by name.
    """
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
    return db_parents


def _attach_credentials(session: Session, org_id: uuid.UUID, rows: Sequence[_Row], label: _Label,
                        errors: _Errors) -> None:
    """SNMP credential profiles named by rows: they must exist and fit the row's SNMP version."""
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
