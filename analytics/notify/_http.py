"""One JSON POST, for the channels that have no SDK (Slack, webhooks).

``requests`` is the HTTP client the Africa's Talking SDK already brings; unlike urllib it keeps the
case of header names (``X-NetPulse-Signature`` as documented) and honours the usual proxy variables.
An HTTP error status is an answer (returned); no answer at all is a :class:`TransportError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import requests

from analytics.notify.base import TransportError

USER_AGENT = "NetPulse-Notify/1"
MAX_ANSWER_BYTES = 64 * 1024  # a provider's answer is kept for the record, not processed


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: str
    headers: Mapping[str, str]  # names lowercased

    def retry_after_ms(self) -> int | None:
        """``Retry-After`` in seconds (the form Slack and most APIs use); the HTTP-date form is ignored."""
        value = self.headers.get("retry-after", "").strip()
        return int(value) * 1000 if value.isdigit() else None


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> HttpAnswer:
    try:
        # No redirects: following one would turn the POST into a GET; a 3xx is reported as a failure.
        with requests.post(url, data=body, headers={"User-Agent": USER_AGENT, **headers}, timeout=timeout_s,
                           allow_redirects=False, stream=True) as resp:
            raw = resp.raw.read(MAX_ANSWER_BYTES, decode_content=True)
            return HttpAnswer(resp.status_code, raw.decode(resp.encoding or "utf-8", "replace"),
                              {k.lower(): v for k, v in resp.headers.items()})
    except requests.RequestException as exc:
        raise TransportError(f"POST {_safe(url)} got no answer: {exc.__class__.__name__}: {_reason(exc)}") from exc


def _reason(exc: requests.RequestException) -> str:
    # requests nests urllib3's error, whose text repeats the URL (with a Slack hook's secret path).
    inner = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", None) or inner
    return re.sub(r"^<[^>]*>: ", "", str(reason))


def _safe(url: str) -> str:
    """The URL without path and query: Slack webhook paths are secrets and must not reach the logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/..."
