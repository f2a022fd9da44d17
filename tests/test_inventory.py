"""Device inventory: CRUD, filters, organization isolation and validation messages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from cli import main
from netpulse.config import get_settings
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.inventory import (
    DeviceSpec,
    create_device,
    delete_device,
    get_device,
    get_or_create_group,
    get_or_create_site,
    get_or_create_tag,
    list_devices,
    slugify,
    status_counts,
    update_device,
)
from netpulse.schema import Device, DeviceStatus, DeviceType
from tests.factories import make_org

TYPES = "router, switch, firewall, server, access_point, load_balancer, wireless_controller, storage, other"



@pytest.fixture
def org_a(db: psycopg.Connection) -> uuid.UUID:
    return make_org(db, "acme")


@pytest.fixture
def org_b(db: psycopg.Connection) -> uuid.UUID:
    return make_org(db, "globex")


def spec(name: str, address: str, device_type: str = "router", **kw: Any) -> DeviceSpec:
    return DeviceSpec(name=name, address=address, device_type=device_type, **kw)


def _fleet(session: Session, org: uuid.UUID) -> dict[str, Device]:
    """core-1 <- dist-1 <- acc-1, acc-2 in Lagos; srv-1 in Abuja."""
    made = {}
    made["core-1"] = create_device(session, org, spec("core-1", "10.0.0.1", site="Lagos HQ", group="Core",
                                                      tags=["core", "critical"]))
    made["dist-1"] = create_device(session, org, spec("dist-1", "10.0.0.2", "switch", site="lagos-hq",
                                                      group="Distribution", parent="core-1"))
    made["acc-1"] = create_device(session, org, spec("acc-1", "10.0.1.1", "switch", site="Lagos HQ",
                                                     group="Access", parent="dist-1", tags=["poe"],
                                                     description="Floor 1, room 100%"))
    made["acc-2"] = create_device(session, org, spec("acc-2", "acc-2.lagos.example.net", "access_point",
                                                     site="Lagos HQ", group="Access", parent="dist-1",
                                                     tags=["poe", "Critical"]))
    made["srv-1"] = create_device(session, org, spec("srv-1", "2001:db8::10", "server", site="Abuja DC"))
    return made


# --- create and read ---------------------------------------------------------------------------------


def test_create_device_resolves_site_group_tags_and_parent(session: Session, org_a: uuid.UUID) -> None:
    fleet = _fleet(session, org_a)
    acc = get_device(session, org_a, fleet["acc-2"].id)
    assert acc.name == "acc-2" and acc.device_type == "access_point" and acc.status == "active"
    assert acc.address == "acc-2.lagos.example.net" and acc.ip_address is None  # hostname: no inet
    assert acc.site is not None and (acc.site.name, acc.site.slug) == ("Lagos HQ", "lagos-hq")
    assert acc.group is not None and acc.group.slug == "access"
    assert acc.parent is not None and acc.parent.name == "dist-1"
    assert sorted(t.slug for t in acc.tags) == ["critical", "poe"]
    # 'Critical' found the tag 'critical' made for core-1; 'lagos-hq' found the site 'Lagos HQ'.
    assert fleet["core-1"].site_id == fleet["dist-1"].site_id == acc.site_id
    assert {t.id for t in fleet["core-1"].tags} & {t.id for t in acc.tags}
    srv = fleet["srv-1"]
    assert str(srv.ip_address) == "2001:db8::10" and srv.snmp_port == 161 and srv.snmp_version is None


def test_addresses_are_stored_in_canonical_form(session: Session, org_a: uuid.UUID) -> None:
    v6 = create_device(session, org_a, spec("v6", "2001:DB8:0:0::1"))
    host = create_device(session, org_a, spec("host", "Router-1.Example.NET."))
    assert (v6.address, str(v6.ip_address)) == ("2001:db8::1", "2001:db8::1")
    assert (host.address, host.ip_address) == ("router-1.example.net", None)


def test_get_or_create_helpers_slugify_and_reuse(session: Session, org_a: uuid.UUID) -> None:
    site = get_or_create_site(session, org_a, "Lagos HQ / Rack 2")
    assert (site.name, site.slug) == ("Lagos HQ / Rack 2", "lagos-hq-rack-2")
    assert get_or_create_site(session, org_a, "lagos-hq-rack-2").id == site.id
    assert get_or_create_group(session, org_a, "Core").id == get_or_create_group(session, org_a, "core").id
    assert get_or_create_tag(session, org_a, "Día 1").slug == "dia-1"
    with pytest.raises(ValidationError) as exc_info:
        get_or_create_site(session, org_a, "!!!")
    assert exc_info.value.details == {"site": "'!!!' has no letters or digits to build a slug from"}
    assert slugify("  Abuja DC (main) ") == "abuja-dc-main"


def test_get_device_not_found(session: Session, org_a: uuid.UUID) -> None:
    with pytest.raises(NotFound) as exc_info:
        get_device(session, org_a, 4242)
    assert exc_info.value.code == "DEVICE_NOT_FOUND"
    assert exc_info.value.message == "device with id 4242 not found in this organization"


def test_snmp_settings_and_credential_profiles(session: Session, org_a: uuid.UUID,
                                               db: psycopg.Connection) -> None:
    db.execute("INSERT INTO snmp_credentials (organization_id, name, version, username) "
               "VALUES (%s, 'v3-ops', '3', 'netpulse')", (org_a,))
    v3 = create_device(session, org_a, spec("fw-1", "10.0.0.9", "firewall", snmp_credential="v3-ops",
                                            snmp_port=1161, probe_interval_s=30, probe_timeout_s=1.5,
                                            probe_count=5))
    assert (v3.snmp_version, v3.snmp_port, v3.snmp_credential_id is not None) == ("3", 1161, True)
    assert (v3.probe_interval_s, v3.probe_timeout_s, v3.probe_count) == (30, 1.5, 5)
    v2 = create_device(session, org_a, spec("sw-1", "10.0.0.10", "switch", snmp_community="public"))
    assert (v2.snmp_version, v2.snmp_community) == ("2c", "public")  # a community alone means v2c


# --- list and filters --------------------------------------------------------------------------------


def _names(devices: list[Device]) -> list[str]:
    return [d.name for d in devices]


def test_list_devices_filters(session: Session, org_a: uuid.UUID, db: psycopg.Connection) -> None:
    fleet = _fleet(session, org_a)
    session.commit()
    db.execute("UPDATE devices SET oper_status = 'down' WHERE name IN ('acc-1', 'srv-1')")
    db.execute("UPDATE devices SET oper_status = 'up' WHERE name = 'core-1'")
    session.expire_all()

    def names(**kw: Any) -> tuple[list[str], int]:
        found, total = list_devices(session, org_a, **kw)
        return _names(found), total

    assert names() == (["acc-1", "acc-2", "core-1", "dist-1", "srv-1"], 5)
    assert names(site="lagos-hq") == (["acc-1", "acc-2", "core-1", "dist-1"], 4)
    assert names(site="Abuja DC") == (["srv-1"], 1)
    assert names(site="nowhere") == ([], 0)
    assert names(group="Access") == (["acc-1", "acc-2"], 2)
    assert names(tag="critical") == (["acc-2", "core-1"], 2)
    assert names(tag="POE") == (["acc-1", "acc-2"], 2)
    assert names(oper_status="down") == (["acc-1", "srv-1"], 2)
    assert names(oper_status="unknown") == (["acc-2", "dist-1"], 2)
    assert names(search="LAGOS.example") == (["acc-2"], 1)
    assert names(search="100%") == (["acc-1"], 1)  # % is literal, not a wildcard
    assert names(search="10.0.0.") == (["core-1", "dist-1"], 2)
    assert names(site="Lagos HQ", group="access", oper_status="down") == (["acc-1"], 1)
    assert names(limit=2) == (["acc-1", "acc-2"], 5)
    assert names(limit=2, offset=4) == (["srv-1"], 5)
    page, _ = list_devices(session, org_a, tag="poe")
    assert page[0].site is not None and page[0].parent is not None and page[0].parent.id == fleet["dist-1"].id


def test_list_devices_rejects_bad_filters(session: Session, org_a: uuid.UUID) -> None:
    with pytest.raises(ValidationError) as exc_info:
        list_devices(session, org_a, oper_status="sideways", limit=-1)
    assert exc_info.value.details == {
        "oper_status": "'sideways' is not an operational status; use one of: unknown, up, degraded, down",
        "limit": "-1 is negative; use 0 or more",
    }


def test_status_counts_has_every_status(session: Session, org_a: uuid.UUID, db: psycopg.Connection) -> None:
    assert status_counts(session, org_a) == {"unknown": 0, "up": 0, "degraded": 0, "down": 0}
    _fleet(session, org_a)
    session.commit()
    db.execute("UPDATE devices SET oper_status = 'up' WHERE name LIKE 'acc-%'")
    db.execute("UPDATE devices SET oper_status = 'degraded' WHERE name = 'core-1'")
    expected = {"unknown": 2, "up": 2, "degraded": 1, "down": 0}
    assert status_counts(db, org_a) == expected  # a plain psycopg connection
    assert status_counts(session, org_a) == expected  # or a session


# --- organization isolation --------------------------------------------------------------------------


def test_org_b_never_sees_org_a(session: Session, org_a: uuid.UUID, org_b: uuid.UUID) -> None:
    fleet = _fleet(session, org_a)
    core_id = fleet["core-1"].id
    assert list_devices(session, org_b) == ([], 0)
    assert list_devices(session, org_b, site="lagos-hq", tag="core") == ([], 0)
    assert status_counts(session, org_b) == {"unknown": 0, "up": 0, "degraded": 0, "down": 0}
    for call in (lambda: get_device(session, org_b, core_id),
                 lambda: update_device(session, org_b, core_id, {"description": "mine now"}),
                 lambda: delete_device(session, org_b, core_id)):
        with pytest.raises(NotFound) as exc_info:
            call()
        assert exc_info.value.code == "DEVICE_NOT_FOUND"
    # Names, addresses, sites and tags are per organization; parents must be in the same one.
    twin = create_device(session, org_b, spec("core-1", "10.0.0.1", site="Lagos HQ", tags=["core"]))
    assert twin.site_id != fleet["core-1"].site_id
    with pytest.raises(ValidationError) as invalid:
        create_device(session, org_b, spec("edge-1", "10.0.0.5", parent="dist-1"))
    assert invalid.value.details == {
        "parent": "no device named 'dist-1' in this organization; add it first or leave parent empty"}
    assert get_device(session, org_a, core_id).description == ""


# --- update and delete --------------------------------------------------------------------------------


def test_update_device(session: Session, org_a: uuid.UUID) -> None:
    fleet = _fleet(session, org_a)
    acc = update_device(session, org_a, fleet["acc-1"].id, {
        "name": "acc-1b", "address": "10.0.1.100", "site": "Abuja DC", "tags": ["uplink"], "parent": "core-1",
        "status": DeviceStatus.PLANNED, "device_type": DeviceType.ACCESS_POINT, "group": None,
    })
    assert (acc.name, acc.address, str(acc.ip_address), acc.status, acc.device_type) == (
        "acc-1b", "10.0.1.100", "10.0.1.100", "planned", "access_point")
    assert acc.site is not None and acc.site.slug == "abuja-dc"
    assert acc.group is None and acc.parent is not None and acc.parent.name == "core-1"
    assert [t.name for t in acc.tags] == ["uplink"]
    same = update_device(session, org_a, acc.id, {"description": "moved"})  # other fields stay as they are
    assert (same.name, same.parent_id, same.description) == ("acc-1b", fleet["core-1"].id, "moved")


def test_update_rejects_cycles_and_unknown_fields(session: Session, org_a: uuid.UUID) -> None:
    fleet = _fleet(session, org_a)
    with pytest.raises(ValidationError) as exc_info:
        update_device(session, org_a, fleet["core-1"].id, {"parent": "acc-1"})
    assert exc_info.value.details == {
        "parent": "'acc-1' is below 'core-1' (core-1 -> acc-1 -> dist-1 -> core-1); a device cannot be its own "
                  "ancestor, so choose another parent or first move 'acc-1'"}
    with pytest.raises(ValidationError) as exc_info:
        update_device(session, org_a, fleet["core-1"].id, {"parent": "core-1"})
    assert exc_info.value.details == {"parent": "a device cannot be its own parent ('core-1')"}
    with pytest.raises(ValidationError) as exc_info:
        update_device(session, org_a, fleet["core-1"].id, {"colour": "red"})
    assert exc_info.value.details == {"colour": "'colour' is not a device field"}
    with pytest.raises(Conflict) as conflict:
        update_device(session, org_a, fleet["core-1"].id, {"name": "dist-1"})
    assert conflict.value.code == "DEVICE_ALREADY_EXISTS"
    assert get_device(session, org_a, fleet["core-1"].id).parent_id is None


def test_delete_device_detaches_children(session: Session, org_a: uuid.UUID) -> None:
    fleet = _fleet(session, org_a)
    delete_device(session, org_a, fleet["dist-1"].id)
    session.expire_all()
    with pytest.raises(NotFound):
        get_device(session, org_a, fleet["dist-1"].id)
    assert get_device(session, org_a, fleet["acc-1"].id).parent_id is None
    assert list_devices(session, org_a)[1] == 4


# --- validation messages -----------------------------------------------------------------------------

INVALID: list[tuple[dict[str, Any], str, dict[str, str]]] = [
    ({"address": "300.1.1.1"}, "INVALID_IP_ADDRESS",
     {"address": "'300.1.1.1' is not a valid IP address or hostname"}),
    ({"address": "fe80::1%eth0"}, "INVALID_IP_ADDRESS",
     {"address": "'fe80::1%eth0' carries a zone index (%eth0), which is not supported; give the address "
                 "without it"}),
    ({"address": ""}, "INVALID_IP_ADDRESS",
     {"address": "an address is required: an IPv4 or IPv6 address or a hostname"}),
    ({"device_type": "toaster"}, "INVALID_DEVICE_TYPE",
     {"device_type": f"'toaster' is not a device type; use one of: {TYPES}"}),
    ({"name": "  "}, "INVALID_INPUT", {"name": "a name is required"}),
    ({"status": "retired"}, "INVALID_INPUT",
     {"status": "'retired' is not a device status; use one of: offline, active, planned, staged, failed, "
                "inventory, decommissioning"}),
    ({"snmp_version": "1"}, "INVALID_INPUT",
     {"snmp_version": "'1' is not a supported SNMP version; use 2c or 3, or leave it empty to not poll SNMP"}),
    ({"snmp_version": "2c"}, "INVALID_INPUT",
     {"snmp_community": "SNMP v2c needs a community; set snmp_community or name a credential profile in "
                        "snmp_credential"}),
    ({"snmp_version": "3"}, "INVALID_INPUT",
     {"snmp_credential": "SNMP v3 needs a credential profile holding the user and keys; name one in "
                         "snmp_credential"}),
    ({"snmp_credential": "nope"}, "INVALID_INPUT",
     {"snmp_credential": "no SNMP credential profile named 'nope' in this organization; none are defined yet"}),
    ({"snmp_port": 0, "probe_interval_s": 86401, "probe_timeout_s": 0.0, "probe_count": 101}, "INVALID_INPUT",
     {"snmp_port": "0 is out of range; use 1 to 65535 (a UDP port)",
      "probe_interval_s": "86401 is out of range; use 1 to 86400 seconds",
      "probe_timeout_s": "0 is out of range; use more than 0 and at most 60 seconds",
      "probe_count": "101 is out of range; use 1 to 100 probes"}),
    ({"parent": "ghost"}, "INVALID_INPUT",
     {"parent": "no device named 'ghost' in this organization; add it first or leave parent empty"}),
    ({"parent": "new-1"}, "INVALID_INPUT", {"parent": "a device cannot be its own parent ('new-1')"}),
    ({"site": "***", "tags": ["ok", "x" * 101]}, "INVALID_INPUT",
     {"site": "'***' has no letters or digits to build a slug from",
      "tags": f"tag {'x' * 40!r}... is longer than 100 characters"}),
    ({"name": "core\u200b-1", "group": "=HYPERLINK(1)", "description": "up\x00link"}, "INVALID_INPUT",
     {"name": r"'core\u200b-1' contains U+200B ZERO WIDTH SPACE, an invisible character; remove it",
      "group": "'=HYPERLINK(1)' starts with '=', which a spreadsheet runs as a formula; start it with a letter "
               "or a digit",
      "description": r"'up\x00link' contains U+0000, a control character; remove it"}),
]


@pytest.mark.parametrize(("fields", "code", "details"), INVALID, ids=[", ".join(f) for f, _, _ in INVALID])
def test_validation_messages(fields: dict[str, Any], code: str, details: dict[str, str], session: Session,
                             org_a: uuid.UUID) -> None:
    values: dict[str, Any] = {"name": "new-1", "address": "10.9.9.9", "device_type": "router", **fields}
    with pytest.raises(ValidationError) as exc_info:
        create_device(session, org_a, DeviceSpec(**values))
    assert exc_info.value.code == code
    assert exc_info.value.details == details
    first_field, first_message = next(iter(details.items()))
    assert f"{first_field}: {first_message}" in exc_info.value.message
    assert list_devices(session, org_a) == ([], 0)


def test_duplicate_name_or_address_is_a_conflict(session: Session, org_a: uuid.UUID) -> None:
    first = create_device(session, org_a, spec("core-1", "2001:db8::1"))
    with pytest.raises(Conflict) as exc_info:
        create_device(session, org_a, spec("core-1", "10.0.0.2"))
    assert exc_info.value.code == "DEVICE_ALREADY_EXISTS"
    assert exc_info.value.details == {
        "name": f"a device named 'core-1' already exists (id {first.id}); choose another name or update that "
                "device"}
    with pytest.raises(Conflict) as exc_info:
        create_device(session, org_a, spec("core-2", "2001:DB8:0::1"))  # the same address spelled differently
    assert exc_info.value.details == {
        "address": f"'2001:db8::1' is already the address of device 'core-1' (id {first.id})"}
    with pytest.raises(Conflict) as exc_info:
        create_device(session, org_a, spec("Core-1", "10.0.0.3"))
    assert exc_info.value.details == {
        "name": f"'Core-1' differs only by case from device 'core-1' (id {first.id}); device names must be unique "
                "ignoring case"}
    assert list_devices(session, org_a)[1] == 1


# --- the CLI: add, list, remove -----------------------------------------------------------------------


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("NETPULSE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_add_list_remove(cli: CliRunner, org_a: uuid.UUID, db: psycopg.Connection) -> None:
    added = cli.invoke(main, ["devices", "add", "core-1", "10.0.0.1", "--type", "router", "--site", "Lagos HQ",
                              "--tag", "core"])
    assert added.exit_code == 0, added.output
    assert added.stdout == "added device 'core-1' (id 1): router at 10.0.0.1\n"
    added = cli.invoke(main, ["devices", "add", "sw-1", "sw-1.example.net", "--type", "switch", "--parent",
                              "core-1", "--group", "Access"])
    assert added.exit_code == 0, added.output
    db.execute("UPDATE devices SET oper_status = 'down' WHERE name = 'sw-1'")

    listed = cli.invoke(main, ["devices", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ADDRESS", "TYPE", "SITE", "GROUP", "PARENT", "STATUS", "OPER",
                                "TAGS"]
    assert "core-1" in lines[2] and "Lagos HQ" in lines[2] and lines[2].rstrip().endswith("core")
    assert lines[3].split() == ["2", "sw-1", "sw-1.example.net", "switch", "-", "Access", "core-1", "active",
                                "down", "-"]
    assert lines[-1] == "2 device(s)"
    down = cli.invoke(main, ["devices", "list", "--status", "down", "--limit", "5"])
    assert [ln.split()[1] for ln in down.stdout.splitlines()[2:-1]] == ["sw-1"]

    bad = cli.invoke(main, ["devices", "add", "r2", "300.1.1.1", "--type", "router"])
    assert bad.exit_code == 1
    assert bad.stderr == "Error: invalid device 'r2': address: '300.1.1.1' is not a valid IP address or hostname\n"
    dup = cli.invoke(main, ["devices", "add", "core-1", "10.0.0.7", "--type", "router"])
    assert dup.exit_code == 1
    assert dup.stderr.startswith("Error: name: a device named 'core-1' already exists (id 1)")

    removed = cli.invoke(main, ["devices", "remove", "core-1"])
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == "removed device 'core-1' (id 1); 1 device(s) below it now have no parent\n"
    missing = cli.invoke(main, ["devices", "remove", "core-1"])
    assert missing.exit_code == 1
    assert missing.stderr == "Error: no device named 'core-1' in this organization\n"
    assert db.execute("SELECT name, parent_id FROM devices").fetchall() == [("sw-1", None)]


def test_cli_without_organization_or_database(cli: CliRunner, db: psycopg.Connection,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli.invoke(main, ["devices", "list"])
    assert result.exit_code == 1
    assert result.stderr == "Error: the database has no organization yet; create one with `netpulse org create NAME`\n"
    monkeypatch.delenv("NETPULSE_DATABASE_URL")
    monkeypatch.setenv("NETPULSE_ENV_FILE", "/nonexistent/.env")
    get_settings.cache_clear()
    result = cli.invoke(main, ["devices", "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: NETPULSE_DATABASE_URL is not set")
