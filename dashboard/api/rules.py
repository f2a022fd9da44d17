"""Alert rules (:mod:`analytics.rules`): list, read, create, replace and delete them, and backtest a
rule (saved or not) over stored history (:func:`analytics.evaluate.backtest`, as ``netpulse rules
backtest`` does) to see the alerts it would have opened."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar, Literal

from flask_openapi3 import Tag
from pydantic import ConfigDict, Field
from werkzeug.wrappers import Response

from analytics import rules as core
from analytics.evaluate import Backtest, backtest
from analytics.frames import device_frame
from analytics.rules import Rule
from dashboard.api.metrics import MetricName
from dashboard.api.params import INT32_MAX, ApiModel, Paged, PathModel, Period
from dashboard.api.routing import ok, operation, page_of, pg, unit_of_work
from dashboard.api.schemas import Deleted, Out
from dashboard.auth import current_org_id
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind

TAG = Tag(name="rules", description="Alert rules, and backtests of them over stored history.")
MAX_BACKTEST = timedelta(days=90)
_FIELDS = {"for": "for_s", "clear": "clear_value", "k": "k_mad"}  # Rule's messages name the rule-file keys


class RuleFields(Out):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["threshold", "dynamic", "status", "anomaly"]
    severity: Literal["info", "warning", "critical"]
    metric: MetricName | None = Field(None, description="threshold, dynamic and anomaly rules.")
    comparator: Literal[">", ">=", "<", "<="] | None = None
    value: float | None = Field(None, description="threshold: the value the metric is compared with.")
    clear_value: float | None = Field(None, description="threshold: where a firing rule clears (hysteresis).")
    for_s: int = Field(0, ge=0, le=30 * 86400, description="Seconds the condition must hold before it fires.")
    scope: Literal["device", "group", "site", "tag", "all"] = "all"
    scope_ref: str | None = Field(None, max_length=100, description="The device, group, site or tag name.")
    k_mad: float | None = Field(None, gt=0, le=1000, description="dynamic: the band's half-width in MADs; "
                                                                 "anomaly: the score (0 to 1) that fires.")
    baseline_weeks: int = Field(4, ge=1, le=12, description="dynamic: weeks of history in the baseline.")
    escalation_policy: str | None = Field(None, max_length=100, description="A policy name [default: 'default'].")
    enabled: bool = True


class RuleBody(RuleFields, ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "name": "latency", "kind": "threshold", "severity": "critical", "metric": "icmp_rtt_ms", "comparator": ">",
        "value": 150, "clear_value": 100, "for_s": 300}}, from_attributes=False)

    def rule(self) -> Rule:
        """The rule, checked by :class:`analytics.rules.Rule` (details named as the body's fields)."""
        try:
            metric = MetricKind.from_name(self.metric) if self.metric is not None else None
            return Rule(**{**self.model_dump(), "metric": metric})
        except ValueError as exc:
            raise ValidationError(str(exc), details={"metric": str(exc)}) from None
        except ValidationError as exc:
            renamed = {_FIELDS.get(k, k): v for k, v in exc.details.items()}
            raise ValidationError(exc.message, details=renamed) from None


class RuleOut(RuleFields):
    id: int
    description: str = Field(description="The rule in words.")

    @classmethod
    def of(cls, r: Rule) -> RuleOut:
        assert r.id is not None
        return cls(id=r.id, name=r.name, kind=r.kind, severity=r.severity,
                   metric=r.metric.metric_name if r.metric else None, comparator=r.comparator,  # type: ignore[arg-type]
                   value=r.value, clear_value=r.clear_value, for_s=r.for_s, scope=r.scope, scope_ref=r.scope_ref,
                   k_mad=r.k_mad, baseline_weeks=r.baseline_weeks, escalation_policy=r.escalation_policy,
                   enabled=r.enabled, description=r.describe())


class RulePath(PathModel):
    not_found_code: ClassVar[str] = "RULE_NOT_FOUND"
    rule_id: int = Field(ge=1, le=INT32_MAX)


class BacktestQuery(Period, Paged):
    resolution: Literal["auto", "raw", "1m", "1h"] = Field(
        "raw", description="Samples to replay: raw probes, or a rollup for long periods (faster, coarser).")


class BacktestAlertOut(Out):
    device_id: int
    device: str
    ifindex: int
    started_at: datetime = Field(description="When the breach began.")
    opened_at: datetime = Field(description="When the alert would have fired.")
    resolved_at: datetime | None = Field(description="None: still firing at the end.")
    worst: float | None


class BacktestOut(Out):
    from_: datetime = Field(alias="from")
    to: datetime
    rule: str
    description: str
    devices: int = Field(description="Devices in the rule's scope.")
    series: int = Field(description="Series with samples in the period.")
    samples: int
    alerts: int = Field(description="Alerts that would have opened (the items of this page are some of them).")
    still_open: int
    items: list[BacktestAlertOut]


@operation("GET", "/rules", tag=TAG, permission="alert:read", data=RuleOut, many=True, paginated=True)
def list_rules(query: Paged) -> Response:
    """The organization's alert rules, by id (enabled or not)."""
    with unit_of_work() as session:
        found = core.load_rules(pg(session), current_org_id(), enabled_only=False)
    return page_of([RuleOut.of(r) for r in query.window(found)], len(found), query)


@operation("POST", "/rules", tag=TAG, permission="alert:write", data=RuleOut, status=201, conflict=True)
def create_rule(body: RuleBody) -> Response:
    """Add a rule; the live evaluation picks it up. 409 RULE_ALREADY_EXISTS when the name is taken."""
    with unit_of_work() as session:
        saved = core.create_rule(pg(session), current_org_id(), body.rule())
    return ok(RuleOut.of(saved), status=201)


@operation("GET", "/rules/<rule_id>", tag=TAG, permission="alert:read", data=RuleOut)
def get_rule(path: RulePath) -> Response:
    """One rule."""
    with unit_of_work() as session:
        return ok(RuleOut.of(core.get_rule(pg(session), current_org_id(), path.rule_id)))


@operation("PUT", "/rules/<rule_id>", tag=TAG, permission="alert:write", data=RuleOut, conflict=True)
def replace_rule(path: RulePath, body: RuleBody) -> Response:
    """Replace a rule (renaming it is allowed); its open alerts keep pointing at it."""
    with unit_of_work() as session:
        saved = core.update_rule(pg(session), current_org_id(), path.rule_id, body.rule())
    return ok(RuleOut.of(saved))


@operation("DELETE", "/rules/<rule_id>", tag=TAG, permission="alert:write", data=Deleted)
def delete_rule(path: RulePath) -> Response:
    """Delete a rule; its alerts stay and resolve or age as they are."""
    with unit_of_work() as session:
        core.delete_rule(pg(session), current_org_id(), path.rule_id)
    return ok(Deleted(deleted=1))


def _backtest(rule: Rule, query: BacktestQuery) -> Response:
    start, end = query.span(timedelta(days=7), maximum=MAX_BACKTEST)
    with unit_of_work() as session:
        conn = pg(session)
        result: Backtest = backtest(conn, current_org_id(), rule, start, end, resolution=query.resolution)
        names = dict(device_frame(conn, current_org_id()).select("device_id", "name").iter_rows())
    items = [BacktestAlertOut(device_id=a.device_id, device=names.get(a.device_id, str(a.device_id)),
                              ifindex=a.ifindex, started_at=a.started_at, opened_at=a.opened_at,
                              resolved_at=a.resolved_at, worst=a.worst) for a in query.window(result.alerts)]
    out = BacktestOut.model_validate({
        "from": start, "to": end, "rule": rule.name, "description": rule.describe(), "devices": result.devices,
        "series": result.series, "samples": result.samples, "alerts": len(result.alerts),
        "still_open": result.still_open, "items": items})
    return page_of(out.model_dump(mode="json", by_alias=True), len(result.alerts), query)


@operation("GET", "/rules/<rule_id>/backtest", tag=TAG, permission="alert:read", data=BacktestOut, paginated=True)
def backtest_rule(path: RulePath, query: BacktestQuery) -> Response:
    """Replay a saved rule over the period (default: the last 7 days, at most 90) and list the alerts it
    would have opened, by opening time. Nothing is written. Status rules are not replayed (422)."""
    with unit_of_work() as session:
        rule = core.get_rule(pg(session), current_org_id(), path.rule_id)
    return _backtest(rule, query)


@operation("POST", "/rules/backtest", tag=TAG, permission="alert:read", data=BacktestOut, paginated=True)
def backtest_draft(body: RuleBody, query: BacktestQuery) -> Response:
    """Replay a rule that is not saved (the body of a create) over the period; nothing is written."""
    return _backtest(body.rule(), query)
