"""``netpulse report ...``: make a report now, schedule reports, list what was made and download it.

Every command works in one organization (``--org SLUG``, or the only one). Periods and scopes are read
in the scope's site's time zone, else the organization's. Errors print as one ``Error: ...`` line.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from cli._common import connection, org_option, table
from netpulse.config import get_settings
from netpulse.errors import ValidationError

KINDS = ("availability", "performance", "alerts")
FORMATS = ("pdf", "csv")
FREQUENCIES = ("daily", "weekly", "monthly", "cron")
PERIOD_HELP = ("last-month, last-week, yesterday, last-7d (whole days up to today's midnight), last-24h, or "
               "FROM..TO (ISO dates or times; without an offset they are local) [default: last-month].")


def _write(path: Path, content: bytes) -> None:
    try:
        path.write_bytes(content)
    except OSError as exc:
        raise ValidationError(f"-o: cannot write {path}: {exc.strerror or exc}", details={"output": str(exc)}) from None


@click.group()
def report() -> None:
    """Availability/SLA, performance and alert reports as PDF or CSV, now or on a schedule."""


def _make_command(kind: str) -> click.Command:
    @click.command(kind, help=f"Make the {kind} report now and write it to a file.\n\n"
                              f"\b\nExamples:\n  netpulse report {kind} --scope site:Nairobi --period last-month "
                              f"-o {kind}.pdf\n  netpulse report {kind} --period 2026-10-01..2026-10-08 "
                              f"--format csv -o {kind}.csv")
    @click.option("--scope", default="all", show_default=True, metavar="SCOPE",
                  help="all, or site:NAME, group:NAME, device:NAME, tag:NAME.")
    @click.option("--period", default="last-month", metavar="PERIOD", help=PERIOD_HELP)
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                  help="pdf or csv [default: from the file name, else pdf].")
    @click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, metavar="FILE",
                  help="Where to write the report ('-' for standard output).")
    @org_option
    def command(scope: str, period: str, fmt: str | None, output: Path, org_slug: str | None) -> None:
        from tqdm import tqdm

        from reports.generate import generate, resolve, steps
        from reports.scope import parse_scope

        chosen = fmt or ("csv" if output.suffix.lower() == ".csv" else "pdf")
        parse_scope(scope)  # a malformed scope is refused before connecting
        with connection(org_slug) as (conn, org):
            resolved, span = resolve(conn, org.id, scope, period, now=datetime.now(UTC))
            with tqdm(total=steps(kind), desc=f"{kind} report", unit="step", leave=False,
                      disable=not sys.stderr.isatty()) as bar:
                def advance(step: str) -> None:
                    bar.set_postfix_str(step)
                    bar.update()

                made = generate(conn, org.id, kind, resolved, span, chosen, progress=advance)
        if str(output) == "-":
            sys.stdout.buffer.write(made.content)
            sys.stdout.flush()
            return
        _write(output, made.content)
        pages = f", {made.pages} page(s)" if made.pages else ""
        click.echo(f"wrote {output}: {kind} report for {resolved.label}, {span.label} in {span.zone_label}{pages}, "
                   f"{len(made.content) // 1024 + 1} KB in {made.duration_s:.1f} s")

    return command


for _kind in KINDS:
    report.add_command(_make_command(_kind))


@report.group()
def schedule() -> None:
    """Reports made and emailed on a schedule by the workers (`netpulse scheduler` sends them due)."""


@schedule.command("add")
@click.argument("name")
@click.option("--report", "kind", type=click.Choice(KINDS), required=True, help="Which report.")
@click.option("--scope", default="all", show_default=True, metavar="SCOPE",
              help="all, or site:NAME, group:NAME, device:NAME, tag:NAME.")
@click.option("--every", "frequency", type=click.Choice(FREQUENCIES), default="monthly", show_default=True,
              help="daily: the day before; weekly: the week before (Monday to Monday); monthly: the month "
                   "before; cron: the time since the previous firing.")
@click.option("--at", default="06:00", show_default=True, metavar="HH:MM", help="When it fires (daily, weekly, "
                                                                                  "monthly), local time.")
@click.option("--day", metavar="DAY", help="weekly: mon..sun [mon]; monthly: 1..28 [1].")
@click.option("--cron", metavar="EXPR", help="With --every cron: five fields, e.g. '0 7 * * 1-5'.")
@click.option("--time-zone", metavar="TZ", help="IANA time zone [default: the scope's site's, else the "
                                                "organization's].")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="pdf", show_default=True)
@click.option("--email", "channels", multiple=True, metavar="CHANNEL",
              help="An email notification channel (sendgrid or smtp) that gets the file; repeat for several.")
@org_option
def schedule_add(name: str, kind: str, scope: str, frequency: str, at: str, day: str | None, cron: str | None,
                 time_zone: str | None, fmt: str, channels: tuple[str, ...], org_slug: str | None) -> None:
    """Add a report schedule.

    \b
    Examples:
      netpulse report schedule add nairobi-monthly --report availability --scope site:Nairobi \\
        --every monthly --at 07:00 --email managers
      netpulse report schedule add weekdays --report alerts --every cron --cron '0 7 * * 1-5' --email noc
    """
    from reports.schedules import add_schedule, schedule_time_zone

    with connection(org_slug) as (conn, org):
        made = add_schedule(conn, org.id, name, kind=kind, scope=scope, fmt=fmt, frequency=frequency, at=at,
                            day=day, cron=cron, time_zone=time_zone, channels=channels)
        tz = schedule_time_zone(conn, made)
    to = f", emailed to {', '.join(made.channels)}" if made.channels else ", not emailed (download it)"
    click.echo(f"added schedule {made.name!r}: {made.kind} report for {made.scope.label}, {made.frequency} "
               f"(cron '{made.cron}' in {tz}){to}")


@schedule.command("list")
@org_option
def schedule_list(org_slug: str | None) -> None:
    """List the schedules with their last run."""
    from reports.runs import list_runs
    from reports.schedules import list_schedules, schedule_time_zone

    with connection(org_slug) as (conn, org):
        schedules = list_schedules(conn, org.id)
        rows = []
        for s in schedules:
            runs, _ = list_runs(conn, org.id, schedule=s.name, limit=1)
            last = runs[0] if runs else None
            rows.append([s.name, s.kind, s.scope.text, s.format, f"{s.frequency} '{s.cron}'",
                         schedule_time_zone(conn, s), ", ".join(s.channels) or "-", "yes" if s.enabled else "no",
                         f"{last.status} ({last.period.label})" if last else "-"])
    if not rows:
        click.echo(f"no report schedules in {org.slug} yet; add one with `netpulse report schedule add`")
        return
    click.echo(table(["NAME", "REPORT", "SCOPE", "FORMAT", "WHEN", "TIME ZONE", "EMAIL", "ENABLED", "LAST RUN"], rows))


@schedule.command("remove")
@click.argument("name")
@org_option
def schedule_remove(name: str, org_slug: str | None) -> None:
    """Remove a schedule; the reports it made stay in the history."""
    from reports.schedules import remove_schedule

    with connection(org_slug) as (conn, org):
        removed = remove_schedule(conn, org.id, name)
    click.echo(f"removed schedule {removed.name!r}")


@schedule.command("run")
@click.argument("name")
@click.option("--period", metavar="PERIOD", help="The period to make [default: the schedule's latest]. "
              + PERIOD_HELP.replace(" [default: last-month].", "."))
@org_option
def schedule_run(name: str, period: str | None, org_slug: str | None) -> None:
    """Make a schedule's report now (and email it), here rather than on a worker.

    A period the schedule has made already is not made (nor emailed) again: its run is shown instead.
    Its emails go out through the notification outbox from here; one that fails for a reason that
    may pass is retried by the workers.
    """
    from analytics.notify.outbox import RetryPolicy, send_due
    from netpulse.db import connect
    from reports.runs import execute_run, get_run, request_schedule_run

    settings = get_settings()
    now = datetime.now(UTC)
    with connection(org_slug) as (conn, org):
        run_id, claimed = request_schedule_run(conn, org.id, name, now=now, period=period)
        run = get_run(conn, org.id, run_id)
    span = run.period
    if not claimed and run.status in ("succeeded", "failed"):
        click.echo(f"run {run.id} made {span.label} already ({run.status}); `netpulse report download {run.id}` "
                   "gets the file")
        return
    url = settings.require_database_url()
    with connect(url, autocommit=True) as conn:
        outcome = execute_run(conn, run_id, max_attempts=settings.report_max_attempts)
    if outcome.status == "busy":
        click.echo(f"run {run_id} is being made by a worker right now")
        return
    if outcome.outbox_ids:
        send_due(lambda: connect(url, autocommit=True), settings=settings, policy=RetryPolicy.from_settings(settings),
                 ids=outcome.outbox_ids)
    with connection(org_slug) as (conn, org):
        deliveries = get_run(conn, org.id, run_id).deliveries
    mails = "; ".join(f"{d.channel}: {d.status}" + (f" ({d.error})" if d.error and d.status != "sent" else "")
                      for d in deliveries) or "no email"
    click.echo(f"run {run_id}: {outcome.status} ({span.label}); {mails}"
               + (f"; {outcome.error}" if outcome.error else ""))
    if outcome.status not in ("succeeded", "done"):
        sys.exit(1)


@report.command("history")
@click.option("--schedule", "schedule_name", metavar="NAME", help="Only this schedule's runs.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=30, show_default=True)
@org_option
def history(schedule_name: str | None, limit: int, org_slug: str | None) -> None:
    """Reports made, newest first: status, period, file, figures, duration and emails."""
    from reports.runs import list_runs

    with connection(org_slug) as (conn, org):
        runs, total = list_runs(conn, org.id, schedule=schedule_name, limit=limit)
    if not runs:
        click.echo("no reports made yet")
        return
    rows = [[str(r.id), r.schedule_name or "(on request)", r.kind, r.scope.text, r.period.label, r.status,
             str(r.attempts), f"{(r.size or 0) // 1024 + 1} KB" if r.size else "-",
             f"{r.duration_s:.1f} s" if r.duration_s is not None else "-",
             ", ".join(f"{d.channel} {d.status}" for d in r.deliveries) or "-", (r.error or "")[:60]]
            for r in runs]
    click.echo(table(["ID", "SCHEDULE", "REPORT", "SCOPE", "PERIOD", "STATUS", "TRIES", "FILE", "TOOK", "EMAIL",
                      "ERROR"], rows))
    click.echo(f"{len(runs)} of {total} run(s)")


@report.command("download")
@click.argument("run_id", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Where to write it [default: the report's own file name, here].")
@org_option
def download(run_id: int, output: Path | None, org_slug: str | None) -> None:
    """Write a report that was made (see `netpulse report history`) to a file."""
    from reports.runs import run_file

    with connection(org_slug) as (conn, org):
        name, _, content = run_file(conn, org.id, run_id)
    target = output or Path(name)
    _write(target, content)
    click.echo(f"wrote {target} ({len(content) // 1024 + 1} KB)")


COMMANDS = [report]
