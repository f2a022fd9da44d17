"""``netpulse snmp credential ...``: named SNMP credential profiles (v2c communities, v3 users).

Devices name a profile with ``netpulse devices add ... --snmp-credential NAME`` (or the CSV column
``snmp_credential``). Secrets are printed masked. Every command works in one organization (``--org``,
or the only one); errors are one ``Error: ...`` line (exit 1).
"""

from __future__ import annotations

import sys

import click

from cli._common import org_option, organization, session_scope, table
from netpulse.inventory.credentials import AUTH_PROTOCOLS, PRIV_PROTOCOLS


@click.group()
def snmp() -> None:
    """SNMP settings shared by devices."""


@snmp.group()
def credential() -> None:
    """SNMP credential profiles: v2c communities and v3 users that devices refer to by name."""


def _secret(value: str | None, protocol: str | None, what: str) -> str | None:
    """The given secret, or (with its protocol set and a terminal) one asked twice with echo off."""
    if value is not None or protocol is None or not sys.stdin.isatty():
        return value
    return str(click.prompt(what, hide_input=True, confirmation_prompt=True))


@credential.command("add")
@click.argument("name")
@click.option("--version", "version", type=click.Choice(["2c", "3"]), required=True, help="SNMP version.")
@click.option("--community", envvar="NETPULSE_SNMP_COMMUNITY",
              help="v2c community (or set NETPULSE_SNMP_COMMUNITY, which keeps it out of the shell history).")
@click.option("--username", help="v3 USM user name.")
@click.option("--auth-protocol", type=click.Choice(AUTH_PROTOCOLS, case_sensitive=False),
              help="v3 authentication (authNoPriv, or authPriv with --priv-protocol).")
@click.option("--auth-password", envvar="NETPULSE_SNMP_AUTH_PASSWORD",
              help="v3 auth password, 8+ characters (or NETPULSE_SNMP_AUTH_PASSWORD; asked on a terminal when "
                   "left out).")
@click.option("--priv-protocol", type=click.Choice(PRIV_PROTOCOLS, case_sensitive=False),
              help="v3 privacy (encryption); AES192/AES256 are net-snmp's key extension, AES192C/AES256C Cisco's.")
@click.option("--priv-password", envvar="NETPULSE_SNMP_PRIV_PASSWORD",
              help="v3 privacy password, 8+ characters (or NETPULSE_SNMP_PRIV_PASSWORD; asked on a terminal when "
                   "left out).")
@org_option
def add_command(name: str, version: str, community: str | None, username: str | None, auth_protocol: str | None,
                auth_password: str | None, priv_protocol: str | None, priv_password: str | None,
                org_slug: str | None) -> None:
    """Add the credential profile NAME.

    \b
    Examples:
      netpulse snmp credential add lan-ro --version 2c --community s3cret-ro
      netpulse snmp credential add core-v3 --version 3 --username netpulse \\
        --auth-protocol SHA --priv-protocol AES      # asks for both passwords
    """
    from netpulse.inventory.credentials import SnmpCredentialSpec, add_snmp_credential, credential_view

    if version == "2c":  # the environment may carry a community or passwords meant for other commands
        auth_password = priv_password = None
    else:
        community = None
    with session_scope() as session:  # a wrong --org fails before any prompt
        found = organization(session, org_slug)
        org_id, slug = found.id, found.slug
    spec = SnmpCredentialSpec(name=name, version=version, community=community, username=username,
                              auth_protocol=auth_protocol, priv_protocol=priv_protocol,
                              auth_password=_secret(auth_password, auth_protocol, "Auth password"),
                              priv_password=_secret(priv_password, priv_protocol, "Privacy password"))
    with session_scope() as session:
        view = credential_view(add_snmp_credential(session, org_id, spec))
    what = (f"community {view['community']}" if version == "2c"
            else f"user {view['username']}, {view['security_level']}"
            + (f" ({view['auth_protocol']}" + (f"/{view['priv_protocol']}" if view["priv_protocol"] else "") + ")"
               if view["auth_protocol"] else ""))
    click.echo(f"added SNMP v{version} credential profile {view['name']!r} (id {view['id']}) to {slug}: {what}")


@credential.command("list")
@org_option
def list_command(org_slug: str | None) -> None:
    """List credential profiles with the devices using each; secrets masked."""
    from netpulse.inventory.credentials import credential_view, list_snmp_credentials

    with session_scope() as session:
        found = organization(session, org_slug)
        views = [credential_view(u.credential, devices=u.devices) for u in list_snmp_credentials(session, found.id)]
    if not views:
        click.echo(f"no SNMP credential profiles in {found.slug} yet; add one with `netpulse snmp credential add`")
        return
    rows = [[str(v["id"]), v["name"], v["version"], v["security_level"], v["community"] or "-", v["username"] or "-",
             " ".join(x for x in (v["auth_protocol"], v["auth_password"]) if x) or "-",
             " ".join(x for x in (v["priv_protocol"], v["priv_password"]) if x) or "-", str(v["devices"])]
            for v in views]
    click.echo(table(["ID", "NAME", "VERSION", "LEVEL", "COMMUNITY", "USER", "AUTH", "PRIV", "DEVICES"], rows))


@credential.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it even when devices use it: they are detached (and stop "
                                            "SNMP polling unless they have a v2c community of their own).")
@org_option
def remove_command(name: str, force: bool, org_slug: str | None) -> None:
    """Remove the credential profile NAME (refused while devices use it, unless --force)."""
    from netpulse.inventory.credentials import remove_snmp_credential

    with session_scope() as session:
        detached = remove_snmp_credential(session, organization(session, org_slug).id, name, force=force)
    click.echo(f"removed SNMP credential profile {name!r}")
    if detached:
        shown = ", ".join(detached[:20]) + (f" and {len(detached) - 20} more" if len(detached) > 20 else "")
        click.echo(f"detached from {len(detached)} device(s): {shown}")


COMMANDS = [snmp]
