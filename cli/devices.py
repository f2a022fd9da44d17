"""``netpulse devices ...``: the device inventory from the command line.

Every command works in one organization: ``--org SLUG``, or the only organization when there is one.
Errors are NetPulse errors, which the ``netpulse`` group prints as one ``Error: ...`` line (exit 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli._common import org_option, organization, session_scope, table
from netpulse.schema import DeviceType, OperStatus

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.orm import Session

    from ingest.discovery import Discovered
    from netpulse.probe_status import ProbeState
    from netpulse.schema import Device


@click.group()
def devices() -> None:
    """Manage the device inventory: import, list, show, add and remove devices."""


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
        with session_scope() as session:
            org = organization(session, org_slug)
            report = import_devices_csv(session, org.id, file, dry_run=dry_run, progress=progress)
    except DeviceImportError as exc:
        for line, message in exc.errors:
            click.echo(f"line {line}: {message}", err=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    click.echo(report.summary())


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

    with session_scope() as session:
        org = organization(session, org_slug)
        found, total = list_devices(session, org.id, site=site, group=group, tag=tag, oper_status=oper_status,
                                    search=search, limit=limit)
        rows = [_row(d) for d in found]
    if not rows:
        click.echo("no devices match" if total or any((oper_status, site, group, tag, search))
                   else f"no devices in {org.slug} yet; add some with `netpulse devices add` or `import`")
        return
    click.echo(table(["ID", "NAME", "ADDRESS", "TYPE", "SITE", "GROUP", "PARENT", "STATUS", "OPER", "TAGS"],
                      rows))
    click.echo(f"{len(rows)} of {total} device(s); raise --limit to see more" if total > len(rows)
               else f"{total} device(s)")


def _probe_rows(states: Sequence[ProbeState], now: datetime) -> list[list[str]]:
    from netpulse.timespec import format_time, human_duration

    rows = []
    for p in states:
        if p.ok:
            state = "ok"
        else:
            state = f"FAILING x{p.fail_streak}" + (f" for {human_duration((now - p.failing_since).total_seconds())}"
                                                     if p.failing_since else "")
        last_error = "-" if p.error is None else f"{p.reason} at {format_time(p.last_error_at)}"
        rows.append([p.kind, p.check_name or "-", state, format_time(p.checked_at),
                     format_time(p.last_success_at) if p.last_success_at else "never", last_error])
    return rows


@devices.command("show")
@click.argument("name")
@org_option
def show_command(name: str, org_slug: str | None) -> None:
    """Show the device NAME: its settings and status, the latest result and last error of each of its
    probes (ICMP, SNMP, TCP, HTTP), its interfaces and its service checks."""
    from datetime import UTC

    from sqlalchemy import select

    from netpulse.inventory import get_device_by_name, list_service_checks
    from netpulse.probe_status import probe_states
    from netpulse.schema import Interface, SnmpCredential
    from netpulse.timespec import format_time

    now = datetime.now(UTC)
    with session_scope() as session:
        org = organization(session, org_slug)
        d = get_device_by_name(session, org.id, name)
        credential = session.get(SnmpCredential, d.snmp_credential_id) if d.snmp_credential_id else None
        snmp = ("-" if d.snmp_version is None and credential is None else
                f"v{credential.version} with credential {credential.name!r}, port {d.snmp_port}" if credential
                else f"v{d.snmp_version}, port {d.snmp_port}")
        since = f" since {format_time(d.oper_status_since)}" if d.oper_status_since else ""
        facts = [("device", f"{d.name} (id {d.id})"), ("address", d.address), ("type", d.device_type),
                 ("site", d.site.name if d.site else "-"), ("group", d.group.name if d.group else "-"),
                 ("parent", d.parent.name if d.parent else "-"),
                 ("tags", ", ".join(sorted(t.name for t in d.tags)) or "-"),
                 ("status", f"{d.status}; probes say {d.oper_status}{since}"),
                 ("last seen", format_time(d.last_seen)), ("probing", "on" if d.probe_enabled else "off"),
                 ("snmp", snmp)]
        if d.description:
            facts.append(("description", d.description))
        probes = _probe_rows(probe_states(session, org.id, [d.id]).get(d.id, []), now)
        interfaces = [[str(i.ifindex), i.name or "-", _speed(i.speed_bps), i.oper_status, format_time(i.last_seen)]
                      for i in session.scalars(select(Interface).where(Interface.device_id == d.id)
                                               .order_by(Interface.ifindex))]
        checks = [[c.name, c.kind, _check_target(c.kind, c.url, d.address, c.port), "yes" if c.enabled else "no"]
                  for c in list_service_checks(session, org.id, d.id)]
    width = max(len(k) for k, _ in facts)
    click.echo("\n".join(f"{k.ljust(width)}  {v}" for k, v in facts))
    click.echo("\nprobes")
    click.echo(table(["PROBE", "CHECK", "STATE", "CHECKED", "LAST SUCCESS", "LAST ERROR"], probes) if probes
               else "  none recorded yet (the device has not been probed since probe results are kept)")
    if interfaces:
        click.echo(f"\ninterfaces ({len(interfaces)})")
        click.echo(table(["IFINDEX", "NAME", "SPEED", "STATUS", "LAST SEEN"], interfaces))
    if checks:
        click.echo(f"\nservice checks ({len(checks)})")
        click.echo(table(["NAME", "KIND", "TARGET", "ENABLED"], checks))


def _speed(bps: int | None) -> str:
    if not bps:
        return "-"
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= size:
            return f"{bps / size:g} {unit}"
    return f"{bps} bit/s"


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
    with session_scope() as session:
        org = organization(session, org_slug)
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

    with session_scope() as session:
        org = organization(session, org_slug)
        device = get_device_by_name(session, org.id, name)
        children = session.scalar(select(func.count()).select_from(Device).where(
            Device.organization_id == org.id, Device.parent_id == device.id)) or 0
        device_id = device.id
        delete_device(session, org.id, device_id)
    note = f"; {children} device(s) below it now have no parent" if children else ""
    click.echo(f"removed device {name!r} (id {device_id}){note}")


# --------------------------------------------------------------------------------------------------
# Discovery


def _check_labels(session: Session, org_id: uuid.UUID, site: str | None, group: str | None) -> None:
    """Check --site and --group the way the inventory will, before a long sweep; writes nothing."""
    from netpulse.inventory import get_or_create_group, get_or_create_site

    with session.begin_nested() as savepoint:
        if site is not None:
            get_or_create_site(session, org_id, site)
        if group is not None:
            get_or_create_group(session, org_id, group)
        savepoint.rollback()


def _unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``, ... when taken (kept within the 255 characters of a name)."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"-{n}"
        candidate = name[:255 - len(suffix)] + suffix
    taken.add(candidate)
    return candidate


def _add_discovered(session: Session, org_id: uuid.UUID, found: Sequence[Discovered], *, network: str, site: str | None,
                    group: str | None, snmp_port: int, dry_run: bool) -> list[tuple[str, str]]:
    """(name, result) for each host: added (or new, in a dry run) under a free name, or already known."""
    from sqlalchemy import func, select

    from netpulse.inventory import DeviceSpec, create_device
    from netpulse.schema import Device

    known: dict[str, str] = {}
    taken: set[str] = set()
    for name, address, ip_text in session.execute(select(Device.name, Device.address, func.host(Device.ip_address))
                                                  .where(Device.organization_id == org_id)):
        taken.add(name)
        known.setdefault(address, name)
        if ip_text is not None:
            known.setdefault(ip_text, name)
    out = []
    for d in found:
        if d.address in known:
            out.append((d.proposed_name, f"known: {known[d.address]}"))
            continue
        name = _unique_name(d.proposed_name, taken)
        if not dry_run:
            descr = " ".join((d.sys_descr or "").split())
            create_device(session, org_id, DeviceSpec(
                name=name, address=d.address, device_type=d.proposed_type, site=site, group=group,
                snmp_version="2c" if d.snmp_community else None, snmp_community=d.snmp_community,
                snmp_port=snmp_port, description=f"discovered in {network}" + (f": {descr}" if descr else "")))
        out.append((name, "new" if dry_run else "added"))
    return out


def _shorten(text: str | None, width: int = 40) -> str:
    flat = " ".join((text or "").split())
    return "-" if not flat else flat if len(flat) <= width else flat[:width - 3] + "..."


@devices.command("discover")
@click.argument("cidr")
@click.option("--snmp-community", "communities", multiple=True, metavar="C", envvar="NETPULSE_SNMP_COMMUNITY",
              help="SNMP v2c community to ask each host that answers; repeat for several, tried in order "
                   "(or NETPULSE_SNMP_COMMUNITY, separated by spaces). Without one, no SNMP is asked.")
@click.option("--snmp-port", type=click.IntRange(1, 65535), default=161, show_default=True,
              help="UDP port of the SNMP agents.")
@click.option("--count", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Echo requests per address; a host is found when any is answered.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0, 60, min_open=True), default=1.0,
              show_default=True, help="Seconds an echo, and an SNMP request, wait for the answer.")
@click.option("--pps", type=click.FloatRange(0, min_open=True),
              help="At most this many echo requests per second. Default: no limit; set one on production networks.")
@click.option("--site", help="Site of the devices added (name or slug); created when it does not exist.")
@click.option("--group", help="Device group of the devices added (name or slug); created when it does not exist.")
@click.option("--dry-run", is_flag=True, help="Sweep and show what would be added, but write nothing.")
@click.option("--max-hosts", type=click.IntRange(1), default=65_536, show_default=True,
              help="Refuse networks with more host addresses than this.")
@click.option("--no-dns", is_flag=True,
              help="Do not look up reverse-DNS names; hosts without a sysName are then named by their address.")
@org_option
def discover_command(cidr: str, communities: tuple[str, ...], snmp_port: int, count: int, timeout_s: float,
                     pps: float | None, site: str | None, group: str | None, dry_run: bool, max_hosts: int,
                     no_dns: bool, org_slug: str | None) -> None:
    """Find the hosts of the network CIDR (IPv4 or IPv6) and add the new ones to the inventory.

    \b
    Examples:
      netpulse devices discover 192.0.2.0/24 --snmp-community public --dry-run
      netpulse devices discover 10.20.0.0/22 --snmp-community s3cret --site lagos-hq --pps 500

    Every host address is pinged; each host that answers is asked for its SNMP system group (sysName,
    sysDescr, sysObjectID) and gets a proposed type (from the vendor of its sysObjectID and its sysDescr)
    and a name (its sysName, else its reverse-DNS name, else its address). Hosts whose address is already
    in the organization are reported as known and left alone; a name already taken gets a suffix (-2, -3,
    ...). Hosts that answered SNMP are saved with v2c and the community that worked, so they are polled.
    Pinging needs root (raw sockets), or datagram ICMP sockets allowed by net.ipv4.ping_group_range.
    """
    from tqdm import tqdm

    from ingest.discovery import PROGRESS_CHUNK, discover, host_count, parse_network
    from ingest.icmp import icmp_permitted

    network = parse_network(cidr, max_hosts)   # a bad network fails before the database is opened
    with session_scope() as session:
        org_id = organization(session, org_slug).id
        _check_labels(session, org_id, site, group)
    total = host_count(network)
    click.echo(f"sweeping {total:,} address(es) of {network}", err=True)
    bar: Any = None
    if total > PROGRESS_CHUNK:
        bar = tqdm(total=total, unit="address", desc="sweeping", disable=None, leave=False)
    try:
        found = discover(str(network), communities=communities, snmp_port=snmp_port, icmp_count=count,
                         timeout_s=timeout_s, pps=pps, privileged=icmp_permitted(True), max_hosts=max_hosts,
                         resolve_names=not no_dns,
                         progress=(lambda done, _: bar.update(done - bar.n)) if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    if not found:
        click.echo(f"no host answered in {network} ({total:,} address(es) swept)")
        return
    with session_scope() as session:
        outcome = _add_discovered(session, org_id, found, network=str(network), site=site, group=group,
                                  snmp_port=snmp_port, dry_run=dry_run)
    rows = [[d.address, f"{d.rtt_ms:.2f}" if d.rtt_ms is not None else "-", f"{d.loss_pct:g}", name,
             d.proposed_type.value, "v2c" if d.snmp_community else "-", _shorten(d.sys_descr), result]
            for d, (name, result) in zip(found, outcome, strict=True)]
    click.echo(table(["ADDRESS", "RTT MS", "LOSS %", "NAME", "TYPE", "SNMP", "SYSDESCR", "RESULT"], rows))
    known = sum(1 for _, result in outcome if result.startswith("known"))
    new = len(outcome) - known
    if dry_run:
        click.echo(f"{len(found)} host(s) answered in {network}: {new} new, {known} already known; "
                   f"dry run, nothing was added")
    else:
        click.echo(f"{len(found)} host(s) answered in {network}: added {new}, {known} already known")


# --------------------------------------------------------------------------------------------------
# Service checks


@devices.group("check")
def check_group() -> None:
    """Service checks of a device: a TCP port, or an HTTP(S) URL with its TLS certificate's expiry."""


@check_group.command("add")
@click.argument("device")
@click.option("--http", "url", metavar="URL", help="Check this http:// or https:// URL.")
@click.option("--tcp", "port", type=int, metavar="PORT",
              help="Check that this TCP port of the device's address accepts connections.")
@click.option("--name", help="Name of the check, unique per device. Default: tcp-PORT, or the URL's scheme "
                             "and port and path (https-443, http-8080/health).")
@click.option("--method", type=click.Choice(["GET", "HEAD"], case_sensitive=False), default="GET",
              show_default=True, help="HTTP method (http checks).")
@click.option("--expect-status", "expected_status", type=int, metavar="N",
              help="The status that passes (http checks). Default: any 2xx or 3xx.")
@click.option("--expect-body", "expected_body", metavar="TEXT",
              help="Text that must appear in the first MiB of the body (http checks, GET).")
@click.option("--no-verify-tls", is_flag=True,
              help="Accept any certificate (https checks); its days to expiry are still recorded.")
@click.option("--timeout", "timeout_s", type=float, metavar="S",
              help="Seconds for the whole check, more than 0 and at most 60. Default: 5.")
@org_option
def check_add_command(device: str, url: str | None, port: int | None, name: str | None, method: str,
                      expected_status: int | None, expected_body: str | None, no_verify_tls: bool,
                      timeout_s: float | None, org_slug: str | None) -> None:
    """Add a service check to the device named DEVICE: give --http URL or --tcp PORT.

    \b
    Examples:
      netpulse devices check add web-1 --http https://web-1.example.com/health --expect-body ok
      netpulse devices check add db-1 --tcp 5432
    """
    from netpulse.inventory import DEFAULT_CHECK_TIMEOUT_S, ServiceCheckSpec, add_service_check, get_device_by_name
    from netpulse.schema import CheckKind

    if (url is None) == (port is None):
        raise click.UsageError("give either --http URL or --tcp PORT (one check per command)")
    spec = ServiceCheckSpec(kind=CheckKind.HTTP if url is not None else CheckKind.TCP, name=name, port=port,
                            url=url, method=method.upper(), expected_status=expected_status,
                            expected_body=expected_body, verify_tls=not no_verify_tls,
                            timeout_s=DEFAULT_CHECK_TIMEOUT_S if timeout_s is None else timeout_s)
    with session_scope() as session:
        org = organization(session, org_slug)
        found = get_device_by_name(session, org.id, device)
        check = add_service_check(session, org.id, found.id, spec)
        summary = f"added {check.kind} check {check.name!r} (id {check.id}) to device {found.name!r}"
    click.echo(summary)


def _check_target(kind: str, url: str | None, address: str, port: int | None) -> str:
    if kind == "http":
        return url or "-"
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@check_group.command("list")
@click.argument("device", required=False)
@org_option
def check_list_command(device: str | None, org_slug: str | None) -> None:
    """List the service checks of the device named DEVICE, or of every device."""
    from netpulse.inventory import get_device_by_name, list_service_checks

    with session_scope() as session:
        org = organization(session, org_slug)
        device_id = get_device_by_name(session, org.id, device).id if device is not None else None
        rows = []
        for c in list_service_checks(session, org.id, device_id):
            expect = [str(c.expected_status) if c.expected_status is not None else
                      ("2xx/3xx" if c.kind == "http" else "connect")]
            if c.expected_body is not None:
                expect.append(f"body {c.expected_body!r}")
            tls = ("-" if c.kind != "http" or not (c.url or "").lower().startswith("https:")
                   else "verify" if c.verify_tls else "no-verify")
            rows.append([str(c.id), c.device.name, c.name, c.kind,
                         _check_target(c.kind, c.url, c.device.address, c.port),
                         (c.method + " " if c.kind == "http" else "") + ", ".join(expect),
                         f"{c.timeout_s:g}", tls, "yes" if c.enabled else "no"])
    if not rows:
        click.echo(f"device {device!r} has no service checks yet; add one with `netpulse devices check add`"
                   if device is not None else "no service checks yet; add one with `netpulse devices check add`")
        return
    click.echo(table(["ID", "DEVICE", "NAME", "KIND", "TARGET", "EXPECT", "TIMEOUT_S", "TLS", "ENABLED"], rows))
    click.echo(f"{len(rows)} check(s)")


@check_group.command("remove")
@click.argument("device")
@click.argument("name")
@org_option
def check_remove_command(device: str, name: str, org_slug: str | None) -> None:
    """Remove the check NAME from the device named DEVICE. Its stored metrics stay until retention."""
    from netpulse.inventory import get_device_by_name, remove_service_check

    with session_scope() as session:
        org = organization(session, org_slug)
        found = get_device_by_name(session, org.id, device)
        remove_service_check(session, org.id, found.id, name)
    click.echo(f"removed check {name!r} from device {device!r}")


@check_group.command("run")
@click.argument("device")
@org_option
def check_run_command(device: str, org_slug: str | None) -> None:
    """Run every service check of the device named DEVICE once, disabled ones too, and print the results.

    Nothing is stored. Exits with status 1 when a check fails, so scripts can use it.
    """
    from ingest.http import load_check_targets, run_checks
    from netpulse.inventory import get_device_by_name, list_service_checks

    with session_scope() as session:
        org = organization(session, org_slug)
        found = get_device_by_name(session, org.id, device)
        names = {c.id: c.name for c in list_service_checks(session, org.id, found.id)}
        targets = load_check_targets(session, [found.id], org_id=org.id, include_disabled=True)
    if not names:
        click.echo(f"device {device!r} has no service checks yet; add one with `netpulse devices check add`")
        return
    results = run_checks(targets)  # outside the session: no transaction stays open while probing

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [[names.get(r.target.check_id, "?"), "http", r.target.url, "ok" if r.ok else "FAIL",
             "-" if r.status is None else str(r.status), ms(r.response_ms),
             "-" if r.tls_days_to_expiry is None else f"{r.tls_days_to_expiry:.1f}", r.reason or "-"]
            for r in results.http]
    rows += [[names.get(r.target.check_id or 0, "?"), "tcp", _check_target("tcp", None, r.target.address,
                                                                           r.target.port),
              "ok" if r.ok else "FAIL", "-", ms(r.connect_ms), "-", r.reason or "-"] for r in results.tcp]
    rows.sort(key=lambda row: row[0])
    click.echo(table(["NAME", "KIND", "TARGET", "RESULT", "STATUS", "MS", "CERT_DAYS", "REASON"], rows))
    failed = sum(1 for row in rows if row[3] == "FAIL")
    if failed:
        click.echo(f"{failed} of {len(rows)} check(s) failed", err=True)
        raise SystemExit(1)
    click.echo(f"{len(rows)} check(s) passed")


COMMANDS = [devices]
