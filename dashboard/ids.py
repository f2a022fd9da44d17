"""Component IDs, one constant each, shared by layouts, callbacks and the browser tests."""

from __future__ import annotations

# App shell (navbar)
NAV_USER = "nav-user"
NAV_LOGOUT = "nav-logout"

# Overview page
REFRESH_INTERVAL = "overview-refresh"          # dcc.Interval driving every live element of the page
STATUS_KEYS = ("up", "degraded", "down", "unknown")
STATUS_COUNT = {k: f"status-count-{k}" for k in STATUS_KEYS}
STATUS_SHARE = {k: f"status-share-{k}" for k in STATUS_KEYS}
TOTAL_DEVICES = "total-devices"
TOTAL_DEVICES_SUB = "total-devices-sub"
LAST_DATA = "last-data"
LAST_DATA_AGO = "last-data-ago"
LATENCY_GRAPH = "latency-graph"
ATTENTION_LIST = "attention-list"
ATTENTION_COUNT = "attention-count"
UPDATED_AT = "overview-updated-at"
OPEN_ALERTS_CARD = "overview-open-alerts-card"  # the "Open alerts" card, a link to the alerts page
OPEN_ALERTS = "overview-open-alerts"
OPEN_ALERTS_SUB = "overview-open-alerts-sub"

# Alerts page
ALERTS_REFRESH = "alerts-refresh"              # dcc.Interval driving every live element of the page
ALERTS_UPDATED_AT = "alerts-updated-at"
ALERT_KPI_KEYS = ("critical", "warning", "info", "acknowledged", "suppressed", "flapping")
ALERT_KPI = {k: f"alerts-kpi-{k}" for k in ALERT_KPI_KEYS}
ALERT_KPI_SUB = {k: f"alerts-kpi-sub-{k}" for k in ALERT_KPI_KEYS}
ALERTS_CHART = "alerts-chart"
ALERTS_STATUS_FILTER = "alerts-status-filter"  # "open" (default) or "all" (resolved too)
ALERTS_STATUS_OPTION = {k: f"alerts-status-{k}" for k in ("open", "all")}          # the options' labels
ALERT_SEVERITIES = ("critical", "warning", "info")
ALERTS_SEVERITY_FILTER = "alerts-severity-filter"
ALERTS_SEVERITY_OPTION = {k: f"alerts-severity-{k}" for k in ALERT_SEVERITIES}      # the options' labels
ALERTS_TABLE = "alerts-table"
ALERTS_COUNT = "alerts-count"
ALERT_SELECTED = "alerts-selected"             # dcc.Store: the selected alert's id (str) or None
ALERT_VERSION = "alerts-version"               # dcc.Store: bumped after every acknowledge/resolve
ALERT_CLOSE = "alert-close"                    # closes the details panel
ALERT_DETAIL = "alert-detail"
ALERT_HISTORY = "alert-history"
ALERT_ACTIONS = "alert-actions"                # the acknowledge/resolve form (or, for viewers, why it is absent)
ALERT_NOTE_FEEDBACK = "alert-note-feedback"
ALERT_ACTION_RESULT = "alert-action-result"

# Pattern-matching ids. The rows come and go with every refresh; the action controls exist only for
# roles allowed to act, so callbacks address them with ALL (an absent control matches nothing).
ALERT_ROW = "alerts-row"                       # {"type": ALERT_ROW, "index": <alert id>}
ALERT_ACTION = "alert-action"                  # {"type": ALERT_ACTION, "action": "acknowledge" | "resolve"}
ALERT_NOTE = "alert-note"                      # {"type": ALERT_NOTE, "index": "note"}
ALERT_ACTION_KINDS = ("acknowledge", "resolve")


def alert_row(alert_id: str) -> dict[str, str]:
    return {"type": ALERT_ROW, "index": alert_id}


def alert_action(action: str) -> dict[str, str]:
    return {"type": ALERT_ACTION, "action": action}


ALERT_NOTE_ID = {"type": ALERT_NOTE, "index": "note"}
