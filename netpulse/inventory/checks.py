"""Service checks of devices: a TCP port or an HTTP(S) URL, probed by ingest.tcp and ingest.http."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from netpulse.errors import Conflict, NotFound, StorageError, ValidationError
from netpulse.inventory.devices import get_device
from netpulse.inventory.validation import (
    _check_bool,
    _check_int,
    _check_timeout,
    _Invalid,
    _ip_of,
    _is_hostname,
    _optional_text,
    _text,
)
from netpulse.schema import (
    CheckKind,
    Device,
    ServiceCheck,
)

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
