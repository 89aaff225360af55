"""Tier health from the sidecars' ``GET /admin/status``, aggregated per binding. Pure.

Each selected pod's sidecar reports, per binding, each tier's breaker (closed / open /
half-open, last failure) and the tier that served its last request. A pod's report
counts for a tier only when the pod runs the same chain (same tier index, source and
model): a sidecar still on an older config says nothing about the current chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from switchyard.compiler.compile import BindingReport

from .conditions import rfc3339


@dataclass(frozen=True)
class TierHealth:
    state: str  # closed | open | half-open | unknown
    open_in_pods: int = 0
    half_open_in_pods: int = 0
    reporting_pods: int = 0
    last_failure: str | None = None
    last_failure_at: float | None = None

    def as_status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "openInPods": self.open_in_pods,
            "halfOpenInPods": self.half_open_in_pods,
            "reportingPods": self.reporting_pods,
            "lastFailure": self.last_failure,
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
class BindingHealth:
    tiers: dict[int, TierHealth] = field(default_factory=dict)
    active: ActiveTier | None = None

    @property
    def open_tiers(self) -> int:
        return sum(1 for t in self.tiers.values() if t.open_in_pods > 0)


_SEVERITY = {"open": 3, "half-open": 2, "closed": 1}


def _binding_entry(pod_status: Mapping[str, Any], namespace: str, name: str) -> Mapping[str, Any] | None:
    for b in pod_status.get("bindings") or []:
        if b.get("name") == name and b.get("namespace", namespace) == namespace:
            return b
    return None


def aggregate(report: BindingReport, pod_statuses: Iterable[Mapping[str, Any]]) -> BindingHealth:
    """Combine the admin status of the binding's selected pods into one health view."""
    chain = {t.index: (t.source, t.model) for t in report.tiers}
    counts: dict[int, dict[str, int]] = {i: {"open": 0, "half-open": 0, "closed": 0} for i in chain}
    last_failure: dict[int, tuple[float, str]] = {}
    last_used: dict[tuple[int, str, str], tuple[float, int]] = {}  # -> (latest at, pods)
    for status in pod_statuses:
        entry = _binding_entry(status, report.namespace, report.name)
        if entry is None:
            continue
        for t in entry.get("tiers") or []:
            idx = t.get("tier")
            if idx not in chain or (t.get("source"), t.get("model")) != chain[idx]:
                continue
            breaker = t.get("breaker") or {}
            state = breaker.get("state", "closed")
            if state in counts[idx]:
                counts[idx][state] += 1
            at = breaker.get("last_failure_at")
            if breaker.get("last_failure") and isinstance(at, (int, float)):
                if idx not in last_failure or at > last_failure[idx][0]:
                    last_failure[idx] = (float(at), str(breaker["last_failure"]))
        used = entry.get("last_used")
        if used and used.get("tier") in chain and (used.get("source"), used.get("model")) == chain[used["tier"]]:
            key = (used["tier"], used["source"], used["model"])
            at = float(used.get("at") or 0.0)
            prev_at, pods = last_used.get(key, (0.0, 0))
            last_used[key] = (max(prev_at, at), pods + 1)

    tiers: dict[int, TierHealth] = {}
    for idx, c in counts.items():
        reporting = sum(c.values())
        if reporting == 0:
            state = "unknown"
        else:
            state = max((s for s, n in c.items() if n), key=lambda s: _SEVERITY[s])
        lf = last_failure.get(idx)
        tiers[idx] = TierHealth(
            state=state,
            open_in_pods=c["open"],
            half_open_in_pods=c["half-open"],
            reporting_pods=reporting,
            last_failure=lf[1] if lf else None,
            last_failure_at=lf[0] if lf else None,
        )
    active = None
    if last_used:
        (tier, source, model), (at, pods) = max(last_used.items(), key=lambda kv: kv[1][0])
        active = ActiveTier(tier=tier, source=source, model=model, at=at or None, pods=pods)
    return BindingHealth(tiers=tiers, active=active)


def all_resolvable_tiers_open(report: BindingReport, health: BindingHealth) -> bool:
    """Every resolvable tier has its breaker open in every pod that reports it (and some pod does)."""
    usable = [t.index for t in report.tiers if t.resolvable]
    if not usable:
        return False
    for idx in usable:
        h = health.tiers.get(idx)
        if h is None or h.reporting_pods == 0 or h.open_in_pods < h.reporting_pods:
            return False
    return True
