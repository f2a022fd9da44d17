"""``netpulse sla ...`` and ``netpulse maintenance ...``: availability reports, SLA targets, maintenance windows.

Every command works in one organization (``--org SLUG``, or the only one). Bad input is a NetPulse
error, which the ``netpulse`` group prints as one ``Error: ...`` line (exit 1).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from cli._common import connection, org_option, organization, session_scope, table
from netpulse.csvfile import write_frame
from netpulse.errors import ValidationError
from netpulse.timespec import format_time as _iso
from netpulse.timespec import human_duration as human
from netpulse.timespec import parse_duration, parse_time

# The same values as analytics.sla (BY, SCOPES, PERIODS) and analytics.rules (SEVERITIES), which load only
# when a command runs.
BY_CHOICES = ("device", "group", "site", "tag", "org")
SCOPE_CHOICES = ("device", "group", "site", "tag", "all")
PERIOD_CHOICES = ("day", "week", "month", "quarter", "year")
SEVERITY_CHOICES = ("info", "warning", "critical")


def _check_ref(scope: str, ref: str | None) -> None:
    """--ref goes with every scope but all (checked before anything else, in the options' words)."""
    if scope == "all" and ref:
        raise ValidationError("--ref is not used with --scope all; leave it out", details={"ref": "not allowed"})
    if scope != "all" and not ref:
        raise ValidationError(f"--scope {scope} needs --ref NAME (the {scope}'s name)", details={"ref": "required"})


def _span(start_text: str | None, end_text: str) -> tuple[datetime, datetime]:
    if not start_text:
        raise ValidationError("--to needs --from (or use --since for a period that ends now)",
                              details={"from": "required with --to"})
    start, end = parse_time(start_text, field="--from"), parse_time(end_text, field="--to")
    if end <= start:
        raise ValidationError(f"--to ({_iso(end)}) must be after --from ({_iso(start)})",
                              details={"to": "must be after --from"})
    return start, end


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}%"


def _budget(minutes: float | None) -> str:
    return "-" if minutes is None else human(minutes * 60)


# --------------------------------------------------------------------------------------------------
@click.group()
def sla() -> None:
    """Availability reports and SLA targets, from the device status history.

    Down time in maintenance windows counts neither as monitored nor as down; degraded counts as up.
    """


@sla.command("report")
@click.option("--since", metavar="DURATION", help="The period that ends now: 30d, 12h, 2w, 90m or 1d12h "
                                                  "[default: 30d].")
@click.option("--from", "start_text", metavar="ISO", help="Start of the period (ISO 8601; UTC unless it has an "
                                                         "offset). Instead of --since.")
@click.option("--to", "end_text", metavar="ISO", help="End of the period, exclusive [default: now].")
@click.option("--by", type=click.Choice(BY_CHOICES), default="device", show_default=True,
              help="One row per device, or time-weighted per group, site, tag or for the organization.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also write every column (seconds, unrounded; down_s is device-seconds for several "
                   "devices) to this CSV file.")
@org_option
def report_command(since: str | None, start_text: str | None, end_text: str | None, by: str,
                   csv_path: Path | None, org_slug: str | None) -> None:
    """Availability, down time, outages, MTTR and MTBF per device, group, site or tag, worst first.

    \b
    Examples:
      netpulse sla report --since 7d --by site
      netpulse sla report --from 2026-10-01 --to 2026-11-01 --csv october.csv
    """
    from analytics.sla import availability

    now = datetime.now(UTC)
    if since is not None and (start_text or end_text):
        raise ValidationError("use either --since or --from/--to, not both", details={"since": "conflicts"})
    if start_text or end_text:
        start, end = _span(start_text, end_text or now.isoformat())
    else:
        end = now
        start = end - parse_duration(since or "30d", field="--since")
    with connection(org_slug) as (conn, org):
        frame = availability(conn, org.id, start, end, by=by)  # type: ignore[arg-type]
    key = "NAME" if by in ("device", "org") else by.upper()
    single = by == "device"
    # Down time of several devices is device time: two devices down for an hour are 2.0 device-hours,
    # which a duration ("2h") would pass off as wall-clock time.
    headers = [key, *(["SITE", "GROUP"] if single else ["DEVICES"]),
               "AVAILABILITY", "DOWN" if single else "DOWN (DEVICE-H)", "OUTAGES", "MTTR", "MTBF"]
    rows = [[r["name"] or "(none)", *([r["site"] or "-", r["group"] or "-"] if single else [str(r["devices"])]),
             _pct(r["availability_pct"]), human(r["down_s"]) if single else f"{r['down_s'] / 3600:.2f}",
             str(r["outages"]), human(r["mttr_s"]), human(r["mtbf_s"])] for r in frame.iter_rows(named=True)]
    click.echo(f"availability by {by}, {_iso(start)} to {_iso(end)} UTC, worst first")
    click.echo(table(headers, rows) if rows else f"no devices in {org.slug} yet")
    if rows:
        click.echo("MTTR: mean length of an outage; MTBF: mean wall-clock time between outages"
                   + ("" if single else " anywhere in the " + by) + " (neither can exceed the period)")
    if csv_path is not None:
        try:
            write_frame(frame, csv_path)
        except OSError as exc:
            raise ValidationError(f"--csv: cannot write {csv_path}: {exc.strerror or exc}",
                                  details={"csv": str(exc)}) from None
        click.echo(f"wrote {frame.height} row(s) to {csv_path}")


@sla.group("target")
def target() -> None:
    """SLA targets: the availability a device, group, site, tag or all devices must reach per period."""


@target.command("add")
@click.option("--scope", required=True, type=click.Choice(SCOPE_CHOICES),
              help="What the target covers: one device, a group, a site, a tag, or all devices.")
@click.option("--ref", metavar="NAME", help="The device, group, site or tag name (not with --scope all).")
@click.option("--target", "target_pct", required=True, metavar="PCT",
              help="Availability to reach, in percent: 99.9 (above 0, at most 100, four decimals at most).")
@click.option("--period", type=click.Choice(PERIOD_CHOICES), default="month", show_default=True,
              help="The calendar period (UTC) the availability is measured over.")
@click.option("--severity", type=click.Choice(SEVERITY_CHOICES), default="critical", show_default=True,
              help="Severity of the alert a breach opens.")
@org_option
def target_add_command(scope: str, ref: str | None, target_pct: str, period: str, severity: str,
                       org_slug: str | None) -> None:
    """Add an SLA target.

    \b
    Examples:
      netpulse sla target add --scope all --target 99.9
      netpulse sla target add --scope site --ref Nairobi --target 99.95 --period quarter
    """
    from analytics.sla_targets import add_sla_target, describe_scope, format_pct

    _check_ref(scope, ref)
    with session_scope() as session:
        org = organization(session, org_slug)
        added = add_sla_target(session, org.id, scope=scope, ref=ref, target_pct=target_pct, period=period,
                               severity=severity)
        summary = (f"added SLA target {added.id} to {org.slug}: {describe_scope(added.scope, added.scope_ref)} "
                   f"{format_pct(added.target_pct)} per {added.period}, a breach opens a {added.severity} alert")
    click.echo(summary)


@target.command("list")
@click.option("--at", "at_text", metavar="ISO", help="Evaluate as of this time instead of now, e.g. the last "
                                                    "second of a past month.")
@org_option
def target_list_command(at_text: str | None, org_slug: str | None) -> None:
    """SLA targets and what each achieved so far in its calendar period (UTC).

    BUDGET is the down time still allowed until the period ends (device-minutes for several devices);
    negative once it is spent.
    """
    from analytics.sla import evaluate_targets

    now = parse_time(at_text, field="--at") if at_text else datetime.now(UTC)
    with connection(org_slug) as (conn, org):
        results = evaluate_targets(conn, org.id, now)
    if not results:
        click.echo(f"no SLA targets in {org.slug} yet; add one with `netpulse sla target add`")
        return
    rows = [[str(r.target_id), r.scope, r.scope_ref or "-", r.period, _iso(r.period_start),
             str(r.devices), f"{r.target_pct:g}%", _pct(r.achieved_pct),
             _budget(r.error_budget_min),
             "BREACHED" if r.breached else ("no data" if r.achieved_pct is None else "ok")] for r in results]
    click.echo(table(["ID", "SCOPE", "REF", "PERIOD", "SINCE", "DEVICES", "TARGET", "ACHIEVED", "BUDGET", "STATUS"],
                      rows))
    breached = sum(r.breached for r in results)
    click.echo(f"{len(results)} target(s), {breached} breached")


@target.command("remove")
@click.argument("target_id", metavar="ID", type=int)
@org_option
def target_remove_command(target_id: int, org_slug: str | None) -> None:
    """Remove the SLA target ID (see `sla target list`); its open breach alert is resolved."""
    from analytics.sla_targets import describe_scope, format_pct, remove_sla_target

    with session_scope() as session:
        removed, resolved = remove_sla_target(session, organization(session, org_slug).id, target_id)
        summary = (f"removed SLA target {removed.id}: {describe_scope(removed.scope, removed.scope_ref)} "
                   f"{format_pct(removed.target_pct)} per {removed.period}")
    click.echo(summary + ("; resolved its open breach alert" if resolved else ""))


@sla.command("targets", hidden=True)
@click.option("--at", "at_text", metavar="ISO")
@org_option
@click.pass_context
def targets_command(ctx: click.Context, at_text: str | None, org_slug: str | None) -> None:
    """Renamed: `netpulse sla target list`."""
    click.echo("note: `netpulse sla targets` is now `netpulse sla target list`", err=True)
    ctx.invoke(target_list_command, at_text=at_text, org_slug=org_slug)


# --------------------------------------------------------------------------------------------------
@click.group()
def maintenance() -> None:
    """Maintenance windows: time that counts neither as monitored nor as down in availability and SLAs."""


@maintenance.command("add")
@click.option("--scope", required=True, type=click.Choice(SCOPE_CHOICES),
              help="What the window covers: one device, a group, a site, a tag, or all devices.")
@click.option("--ref", metavar="NAME", help="The device, group, site or tag name (not with --scope all).")
@click.option("--from", "start_text", required=True, metavar="ISO",
              help="Start (ISO 8601; UTC unless it has an offset).")
@click.option("--to", "end_text", required=True, metavar="ISO", help="End, exclusive.")
@click.option("--reason", default="", help="Free text shown in the list.")
@org_option
def maintenance_add_command(scope: str, ref: str | None, start_text: str, end_text: str, reason: str,
                            org_slug: str | None) -> None:
    """Add a maintenance window.

    \b
    Example:
      netpulse maintenance add --scope site --ref Nairobi --from 2026-12-01T22:00Z --to 2026-12-02T02:00Z \\
        --reason "core upgrade"
    """
    from analytics.maintenance import add_window

    _check_ref(scope, ref)
    start, end = _span(start_text, end_text)
    with session_scope() as session:
        org = organization(session, org_slug)
        window = add_window(session, org.id, scope=scope, scope_ref=ref, start=start, end=end, reason=reason)
        name = window.scope_ref
    what = "all devices" if name is None else f"{scope} {name!r}"
    click.echo(f"added maintenance window {window.id}: {what} from {_iso(start)} to {_iso(end)} UTC "
               f"({human((end - start).total_seconds())})")


@maintenance.command("list")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="Show at most this many windows.")
@org_option
def maintenance_list_command(limit: int, org_slug: str | None) -> None:
    """List maintenance windows, latest start first."""
    from analytics.maintenance import list_windows

    now = datetime.now(UTC)
    with session_scope() as session:
        org = organization(session, org_slug)
        found, total = list_windows(session, org.id, now=now, limit=limit)
    if not found:
        click.echo(f"no maintenance windows in {org.slug} yet; add one with `netpulse maintenance add`")
        return
    rows = [[str(w.id), w.scope, w.scope_ref or "-", _iso(w.starts_at), _iso(w.ends_at),
             human((w.ends_at - w.starts_at).total_seconds()), w.state(now), w.reason or "-"] for w in found]
    click.echo(table(["ID", "SCOPE", "REF", "FROM", "TO", "LENGTH", "STATE", "REASON"], rows))
    more = f" of {total}; raise --limit to see more" if total > len(rows) else ""
    click.echo(f"{len(rows)} window(s){more}")


COMMANDS = [sla, maintenance]
