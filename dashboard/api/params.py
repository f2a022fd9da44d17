"""The request side of the API convention: strict models, paging, periods and path ids.

Every query, path and body model derives from :class:`ApiModel` (unknown fields are refused). Lists
page with :class:`Paged` (``page``, ``per_page``; more than the maximum is a 422, never a silent cap);
reads over time take :class:`Period` (``from``/``to`` in ISO 8601, or ``since`` as a duration ending
now), parsed by :mod:`netpulse.timespec` like the CLI's ``--from``/``--to``/``--since``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import UnionType
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from netpulse import timespec
from netpulse.errors import ValidationError

__all__ = ["INT32_MAX", "ApiModel", "PathModel", "Paged", "Period", "OptionalText", "Time", "Duration", "DeviceId",
           "DevicePath", "split_list"]

INT32_MAX = 2**31 - 1  # ids are PostgreSQL integers


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """An optional parameter whose schema leaves out the null branch has no default to show."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None and "anyOf" not in prop and prop.get("type") != "null":
            del prop["default"]


class ApiModel(BaseModel):
    """A request model: unknown fields are an error that names the allowed ones, never ignored, and no
    text may hold a NUL character (PostgreSQL cannot store one) or a lone surrogate (valid JSON that
    UTF-8 cannot carry)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra=_no_null_defaults)

    @model_validator(mode="before")
    @classmethod
    def _empty_body(cls, value: Any) -> Any:
        """An empty request body is an empty object, so missing fields are named one by one."""
        return {} if value is None else value

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        problem = _text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


def _text_problem(value: Any) -> str | None:
    """Why some text in ``value`` cannot be stored, or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return "must not contain a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be text UTF-8 can carry (no lone surrogates)"
        return None
    items = value.items() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    for item in items:
        for part in item if isinstance(value, dict) else (item,):
            problem = _text_problem(part)
            if problem is not None:
                return problem
    return None


class PathModel(ApiModel):
    """Path parameters. A value that cannot name anything (a malformed or out-of-range id) is a 404
    with ``not_found_code``, like an id that names nothing in this organization."""

    not_found_code: ClassVar[str] = "NOT_FOUND"


def _problem(exc: ValidationError) -> ValueError:
    """A core validation error as pydantic reports a field's problem (its message, not its field name)."""
    return ValueError(next(iter(exc.details.values()), exc.message) if exc.details else exc.message)


def _parsed_by(parse: Callable[[Any], Any], kinds: type | UnionType) -> Callable[[Any], Any]:
    """A validator reading values of ``kinds`` with ``parse`` (the CLI's parser); its error is the field's."""

    def validate(value: Any) -> Any:
        if isinstance(value, kinds):
            try:
                return parse(value)
            except ValidationError as exc:
                raise _problem(exc) from None
        return value

    return validate


_time = _parsed_by(timespec.parse_time, str)
_duration = _parsed_by(timespec.parse_duration, str | int | float)


def split_list(value: Any) -> Any:
    """``a,b`` and repeated parameters alike: one flat list of stripped, non-empty items."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [part.strip() for item in value for part in str(item).split(",") if part.strip()]
    return value


# A query value that may be left out (the schema shows the type, not a null branch).
OptionalText = Annotated[str, Field(min_length=1, max_length=255)] | SkipJsonSchema[None]
Time = Annotated[datetime, BeforeValidator(_time), Field(json_schema_extra={"format": "date-time"})]
Duration = Annotated[timedelta, BeforeValidator(_duration),
                     Field(json_schema_extra={"type": "string", "pattern": r"^\s*(\d+(\.\d+)?[wdhms]?\s*)+$",
                                              "example": "24h"})]
DeviceId = Annotated[int, Field(ge=1, le=INT32_MAX, description="A device id")]


class DevicePath(PathModel):
    not_found_code: ClassVar[str] = "DEVICE_NOT_FOUND"
    device_id: DeviceId


class Paged(ApiModel):
    """``page`` (from 1) and ``per_page`` (up to ``MAX_PER_PAGE``); answers carry the totals."""

    MAX_PER_PAGE: ClassVar[int] = 200
    page: int = Field(1, ge=1, le=1_000_000, description="The page, from 1.")
    per_page: int = Field(50, ge=1, le=200, description="Items per page (at most 200).")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def window(self, items: list[Any]) -> list[Any]:
        """This page of a list that was read whole."""
        return items[self.offset:self.offset + self.per_page]


class Period(ApiModel):
    """``from``/``to`` (ISO 8601; UTC unless an offset is given, sent as ``%2B`` in a URL) or ``since``
    (a duration that ends now: ``90m``, ``24h``, ``7d``, ``1d12h``). ``to`` alone ends the default span."""

    from_: Time | SkipJsonSchema[None] = Field(None, alias="from", description="Start, inclusive (ISO 8601).")
    to: Time | SkipJsonSchema[None] = Field(None, description="End, exclusive (ISO 8601) [default: now].")
    since: Duration | SkipJsonSchema[None] = Field(None, description="A duration ending now, instead of from/to.")

    def span(self, default: timedelta, *, maximum: timedelta | None = None, clip_to_now: bool = False,
             now: datetime | None = None) -> tuple[datetime, datetime]:
        """(start, end): ``since`` back from now, or ``from``/``to`` with ``to`` defaulting to now and
        ``from`` to ``default`` before ``to``. ``clip_to_now`` ends a period that runs into the future
        now (what is not known yet cannot count). Conflicts and empty or too long spans are 422s."""
        now = now or datetime.now(UTC)
        if self.since is not None and (self.from_ is not None or self.to is not None):
            raise ValidationError("use either since or from/to, not both",
                                  details={"since": "use either since or from/to, not both"})
        if self.since is not None:
            start, end = now - self.since, now
        else:
            end = self.to or now
            if clip_to_now:
                end = min(end, now)
            start = self.from_ or end - default
        if clip_to_now and start >= now:
            raise ValidationError(f"from ({start.isoformat()}) is in the future", details={"from": "is in the future"})
        if end <= start:
            raise ValidationError(f"to must be after from ({start.isoformat()})",
                                  details={"to": f"must be after from ({start.isoformat()})"})
        if maximum is not None and end - start > maximum:
            field = "since" if self.since is not None else "to"
            raise ValidationError(f"the period may span at most {maximum.days} days",
                                  details={field: f"the period may span at most {maximum.days} days"})
        return start, end
