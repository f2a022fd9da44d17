"""``netpulse devices ...``: the device inventory from the command line.

Every command works in one organization: ``--org SLUG``, or the only organization when there is one.
Errors are NetPulse errors, which the ``netpulse`` group prints as one ``Error: ...`` line (exit 1).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from netpulse.config import get_settings
from netpulse.errors import NotFound, StorageError, ValidationError
from netpulse.schema import DeviceType, OperStatus

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from netpulse.schema import Device, Organization


@contextmanager
def _session() -> Iterator[Session]:
    """One transaction: committed when the command succeeds, rolled back when it raises."""
    import psycopg
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from netpulse.db import make_engine, make_sessionmaker

    engine = make_engine(get_settings().require_database_url(), pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine).begin() as session:
            yield session
    except OperationalError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        raise StorageError(f"cannot use the database: {first}; check NETPULSE_DATABASE_URL") from None
    except ProgrammingError as exc:
        if isinstance(exc.orig, psycopg.errors.UndefinedTable):
            raise StorageError("the database has no NetPulse tables yet; run `netpulse migrate` first") from None
        raise
    finally:
        engine.dispose()


def _organization(session: Session, slug: str | None) -> Organization:
    from sqlalchemy import select

    from netpulse.schema import Organization
    from netpulse.users import get_organization_by_slug

    if slug is not None:
        org = get_organization_by_slug(session, slug)
        if org is None:
            known = session.scalars(select(Organization.slug).order_by(Organization.slug).limit(20)).all()
            hint = f"known: {', '.join(known)}" if known else "the database has no organization yet"
            raise NotFound(f"no organization with slug {slug!r}; {hint}", details={"org": slug},
                           code="ORGANIZATION_NOT_FOUND")
        return org
    orgs = session.scalars(select(Organization).order_by(Organization.slug).limit(21)).all()
    if not orgs:
        raise NotFound("the database has no organization yet; create one before adding devices",
                       code="ORGANIZATION_NOT_FOUND")
    if len(orgs) > 1:
        slugs = ", ".join(o.slug for o in orgs[:20]) + (", ..." if len(orgs) > 20 else "")
        raise ValidationError(f"the database holds several organizations ({slugs}); choose one with --org SLUG",
                              details={"org": "required when there is more than one organization"})
    return orgs[0]


org_option = click.option(
    "--org", "org_slug", metavar="SLUG",
    help="Organization slug. May be left out when the database holds exactly one organization.")


@click.group()
def devices() -> None:
    """Manage the device inventory: import, list, add and remove devices."""


@devices.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@org_option
@click.option("--dry-run", is_flag=True,
              help="Check every line and report what would be created, but write nothing.")
def import_command(file: Path, org_slug: str | None, dry_run: bool) -> None:
    """Import devices from the CSV file FILE, all or nothing.

    \b
    Required columns: name, address (or ip, hostname), type.
    Optional columns: site, group, tags (separated by ; or |), parent,
      snmp_version (2c or 3), snmp_community, snmp_credential, snmp_port,
      probe_interval_s, description.
    Header names are case-insensitive; the header is line 1.

    Every line is checked before anything is written. Sites, groups and tags are created as needed, and a
    parent may appear later in the file than its children. When a line is bad, each bad line is printed
    as `line N: reason` and nothing is imported.
    """
    from tqdm import tqdm

    from netpulse.inventory import DeviceImportError, import_devices_csv

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if total <= 100:
            return
        if bar is None:
            bar = tqdm(total=total, unit="device", desc="importing", disable=None, leave=False)
        bar.update(done - bar.n)

    try:
        with _session() as session:
            org = _organization(session, org_slug)
            report = import_devices_csv(session, org.id, file, dry_run=dry_run, progress=progress)
    except DeviceImportError as exc:
        for line, message in exc.errors:
            click.echo(f"line {line}: {message}", err=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    click.echo(report.summary())


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _row(device: Device) -> list[str]:
    return [str(device.id), device.name, device.address, device.device_type,
            device.site.name if device.site else "-", device.group.name if device.group else "-",
            device.parent.name if device.parent else "-", device.status, device.oper_status,
            ",".join(sorted(t.name for t in device.tags)) or "-"]


@devices.command("list")
@org_option
@click.option("--status", "oper_status", type=click.Choice([s.value for s in OperStatus]),
              help="Only devices whose probes last saw this status.")
@click.option("--site", help="Only devices of this site (name or slug).")
@click.option("--group", help="Only devices of this group (name or slug).")
@click.option("--tag", help="Only devices with this tag (name or slug).")
@click.option("--search", help="Only devices whose name, address or description contains this text.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="Show at most this many devices.")
def list_command(org_slug: str | None, oper_status: str | None, site: str | None, group: str | None,
                 tag: str | None, search: str | None, limit: int) -> None:
    """List devices as a table, ordered by name."""
    from netpulse.inventory import list_devices

    with _session() as session:
        org = _organization(session, org_slug)
        found, total = list_devices(session, org.id, site=site, group=group, tag=tag, oper_status=oper_status,
                                    search=search, limit=limit)
        rows = [_row(d) for d in found]
    if not rows:
        click.echo("no devices match" if total or any((oper_status, site, group, tag, search))
                   else f"no devices in {org.slug} yet; add some with `netpulse devices add` or `import`")
        return
    click.echo(_table(["ID", "NAME", "ADDRESS", "TYPE", "SITE", "GROUP", "PARENT", "STATUS", "OPER", "TAGS"],
                      rows))
    click.echo(f"{len(rows)} of {total} device(s); raise --limit to see more" if total > len(rows)
               else f"{total} device(s)")


@devices.command("add")
@click.argument("name")
@click.argument("address")
@click.option("--type", "device_type", required=True,
              type=click.Choice([t.value for t in DeviceType], case_sensitive=False), help="The kind of device.")
@click.option("--site", help="Site name or slug; created when it does not exist.")
@click.option("--group", help="Device group name or slug; created when it does not exist.")
@click.option("--parent", help="Name of the upstream device (e.g. the switch it hangs off).")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for several. Created when it does not exist.")
@click.option("--description", default="", help="Free text.")
@click.option("--snmp-version", type=click.Choice(["2c", "3"]), help="Poll SNMP with this version.")
@click.option("--snmp-community", envvar="NETPULSE_SNMP_COMMUNITY",
              help="SNMP v2c community (or set NETPULSE_SNMP_COMMUNITY).")
@click.option("--snmp-credential", help="Name of a stored SNMP credential profile (needed for v3).")
@click.option("--snmp-port", type=click.IntRange(1, 65535), default=161, show_default=True,
              help="UDP port of the SNMP agent.")
@click.option("--probe-interval", "probe_interval_s", type=click.IntRange(1, 86400),
              help="Seconds between probes; the global default when left out.")
@org_option
def add_command(name: str, address: str, device_type: str, site: str | None, group: str | None,
                parent: str | None, tags: tuple[str, ...], description: str, snmp_version: str | None,
                snmp_community: str | None, snmp_credential: str | None, snmp_port: int,
                probe_interval_s: int | None, org_slug: str | None) -> None:
    """Add the device NAME at ADDRESS (an IPv4/IPv6 address or a hostname)."""
    from netpulse.inventory import DeviceSpec, create_device

    spec = DeviceSpec(name=name, address=address, device_type=device_type, site=site, group=group, tags=tags,
                      parent=parent, description=description, snmp_version=snmp_version,
                      snmp_community=snmp_community, snmp_credential=snmp_credential, snmp_port=snmp_port,
                      probe_interval_s=probe_interval_s)
    with _session() as session:
        org = _organization(session, org_slug)
        device = create_device(session, org.id, spec)
        summary = f"added device {device.name!r} (id {device.id}): {device.device_type} at {device.address}"
    click.echo(summary)


@devices.command("remove")
@click.argument("name")
@org_option
def remove_command(name: str, org_slug: str | None) -> None:
    """Remove the device NAME. Its alerts go with it; devices below it lose their parent."""
    from sqlalchemy import func, select

    from netpulse.inventory import delete_device, get_device_by_name
    from netpulse.schema import Device

    with _session() as session:
        org = _organization(session, org_slug)
        device = get_device_by_name(session, org.id, name)
        children = session.scalar(select(func.count()).select_from(Device).where(
            Device.organization_id == org.id, Device.parent_id == device.id)) or 0
        device_id = device.id
        delete_device(session, org.id, device_id)
    note = f"; {children} device(s) below it now have no parent" if children else ""
    click.echo(f"removed device {name!r} (id {device_id}){note}")


COMMANDS = [devices]
