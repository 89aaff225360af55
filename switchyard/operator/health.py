"""Tier health from the sidecars' ``GET /admin/status``, aggregated per binding. Pure.

Each selected pod's sidecar reports (``switchyard.sidecar.contract.report``, parsed by
``push.get_status``), per binding, each tier's state (closed / open / half-open /
rate-limited / disabled, see docs/failure-handling.md), its last failure and that
failure's class, why a disabled tier was disabled, and the tier that served its last
request. A pod's report counts for a tier only when the pod runs the same chain (same
tier index, source and model): a sidecar still on an older config says nothing about the
current chain.

Nothing a sidecar reports is copied blindly into status: a state this operator does not
know (the contract reads it as None) and classes outside the known set are ignored (the
CRD's enums would refuse the whole status patch), and free text is cut to a bounded length.
The result feeds ``status.binding_status`` and the Events of ``events.py``.

Usage (tokens and cost) is summed over every pod that reports the binding, whichever
chain it runs: the totals are the binding's, since each sidecar started.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from switchyard.compiler.compile import BindingReport
from switchyard.sidecar.contract.report import FAILURE_CLASSES, TIER_STATES, SidecarReport, TierState

from .conditions import rfc3339

CLOSED, OPEN, HALF_OPEN, RATE_LIMITED, DISABLED = (s.value for s in (
    TierState.CLOSED, TierState.OPEN, TierState.HALF_OPEN, TierState.RATE_LIMITED, TierState.DISABLED,
))
UNKNOWN = "unknown"  # status only: no pod reported the tier
STATES = TIER_STATES
# The state a tier shows across pods is its worst: a tier disabled anywhere needs a human.
_SEVERITY = {DISABLED: 5, OPEN: 4, RATE_LIMITED: 3, HALF_OPEN: 2, CLOSED: 1}
MAX_REASON = 256


def _text(value: Any, limit: int = MAX_REASON) -> str | None:
    if value is None or value == "":
        return None
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_KEY_SEVERITY = {"disabled": 3, "rate-limited": 2, "usable": 1}


@dataclass(frozen=True)
class KeyHealth:
    """One key (by index) of a tier whose source has several, across the pods that report it."""

    state: str  # the worst across pods: disabled > rate-limited > usable
    rate_limited_in_pods: int = 0
    rate_limited_until: float | None = None  # wall clock: the longest wait
    disabled_in_pods: int = 0
    disabled_reason: str | None = None

    def as_status(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` (the key as compiled, ``KeyReport.as_status``) with what the pods say."""
        out = dict(base)
        if out.get("state") != "unresolvable":
            out["state"] = self.state
            if self.state == "disabled":
                out["reason"] = self.disabled_reason
        out["rateLimitedInPods"] = self.rate_limited_in_pods
        if self.rate_limited_in_pods and self.rate_limited_until:
            out["rateLimitedUntil"] = rfc3339(self.rate_limited_until)
        out["disabledInPods"] = self.disabled_in_pods
        return out


@dataclass(frozen=True)
class TierHealth:
    state: str  # one of STATES, or unknown
    open_in_pods: int = 0
    half_open_in_pods: int = 0
    reporting_pods: int = 0
    last_failure: str | None = None
    last_failure_at: float | None = None
    rate_limited_in_pods: int = 0
    disabled_in_pods: int = 0
    disabled_reason: str | None = None
    last_failure_class: str | None = None
    keys: dict[int, KeyHealth] = field(default_factory=dict)  # by key index, for a source with several

    @property
    def closed_in_pods(self) -> int:
        return max(0, self.reporting_pods - self.open_in_pods - self.half_open_in_pods
                   - self.rate_limited_in_pods - self.disabled_in_pods)

    @property
    def out_of_service_in_pods(self) -> int:
        """Pods in which no request goes to this tier until something happens (open or disabled)."""
        return self.open_in_pods + self.disabled_in_pods

    def as_status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "closedInPods": self.closed_in_pods,
            "openInPods": self.open_in_pods,
            "halfOpenInPods": self.half_open_in_pods,
            "rateLimitedInPods": self.rate_limited_in_pods,
            "disabledInPods": self.disabled_in_pods,
            "reportingPods": self.reporting_pods,
            "disabledReason": self.disabled_reason if self.disabled_in_pods else None,
            "lastFailure": self.last_failure,
            "lastFailureClass": self.last_failure_class,
            "lastFailureAt": rfc3339(self.last_failure_at) if self.last_failure_at else None,
        }


@dataclass(frozen=True)
class ActiveTier:
    tier: int
    source: str
    model: str
    at: float | None
    pods: int

    @property
    def label(self) -> str:
        return f"tier{self.tier} {self.source}/{self.model}"

    def as_status(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "source": self.source,
            "model": self.model,
            "lastUsedAt": rfc3339(self.at) if self.at else None,
            "pods": self.pods,
        }


@dataclass(frozen=True)
class BindingUsage:
    """A binding's usage summed over the pods that reported some: each pod's totals since
    its sidecar started, as read at the last poll (docs/usage-and-cost.md). Exact: the
    amounts are ``Decimal`` sums of the reports' decimal strings."""

    input: int = 0
    output: int = 0
    cached_input: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cost: dict[str, Decimal] = field(default_factory=dict)  # by currency
    pods: int = 0  # pods whose totals are in here

    def as_status(self) -> dict[str, Any]:
        return {
            "inputTokens": self.input,
            "outputTokens": self.output,
            "cachedInputTokens": self.cached_input,
            "cacheWriteTokens": self.cache_write,
            "reasoningTokens": self.reasoning,
            "cost": [{"currency": c, "amount": _amount(a)} for c, a in sorted(self.cost.items())] or None,
            "pods": self.pods,
        }


def _amount(value: Decimal) -> str:
    """Exact, without trailing zeros or an exponent: "0.002775", "12.5", "0"."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_CURRENCIES = 10  # a status lists at most this many (the CRD's bound)


def _sum_usage(reported: Iterable[Any]) -> BindingUsage | None:
    totals = dict.fromkeys(("input", "output", "cached_input", "cache_write", "reasoning"), 0)
    cost: dict[str, Decimal] = {}
    pods = 0
    for u in reported:
        pods += 1
        for kind in totals:
            totals[kind] += getattr(u.tokens, kind)
        for currency, text in u.cost.items():
            if not _CURRENCY.match(currency) or (currency not in cost and len(cost) >= MAX_CURRENCIES):
                continue
            try:
                amount = Decimal(text)
            except (InvalidOperation, TypeError, ValueError):
                continue  # an amount this reader cannot read: left out, never guessed
            if amount.is_finite() and amount >= 0:
                cost[currency] = cost.get(currency, Decimal(0)) + amount
    if not pods:
        return None
    return BindingUsage(**totals, cost=cost, pods=pods)


@dataclass(frozen=True)
class BindingHealth:
    tiers: dict[int, TierHealth] = field(default_factory=dict)
    active: ActiveTier | None = None
    usage: BindingUsage | None = None  # None: no pod reported usage for the binding

    @property
    def out_of_service_tiers(self) -> int:
        """Tiers open or disabled in at least one pod (the BREAKERS column's numerator)."""
        return sum(1 for t in self.tiers.values() if t.out_of_service_in_pods > 0)


def aggregate(report: BindingReport, pod_statuses: Iterable[SidecarReport]) -> BindingHealth:
    """Combine the admin status of the binding's selected pods into one health view."""
    chain = {t.index: (t.source, t.model) for t in report.tiers}
    counts: dict[int, dict[str, int]] = {i: dict.fromkeys(STATES, 0) for i in chain}
    last_failure: dict[int, tuple[float, str, str | None]] = {}  # -> (at, reason, class)
    disabled_reason: dict[int, tuple[float, str]] = {}  # -> (at of that pod's last failure, reason)
    last_used: dict[tuple[int, str, str], tuple[float, int]] = {}  # -> (latest at, pods)
    usage = []  # the binding's totals in each pod: whatever chain served them
    keys: dict[int, dict[int, list[Any]]] = {}  # tier -> key index -> the pods' ReportedKey
    for status in pod_statuses:
        entry = status.binding(report.namespace, report.name)
        if entry is None:
            continue
        if entry.usage is not None:
            usage.append(entry.usage)
        for t in entry.tiers:
            idx = t.tier
            if idx not in chain or (t.source, t.model) != chain[idx]:
                continue
            breaker = t.breaker
            if breaker.state is None:
                continue  # a state this operator does not know: say nothing rather than guess
            state = breaker.state.value
            counts[idx][state] += 1
            at = breaker.last_failure_at or 0.0
            if breaker.last_failure and at:
                if idx not in last_failure or at > last_failure[idx][0]:
                    cls = breaker.last_failure_class
                    last_failure[idx] = (at, breaker.last_failure, cls if cls in FAILURE_CLASSES else None)
            if state == DISABLED:
                why = _text(breaker.disabled_reason) or "unknown"
                if idx not in disabled_reason or at > disabled_reason[idx][0]:
                    disabled_reason[idx] = (at, why)
            for k in t.keys or ():
                if k.state is not None and k.state.value in _KEY_SEVERITY:  # unknown states are not guessed
                    keys.setdefault(idx, {}).setdefault(k.index, []).append(k)
        used = entry.last_used
        if used and used.tier in chain and (used.source, used.model) == chain[used.tier]:
            key = (used.tier, used.source, used.model)
            at = used.at or 0.0
            prev_at, pods = last_used.get(key, (0.0, 0))
            last_used[key] = (max(prev_at, at), pods + 1)

    tiers: dict[int, TierHealth] = {}
    for idx, c in counts.items():
        reporting = sum(c.values())
        if reporting == 0:
            state = UNKNOWN
        else:
            state = max((s for s, n in c.items() if n), key=lambda s: _SEVERITY[s])
        lf = last_failure.get(idx)
        dr = disabled_reason.get(idx)
        tiers[idx] = TierHealth(
            state=state,
            open_in_pods=c[OPEN],
            half_open_in_pods=c[HALF_OPEN],
            rate_limited_in_pods=c[RATE_LIMITED],
            disabled_in_pods=c[DISABLED],
            reporting_pods=reporting,
            disabled_reason=dr[1] if dr else None,
            last_failure=_text(lf[1]) if lf else None,
            last_failure_class=lf[2] if lf else None,
            last_failure_at=lf[0] if lf else None,
            keys={i: _key_health(reported) for i, reported in sorted(keys.get(idx, {}).items())},
        )
    active = None
    if last_used:
        (tier, source, model), (at, pods) = max(last_used.items(), key=lambda kv: kv[1][0])
        active = ActiveTier(tier=tier, source=source, model=model, at=at or None, pods=pods)
    return BindingHealth(tiers=tiers, active=active, usage=_sum_usage(usage))


def _key_health(reported: list[Any]) -> KeyHealth:
    """One key index across the pods that report it (``ReportedKey`` each)."""
    states = [k.state.value for k in reported]
    limited = [k for k in reported if k.state.value == "rate-limited"]
    disabled = [k for k in reported if k.state.value == "disabled"]
    untils = [k.rate_limited_until for k in limited if k.rate_limited_until]
    return KeyHealth(
        state=max(states, key=lambda s: _KEY_SEVERITY[s]),
        rate_limited_in_pods=len(limited),
        rate_limited_until=max(untils) if untils else None,
        disabled_in_pods=len(disabled),
        disabled_reason=next((_text(k.disabled_reason) for k in disabled if k.disabled_reason), "unknown" if disabled else None),
    )
@dataclass(frozen=True)
class LimitUsage:
    """One limit of a binding across its pods: the pods' counts for the same window, added up."""

    limit: int
    used: int
    window_start: float  # wall clock, seconds
    window_seconds: float
    reporting_pods: int

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)

    def as_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"limit": self.limit, "used": self.used, "left": self.left, "reportingPods": self.reporting_pods}
        if self.window_seconds > 60:  # a daily budget: when it starts again
            out["resetsAt"] = rfc3339(self.window_start + self.window_seconds)
        return out


@dataclass(frozen=True)
class LimitsHealth:
    windows: dict[str, LimitUsage] = field(default_factory=dict)  # requestsPerMinute, tokensPerMinute, tokensPerDay

    def as_status(self) -> dict[str, Any]:
        return {name: u.as_status() for name, u in self.windows.items()}


def aggregate_limits(namespace: str, name: str, reports: Iterable[SidecarReport], *, now: float | None = None) -> LimitsHealth | None:
    """What the binding's pods used of each of its limits (``spec.limits``) in the current
    window. Windows are UTC minutes and days, the same in every pod: the counts of the pods
    that report the latest window are added up; a pod still on an older window (it had no
    request since) adds nothing. ``now``: a latest window that has already ended counts 0.
    The limit is the one the pods report (the largest, while a change is on its way).
    None: no pod reports limits for the binding."""
    latest: dict[str, tuple[float, float, int, int, int]] = {}  # -> (start, seconds, limit, used, pods)
    for status in reports:
        entry = status.binding(namespace, name)
        if entry is None or entry.limits is None:
            continue
        for limit_name, w in entry.limits.windows.items():
            prev = latest.get(limit_name)
            if prev is None or w.window_start > prev[0]:
                latest[limit_name] = (w.window_start, w.window_seconds, w.limit, w.used, 1)
            elif w.window_start == prev[0]:
                latest[limit_name] = (prev[0], prev[1], max(prev[2], w.limit), prev[3] + w.used, prev[4] + 1)
    if not latest:
        return None
    windows = {}
    for limit_name, (start, seconds, limit, used, pods) in sorted(latest.items()):
        if now is not None and start + seconds <= now:  # that window is over: nothing used in this one yet
            start, used = now - now % seconds, 0
        windows[limit_name] = LimitUsage(limit=limit, used=max(0, used), window_start=start, window_seconds=seconds,
                                         reporting_pods=pods)
    return LimitsHealth(windows)


def disabled_tiers(pod_status: SidecarReport, namespace: str, name: str) -> list[int]:
    """The tiers of binding ``name`` that this one sidecar reports disabled."""
    entry = pod_status.binding(namespace, name)
    if entry is None:
        return []
    return sorted(t.tier for t in entry.tiers if t.breaker.state is TierState.DISABLED)


def all_resolvable_tiers_out(report: BindingReport, health: BindingHealth) -> bool:
    """Every resolvable tier is out of service (breaker open, or disabled) in every pod that
    reports it, and some pod does: no selected pod can serve a request now."""
    usable = [t.index for t in report.tiers if t.resolvable]
    if not usable:
        return False
    for idx in usable:
        h = health.tiers.get(idx)
        if h is None or h.reporting_pods == 0 or h.out_of_service_in_pods < h.reporting_pods:
            return False
    return True
