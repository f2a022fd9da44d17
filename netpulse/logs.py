"""Logging for the composition roots: structlog and the standard library's loggers on one stream.

``configure(level, fmt)`` sends structlog's events and every stdlib logger (Flask, werkzeug, waitress,
Dramatiq, pysnmp) through one handler on stderr, rendered either as ``key=value`` lines (``console``)
or as one JSON object per line (``json``, for log shippers)::

    configure("info", "json")
    structlog.get_logger("netpulse.workers").warning("netpulse.workers.snmp_failing", device_id=7)
    # {"device_id": 7, "event": "netpulse.workers.snmp_failing", "level": "warning", ...}

Tracebacks are Python's plain ones, capped at ``MAX_TRACEBACK_CHARS``: never rich tracebacks with
local variables, which rendered request bodies (passwords included) and cost seconds and ~100 KB of
log per failing request.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

__all__ = ["configure", "MAX_TRACEBACK_CHARS"]

Format = Literal["console", "json"]
MAX_TRACEBACK_CHARS = 8_000   # the end is kept: it names the exception and where it was raised
_HANDLER_NAME = "netpulse"


def _cap_exception(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    text = event.get("exception")
    if isinstance(text, str) and len(text) > MAX_TRACEBACK_CHARS:
        event["exception"] = "... (traceback shortened)\n" + text[-MAX_TRACEBACK_CHARS:]
    return event


def _renderer(fmt: Format) -> list[Any]:
    if fmt == "json":
        # format_exc_info renders exc_info with the traceback module: no locals, one string field.
        return [structlog.processors.format_exc_info, _cap_exception, structlog.processors.JSONRenderer()]
    return [structlog.processors.format_exc_info, _cap_exception,
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)]


def configure(level: str = "info", fmt: Format = "console") -> None:
    """Route structlog and stdlib logging to stderr at ``level`` in ``fmt``. Safe to call again."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_renderer(fmt)],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME or type(h) is logging.StreamHandler]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Flask's app logger adds its own handler unless the root has one; werkzeug likewise. Both then
    # propagate to the handler above, in the chosen format. The level is set, not left NOTSET:
    # werkzeug turns NOTSET into INFO on its first request, which would print every Dash callback's
    # access line at the default warning level.
    for name in ("werkzeug", "waitress", "dramatiq"):
        logging.getLogger(name).setLevel(numeric)
