"""SNMP credential profiles: validation, duplicates, other organizations, removal while in use, masking,
the CLI, and a profile added from the command line polled by the workers against a real snmpd."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from cli import main
from ingest import snmp as poller
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.inventory import DeviceSpec, create_device, get_device
from netpulse.inventory.credentials import (
    AUTH_PROTOCOLS,
    PRIV_PROTOCOLS,
    SnmpCredentialSpec,
    add_snmp_credential,
    credential_view,
    get_snmp_credential,
    list_snmp_credentials,
    remove_snmp_credential,
)
from netpulse.organizations import create_organization
from tests.test_snmp import AUTH_PASS, PRIV_PASS, V3_USER, Agent, agent  # noqa: F401 - the session's snmpd

V3 = {"version": "3", "username": "netpulse", "auth_protocol": "sha", "auth_password": "authpass123",
      "priv_protocol": "aes", "priv_password": "privpass123"}


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def orgs(session: Session) -> tuple[uuid.UUID, uuid.UUID]:
    return create_organization(session, "Acme", "acme").id, create_organization(session, "Globex", "globex").id


def test_protocol_names_are_the_pollers() -> None:
    assert AUTH_PROTOCOLS == tuple(poller.AUTH_PROTOCOLS)
    assert PRIV_PROTOCOLS == tuple(poller.PRIV_PROTOCOLS)


@pytest.mark.parametrize("priv", PRIV_PROTOCOLS)
def test_every_priv_protocol_is_stored_and_makes_a_poller_target(session: Session, orgs: tuple[uuid.UUID, uuid.UUID],
                                                                  priv: str) -> None:
    c = add_snmp_credential(session, orgs[0], SnmpCredentialSpec(name=f"p-{priv}", **V3 | {"priv_protocol": priv}))
    target = poller.SnmpTarget(1, "127.0.0.1", version="3", username=c.username, auth_protocol=c.auth_protocol,
                               auth_password=c.auth_password, priv_protocol=c.priv_protocol,
                               priv_password=c.priv_password)
    assert target.security_level == "authPriv" and c.priv_protocol == priv


def test_add_list_and_mask(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = orgs
    add_snmp_credential(session, acme, SnmpCredentialSpec(name="lan-ro", version="2c", community="s3cret-ro"))
    add_snmp_credential(session, acme, SnmpCredentialSpec(name="core-v3", **V3))
    add_snmp_credential(session, acme, SnmpCredentialSpec(name="auth-only", version="3", username="mon",
                                                          auth_protocol="SHA256", auth_password="longenough"))
    add_snmp_credential(session, acme, SnmpCredentialSpec(name="plain", version="3", username="public-user"))
    add_snmp_credential(session, globex, SnmpCredentialSpec(name="lan-ro", version="2c", community="other"))
    listed = list_snmp_credentials(session, acme)
    assert [(u.credential.name, u.devices) for u in listed] == [("auth-only", 0), ("core-v3", 0), ("lan-ro", 0),
                                                               ("plain", 0)]
    views = {u.credential.name: credential_view(u.credential) for u in listed}
    assert views["lan-ro"]["community"] == "s3****" and views["lan-ro"]["security_level"] == "community"
    assert (views["core-v3"]["auth_protocol"], views["core-v3"]["priv_protocol"]) == ("SHA", "AES")
    assert (views["core-v3"]["auth_password"], views["core-v3"]["priv_password"]) == ("au****", "pr****")
    assert views["auth-only"]["security_level"] == "authNoPriv" and views["plain"]["security_level"] == "noAuthNoPriv"
    for view in views.values():
        assert not {"s3cret-ro", "authpass123", "privpass123", "longenough"} & {str(v) for v in view.values()}


@pytest.mark.parametrize(("fields", "details"), [
    ({"version": "1"}, {"version": "SNMP version '1' is not supported; use 2c or 3"}),
    ({"version": "2c"}, {"community": "an SNMP v2c profile needs a community"}),
    ({"version": "2c", "community": "x", "username": "u"},
     {"username": "username is only used by SNMP v3 profiles; leave it out or use version 3"}),
    ({"version": "3"}, {"username": "an SNMP v3 profile needs a username (the agent's USM user)"}),
    ({"version": "3", "username": "u", "community": "public"},
     {"community": "SNMP v3 uses no community; leave it out or use version 2c"}),
    ({"version": "3", "username": "u" * 33}, {"username": f"username {'u' * 33!r} must be at most 32 printable "
                                                          "characters (USM's limit)"}),
    ({"version": "3", "username": "u", "auth_protocol": "SHA1X", "auth_password": "longenough"},
     {"auth_protocol": "unknown auth protocol 'SHA1X'; use one of MD5, SHA, SHA224, SHA256, SHA384, SHA512"}),
    ({"version": "3", "username": "u", "auth_protocol": "SHA", "auth_password": "short"},
     {"auth_password": "the auth password must have at least 8 characters (got 5), as net-snmp requires"}),
    ({"version": "3", "username": "u", "auth_protocol": "SHA"},
     {"auth_password": "the auth password is required with an auth protocol"}),
    ({"version": "3", "username": "u", "auth_password": "longenough"},
     {"auth_protocol": "an auth password needs an auth protocol (MD5, SHA, SHA224, SHA256, SHA384, SHA512)"}),
    ({"version": "3", "username": "u", "priv_protocol": "AES", "priv_password": "longenough"},
     {"auth_protocol": "privacy (authPriv) needs authentication too: give an auth protocol and password"}),
    ({**V3, "priv_password": "1234567"},
     {"priv_password": "the privacy password must have at least 8 characters (got 7), as net-snmp requires"}),
    ({**V3, "priv_protocol": "AES512"},
     {"priv_protocol": "unknown privacy protocol 'AES512'; use one of DES, AES, AES192, AES256, AES192C, AES256C"}),
])
def test_bad_profiles(session: Session, orgs: tuple[uuid.UUID, uuid.UUID], fields: dict[str, str],
                      details: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as exc_info:
        add_snmp_credential(session, orgs[0], SnmpCredentialSpec(name="p", **fields))
    assert exc_info.value.details == details
    assert list_snmp_credentials(session, orgs[0]) == []


def test_bad_name_and_duplicates(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    with pytest.raises(ValidationError, match="profile name '-x' must be 1 to 100 letters"):
        add_snmp_credential(session, orgs[0], SnmpCredentialSpec(name="-x", version="2c", community="c"))
    first = add_snmp_credential(session, orgs[0], SnmpCredentialSpec(name="lan", version="2c", community="c"))
    with pytest.raises(Conflict) as exc_info:
        add_snmp_credential(session, orgs[0], SnmpCredentialSpec(name="lan", **V3))
    assert exc_info.value.message == (f"an SNMP credential profile named 'lan' already exists (id {first.id}); "
                                      "choose another name or remove it first")
    add_snmp_credential(session, orgs[1], SnmpCredentialSpec(name="lan", version="2c", community="c"))  # other org


def test_remove_refuses_while_used_unless_forced(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = orgs
    add_snmp_credential(session, acme, SnmpCredentialSpec(name="core-v3", **V3))
    add_snmp_credential(session, acme, SnmpCredentialSpec(name="lan", version="2c", community="c0mmunity"))
    fw = create_device(session, acme, DeviceSpec(name="fw-1", address="10.0.0.1", device_type="firewall",
                                                 snmp_credential="core-v3"))
    sw = create_device(session, acme, DeviceSpec(name="sw-1", address="10.0.0.2", device_type="switch",
                                                 snmp_credential="lan"))
    sw2 = create_device(session, acme, DeviceSpec(name="sw-2", address="10.0.0.3", device_type="switch",
                                                  snmp_credential="lan"))
    sw2.snmp_community = "own-community"  # an inline community of its own
    assert [(u.credential.name, u.devices) for u in list_snmp_credentials(session, acme)] == [("core-v3", 1),
                                                                                             ("lan", 2)]
    with pytest.raises(Conflict) as exc_info:
        remove_snmp_credential(session, acme, "lan")
    assert exc_info.value.message == (
        "SNMP credential profile 'lan' is used by 2 device(s): sw-1, sw-2; give them another profile first, or "
        "remove it with --force to detach them (their SNMP polling stops unless they have a v2c community of "
        "their own)")
    assert exc_info.value.details == {"devices": ["sw-1", "sw-2"]}
    with pytest.raises(NotFound, match="no SNMP credential profile 'lan' in this organization; none is defined yet"):
        remove_snmp_credential(session, globex, "lan")  # another organization's profile is invisible
    assert remove_snmp_credential(session, acme, "lan", force=True) == ["sw-1", "sw-2"]
    assert remove_snmp_credential(session, acme, "core-v3", force=True) == ["fw-1"]
    session.expire_all()
    got = {d.name: (d.snmp_credential_id, d.snmp_version, d.snmp_community)
           for d in (get_device(session, acme, fw.id), get_device(session, acme, sw.id),
                     get_device(session, acme, sw2.id))}
    assert got == {"fw-1": (None, None, None), "sw-1": (None, None, None), "sw-2": (None, "2c", "own-community")}
    assert list_snmp_credentials(session, acme) == []
    with pytest.raises(NotFound, match="no SNMP credential profile 'lan' in this organization; none is defined yet; "
                                       "add one with `netpulse snmp credential add`"):
        get_snmp_credential(session, acme, "lan")


# --- the CLI, and the profile in use by the poller ------------------------------------------------------


def test_cli_add_list_remove(db: psycopg.Connection, settings_env: None) -> None:
    _cli("org", "create", "Acme")
    assert _cli("snmp", "credential", "add", "lan-ro", "--version", "2c", "--community", "s3cret-ro") == (
        0, "added SNMP v2c credential profile 'lan-ro' (id 1) to acme: community s3****\n", "")
    code, out, err = _cli("snmp", "credential", "add", "core-v3", "--version", "3", "--username", "netpulse",
                          "--auth-protocol", "sha", "--auth-password", "authpass123", "--priv-protocol", "aes256c",
                          "--priv-password", "privpass123")
    assert (code, out, err) == (0, "added SNMP v3 credential profile 'core-v3' (id 2) to acme: user netpulse, "
                                   "authPriv (SHA/AES256C)\n", "")
    assert _cli("devices", "add", "sw-1", "10.0.0.2", "--type", "switch", "--snmp-credential", "lan-ro")[0] == 0
    code, out, err = _cli("snmp", "credential", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "VERSION", "LEVEL", "COMMUNITY", "USER", "AUTH", "PRIV", "DEVICES"]
    assert lines[2].split() == ["2", "core-v3", "3", "authPriv", "-", "netpulse", "SHA", "au****", "AES256C",
                                "pr****", "0"]
    assert lines[3].split() == ["1", "lan-ro", "2c", "community", "s3****", "-", "-", "-", "1"]
    assert "s3cret" not in out and "pass123" not in out
    assert _cli("snmp", "credential", "remove", "lan-ro") == (
        1, "", "Error: SNMP credential profile 'lan-ro' is used by 1 device(s): sw-1; give them another profile "
               "first, or remove it with --force to detach them (their SNMP polling stops unless they have a v2c "
               "community of their own)\n")
    assert _cli("snmp", "credential", "remove", "lan-ro", "--force") == (
        0, "removed SNMP credential profile 'lan-ro'\ndetached from 1 device(s): sw-1\n", "")
    assert _cli("snmp", "credential", "remove", "nope") == (
        1, "", "Error: no SNMP credential profile 'nope' in this organization; known: core-v3\n")
    assert _cli("snmp", "credential", "add", "bad", "--version", "3") == (
        1, "", "Error: invalid SNMP credential profile 'bad': username: an SNMP v3 profile needs a username (the "
               "agent's USM user)\n")
    assert db.execute("SELECT count(*) FROM snmp_credentials").fetchone() == (1,)


def test_cli_profile_is_polled_by_the_workers(agent: Agent, db_url: str, db: psycopg.Connection,  # noqa: F811
                                              settings_env: None) -> None:
    """A v3 profile made on the command line and a device naming it: the workers build its target
    from the rows and poll the real agent; a profile with a wrong key is an auth failure."""
    from workers.probes import snmp_targets
    from workers.runtime import Runtime

    _cli("org", "create", "Acme")
    for name, auth in (("good", AUTH_PASS), ("wrong", "not-the-key")):
        code, _, err = _cli("snmp", "credential", "add", name, "--version", "3", "--username", V3_USER,
                            "--auth-protocol", "SHA", "--auth-password", auth, "--priv-protocol", "AES",
                            "--priv-password", PRIV_PASS)
        assert code == 0, err
        code, _, err = _cli("devices", "add", f"agent-{name}", f"127.0.0.{1 if name == 'good' else 2}", "--type",
                            "server", "--snmp-credential", name, "--snmp-port", str(agent.port))
        assert code == 0, err
    ids = [r[0] for r in db.execute("SELECT id FROM devices ORDER BY name").fetchall()]
    rt = Runtime(db_url)
    try:
        targets = snmp_targets(rt, ids)
        good = next(t for t in targets if t.address == "127.0.0.1")
        wrong = next(t for t in targets if t.address == "127.0.0.2")
        assert (good.version, good.security_level) == ("3", "authPriv")
        wrong = poller.SnmpTarget(wrong.device_id, "127.0.0.1", port=wrong.port, version="3",
                                  username=wrong.username, auth_protocol=wrong.auth_protocol,
                                  auth_password=wrong.auth_password, priv_protocol=wrong.priv_protocol,
                                  priv_password=wrong.priv_password)  # the same agent, the wrong key
        ok, failed = poller.poll([good, wrong])
    finally:
        rt.engine.dispose()
    assert ok.ok and ok.sys_name == "test-agent", ok
    assert (failed.ok, failed.error) == (False, "auth_failed")
