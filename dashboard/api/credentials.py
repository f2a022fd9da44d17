"""SNMP credential profiles, for admins (:mod:`netpulse.inventory.credentials`, as ``netpulse snmp
credential`` uses them): v2c communities and v3 users. Secrets are write-only and shown masked."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from flask_openapi3 import Tag
from pydantic import ConfigDict, Field, JsonValue
from werkzeug.wrappers import Response

from dashboard.api.params import INT32_MAX, ApiModel, Paged, PathModel
from dashboard.api.routing import ok, operation, page_of, unit_of_work
from dashboard.api.schemas import Out
from dashboard.auth import current_org_id
from netpulse.inventory import credentials
from netpulse.schema import SnmpCredential

TAG = Tag(name="snmp-credentials", description="SNMP credential profiles (admins only).")
_AUTH: list[JsonValue] = list(credentials.AUTH_PROTOCOLS)
_PRIV: list[JsonValue] = list(credentials.PRIV_PROTOCOLS)


class CredentialOut(Out):
    id: int
    name: str
    version: str
    security_level: str = Field(description="community (v2c), or noAuthNoPriv, authNoPriv or authPriv (v3).")
    community: str | None = Field(description="Masked.")
    username: str | None
    auth_protocol: str | None
    auth_password: str | None = Field(description="Masked.")
    priv_protocol: str | None
    priv_password: str | None = Field(description="Masked.")
    devices: int = Field(description="Devices using the profile.")


class CredentialBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "name": "core-v3", "version": "3", "username": "netpulse", "auth_protocol": "SHA",
        "auth_password": "authpass123", "priv_protocol": "AES", "priv_password": "privpass123"}})
    name: str = Field(min_length=1, max_length=100)
    version: Literal["2c", "3"]
    community: str | None = Field(None, max_length=255, description="v2c; write-only.")
    username: str | None = Field(None, max_length=32, description="v3: the agent's USM user.")
    auth_protocol: Annotated[str, Field(max_length=10, json_schema_extra={"enum": _AUTH})] | None = None
    auth_password: str | None = Field(None, max_length=255, description="Write-only.")
    priv_protocol: Annotated[str, Field(max_length=10, json_schema_extra={"enum": _PRIV})] | None = None
    priv_password: str | None = Field(None, max_length=255, description="Write-only.")


class CredentialPath(PathModel):
    not_found_code: ClassVar[str] = "SNMP_CREDENTIAL_NOT_FOUND"
    credential_id: int = Field(ge=1, le=INT32_MAX)


class RemoveQuery(ApiModel):
    force: bool = Field(False, description="Detach the devices using it (their SNMP polling stops unless they "
                                           "have a v2c community of their own).")


class Removed(Out):
    deleted: int
    detached: list[str] = Field(description="Devices the profile was detached from.")


def _out(credential: SnmpCredential, devices: int) -> CredentialOut:
    return CredentialOut.model_validate(credentials.credential_view(credential, devices=devices))


@operation("GET", "/snmp-credentials", tag=TAG, permission="admin", data=CredentialOut, many=True, paginated=True)
def list_snmp_credentials(query: Paged) -> Response:
    """The organization's SNMP credential profiles by name, each with how many devices use it."""
    with unit_of_work() as session:
        found = credentials.list_snmp_credentials(session, current_org_id())
        items = [_out(u.credential, u.devices) for u in query.window(list(found))]
    return page_of(items, len(found), query)


@operation("POST", "/snmp-credentials", tag=TAG, permission="admin", data=CredentialOut, status=201, conflict=True)
def add_snmp_credential(body: CredentialBody) -> Response:
    """Add a profile (409 SNMP_CREDENTIAL_ALREADY_EXISTS when the name is taken)."""
    with unit_of_work() as session:
        added = credentials.add_snmp_credential(session, current_org_id(),
                                                credentials.SnmpCredentialSpec(**body.model_dump()))
        out = _out(added, 0)
    return ok(out, status=201)


@operation("GET", "/snmp-credentials/<credential_id>", tag=TAG, permission="admin", data=CredentialOut)
def get_snmp_credential(path: CredentialPath) -> Response:
    """One profile, its secrets masked."""
    with unit_of_work() as session:
        found = credentials.get_snmp_credential(session, current_org_id(), path.credential_id)
        usage = {u.credential.id: u.devices for u in credentials.list_snmp_credentials(session, current_org_id())}
        return ok(_out(found, usage.get(found.id, 0)))


@operation("DELETE", "/snmp-credentials/<credential_id>", tag=TAG, permission="admin", data=Removed, conflict=True)
def remove_snmp_credential(path: CredentialPath, query: RemoveQuery) -> Response:
    """Remove a profile; 409 SNMP_CREDENTIAL_IN_USE naming the devices using it, unless ``force``."""
    with unit_of_work() as session:
        detached = credentials.remove_snmp_credential(session, current_org_id(), path.credential_id,
                                                      force=query.force)
    return ok(Removed(deleted=1, detached=detached))
