"""Admission against the binding's limits (``spec.limits``), before any tier is tried.

The counters and the decision are ``routing/limits.py``; here a refusal becomes the
client's answer: a 429 in its own protocol (``rate_limit_error`` for OpenAI and
Anthropic, ``RESOURCE_EXHAUSTED`` for Gemini) with ``Retry-After``, the header
``x-switchyard-limited`` naming the limit, the outcome ``limited`` in the request log and
``switchyard_limited_requests_total{binding,limit}``. No tier is tried, so no breaker and
no tier's health is touched: a limit is the gateway's own, never an upstream's failure.
Docs: docs/limits.md.
"""

from __future__ import annotations

from switchyard.sidecar.contract.config import CompiledBinding
from switchyard.sidecar.errors import ErrorKind, GatewayError
from switchyard.sidecar.pipeline.exchange import Exchange, retry_after_header
from switchyard.sidecar.routing.caller import metric_label
from switchyard.sidecar.routing.limits import MINUTE, Refusal
from switchyard.sidecar.state import Runtime, Snapshot

_UNIT = {"requestsPerMinute": "requests a minute", "tokensPerMinute": "tokens a minute", "tokensPerDay": "tokens a UTC day"}


def admit(rt: Runtime, ex: Exchange, binding: CompiledBinding, snap: Snapshot) -> None:
    """Count this request against ``binding``'s limits, or raise the 429 that refuses it."""
    board = rt.limits
    lim = board.get(binding)
    # Per-caller counters are keyed by the caller's metric label: bounded by the config.
    caller = metric_label(ex.caller, snap.by_caller) if lim.caller_caps is not None else ""
    refusal = lim.admit(caller, board.clock())
    if refusal is None:
        return
    ex.outcome = "limited"
    ex.limited = refusal.label
    rt.metrics.limited(binding.name, refusal.label)
    raise GatewayError(
        ErrorKind.RATE_LIMITED,
        message(binding, refusal),
        code=("caller_" if refusal.caller is not None else "") + ("budget_exhausted" if refusal.budget else "rate_limited"),
        binding=binding.name,
        retry_after=refusal.wait,
    )


def message(binding: CompiledBinding, r: Refusal) -> str:
    who = f"caller {r.caller} of binding {binding.name}" if r.caller is not None else f"binding {binding.name}"
    scope = "spec.limits.perCaller" if r.caller is not None else "spec.limits"
    share = (f"; {r.pods} pods share it, this pod's share is {r.share:g}" if r.pods > 1 else "")
    when = "at 00:00 UTC" if r.budget and r.wait > MINUTE else f"in {retry_after_header(r.wait)}s"
    what = "budget" if r.budget else "limit"
    return (f"{who} is over its {what} of {r.fleet_limit} {_UNIT[r.limit]} ({scope}.{r.limit}{share}); "
            f"no tier was tried; retry {when}")
