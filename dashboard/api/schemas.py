"""The answer side of the API convention: the spec's envelope as models, for the OpenAPI document.

Every answer is ``{"success": true, "data": ..., ["pagination": ...,] "meta": ...}`` or
``{"success": false, "error": {"code", "message", "details"}, "meta": ...}`` (built by
:mod:`dashboard.envelope`); :func:`envelope_of` names the model of one operation's success answer.
Resource data are :class:`Out` models, which also serialize the answers, so the document and the
bytes sent cannot drift apart.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

__all__ = ["Out", "Meta", "ErrorBody", "ErrorEnvelope", "Pagination", "Deleted", "envelope_of"]


class Out(BaseModel):
    """A resource as the API shows it."""

    model_config = ConfigDict(from_attributes=True)


class Meta(BaseModel):
    timestamp: str = Field(description="When the answer was made (ISO 8601, UTC).")
    version: Literal["v1"]
    request_id: str = Field(description="The caller's X-Request-ID when it was sane, else a new req_<hex>.")


class ErrorBody(BaseModel):
    code: str = Field(description="A stable code such as INVALID_INPUT, DEVICE_NOT_FOUND or TOKEN_EXPIRED.")
    message: str
    details: dict[str, Any] = Field(description="For invalid input: a message per field or parameter.")


class ErrorEnvelope(BaseModel):
    success: Literal[False]
    error: ErrorBody
    meta: Meta


class Pagination(BaseModel):
    page: int
    per_page: int
    total: int = Field(description="How many items match in all.")
    total_pages: int
    has_next: bool
    has_prev: bool


class Deleted(Out):
    deleted: int = Field(description="How many were deleted.")


@cache
def envelope_of(data: type[BaseModel] | None, *, many: bool = False, paginated: bool = False,
                content: tuple[tuple[str, str], ...] = ()) -> type[BaseModel]:
    """The success envelope carrying ``data`` (a list of them with ``many``; a ``pagination`` block with
    ``paginated``). ``content`` adds other media types the operation can answer with (e.g. text/csv)."""
    inner: Any = dict[str, Any] if data is None else (list[data] if many else data)  # type: ignore[valid-type]
    name = ("Page" if paginated else "List" if many else "") + (data.__name__ if data is not None else "Object")
    fields: dict[str, Any] = {"success": (Literal[True], ...), "data": (inner, ...)}
    if paginated:
        fields["pagination"] = (Pagination, ...)
    fields["meta"] = (Meta, ...)
    extra = {"content": {media: {"schema": {"type": "string", "description": about}} for media, about in content}}
    config = ConfigDict(openapi_extra=extra) if content else ConfigDict()  # type: ignore[typeddict-unknown-key]
    return create_model(f"{name}Envelope", __config__=config, **fields)
