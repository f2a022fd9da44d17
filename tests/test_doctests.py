"""The runnable examples in module docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["netpulse.timespec", "netpulse.crypto", "netpulse.organizations", "analytics.policies",
           "analytics.sla_targets", "netpulse.telemetry", "netpulse.probe_status", "netpulse.config",
           "netpulse.csvfile", "reports.period", "reports.scope", "netpulse.text", "workers.outage",
           "dashboard.timerange", "dashboard.topology", "analytics.fleet"]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
