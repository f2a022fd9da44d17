"""Organizations and users, administered through the core functions and `netpulse org|users ...`
against the real database: bad input, duplicates, other organizations, the last admin, and the
password prompt (a real terminal) or stdin."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from cli import main
from netpulse.errors import Conflict, NotFound, ValidationError
from netpulse.organizations import create_organization, derive_slug, get_organization, list_organizations
from netpulse.schema import Role
from netpulse.users import (
    authenticate,
    create_user,
    disable_user,
    enable_user,
    get_user,
    list_users,
    reset_password,
    set_role,
    verify_password,
)
from tests.terminal import run_in_terminal

PASSWORD = "correct horse battery"


def _cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


# --- organizations ----------------------------------------------------------------------------------


def test_create_organization_derives_or_takes_the_slug(session: Session) -> None:
    acme = create_organization(session, "  Acme Networks (East) ")
    assert (acme.name, acme.slug) == ("Acme Networks (East)", "acme-networks-east")
    globex = create_organization(session, "Globex", "gx")
    assert globex.slug == "gx"
    assert get_organization(session, "gx").id == globex.id
    assert get_organization(session, acme.id).slug == "acme-networks-east"
    create_user(session, acme.id, "a@acme.test", PASSWORD, role="admin")
    create_user(session, acme.id, "b@acme.test", PASSWORD)
    rows = {o.slug: (o.users, o.active_admins, o.devices) for o in list_organizations(session)}
    assert rows == {"acme-networks-east": (2, 1, 0), "gx": (0, 0, 0)}
    assert derive_slug("Ünïcode Télécom") == "unicode-telecom"


@pytest.mark.parametrize(("name", "slug", "details"), [
    ("", None, {"name": "an organization needs a name"}),
    ("!!!", None, {"slug": "no slug can be derived from '!!!' (it has no ASCII letters or digits); give one, "
                           "e.g. --slug acme"}),
    ("Acme", "Acme Corp", {"slug": "slug 'Acme Corp' must be 1 to 100 lowercase letters, digits and dashes, starting "
                                   "with a letter or digit, e.g. 'acme-corp'"}),
    ("Acme", "-acme", {"slug": "slug '-acme' must be 1 to 100 lowercase letters, digits and dashes, starting with a "
                               "letter or digit, e.g. 'acme'"}),
    ("a\x00b", None, {"name": "'a\\x00b' must be at most 255 printable characters"}),
])
def test_create_organization_bad_input(session: Session, name: str, slug: str | None,
                                       details: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as exc_info:
        create_organization(session, name, slug)
    assert exc_info.value.details == details


def test_create_organization_duplicates(session: Session) -> None:
    create_organization(session, "Acme", "acme")
    with pytest.raises(Conflict, match=r"an organization with slug 'acme' already exists \(slug acme\); choose "
                                       r"another slug"):
        create_organization(session, "Acme Two", "acme")
    with pytest.raises(Conflict, match="an organization with name 'Acme' already exists"):
        create_organization(session, "ACME", "acme-2")
    with pytest.raises(NotFound, match="no organization 'nope'; known: acme"):
        get_organization(session, "nope")


# --- users ----------------------------------------------------------------------------------------------


@pytest.fixture
def orgs(session: Session) -> tuple[uuid.UUID, uuid.UUID]:
    a = create_organization(session, "Acme", "acme")
    b = create_organization(session, "Globex", "globex")
    return a.id, b.id


def test_user_lifecycle(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, _ = orgs
    admin = create_user(session, acme, " Admin@Acme.TEST ", PASSWORD, role="admin", full_name=" Ada Admin ")
    assert (admin.email, admin.full_name, admin.role, admin.is_superuser) == ("admin@acme.test", "Ada Admin",
                                                                               "admin", True)
    assert PASSWORD not in admin.hashed_password and verify_password(admin.hashed_password, PASSWORD)
    noc = create_user(session, acme, "noc@acme.test", PASSWORD, role=Role.OPERATOR)
    assert [u.email for u in list_users(session, acme)] == ["admin@acme.test", "noc@acme.test"]
    assert get_user(session, acme, "NOC@acme.test").id == noc.id == get_user(session, acme, noc.id).id

    assert disable_user(session, acme, "noc@acme.test").is_active is False
    assert authenticate(session, "noc@acme.test", PASSWORD) is None
    assert [u.email for u in list_users(session, acme, include_disabled=False)] == ["admin@acme.test"]
    with pytest.raises(Conflict, match="user noc@acme.test is already disabled"):
        disable_user(session, acme, "noc@acme.test")
    assert enable_user(session, acme, "noc@acme.test").is_active is True
    with pytest.raises(Conflict, match="user noc@acme.test is already enabled"):
        enable_user(session, acme, "noc@acme.test")

    assert set_role(session, acme, "noc@acme.test", "admin").is_superuser is True
    assert set_role(session, acme, "admin@acme.test", "viewer").role == "viewer"  # noc is admin now
    with pytest.raises(Conflict, match="user admin@acme.test already has role viewer"):
        set_role(session, acme, "admin@acme.test", "viewer")

    reset_password(session, acme, "admin@acme.test", "another good one")
    assert authenticate(session, "admin@acme.test", PASSWORD) is None
    assert authenticate(session, "admin@acme.test", "another good one") is not None


def test_the_last_active_admin_stays(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = orgs
    create_user(session, acme, "admin@acme.test", PASSWORD, role="admin")
    create_user(session, globex, "admin@globex.test", PASSWORD, role="admin")  # another org's admin does not count
    message = ("cannot disable admin@acme.test: it is the organization's only active admin; make another user "
               "admin first (`netpulse users role EMAIL admin`)")
    with pytest.raises(Conflict) as exc_info:
        disable_user(session, acme, "admin@acme.test")
    assert (exc_info.value.message, exc_info.value.code) == (message, "LAST_ADMIN")
    with pytest.raises(Conflict, match="cannot make admin@acme.test operator: it is the organization's only"):
        set_role(session, acme, "admin@acme.test", "operator")
    create_user(session, acme, "second@acme.test", PASSWORD, role="admin")
    disable_user(session, acme, "second@acme.test")
    with pytest.raises(Conflict, match="only active admin"):  # a disabled admin does not count either
        disable_user(session, acme, "admin@acme.test")
    enable_user(session, acme, "second@acme.test")
    assert disable_user(session, acme, "admin@acme.test").is_active is False


@pytest.mark.parametrize(("kwargs", "details"), [
    ({"email": "not-an-address"}, {"email": "'not-an-address' is not an e-mail address like noc@example.com"}),
    ({"email": "a\x00b@acme.test"}, {"email": "'a\\x00b@acme.test' is not an e-mail address like noc@example.com"}),
    ({"password": "short"}, {"password": "must be at least 8 characters (got 5)"}),
    ({"password": "x" * 1025}, {"password": "must be at most 1024 characters (got 1025)"}),
    ({"password": "nul\x00in the middle"}, {"password": "must not contain a NUL character"}),
    ({"role": "root"}, {"role": "'root' is not one of admin, operator, viewer, api_user"}),
    ({"full_name": "x" * 256}, {"full_name": f"{'x' * 40!r} must be at most 255 printable characters"}),
])
def test_create_user_bad_input(session: Session, orgs: tuple[uuid.UUID, uuid.UUID], kwargs: dict[str, str],
                               details: dict[str, str]) -> None:
    args = {"email": "ok@acme.test", "password": PASSWORD} | kwargs
    with pytest.raises(ValidationError) as exc_info:
        create_user(session, orgs[0], args.pop("email"), args.pop("password"), **args)  # type: ignore[arg-type]
    assert exc_info.value.details == details


def test_users_are_per_organization(session: Session, orgs: tuple[uuid.UUID, uuid.UUID]) -> None:
    acme, globex = orgs
    gx = create_user(session, globex, "ops@globex.test", PASSWORD, role="admin")
    create_user(session, acme, "noc@acme.test", PASSWORD)
    assert [u.email for u in list_users(session, acme)] == ["noc@acme.test"]
    for call in (lambda: get_user(session, acme, "ops@globex.test"), lambda: get_user(session, acme, gx.id),
                 lambda: disable_user(session, acme, "ops@globex.test"),
                 lambda: set_role(session, acme, gx.id, "viewer"),
                 lambda: reset_password(session, acme, "ops@globex.test", "taken over!")):
        with pytest.raises(NotFound, match="no user .* in this organization"):
            call()
    with pytest.raises(Conflict, match=r"a user with e-mail ops@globex.test already exists \(e-mail addresses are "
                                       r"unique across organizations\)"):
        create_user(session, acme, "OPS@globex.test", PASSWORD)
    with pytest.raises(Conflict, match=r"a user with e-mail noc@acme.test already exists$"):
        create_user(session, acme, "noc@acme.test", PASSWORD)
    assert get_user(session, globex, "ops@globex.test").is_active


# --- the CLI --------------------------------------------------------------------------------------------


def test_cli_first_org_and_admin_of_a_fresh_install(db: psycopg.Connection, settings_env: None) -> None:
    code, out, err = _cli("devices", "add", "core-1", "10.0.0.1", "--type", "router")
    assert (code, err) == (1, "Error: the database has no organization yet; create one with "
                              "`netpulse org create NAME`\n")
    code, out, err = _cli("org", "list")
    assert (code, out) == (0, "no organizations yet; create one with `netpulse org create NAME`\n")
    code, out, err = _cli("org", "create", "Acme Networks")
    assert (code, out, err) == (0, "created organization 'Acme Networks' (slug acme-networks); add its first admin "
                                   "with `netpulse users add EMAIL --role admin`\n", "")
    code, out, err = _cli("users", "add", "admin@acme.test", "--role", "admin", "--full-name", "Ada Admin",
                          "--password-stdin", stdin=PASSWORD + "\n")
    assert (code, err) == (0, ""), out
    assert out == "added admin admin@acme.test (Ada Admin) to acme-networks\n"
    code, out, err = _cli("devices", "add", "core-1", "10.0.0.1", "--type", "router")
    assert code == 0, err
    code, out, err = _cli("org", "list")
    assert out.splitlines()[0].split() == ["SLUG", "NAME", "USERS", "ADMINS", "DEVICES", "CREATED"]
    assert out.splitlines()[2].split()[:5] == ["acme-networks", "Acme", "Networks", "1", "1"]
    hashed = db.execute("SELECT hashed_password FROM users WHERE email = 'admin@acme.test'").fetchone()[0]
    assert PASSWORD not in hashed


def test_cli_users_commands(db: psycopg.Connection, settings_env: None) -> None:
    _cli("org", "create", "Acme", "--slug", "acme")
    _cli("org", "create", "Globex", "--slug", "globex")
    assert _cli("users", "add", "admin@acme.test", "--role", "admin", "--org", "acme", "--password-stdin",
                stdin=PASSWORD)[0] == 0
    assert _cli("users", "add", "noc@acme.test", "--org", "acme", "--password-stdin", stdin=PASSWORD)[0] == 0
    assert _cli("users", "add", "ops@globex.test", "--role", "admin", "--org", "globex", "--password-stdin",
                stdin=PASSWORD)[0] == 0
    code, out, err = _cli("users", "list", "--org", "acme")
    lines = out.splitlines()
    assert lines[0].split() == ["EMAIL", "NAME", "ROLE", "ACTIVE", "LAST", "LOGIN", "CREATED"]
    assert [line.split()[:4] for line in lines[2:]] == [["admin@acme.test", "-", "admin", "yes"],
                                                        ["noc@acme.test", "-", "viewer", "yes"]]
    assert _cli("users", "role", "noc@acme.test", "operator", "--org", "acme") == (
        0, "noc@acme.test is now operator (was viewer)\n", "")
    assert _cli("users", "disable", "noc@acme.test", "--org", "acme") == (
        0, "disabled noc@acme.test: it can no longer sign in\n", "")
    assert _cli("users", "enable", "noc@acme.test", "--org", "acme") == (0, "enabled noc@acme.test\n", "")
    assert _cli("users", "reset-password", "noc@acme.test", "--org", "acme", "--password-stdin",
                stdin="brand new secret\n") == (0, "password of noc@acme.test changed\n", "")
    assert db.execute("SELECT role, is_active FROM users WHERE email = 'noc@acme.test'").fetchone() == (
        "operator", True)
    # Errors: one line, exit 1, nothing changed.
    for args, message in [
        (["users", "disable", "admin@acme.test", "--org", "acme"],
         "cannot disable admin@acme.test: it is the organization's only active admin; make another user admin "
         "first (`netpulse users role EMAIL admin`)"),
        (["users", "disable", "ops@globex.test", "--org", "acme"],
         "no user 'ops@globex.test' in this organization; `netpulse users list` shows them"),
        (["users", "role", "noc@acme.test", "root", "--org", "acme"],
         "invalid role: role: 'root' is not one of admin, operator, viewer, api_user"),
        (["users", "add", "noc@acme.test", "--org", "acme", "--password-stdin"],
         "a user with e-mail noc@acme.test already exists"),
        (["users", "list"], "the database holds several organizations (acme, globex); choose one with --org SLUG"),
        (["org", "create", "Acme"], "an organization with slug 'acme' already exists (slug acme); choose another "
                                    "slug"),
    ]:
        assert _cli(*args, stdin=PASSWORD) == (1, "", f"Error: {message}\n"), args
    assert _cli("users", "add", "x@acme.test", "--org", "acme", "--password-stdin", stdin="short\n") == (
        1, "", "Error: invalid user 'x@acme.test': password: must be at least 8 characters (got 5)\n")
    assert _cli("users", "add", "x@acme.test", "--org", "acme", "--password-stdin", stdin="") == (
        1, "", "Error: --password-stdin: no password on standard input\n")
    assert db.execute("SELECT count(*) FROM users").fetchone() == (3,)


def test_cli_password_is_never_an_argument() -> None:
    result = CliRunner().invoke(main, ["users", "add", "a@b.test", "--password", PASSWORD])
    assert result.exit_code == 2 and "No such option '--password'" in result.stderr


def test_cli_without_a_terminal_asks_for_password_stdin(settings_env: None, db: psycopg.Connection) -> None:
    _cli("org", "create", "Acme")
    # CliRunner's stdin is not a terminal: no prompt, a clear error instead of waiting.
    assert _cli("users", "add", "a@acme.test") == (
        1, "", "Error: no terminal to ask for the password; pipe it in with --password-stdin\n")


def test_cli_prompts_for_the_password_twice_on_a_terminal(db_url: str, db: psycopg.Connection) -> None:
    env = {**os.environ, "NETPULSE_DATABASE_URL": db_url}
    exe = str(Path(sys.executable).parent / "netpulse")
    subprocess.run([exe, "org", "create", "Acme"], env=env, check=True, capture_output=True)
    typed = iter([PASSWORD, "a different one", PASSWORD, PASSWORD])
    code, out = run_in_terminal([exe, "users", "add", "a@acme.test", "--role", "admin"], lambda _: next(typed), env)
    assert code == 0, out
    assert "Error: The two entered values do not match." in out
    assert "Password:" in out and "Repeat for confirmation:" in out and PASSWORD not in out
    assert "added admin a@acme.test to acme" in out
    assert db.execute("SELECT role FROM users WHERE email = 'a@acme.test'").fetchone() == ("admin",)
