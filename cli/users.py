"""``netpulse org ...`` and ``netpulse users ...``: organizations and their users, without SQL.

The CLI runs with database access, so the first organization and its first admin are created here,
before anyone can sign in. A password is never a command-line argument (it would land in the shell
history and the process list): it is asked twice on the terminal, or read from standard input with
``--password-stdin`` (for scripts). Errors are NetPulse errors, printed by the ``netpulse`` group as one
``Error: ...`` line (exit 1).
"""

from __future__ import annotations

import sys

import click

from cli._common import org_option, organization, session_scope, table
from netpulse.errors import ValidationError
from netpulse.schema import Role
from netpulse.timespec import format_time

ROLES = [r.value for r in Role]


@click.group("org")
def org() -> None:
    """Organizations: the tenants that own devices, users and everything else."""


@org.command("create")
@click.argument("name")
@click.option("--slug", help="Short unique name used by --org (lowercase letters, digits, dashes) "
                             "[default: derived from NAME].")
def org_create_command(name: str, slug: str | None) -> None:
    """Create the organization NAME."""
    from netpulse.organizations import create_organization

    with session_scope() as session:
        created = create_organization(session, name, slug)
        summary = (f"created organization {created.name!r} (slug {created.slug}); add its first admin with "
                   "`netpulse users add EMAIL --role admin`")
    click.echo(summary)


@org.command("list")
def org_list_command() -> None:
    """List organizations with their users, active admins and devices."""
    from netpulse.organizations import list_organizations

    with session_scope() as session:
        rows = [[o.slug, o.name, str(o.users), str(o.active_admins), str(o.devices), format_time(o.created_at)]
                for o in list_organizations(session)]
    if not rows:
        click.echo("no organizations yet; create one with `netpulse org create NAME`")
        return
    click.echo(table(["SLUG", "NAME", "USERS", "ADMINS", "DEVICES", "CREATED"], rows))


# --------------------------------------------------------------------------------------------------
@click.group("users")
def users() -> None:
    """Users of an organization: add, list, disable, enable, change role, reset password.

    \b
    Roles: admin (everything), operator (devices and alerts), viewer (read), api_user (devices and
    metrics through the API).
    """


password_stdin_option = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from standard input (e.g. from a secrets manager) instead of asking on the terminal.")


def _read_password(from_stdin: bool) -> str:
    """The password from stdin (one line; the trailing newline is not part of it) or asked twice."""
    if from_stdin:
        text = sys.stdin.read()
        password = text[:-1] if text.endswith("\n") else text
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise ValidationError("--password-stdin: no password on standard input",
                                  details={"password": "required"})
        return password
    if not sys.stdin.isatty():
        raise ValidationError("no terminal to ask for the password; pipe it in with --password-stdin",
                              details={"password": "required"})
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default=Role.VIEWER.value, show_default=True,
              help="What the user may do.")
@click.option("--full-name", help="The person's name, shown in the dashboard and in alert histories.")
@password_stdin_option
@org_option
def add_command(email: str, role: str, full_name: str | None, password_stdin: bool, org_slug: str | None) -> None:
    """Add the user EMAIL; asks for the password twice (or reads it with --password-stdin).

    \b
    The first admin of a fresh install:
      netpulse users add admin@example.com --role admin --full-name "NOC Admin"
    """
    from netpulse.users import create_user

    with session_scope() as session:  # a wrong --org fails before the prompt
        found = organization(session, org_slug)
        org_id, slug = found.id, found.slug
    password = _read_password(password_stdin)  # no transaction stays open while someone types
    with session_scope() as session:
        user = create_user(session, org_id, email, password, role=role, full_name=full_name)
        summary = f"added {user.role} {user.email}{f' ({user.full_name})' if user.full_name else ''} to {slug}"
    click.echo(summary)


@users.command("list")
@org_option
def list_command(org_slug: str | None) -> None:
    """List the organization's users by e-mail."""
    from netpulse.users import list_users

    with session_scope() as session:
        found = organization(session, org_slug)
        rows = [[u.email, u.full_name or "-", u.role, "yes" if u.is_active else "no",
                 format_time(u.last_login_at) if u.last_login_at else "never", format_time(u.created_at)]
                for u in list_users(session, found.id)]
    if not rows:
        click.echo(f"no users in {found.slug} yet; add one with `netpulse users add EMAIL --role admin`")
        return
    click.echo(table(["EMAIL", "NAME", "ROLE", "ACTIVE", "LAST LOGIN", "CREATED"], rows))


@users.command("disable")
@click.argument("email")
@org_option
def disable_command(email: str, org_slug: str | None) -> None:
    """Stop EMAIL from signing in (the user and its history stay; `users enable` undoes it)."""
    from netpulse.users import disable_user

    with session_scope() as session:
        user = disable_user(session, organization(session, org_slug).id, email)
        summary = f"disabled {user.email}: it can no longer sign in"
    click.echo(summary)


@users.command("enable")
@click.argument("email")
@org_option
def enable_command(email: str, org_slug: str | None) -> None:
    """Let a disabled user sign in again."""
    from netpulse.users import enable_user

    with session_scope() as session:
        user = enable_user(session, organization(session, org_slug).id, email)
        summary = f"enabled {user.email}"
    click.echo(summary)


@users.command("role")
@click.argument("email")
@click.argument("role", metavar="ROLE")
@org_option
def role_command(email: str, role: str, org_slug: str | None) -> None:
    """Give EMAIL the role ROLE: admin, operator, viewer or api_user."""
    from netpulse.users import get_user, set_role

    with session_scope() as session:
        org_id = organization(session, org_slug).id
        before = get_user(session, org_id, email).role if role in ROLES else None
        user = set_role(session, org_id, email, role)
        summary = f"{user.email} is now {user.role} (was {before})"
    click.echo(summary)


@users.command("reset-password")
@click.argument("email")
@password_stdin_option
@org_option
def reset_password_command(email: str, password_stdin: bool, org_slug: str | None) -> None:
    """Set a new password for EMAIL; asks for it twice (or reads it with --password-stdin)."""
    from netpulse.users import get_user, reset_password

    with session_scope() as session:  # an unknown user fails before the prompt
        org_id = organization(session, org_slug).id
        get_user(session, org_id, email)
    password = _read_password(password_stdin)
    with session_scope() as session:
        user = reset_password(session, org_id, email, password)
        summary = f"password of {user.email} changed"
    click.echo(summary)


COMMANDS = [org, users]
