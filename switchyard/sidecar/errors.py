"""Errors the sidecar answers, rendered in the caller's own protocol.

Every error a client sees goes through here: bad input, unknown alias, unbound binding,
every tier failed, a broken stream. One neutral ``GatewayError`` (a kind, a status, a
message, optionally the per-tier trail) and one renderer per protocol:

- OpenAI (chat completions and responses): ``{"error": {"message", "type", "param", "code"}}``
- Anthropic: ``{"type": "error", "error": {"type", "message"}}``
- Gemini: ``{"error": {"code", "message", "status"}}``

The trail of tiers (which tier, why it was passed over) is added as a ``switchyard``
member next to ``error``: SDKs ignore unknown members, humans and scripts can read it,
and the message repeats it in one line. Nothing secret is ever put in an error: messages
are built from our own reason strings, and upstream error text is length-capped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson


class ErrorKind(str, Enum):
    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMITED = "rate_limited"
    UPSTREAM = "upstream"  # an upstream answered something unusable
    UNAVAILABLE = "unavailable"  # no tier could serve / not configured / draining
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    INTERNAL = "internal"


DEFAULT_STATUS = {
    ErrorKind.INVALID_REQUEST: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.PERMISSION: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.REQUEST_TOO_LARGE: 413,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.UPSTREAM: 502,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.TIMEOUT: 504,
    ErrorKind.OVERLOADED: 529,
    ErrorKind.INTERNAL: 500,
}


def kind_for_status(status: int) -> ErrorKind:
    """The error kind an upstream HTTP status means."""
    if status == 400 or status == 422:
        return ErrorKind.INVALID_REQUEST
    if status == 401:
        return ErrorKind.AUTHENTICATION
    if status == 403:
        return ErrorKind.PERMISSION
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 413:
        return ErrorKind.REQUEST_TOO_LARGE
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status == 529:
        return ErrorKind.OVERLOADED
    if status == 503:
        return ErrorKind.UNAVAILABLE
    if status == 504:
        return ErrorKind.TIMEOUT
    if 400 <= status < 500:
        return ErrorKind.INVALID_REQUEST
    return ErrorKind.UPSTREAM


@dataclass(frozen=True, slots=True)
class TierTrail:
    """Why one tier did not serve: for error bodies, headers and the log line."""

    tier: int
    source: str
    model: str
    outcome: str  # e.g. "429(retry in 12s)", "breaker-open", "skip-tier(vision)"
    key: int | None = None  # the key index, for one key of a tier with several (trail: tier0/key1=429)

    def short(self) -> str:
        if self.key is not None:
            return f"tier{self.tier}/key{self.key}={self.outcome}"
        return f"tier{self.tier}={self.outcome}"


@dataclass(slots=True)
class GatewayError(Exception):
    kind: ErrorKind
    message: str
    status: int = 0
    code: str | None = None  # machine-readable detail, e.g. "unknown_model", "all_tiers_failed"
    param: str | None = None  # offending request field, where there is one
    binding: str | None = None
    trail: list[TierTrail] = field(default_factory=list)
    retry_after: float | None = None  # seconds, for a Retry-After header

    def __post_init__(self) -> None:
        if not self.status:
            self.status = DEFAULT_STATUS[self.kind]

    def __str__(self) -> str:
        return self.message

    def full_message(self) -> str:
        if not self.trail:
            return self.message
        return f"{self.message}: " + "; ".join(t.short() for t in self.trail)

    def switchyard_detail(self) -> dict[str, Any] | None:
        if not self.binding and not self.trail:
            return None
        return {
            "binding": self.binding,
            "tiers": [
                {"tier": t.tier, "source": t.source, "model": t.model, "outcome": t.outcome,
                 **({"key": t.key} if t.key is not None else {})} for t in self.trail
            ],
        }


# ------------------------------------------------------------------ per protocol

_OPENAI_TYPE = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "invalid_request_error",
    ErrorKind.REQUEST_TOO_LARGE: "invalid_request_error",
    ErrorKind.RATE_LIMITED: "rate_limit_error",
    ErrorKind.UPSTREAM: "server_error",
    ErrorKind.UNAVAILABLE: "server_error",
    ErrorKind.TIMEOUT: "timeout_error",
    ErrorKind.OVERLOADED: "server_error",
    ErrorKind.INTERNAL: "server_error",
}

_ANTHROPIC_TYPE = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.REQUEST_TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMITED: "rate_limit_error",
    ErrorKind.UPSTREAM: "api_error",
    ErrorKind.UNAVAILABLE: "api_error",
    ErrorKind.TIMEOUT: "timeout_error",
    ErrorKind.OVERLOADED: "overloaded_error",
    ErrorKind.INTERNAL: "api_error",
}

_GEMINI_STATUS = {
    ErrorKind.INVALID_REQUEST: "INVALID_ARGUMENT",
    ErrorKind.AUTHENTICATION: "UNAUTHENTICATED",
    ErrorKind.PERMISSION: "PERMISSION_DENIED",
    ErrorKind.NOT_FOUND: "NOT_FOUND",
    ErrorKind.REQUEST_TOO_LARGE: "INVALID_ARGUMENT",
    ErrorKind.RATE_LIMITED: "RESOURCE_EXHAUSTED",
    ErrorKind.UPSTREAM: "INTERNAL",
    ErrorKind.UNAVAILABLE: "UNAVAILABLE",
    ErrorKind.TIMEOUT: "DEADLINE_EXCEEDED",
    ErrorKind.OVERLOADED: "UNAVAILABLE",
    ErrorKind.INTERNAL: "INTERNAL",
}


def openai_error_object(err: GatewayError) -> dict[str, Any]:
    return {
        "message": err.full_message(),
        "type": _OPENAI_TYPE[err.kind],
        "param": err.param,
        "code": err.code or err.kind.value,
    }


def openai_error_body(err: GatewayError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": openai_error_object(err)}
    detail = err.switchyard_detail()
    if detail:
        body["switchyard"] = detail
    return body


def anthropic_error_body(err: GatewayError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": _ANTHROPIC_TYPE[err.kind], "message": err.full_message()},
    }
    detail = err.switchyard_detail()
    if detail:
        body["switchyard"] = detail
    return body


def gemini_error_body(err: GatewayError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "error": {"code": err.status, "message": err.full_message(), "status": _GEMINI_STATUS[err.kind]}
    }
    detail = err.switchyard_detail()
    if detail:
        body["switchyard"] = detail
    return body


ERROR_BODY = {
    "openai-chat": openai_error_body,
    "openai-responses": openai_error_body,
    "anthropic-messages": anthropic_error_body,
    "gemini": gemini_error_body,
}


def render_error(protocol: str, err: GatewayError) -> bytes:
    return orjson.dumps(ERROR_BODY[protocol](err))


def clip(text: str, limit: int = 300) -> str:
    """Upstream text quoted in our errors is clipped: enough to diagnose, no more."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
