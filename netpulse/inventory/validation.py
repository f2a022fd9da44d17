"""Device fields: the input record, and checks that return the normalized value or name what is wrong."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netpulse.crypto import mask
from netpulse.errors import ValidationError
from netpulse.schema import (
    DeviceStatus,
    DeviceType,
    OperStatus,
    SnmpCredential,
)
from netpulse.text import name_problem, text_problem

_TYPES = ", ".join(t.value for t in DeviceType)
_STATUSES = ", ".join(s.value for s in DeviceStatus)
_OPER = ", ".join(s.value for s in OperStatus)
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)


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


# Field validation: each check returns the normalized value or raises _Invalid naming the value.


class _Invalid(Exception):
    pass


def _text(value: object) -> str:
    """Stripped text; NUL, other control characters and direction overrides are refused (line breaks
    and tabs are for free text: :func:`_free_text`)."""
    text = _free_text(value)
    if any(ch in text for ch in "\t\n\r"):
        raise _Invalid(f"{_shown(text)} contains a line break or tab; keep it on one line")
    return text


def _free_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        text = value.strip()
        problem = text_problem(text)
        if problem is not None:
            raise _Invalid(f"{_shown(text)} {problem}")
        return text
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Invalid(f"{value!r} is not text")


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:40]!r}..."


def _named(text: str) -> str:
    """A name people read: no invisible or reordering character, no formula start."""
    problem = name_problem(text)
    if problem is not None:
        raise _Invalid(f"{_shown(text)} {problem}")
    return text


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
    return _named(name)


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
    return None if name is None else _named(name)


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
    "description": _free_text,
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
        errors["snmp_community"] = (f"a community ({mask(community)}) is only used with SNMP v2c; remove it "
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
                f"({mask(community)})")
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
