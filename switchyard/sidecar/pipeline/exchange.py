"""What one request did, and how that is told: response headers, metrics, the log line.

``Exchange`` is filled in as the request moves down the chain (``chain``, ``attempt``);
``error_response`` answers a ``GatewayError`` in the caller's protocol with the
explainability headers (promise 4); ``account`` counts the request and writes its one
log line when it ends, however it ends.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from switchyard.logs import RequestLog
from switchyard.sidecar import errors
from switchyard.sidecar.contract.config import CompiledBinding, CompiledTier
from switchyard.sidecar.errors import ErrorKind, GatewayError, TierTrail
from switchyard.sidecar.metrics import PICOS
from switchyard.sidecar.routing.caller import metric_label
from switchyard.sidecar.routing.profile import degraded_header
from switchyard.sidecar.state import Runtime
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import Adapter

log = logging.getLogger("switchyard.request")
request_log = RequestLog(log)

H_BINDING = "x-switchyard-binding"
H_TIER = "x-switchyard-tier"
H_SOURCE = "x-switchyard-source"
H_MODEL = "x-switchyard-model"
H_REASON = "x-switchyard-fallback-reason"
H_DEGRADED = "x-switchyard-degraded"
H_KEY = "x-switchyard-key"  # the key index that served, for a source with several keys
H_LIMITED = "x-switchyard-limited"  # the limit that refused the request (pipeline/limits.py)


@dataclass
class Exchange:
    """What one request did, for headers, metrics and the log line."""

    ingress: Adapter
    started: float
    caller: str = "unknown"
    endpoint: str = "generate"  # or "embeddings" (pipeline/embed.py): told in the log line
    binding: CompiledBinding | None = None
    stream: bool = False
    trail: list[TierTrail] = field(default_factory=list)
    served_by: CompiledTier | None = None
    served_key: int | None = None  # its key index, when its source has several keys
    degraded: list[tuple[str, str]] = field(default_factory=list)
    outcome: str = "rejected"
    status: int = 0
    ttft: float | None = None
    usage: n.Usage | None = None
    error: str | None = None
    held: list[int] = field(default_factory=list)  # request-body bytes taken from the BodyBudget
    # Responses-API conversation state (pipeline/conversation.py)
    store_turn: bool = False  # keep the answer for a later previous_response_id
    history: list[n.Message] | None = None  # the stored turns this request continues
    previous_id: str | None = None
    answer: n.Response | None = None  # the answer served, when store_turn asks for it
    response_id: str | None = None  # the id the client got for it
    trace: Any = None  # its spans (sidecar/tracing/otel.RequestTrace) when tracing is on
    limited: str | None = None  # the spec.limits limit that refused it, e.g. "requestsPerMinute"

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.binding is not None:
            h[H_BINDING] = self.binding.name
        if self.served_by is not None:
            t = self.served_by
            h[H_TIER] = str(t.index)
            h[H_SOURCE] = t.source
            h[H_MODEL] = t.model
            if self.served_key is not None:
                h[H_KEY] = str(self.served_key)
        if self.trail:
            h[H_REASON] = header_safe(", ".join(t.short() for t in self.trail))
        if self.degraded:
            # Unknown-field names come from the client's JSON keys: never raw in a header.
            h[H_DEGRADED] = header_safe(degraded_header(self.degraded))
        if self.limited is not None:
            h[H_LIMITED] = self.limited
        return h


_UNSAFE_IN_HEADER = re.compile(r"[^\x20-\x7e]")


def header_safe(text: str) -> str:
    """Printable ASCII only: a control character (CR, LF ...) would be a header injection
    (aiohttp refuses to send it, which failed the whole answer), anything else is escaped."""
    if text.isascii() and text.isprintable():
        return text
    return _UNSAFE_IN_HEADER.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)



DRAIN_MESSAGE = "the gateway is shutting down; retry"


def refused(ex: Exchange, err: GatewayError) -> web.Response:
    """A ``GatewayError`` that ends the request (generation and embeddings alike): told on
    the exchange and answered in the caller's protocol."""
    ex.status = err.status
    ex.error = err.full_message()
    if ex.outcome not in ("all-tiers-failed", "upstream-error", "limited"):
        ex.outcome = "rejected"
    return error_response(ex, err)


def drained(ex: Exchange) -> web.Response:
    """``Sidecar.stop`` cancelled the request at the drain deadline: a retryable error in
    the caller's protocol instead of a cut connection (the cancellation taken back)."""
    uncancel()
    err = GatewayError(ErrorKind.UNAVAILABLE, DRAIN_MESSAGE, code="draining", retry_after=1)
    ex.status, ex.outcome, ex.error = err.status, "drained", err.message
    return error_response(ex, err)


def uncancel() -> None:
    """A cancellation we answer instead of propagating: let the task run on cleanly."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def error_response(ex: Exchange, err: GatewayError) -> web.Response:
    """``err`` in the caller's protocol, with the headers of what was tried."""
    return error_in(ex.ingress.protocol, err, ex.headers())


def error_in(protocol: str, err: GatewayError, headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(headers or {})
    if err.retry_after:
        headers["Retry-After"] = retry_after_header(err.retry_after)
    if err.code == "draining":
        headers["Connection"] = "close"
    return web.Response(
        body=errors.render_error(protocol, err),
        status=err.status,
        headers=headers,
        content_type="application/json",
    )


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up, at least 1 (what clients' ``Retry-After`` parsers take)."""
    return str(max(1, int(seconds + 0.999)))


def account(rt: Runtime, ex: Exchange) -> None:
    b = ex.binding
    name = b.name if b is not None else ""
    tier = ex.served_by
    source = tier.source if tier is not None else ""
    cost: int | None = None  # picos of tier.pricing.currency
    if b is not None:
        snap = rt.snapshot
        caller = metric_label(ex.caller, snap.by_caller if snap is not None else ())
        stats = rt.metrics.tier(b, tier) if tier is not None else rt.metrics.stats(name, "-1", "")
        stats.request(ex.outcome, ex.ingress.protocol, caller)
        if tier is not None and ex.ttft is not None and ex.outcome in ("success", "broken-stream"):
            stats.ttft(ex.ttft)
        if tier is not None and ex.usage is not None:
            u = ex.usage
            for kind, value in (
                ("input", u.input_tokens),
                ("output", u.output_tokens),
                ("cached_input", u.cached_input_tokens),
                ("cache_write", u.cache_creation_tokens),
                ("reasoning", u.reasoning_tokens),
            ):
                if value:
                    stats.tokens(kind, value)
            usage = stats.usage(caller, tier.model)
            usage.tokens(u.input_tokens, u.output_tokens, u.cached_input_tokens, u.cache_creation_tokens,
                         u.reasoning_tokens)
            price = tier.pricing
            if price is not None:
                cost = price.cost(u.input_tokens, u.output_tokens, u.cached_input_tokens, u.cache_creation_tokens)
                usage.cost(price.currency, cost)
        if b.limits is not None and ex.usage is not None:  # tokens count once the answer ended
            rt.limits.get(b).spend(caller, ex.usage.input_tokens + ex.usage.output_tokens, rt.limits.clock())
    if log.isEnabledFor(logging.INFO):
        record: dict[str, Any] = {
            "binding": name or None,
            "ingress": ex.ingress.protocol,
            "caller": ex.caller,
            "stream": ex.stream,
            "status": ex.status,
            "outcome": ex.outcome,
            "tier": tier.index if tier is not None else None,
            "source": source or None,
            "model": tier.model if tier is not None else None,
            **({"key": ex.served_key} if ex.served_key is not None else {}),
            "trail": [t.short() for t in ex.trail],
            "degraded": [f"{f}={a}" for f, a in ex.degraded],
            "duration_ms": round((time.monotonic() - ex.started) * 1000, 2),
        }
        if ex.endpoint != "generate":
            record["endpoint"] = ex.endpoint
        if ex.ttft is not None:
            record["ttft_ms"] = round(ex.ttft * 1000, 2)
        u = ex.usage
        if u is not None and tier is not None:
            # What the upstream reported; the cache and reasoning counts when it reported some.
            record["input_tokens"] = u.input_tokens
            record["output_tokens"] = u.output_tokens
            if u.cached_input_tokens:
                record["cached_input_tokens"] = u.cached_input_tokens
            if u.cache_creation_tokens:
                record["cache_write_tokens"] = u.cache_creation_tokens
            if u.reasoning_tokens:
                record["reasoning_tokens"] = u.reasoning_tokens
            price = tier.pricing
            if price is not None:
                if cost is None:  # no binding: not counted above
                    cost = price.cost(u.input_tokens, u.output_tokens, u.cached_input_tokens, u.cache_creation_tokens)
                record["cost"] = cost / PICOS
                record["currency"] = price.currency
        if ex.error:
            record["error"] = ex.error
        if ex.limited is not None:
            record["limit"] = ex.limited
        request_log.write("request", record)
