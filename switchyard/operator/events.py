"""Which Kubernetes Events a health change deserves, and a limiter against storms. Pure.

Events on an AssistantBinding:

- ``ActiveTierChanged`` (Warning when the new tier is a fallback, Normal when back on
  the primary): the tier serving the binding's most recent requests changed.
- ``BreakerOpened`` (Warning) / ``BreakerClosed`` (Normal): a tier's breaker opened in
  at least one pod / is no longer open in any pod (and not because it is now disabled).
- ``TierDisabled`` (Warning) / ``TierEnabled`` (Normal): a permanent failure (401, 403,
  404 model) disabled a tier in at least one pod, with the upstream's reason / it is no
  longer disabled in any pod (its config or the binding changed, or an admin reset it).
- ``ConfigPushFailed`` (Warning): a selected pod's sidecar refused or missed its config.

The limiter allows one event per (object, reason, subject) per ``min_interval_seconds``
and, per object, a token bucket (``burst`` events, one more every ``refill_seconds``).
Suppressed events are counted and the next event that passes says how many it stands
for, so nothing is hidden, only folded.

"Once" comes from comparing memos, not from the limiter: an event is raised on a change
of the aggregated state between two passes (0 pods -> some pods, some -> 0), never per
request or per health poll. The memo survives an operator restart through the written
status (``HealthMemo.from_status``), so a new leader does not replay old events.
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
    disabled_in_pods: tuple[tuple[int, int], ...] = ()  # (tier, pods where disabled)
    disabled_reasons: tuple[tuple[int, str], ...] = ()  # (tier, the upstream's reason)

    @classmethod
    def of(cls, health: BindingHealth, labels: dict[int, str]) -> HealthMemo:
        reported = {i: t for i, t in health.tiers.items() if t.reporting_pods}
        return cls(
            active_tier=health.active.tier if health.active else None,
            active_label=health.active.label if health.active else "",
            open_in_pods=tuple(sorted((i, t.open_in_pods) for i, t in reported.items())),
            labels=tuple(sorted(labels.items())),
            last_failures=tuple(sorted((i, t.last_failure) for i, t in health.tiers.items() if t.last_failure)),
            disabled_in_pods=tuple(sorted((i, t.disabled_in_pods) for i, t in reported.items())),
            disabled_reasons=tuple(sorted((i, t.disabled_reason) for i, t in reported.items() if t.disabled_reason)),
        )

    def carry_over(self, prev: HealthMemo | None) -> HealthMemo:
        """Keep what ``prev`` knew of tiers no pod reported this time (unknown is not closed)."""
        if prev is None:
            return self
        labels = dict(self.labels)
        prev_labels = dict(prev.labels)

        def keep(now: tuple[tuple[int, int], ...], before: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
            known = dict(now)
            for tier, n in before:
                if tier not in known and prev_labels.get(tier) == labels.get(tier):
                    known[tier] = n
            return tuple(sorted(known.items()))

        reasons = dict(self.disabled_reasons)
        for tier, why in prev.disabled_reasons:
            if tier not in dict(self.disabled_in_pods) and prev_labels.get(tier) == labels.get(tier):
                reasons.setdefault(tier, why)
        same_active = self.active_tier is None and prev.active_tier is not None
        return HealthMemo(
            active_tier=prev.active_tier if same_active else self.active_tier,
            active_label=prev.active_label if same_active else self.active_label,
            open_in_pods=keep(self.open_in_pods, prev.open_in_pods),
            labels=self.labels,
            last_failures=self.last_failures,
            disabled_in_pods=keep(self.disabled_in_pods, prev.disabled_in_pods),
            disabled_reasons=tuple(sorted(reasons.items())),
        )

    @classmethod
    def from_status(cls, status: dict) -> HealthMemo | None:
        """Rebuild the memo from a binding's written status (after an operator restart)."""
        if not status:
            return None
        active = status.get("active") or {}
        chain = status.get("chain") or []
        reported = [t for t in chain if t.get("breaker")]
        return cls(
            active_tier=active.get("tier"),
            active_label=(status.get("summary") or {}).get("active", ""),
            open_in_pods=tuple(sorted((t["tier"], t["breaker"].get("openInPods", 0)) for t in reported)),
            labels=tuple(sorted((t["tier"], f"{t['source']}/{t.get('model') or ''}".rstrip("/")) for t in chain)),
            disabled_in_pods=tuple(sorted((t["tier"], t["breaker"].get("disabledInPods", 0)) for t in reported)),
            disabled_reasons=tuple(sorted(
                (t["tier"], t["breaker"]["disabledReason"]) for t in reported if t["breaker"].get("disabledReason")
            )),
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
    prev_labels = dict(prev.labels)
    before = dict(prev.open_in_pods)
    failures = dict(new.last_failures)
    disabled_now = dict(new.disabled_in_pods)
    for tier, open_now in new.open_in_pods:
        open_before = before.get(tier, 0)
        label = f"tier{tier} {labels.get(tier, '')}".strip()
        if open_now > 0 and open_before == 0:
            why = f"; last failure: {failures[tier]}" if failures.get(tier) else ""
            out.append(EventSpec(WARNING, "BreakerOpened", f"{label}: breaker open in {open_now} of {selected_pods} pods{why}", f"tier{tier}"))
        elif open_now == 0 and open_before > 0 and not disabled_now.get(tier):
            out.append(EventSpec(NORMAL, "BreakerClosed", f"{label}: breaker no longer open in any pod", f"tier{tier}"))
    # A tier whose source/model changed is another tier: its old state raises nothing.
    disabled_before = {t: n for t, n in prev.disabled_in_pods if prev_labels.get(t) == labels.get(t)}
    reasons = dict(new.disabled_reasons)
    for tier, now_n in new.disabled_in_pods:
        was_n = disabled_before.get(tier, 0)
        label = f"tier{tier} {labels.get(tier, '')}".strip()
        if now_n > 0 and was_n == 0:
            out.append(EventSpec(WARNING, "TierDisabled", disabled_message(label, now_n, selected_pods, reasons.get(tier)), f"tier{tier}"))
        elif now_n == 0 and was_n > 0:
            out.append(EventSpec(NORMAL, "TierEnabled", f"{label}: back in service, no longer disabled in any pod", f"tier{tier}"))
    return out


def disabled_message(label: str, pods: int, selected_pods: int, reason: str | None) -> str:
    """``tier0 openai-main/gpt-4o: disabled in 1 of 1 pods: the upstream answered 401; ...``"""
    return (
        f"{label}: disabled in {pods} of {selected_pods} pods: the upstream answered {reason or 'a permanent error'}; "
        "no request goes to it until its ModelSource, Secret or this binding changes, or an admin resets it"
    )


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
