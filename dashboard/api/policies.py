"""Escalation policies (:mod:`analytics.policies`, as ``netpulse notify policy`` uses them): who hears
about an alert by severity, and after how long unacknowledged critical alerts move up a tier."""

from __future__ import annotations

from typing import ClassVar

from flask_openapi3 import Tag
from pydantic import ConfigDict, Field
from werkzeug.wrappers import Response

from analytics import policies
from dashboard.api.params import INT32_MAX, ApiModel, Paged, PathModel
from dashboard.api.routing import ok, operation, page_of, unit_of_work
from dashboard.api.schemas import Out
from dashboard.auth import current_org_id
from netpulse.schema import EscalationPolicy

TAG = Tag(name="policies", description="Escalation policies: which channels hear about which alerts, and when.")


class TierOut(Out):
    tier: int
    after_s: int
    channels: list[str]


class PolicyOut(Out):
    id: int
    name: str
    critical: list[TierOut] = Field(description="Tier 0 at once; tier k after after_s while unacknowledged.")
    warning: list[str] = Field(description="Channels of the warning digest.")
    warning_channels_set: bool = Field(description="false: the digest goes to tier 0's channels.")
    digest_every_s: int = Field(description="Seconds between warning digests, on the clock (900: at :00, :15, :30 "
                                            "and :45 UTC, with the warnings opened before).")
    info: list[str] = Field(description="Info alerts are logged only.")
    missing_channels: list[str] = Field(description="Channels the policy names that no longer exist.")
    rules: int = Field(description="Alert rules naming the policy.")


class TierBody(ApiModel):
    after_s: int = Field(ge=0, le=policies.MAX_DELAY_S, description="Seconds after the alert opened (0 for tier 0).")
    channels: list[str] = Field(min_length=1, max_length=20, description="Notification channel names.")


class PolicyBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "name": "default", "tiers": [{"after_s": 0, "channels": ["noc-email"]}]}})
    name: str = Field(min_length=1, max_length=100)
    tiers: list[TierBody] = Field(min_length=1, max_length=policies.MAX_TIERS)
    warning_channels: list[str] | None = Field(None, max_length=20,
                                               description="None: warnings go to tier 0's channels; []: nowhere.")
    digest_every_s: int = Field(policies.DIGEST_EVERY_S, ge=policies.MIN_DIGEST_S, le=policies.MAX_DIGEST_S,
                                description="Seconds between warning digests, on the clock.")

    def spec(self) -> policies.PolicySpec:
        return policies.PolicySpec(name=self.name, tiers=[policies.Tier(t.after_s, tuple(t.channels))
                                                          for t in self.tiers],
                                   warning_channels=self.warning_channels, digest_every_s=self.digest_every_s)


class PolicyPath(PathModel):
    not_found_code: ClassVar[str] = "POLICY_NOT_FOUND"
    policy_id: int = Field(ge=1, le=INT32_MAX)


class RemoveQuery(ApiModel):
    force: bool = Field(False, description="Remove it although rules name it (they then use 'default').")


class Removed(Out):
    deleted: int
    rules: list[str] = Field(description="Rules that named it and now use the policy named 'default'.")


def _out(policy: EscalationPolicy, known: set[str], rules: int) -> PolicyOut:
    return PolicyOut.model_validate(policies.policy_view(policy, known_channels=known, rules=rules))


@operation("GET", "/policies", tag=TAG, permission="alert:read", data=PolicyOut, many=True, paginated=True)
def list_policies(query: Paged) -> Response:
    """Escalation policies by name, each with the rules naming it."""
    with unit_of_work() as session:
        found = list(policies.list_policies(session, current_org_id()))
        known = policies.known_channel_names(session, current_org_id())
        items = [_out(u.policy, known, u.rules) for u in query.window(found)]
    return page_of(items, len(found), query)


@operation("POST", "/policies", tag=TAG, permission="admin", data=PolicyOut, status=201, conflict=True)
def add_policy(body: PolicyBody) -> Response:
    """Add a policy; every channel it names must exist. A rule without a policy uses the one named default."""
    with unit_of_work() as session:
        added = policies.add_policy(session, current_org_id(), body.spec())
        out = _out(added, policies.known_channel_names(session, current_org_id()), 0)
    return ok(out, status=201)


@operation("GET", "/policies/<policy_id>", tag=TAG, permission="alert:read", data=PolicyOut)
def get_policy(path: PolicyPath) -> Response:
    """One policy."""
    with unit_of_work() as session:
        policy = policies.get_policy(session, current_org_id(), path.policy_id)
        usage = {u.policy.id: u.rules for u in policies.list_policies(session, current_org_id())}
        return ok(_out(policy, policies.known_channel_names(session, current_org_id()), usage.get(policy.id, 0)))


@operation("DELETE", "/policies/<policy_id>", tag=TAG, permission="admin", data=Removed, conflict=True)
def remove_policy(path: PolicyPath, query: RemoveQuery) -> Response:
    """Remove a policy; 409 POLICY_IN_USE naming the rules that name it, unless ``force``."""
    with unit_of_work() as session:
        rules = policies.remove_policy(session, current_org_id(), path.policy_id, force=query.force)
    return ok(Removed(deleted=1, rules=rules))
