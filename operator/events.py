"""Which Kubernetes Events a health change deserves, and a limiter against storms. Pure.

Events on an AssistantBinding:

- ``ActiveTierChanged`` (Warning when the new tier is a fallback, Normal when back on
  the primary): the tier serving the binding's most recent requests changed.
- ``BreakerOpened`` (Warning) / ``BreakerClosed`` (Normal): a tier's breaker opened in
  at least one pod / is no longer open in any pod.
- ``ConfigPushFailed`` (Warning): a selected pod's sidecar refused or missed its config.

The limiter allows one event per (object, reason, subject) per ``min_interval_seconds``
and, per object, a token bucket (``burst`` events, one more every ``refill_seconds``).
Suppressed events are counted and the next event that passes says how many it stands
for, so nothing is hidden, only folded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .health import BindingHealth

NORMAL, WARNING = "Normal", "Warning"


@dataclass(frozen=True)
class EventSpec:
    type: str
    reason: str
    message: str
    subject: str = ""  # what the rate limit is keyed on besides the reason (a tier, a pod)


@dataclass(frozen=True)
class HealthMemo:
    """The part of a binding's health that events compare across passes."""

    active_tier: int | None = None
    active_label: str = ""
    open_in_pods: tuple[tuple[int, int], ...] = ()  # (tier, pods where open)
    labels: tuple[tuple[int, str], ...] = ()  # (tier, "source/model")
    last_failures: tuple[tuple[int, str], ...] = ()

    @classmethod
    def of(cls, health: BindingHealth, labels: dict[int, str]) -> HealthMemo:
        return cls(
            active_tier=health.active.tier if health.active else None,
            active_label=health.active.label if health.active else "",
            open_in_pods=tuple(sorted((i, t.open_in_pods) for i, t in health.tiers.items() if t.reporting_pods)),
            labels=tuple(sorted(labels.items())),
            last_failures=tuple(sorted((i, t.last_failure) for i, t in health.tiers.items() if t.last_failure)),
        )

    def carry_over(self, prev: HealthMemo | None) -> HealthMemo:
        """Keep what ``prev`` knew of tiers no pod reported this time (unknown is not closed)."""
        if prev is None:
            return self
        labels = dict(self.labels)
        known = dict(self.open_in_pods)
        for tier, n in prev.open_in_pods:
            if tier not in known and dict(prev.labels).get(tier) == labels.get(tier):
                known[tier] = n
        same_active = self.active_tier is None and prev.active_tier is not None
        return HealthMemo(
            active_tier=prev.active_tier if same_active else self.active_tier,
            active_label=prev.active_label if same_active else self.active_label,
            open_in_pods=tuple(sorted(known.items())),
            labels=self.labels,
            last_failures=self.last_failures,
        )

    @classmethod
    def from_status(cls, status: dict) -> HealthMemo | None:
        """Rebuild the memo from a binding's written status (after an operator restart)."""
        if not status:
            return None
        active = status.get("active") or {}
        chain = status.get("chain") or []
        return cls(
            active_tier=active.get("tier"),
            active_label=(status.get("summary") or {}).get("active", ""),
            open_in_pods=tuple(sorted(
                (t["tier"], (t.get("breaker") or {}).get("openInPods", 0)) for t in chain if t.get("breaker")
            )),
            labels=tuple(sorted((t["tier"], f"{t['source']}/{t.get('model') or ''}".rstrip("/")) for t in chain)),
        )


def health_events(prev: HealthMemo | None, new: HealthMemo, *, selected_pods: int) -> list[EventSpec]:
    """Events for the transitions from ``prev`` to ``new`` (none on first sight)."""
    if prev is None:
        return []
    out: list[EventSpec] = []
    labels = dict(new.labels)
    if new.active_tier is not None and prev.active_tier is not None and new.active_tier != prev.active_tier:
        was = prev.active_label or f"tier{prev.active_tier}"
        kind = NORMAL if new.active_tier == 0 else WARNING
        out.append(EventSpec(kind, "ActiveTierChanged", f"now serving from {new.active_label} (was {was})", "active"))
    before = dict(prev.open_in_pods)
    failures = dict(new.last_failures)
    for tier, open_now in new.open_in_pods:
        open_before = before.get(tier, 0)
        label = f"tier{tier} {labels.get(tier, '')}".strip()
        if open_now > 0 and open_before == 0:
            why = f"; last failure: {failures[tier]}" if failures.get(tier) else ""
            out.append(EventSpec(WARNING, "BreakerOpened", f"{label}: breaker open in {open_now} of {selected_pods} pods{why}", f"tier{tier}"))
        elif open_now == 0 and open_before > 0:
            out.append(EventSpec(NORMAL, "BreakerClosed", f"{label}: breaker no longer open in any pod", f"tier{tier}"))
    return out


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class EventLimiter:
    min_interval_seconds: float = 60.0
    burst: int = 5
    refill_seconds: float = 30.0
    _last: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _suppressed: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def admit(self, obj: str, event: EventSpec, now: float) -> EventSpec | None:
        """The event to post now (its message may count folded ones), or None to hold it back."""
        key = (obj, event.reason, event.subject)
        last = self._last.get(key)
        bucket = self._buckets.setdefault(obj, _Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) / self.refill_seconds)
        bucket.at = now
        if (last is not None and now - last < self.min_interval_seconds) or bucket.tokens < 1.0:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        bucket.tokens -= 1.0
        self._last[key] = now
        folded = self._suppressed.pop(key, 0)
        if folded:
            suffix = f" ({folded} similar event{'s' if folded > 1 else ''} suppressed)"
            return EventSpec(event.type, event.reason, event.message + suffix, event.subject)
        return event

    def forget(self, obj: str) -> None:
        self._buckets.pop(obj, None)
        for key in [k for k in self._last if k[0] == obj]:
            self._last.pop(key, None)
            self._suppressed.pop(key, None)
