"""Classifying a failed attempt: which ``fallbackOn`` reason it is, and for how long the
upstream asked us to stay away.

Pure. The pipeline calls ``from_status`` for an HTTP error answer and uses the fixed
reasons below for transport failures. A reason not listed in the binding's
``fallbackOn`` ends the chain with the upstream's error (translated to the client's
protocol) instead of trying the next tier.

Reasons (the values ``fallbackOn`` takes): ``429``, ``5xx``, ``timeout``,
``connect-error``, ``empty-response``. Answers that are the client's fault (400, 413,
422) are ``client-error`` and never fall back: another tier would refuse them too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

RATE_LIMITED = "429"
SERVER_ERROR = "5xx"
TIMEOUT = "timeout"
CONNECT_ERROR = "connect-error"
EMPTY = "empty-response"
CLIENT_ERROR = "client-error"
AUTH_ERROR = "auth-error"  # 401/403: the tier's credential, not the client, is at fault
NOT_FOUND = "not-found"

DEADLINE = "deadline"  # the request's own deadline ran out: nobody's fault
BUSY = "busy"  # the source's pool in this sidecar was full: the gateway's limit, nobody's fault

# Failure classes (see routing/breaker.py for what each does to the tier).
CLASS_OF = {
    SERVER_ERROR: "transient",
    TIMEOUT: "transient",
    CONNECT_ERROR: "transient",
    EMPTY: "transient",
    RATE_LIMITED: "rate-limited",
    AUTH_ERROR: "permanent",
    NOT_FOUND: "permanent",
    CLIENT_ERROR: "client",
    DEADLINE: "deadline",
    BUSY: "busy",
}

# Failures that say something about the tier (and so change its health); the others
# are the request's fault, or its deadline's, and leave the tier alone.
TIER_FAULTS = frozenset({RATE_LIMITED, SERVER_ERROR, TIMEOUT, CONNECT_ERROR, EMPTY, AUTH_ERROR, NOT_FOUND})

# The tier's own configuration is wrong (its key, its model): another tier may well
# serve, so these always move on, whatever fallbackOn says.
ALWAYS_FALL_BACK = frozenset({AUTH_ERROR, NOT_FOUND})


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str  # one of the constants above
    detail: str  # short text for the trail, e.g. "503", "reset", "first-byte"
    status: int | None = None  # upstream HTTP status, if there was one
    retry_after: float | None = None  # seconds the upstream asked us to wait

    @property
    def cls(self) -> str:
        """The failure class: transient, rate-limited, permanent, client or deadline."""
        return CLASS_OF[self.reason]

    def trail_text(self) -> str:
        """What `x-switchyard-fallback-reason` says about this tier."""
        if self.reason == RATE_LIMITED and self.retry_after:
            return f"429(retry in {max(1, math.ceil(self.retry_after))}s)"
        if self.reason in (RATE_LIMITED, SERVER_ERROR, CLIENT_ERROR, AUTH_ERROR, NOT_FOUND) and self.status:
            return str(self.status)
        return f"{self.reason}({self.detail})" if self.detail else self.reason


def from_status(
    status: int,
    headers: Mapping[str, str],
    *,
    wall_now: float,
    quota: bool = False,
    auth: bool = False,
    body_retry_after: float | None = None,
    model_not_found: bool = False,
) -> Failure:
    """A non-2xx upstream answer. ``headers`` must have lower-case names; ``quota``,
    ``auth``, ``body_retry_after`` and ``model_not_found`` are what the egress adapter
    read in the body.

    A 404 is the tier's (``NOT_FOUND``) only when it says the tier's own model is not
    found; any other 404 (a file id, a cached content, a tool-result id the client named)
    is the client's error, answered to that client, the tier untouched. 401/403 are the
    tier's key (``AUTH_ERROR``). Neither disables a tier on its own word: a prompt-free
    check confirms it first (``sidecar/probe.py``)."""
    if status == 429 or quota:
        wait = retry_after_seconds(headers, wall_now)
        return Failure(RATE_LIMITED, str(status), status, wait if wait is not None else body_retry_after)
    if auth:
        return Failure(AUTH_ERROR, str(status), status)
    if status == 529 or status >= 500:
        # 503 may carry Retry-After too (overload): honour it.
        return Failure(SERVER_ERROR, str(status), status, retry_after_seconds(headers, wall_now))
    if status in (401, 403):
        return Failure(AUTH_ERROR, str(status), status)
    if status == 404 and model_not_found:
        return Failure(NOT_FOUND, str(status), status)
    return Failure(CLIENT_ERROR, str(status), status)


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def retry_after_seconds(headers: Mapping[str, str], wall_now: float) -> float | None:
    """How long the upstream asked us to wait, from any header form it uses.

    ``retry-after-ms`` (OpenAI/Anthropic SDK convention), ``Retry-After`` in seconds or as
    an HTTP date, OpenAI's ``x-ratelimit-reset-requests``/``-tokens`` durations ("6m0s",
    "1.5s", "20ms"), Anthropic's ``anthropic-ratelimit-*-reset`` instants (the latest
    wins). Gemini states its wait in the body (RetryInfo), read by its adapter. None when
    nothing usable is there.
    """
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if ra:
        ra = ra.strip()
        try:
            return max(0.0, float(ra))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(ra).timestamp() - wall_now)
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    waits = [
        w
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if (w := parse_duration(headers.get(name, ""))) is not None
    ]
    for name in ANTHROPIC_RESETS:  # RFC 3339 instants
        value = headers.get(name)
        if value:
            try:
                waits.append(max(0.0, datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - wall_now))
            except ValueError:
                pass
    return max(waits) if waits else None


ANTHROPIC_RESETS = (
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
)


def parse_duration(text: str) -> float | None:
    """Go-style durations as OpenAI sends them: "1s", "6m0s", "1h2m3s", "250ms", "0.5s"."""
    text = text.strip()
    if not text:
        return None
    m = _DURATION.match(text)
    if not m or not any(m.groups()):
        return None
    h, mnt, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mnt * 60 + s + ms / 1000
