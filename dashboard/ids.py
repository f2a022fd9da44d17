"""Component IDs, one constant each, shared by layouts, callbacks and the browser tests."""

from __future__ import annotations

# App shell: navbar and the controls every page obeys
SHELL = "np-shell"
NAV_USER = "nav-user"
NAV_LOGOUT = "nav-logout"
URL = "np-url"                                 # dcc.Location (callback navigation)
URL_SYNC = "np-url-sync"                       # output of the clientside callback that writes the query string
TICK = "np-tick"                               # dcc.Interval driving every live element of every page
LIVE = "np-live"                               # the live/paused toggle button
LIVE_STATE = "np-live-state"                   # dcc.Store: True while live
WALL = "np-wall"                               # the wall-mode toggle button
WALL_STATE = "np-wall-state"                   # dcc.Store: True in wall mode
WALL_EXIT = "np-wall-exit"
RANGE = "np-range"                             # dcc.Store: {"range": "6h"} or {"from": ..., "to": ...}
RANGE_PRESET = "np-range-preset"               # the preset select ("custom" shows the from/to inputs)
RANGE_FROM = "np-range-from"
RANGE_TO = "np-range-to"
RANGE_APPLY = "np-range-apply"
RANGE_CUSTOM = "np-range-custom"               # the from/to form (hidden unless "custom")
RANGE_LABEL = "np-range-label"
RANGE_ERROR = "np-range-error"
SEARCH = "np-search"                           # device search: name, address or site
PAGE_STATE = "np-page-state"                   # {"type": PAGE_STATE, "page": <page>}: a page's URL state


def page_state(page: str) -> dict[str, str]:
    """The store whose data a page keeps in the URL's query string (beside the global range)."""
    return {"type": PAGE_STATE, "page": page}


# Overview page
STATUS_KEYS = ("up", "degraded", "down", "unreachable", "unknown")
STATUS_COUNT = {k: f"status-count-{k}" for k in STATUS_KEYS}
STATUS_SHARE = {k: f"status-share-{k}" for k in STATUS_KEYS}
TOTAL_DEVICES = "total-devices"
TOTAL_DEVICES_SUB = "total-devices-sub"
LAST_DATA = "last-data"
LAST_DATA_AGO = "last-data-ago"
SITE_TILES = "overview-site-tiles"
DOWN_GRAPH = "overview-down-graph"             # devices down and degraded over time
LATENCY_GRAPH = "latency-graph"                # the worst devices' latency
ATTENTION_LIST = "attention-list"
ATTENTION_COUNT = "attention-count"
UPDATED_AT = "overview-updated-at"
OPEN_ALERTS_CARD = "overview-open-alerts-card"  # the "Open alerts" card, a link to the alerts page
OPEN_ALERTS = "overview-open-alerts"
OPEN_ALERTS_SUB = "overview-open-alerts-sub"

# Devices page
GRID = "devices-grid"
GRID_COUNT = "devices-count"
GRID_SEARCH = "devices-search"
GRID_STATUS = "devices-status"
GRID_STATUS_OPTION = {k: f"devices-status-{k}" for k in ("up", "degraded", "down", "unknown")}  # the labels
GRID_SITE = "devices-site"
GRID_GROUP = "devices-group"
GRID_TAG = "devices-tag"
GRID_VERSION = "devices-version"               # dcc.Store: bumped after every change, re-reads the grid
GRID_PURGED = "devices-purged"                 # output of the clientside callback that empties the grid's cache
DEVICE_ADD = "device-add"
DEVICE_EDIT = "device-edit"
DEVICE_DELETE = "device-delete"
DEVICE_MODAL = "device-modal"
DEVICE_MODAL_TITLE = "device-modal-title"
DEVICE_EDITING = "device-editing"              # dcc.Store: the id being edited, or None when adding
DEVICE_SAVE = "device-save"
DEVICE_CANCEL = "device-cancel"
DEVICE_FORM_ERROR = "device-form-error"
DEVICE_FIELDS = ("name", "address", "device_type", "site", "group", "tags", "parent", "snmp_version",
                 "snmp_community", "description")
DEVICE_FIELD = {f: f"device-field-{f}" for f in DEVICE_FIELDS}
DEVICE_FIELD_FEEDBACK = {f: f"device-field-{f}-feedback" for f in DEVICE_FIELDS}
DELETE_MODAL = "device-delete-modal"
DELETE_TEXT = "device-delete-text"
DELETE_CONFIRM = "device-delete-confirm"
DELETE_CANCEL = "device-delete-cancel"
IMPORT_UPLOAD = "devices-import"
DEVICES_RESULT = "devices-result"              # what the last change did (or why it did not)

# Device page
DEVICE_ID = "device-id"                       # dcc.Store: the device shown
DEVICE_HEADER = "device-header"
DEVICE_RELATIVES = "device-relatives"          # parent and children
DEVICE_MAINTENANCE = "device-maintenance"
SMOKE_GRAPH = "device-smoke"                   # SmokePing-style latency
LOSS_GRAPH = "device-loss"
CPU_GRAPH = "device-cpu"
INTERFACES = "device-interfaces"
INTERFACE_GRAPH = "device-interface-graph"
INTERFACE_TITLE = "device-interface-title"
CHECKS = "device-checks"
TIMELINE_GRAPH = "device-timeline"
DEVICE_ALERTS = "device-alerts"
INTERFACE_ROW = "device-interface-row"         # {"type": INTERFACE_ROW, "index": ifindex}

# Topology page
TOPOLOGY = "topology-graph"
TOPOLOGY_SITE = "topology-site"
TOPOLOGY_CAUSES = "topology-causes"
TOPOLOGY_SELECTED = "topology-selected"

# SLA page
SLA_BY = "sla-by"
SLA_TABLE = "sla-table"
SLA_SUMMARY = "sla-summary"
SLA_TREND = "sla-trend"
SLA_OUTAGES = "sla-outages"
SLA_DOWNLOAD = "sla-download"
SLA_DOWNLOAD_BUTTON = "sla-download-button"

# Alerts page
ALERTS_UPDATED_AT = "alerts-updated-at"
ALERT_KPI_KEYS = ("critical", "warning", "info", "acknowledged", "suppressed", "flapping")
ALERT_KPI = {k: f"alerts-kpi-{k}" for k in ALERT_KPI_KEYS}
ALERT_KPI_SUB = {k: f"alerts-kpi-sub-{k}" for k in ALERT_KPI_KEYS}
ALERTS_CHART = "alerts-chart"
ALERTS_STATUS_FILTER = "alerts-status-filter"  # "open" (default) or "all" (resolved too)
ALERTS_STATUS_OPTION = {k: f"alerts-status-{k}" for k in ("open", "all")}          # the options' labels
ALERTS_SITE_FILTER = "alerts-site-filter"
ALERTS_RULE_FILTER = "alerts-rule-filter"
ALERTS_SEARCH = "alerts-search"
ALERTS_HIDE_SUPPRESSED = "alerts-hide-suppressed"
ALERTS_PAGE = "alerts-page"                    # dbc.Pagination (groups of alerts)
ALERTS_GROUP_IDS = "alerts-group-ids"          # dcc.Store: group key -> alert ids on the page shown
ALERTS_BULK_ACK = "alerts-bulk-ack"
ALERTS_BULK_RESULT = "alerts-bulk-result"
ALERT_PICK = "alerts-pick"                     # {"type": ALERT_PICK, "index": <group key>}: a group's checkbox
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

# Administration page: one tab per concern (?tab=<key>); each tab's controls are named by admin_id.
ADMIN_TABS = ("users", "notify", "rules", "maintenance", "snmp", "sla")
ADMIN_TAB_LINK = {t: f"admin-tab-{t}" for t in ADMIN_TABS}


def admin_id(tab: str, name: str) -> str:
    """The id of control ``name`` of the administration page's tab ``tab`` (e.g. "admin-users-grid")."""
    return f"admin-{tab}-{name}"


# Reports page (and the SLA page's PDF report)
REPORTS_KIND = "reports-kind"
REPORTS_SCOPE = "reports-scope"                # "all", "site:NAME" or "group:NAME", as the API takes it
REPORTS_PERIOD = "reports-period"              # last-7d, last-month, "range" (the global range) or "custom"
REPORTS_CUSTOM = "reports-custom"              # the from/to dates (shown for "custom")
REPORTS_FROM = "reports-from"
REPORTS_TO = "reports-to"
REPORTS_FORMAT = "reports-format"
REPORTS_GENERATE = "reports-generate"
REPORTS_RESULT = "reports-result"
REPORTS_AWAIT = "reports-await"                # dcc.Store: the run id to download once made
REPORTS_DOWNLOAD = "reports-download"
REPORTS_POLL = "reports-poll"                  # dcc.Interval, on while a run is pending
REPORTS_VERSION = "reports-version"            # dcc.Store: bumped after every change
REPORTS_HISTORY = "reports-history"
REPORTS_SCHEDULES = "reports-schedules"
REPORTS_SCHEDULE_FIELDS = ("name", "kind", "scope", "format", "frequency", "at", "day", "cron", "time_zone",
                           "channels")
REPORTS_SCHEDULE_FIELD = {f: f"reports-schedule-{f}" for f in REPORTS_SCHEDULE_FIELDS}
REPORTS_SCHEDULE_DAY = "reports-schedule-day-wrap"   # hidden for daily and cron
REPORTS_SCHEDULE_CRON = "reports-schedule-cron-wrap"  # shown for cron
REPORTS_SCHEDULE_ADD = "reports-schedule-add"
REPORTS_SCHEDULE_RESULT = "reports-schedule-result"
REPORTS_SCHEDULE_ACTION = "reports-schedule-action"  # {"type": ..., "action": "remove" | "run", "name": NAME}
SLA_REPORT_BUTTON = "sla-report-button"
SLA_REPORT_STATUS = "sla-report-status"
SLA_REPORT_AWAIT = "sla-report-await"
SLA_REPORT_POLL = "sla-report-poll"
SLA_REPORT_DOWNLOAD = "sla-report-download"


def schedule_action(action: str, name: str) -> dict[str, str]:
    return {"type": REPORTS_SCHEDULE_ACTION, "action": action, "name": name}
