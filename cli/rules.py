"""``netpulse rules ...`` and ``netpulse alerts ...``: alert rules and the alerts they open."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli._common import connection, org_option, table
from netpulse.timespec import human_duration as human
from netpulse.timespec import parse_duration, parse_time

if TYPE_CHECKING:
    from analytics.rules import Rule


def _since(text: str) -> timedelta:
    return parse_duration(text, field="--since")


def _checked_rules(rule_file: Path, conn: Any, org_id: uuid.UUID) -> list[Rule]:
    """The rules of ``rule_file`` when it has no problem, their scopes checked against the organization;
    otherwise each problem on its own line of stderr (``FILE:LINE: rule NAME: problem``) and an error."""
    from analytics.rulefile import RuleFileError, read_rule_file

    try:
        found = read_rule_file(rule_file)
        found.check_references(conn, org_id)
        found.raise_for_problems()
    except RuleFileError as exc:
        if len(exc.problems) > 1:
            for line in exc.lines():
                click.echo(line, err=True)
        raise
    return found.rules


def _when(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


@click.group()
def rules() -> None:
    """Alert rules: try them on history, load them, list them."""


@rules.command("backtest")
@click.argument("rule_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--since", default="7d", show_default=True, help="How far back to replay (e.g. 24h, 7d, 4w).")
@click.option("--until", "until_text", default=None, metavar="ISO",
              help="End of the replay, ISO 8601, UTC unless it has an offset [default: now].")
@click.option("--resolution", type=click.Choice(["auto", "raw", "1m", "1h"]), default="raw", show_default=True,
              help="Samples to replay: raw probes, or a rollup for long ranges (faster, coarser).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Alerts listed per rule.")
@org_option
def backtest_command(rule_file: Path, since: str, until_text: str | None, resolution: Any, limit: int,
                     org_slug: str | None) -> None:
    """Replay the rules of RULE_FILE (TOML or JSON) over stored history and list the alerts each
    would have opened and when, without writing anything.

    \b
    Example rule file (TOML):
      [[rule]]
      name = "latency"
      metric = "icmp_rtt_ms"
      comparator = ">"
      value = 150
      clear = 100
      for = "5m"
      severity = "critical"
      scope = "site:Nairobi"      # device:NAME, group:NAME, tag:NAME or all
    """
    from tqdm import tqdm

    from analytics.evaluate import backtest

    end = parse_time(until_text, field="--until") if until_text else datetime.now(UTC)
    start = end - _since(since)
    with connection(org_slug) as (conn, org):
        org_id = org.id
        rule_list = _checked_rules(rule_file, conn, org_id)
        names = dict(conn.execute("SELECT id, name FROM devices WHERE organization_id = %s", (org_id,)).fetchall())
        for rule in tqdm(rule_list, desc="replaying", unit="rule", disable=None, leave=False):
            click.echo(f"\n{rule.name} [{rule.severity}]: {rule.describe()}")
            if rule.kind == "status":
                click.echo("  status rules follow the probes' device status; see `netpulse sla report` for outages")
                continue
            result = backtest(conn, org_id, rule, start, end, resolution=resolution)
            if not result.devices:
                click.echo("  no device in scope")
                continue
            rows = []
            for a in result.alerts[:limit]:
                rows.append([names.get(a.device_id, str(a.device_id)) + (f" if{a.ifindex}" if a.ifindex else ""),
                             _when(a.started_at), _when(a.opened_at),
                             _when(a.resolved_at) if a.resolved_at else "open",
                             human(((a.resolved_at or end) - a.opened_at).total_seconds()),
                             "-" if a.worst is None else f"{a.worst:.4g}"])
            if rows:
                click.echo(table(["device", "breach began", "alert opened", "resolved", "lasted", "worst"], rows))
            fired = len(result.alerts)
            more = f" (first {limit} listed)" if fired > limit else ""
            click.echo(f"  {fired} alert(s) would have opened{more}, {result.still_open} still open at the end; "
                       f"{len({(a.device_id, a.ifindex) for a in result.alerts})} series of {result.series} "
                       f"over {result.samples:,} samples from {_when(start)} to {_when(end)}")


@rules.command("load")
@click.argument("rule_file", type=click.Path(dir_okay=False, path_type=Path))
@org_option
def load_command(rule_file: Path, org_slug: str | None) -> None:
    """Create or update (by name) the rules of RULE_FILE; the live evaluation picks them up."""
    from analytics.rules import save_rules

    with connection(org_slug) as (conn, org):
        org_id = org.id
        saved = save_rules(conn, org_id, _checked_rules(rule_file, conn, org_id))
    click.echo(f"{len(saved)} rule(s) saved: {', '.join(r.name for r in saved)}")


@rules.command("list")
@org_option
def list_command(org_slug: str | None) -> None:
    """List the rules."""
    from analytics.rules import load_rules

    with connection(org_slug) as (conn, org):
        org_id = org.id
        found = load_rules(conn, org_id, enabled_only=False)
    if not found:
        click.echo("no rules yet; load some with `netpulse rules load FILE`")
        return
    click.echo(table(["name", "severity", "enabled", "condition"],
                      [[r.name, r.severity, "yes" if r.enabled else "no", r.describe()] for r in found]))


@click.group()
def alerts() -> None:
    """Alerts: list them, see one's history, acknowledge or resolve."""


@alerts.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include resolved alerts.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@org_option
def alerts_list(show_all: bool, limit: int, org_slug: str | None) -> None:
    """List open alerts, newest first."""
    from analytics.alerts import AlertFilter, list_alerts

    with connection(org_slug) as (conn, org):
        rows, total = list_alerts(conn, org.id, AlertFilter(state="all" if show_all else "open"), limit=limit)
    if not rows:
        click.echo("no alerts" if show_all else "no open alerts")
        return
    click.echo(table(["id", "severity", "status", "device", "message", "count", "opened", "notes"], [
        [str(r["id"])[:8], r["severity"], r["status"], r["device"] or "-", r["message"][:60], str(r["occurrences"]),
         _when(r["created_at"]),
         ", ".join(x for x in (f"suppressed: {r['suppressed_reason']}" if r["suppressed"] else "",
                               "flapping" if r["flapping"] else "") if x)]
        for r in rows]))
    if total > len(rows):
        click.echo(f"{len(rows)} of {total} alert(s); raise --limit to see more")


def _alert_id(conn: Any, org_id: uuid.UUID, text: str) -> uuid.UUID:
    """A full id or a unique prefix (as `alerts list` prints)."""
    from netpulse.errors import NotFound

    rows = conn.execute("SELECT id FROM alerts WHERE organization_id = %s AND id::text LIKE %s LIMIT 2",
                        (org_id, text.lower() + "%")).fetchall()
    if len(rows) != 1:
        raise NotFound(f"no alert {'matches' if not rows else 'is uniquely matched by'} {text!r}",
                       code="ALERT_NOT_FOUND", details={"alert": text})
    return uuid.UUID(str(rows[0][0]))


@alerts.command("show")
@click.argument("alert")
@org_option
def alerts_show(alert: str, org_slug: str | None) -> None:
    """Show ALERT (an id or its prefix) and its full history."""
    from analytics.alerts import history

    with connection(org_slug) as (conn, org):
        org_id = org.id
        alert_id = _alert_id(conn, org_id, alert)
        row = conn.execute("SELECT severity, status, message, occurrences, started_at, created_at, last_seen "
                           "FROM alerts WHERE id = %s", (alert_id,)).fetchone()
        events = history(conn, alert_id)
    click.echo(f"{alert_id} [{row[0]}] {row[1]}: {row[2]}")
    click.echo(f"began {_when(row[4])}, opened {_when(row[5])}, last seen {_when(row[6])}, {row[3]} occurrence(s)")
    click.echo(table(["time", "event", "note", "details"],
                      [[_when(t), k, n or "", ", ".join(f"{a}={b}" for a, b in d.items())] for t, k, n, d in events]))


@alerts.command("ack")
@click.argument("alert")
@click.option("--note", default=None, help="What you are doing about it.")
@org_option
def alerts_ack(alert: str, note: str | None, org_slug: str | None) -> None:
    """Acknowledge ALERT: escalation stops; it still resolves when its condition clears."""
    from analytics.alerts import acknowledge

    with connection(org_slug) as (conn, org):
        org_id = org.id
        alert_id = _alert_id(conn, org_id, alert)
        acknowledge(conn, org_id, alert_id, None, note, datetime.now(UTC))
    click.echo(f"acknowledged {alert_id}")


@alerts.command("resolve")
@click.argument("alert")
@click.option("--note", required=True, help="Why it is resolved (kept in the alert's history).")
@org_option
def alerts_resolve(alert: str, note: str, org_slug: str | None) -> None:
    """Resolve ALERT by hand, with a note."""
    from analytics.alerts import resolve

    with connection(org_slug) as (conn, org):
        org_id = org.id
        alert_id = _alert_id(conn, org_id, alert)
        resolve(conn, org_id, alert_id, None, note, datetime.now(UTC))
    click.echo(f"resolved {alert_id}")


COMMANDS = [rules, alerts]
