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
