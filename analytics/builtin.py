"""Built-in rules: what every organization is watched for without writing a rule.

**SNMP polling failing while ICMP answers** (warning): a device whose SNMP polls failed
``intervals`` times in a row (a wrong community or v3 password, an ACL, a stopped agent) while it
still answers ping (or the TCP fallback probe) gets an alert naming the reason, e.g.
``auth_failed (wrongDigest)``. It clears at the first poll that answers, and when the device no
longer has SNMP settings. A device that stops answering ping as well is the status rule's business:
the alert then stays as it is until SNMP answers again.

Built-in rules are implicit in the evaluator, not rows of ``alert_rules``: every organization has
them, also one created later, and the rule kinds stored there stay the user's. ``intervals`` comes
from the setting ``NETPULSE_SNMP_FAILING_INTERVALS`` (0 turns the rule off). Their alerts carry no
rule id; their type is the rule's name and they follow the ``default`` escalation policy.

The rule reads the probe states the loader keeps (``netpulse.probe_status``): one indexed read of
the failing SNMP rows per organization and evaluation, not a scan of the metrics.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from analytics.alerts import Finding
from analytics.rules import Rule
from netpulse.probe_status import reason_text

__all__ = ["SNMP_FAILING", "snmp_failing_rule", "snmp_failing"]

SNMP_FAILING = "SNMP polling failing"


def snmp_failing_rule() -> Rule:
    """The rule the findings name. Its kind is ``status``: it judges probe states, not samples."""
    return Rule(name=SNMP_FAILING, kind="status", severity="warning")


# Devices whose SNMP polls are failing long enough, and those with an open alert of the rule (to clear
# it); with the latest reachability probe (ICMP, or the TCP fallback) and whether SNMP is set up at all.
_CANDIDATES = """
WITH open AS (
    SELECT device_id FROM alerts
    WHERE organization_id = %(org)s AND NOT resolved AND rule_id IS NULL AND alert_type = %(type)s
), failing AS (
    SELECT p.device_id FROM probe_status p JOIN devices d ON d.id = p.device_id
    WHERE p.kind = 'snmp' AND p.check_id = 0 AND NOT p.ok AND p.fail_streak >= %(n)s
      AND d.organization_id = %(org)s
)
SELECT d.id, s.ok, s.fail_streak, s.failing_since, s.error, s.detail, r.ok AS reachable,
       coalesce(c.version, d.snmp_version) IS NOT NULL AND d.probe_enabled AS polled,
       d.id IN (SELECT device_id FROM open) AS is_open
FROM devices d
LEFT JOIN snmp_credentials c ON c.id = d.snmp_credential_id
LEFT JOIN probe_status s ON s.device_id = d.id AND s.kind = 'snmp' AND s.check_id = 0
LEFT JOIN LATERAL (
    SELECT p.ok FROM probe_status p
    WHERE p.device_id = d.id AND p.check_id = 0 AND p.kind IN ('icmp', 'tcp')
    ORDER BY p.checked_at DESC LIMIT 1
) r ON true
WHERE d.organization_id = %(org)s AND d.id IN (SELECT device_id FROM failing UNION SELECT device_id FROM open)
ORDER BY d.id
"""


def snmp_failing(conn: Any, org_id: uuid.UUID, now: datetime, intervals: int) -> list[Finding]:
    """Findings of the built-in SNMP rule for one organization: firing for each device failing
    ``intervals`` polls in a row while reachable, cleared where SNMP answers again (or is no longer set up)."""
    if intervals < 1:
        return []
    rule = snmp_failing_rule()
    out = []
    rows = conn.execute(_CANDIDATES, {"org": org_id, "type": SNMP_FAILING[:50], "n": intervals}).fetchall()
    for device_id, ok, streak, since, error, detail, reachable, polled, is_open in rows:
        if not polled or ok:
            if is_open:
                out.append(Finding(rule, device_id, False, now, message="SNMP answers again"
                                   if polled else "the device is no longer polled over SNMP"))
            continue
        if ok is False and streak >= intervals and reachable:
            why = reason_text("snmp", error, detail) or "no answer"
            out.append(Finding(rule, device_id, True, now, value=float(streak), started_at=since,
                               message=f"SNMP polling failed {streak} times in a row while the device answers "
                                       f"ping: {why}"))
    return out
