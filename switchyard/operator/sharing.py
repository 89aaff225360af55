"""Shared tier health: what each pod should be told of what the other pods saw. Pure.

Every poll the operator reads each sidecar's report (``push.get_status``). A pod that saw
a key of a source rate-limited (a 429, a quota error) or refused (401/403, confirmed by
its own check; or a model not found) reports it on its tier (``tiers[].breaker``) or, for
a source with several keys, on the key (``tiers[].keys[]``). ``plan_hints`` gathers those,
per (source, model, key index) of the namespace, from what pods saw **themselves** (a
state marked ``shared`` came from a hint and is never passed on: no echo, nothing outlives
the pod that saw it), and gives every pod that runs a tier of that source and model the
hints it does not already hold itself. ``HintMemory`` remembers what each pod was last
sent, so a pod is told only when its set changed (an empty set once: the clearing hint);
the reconciler sends with ``push.put_health``. See docs/shared-health.md.

The model is part of the identity: providers rate-limit per model (and a model not found
says nothing about another one), so a 429 for gpt-5 with key 0 is not a hint for
gpt-4o-mini with key 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from switchyard.sidecar.contract.health import MAX_HINTS, HealthHint, HealthHints
from switchyard.sidecar.contract.report import SidecarReport

from .selection import PodInfo

PodKey = tuple[str, str]
Slot = tuple[str, str, int]  # (source, model, key index; 0 for a source with one key)
EMPTY = HealthHints(hints=[])
_REASON_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ()_.:,/-")


def _reason(text: str | None, default: str) -> str:
    """A report's free text as a hint's reason (contract.health.REASON_PATTERN)."""
    kept = "".join(c for c in (text or "") if c in _REASON_CHARS)[:64].strip()
    return kept or default


@dataclass
class _Seen:
    until: float | None = None  # the latest wall time a pod waits until (its own 429)
    reason: str = "429"
    disabled: str | None = None
    waiting: set[PodKey] = field(default_factory=set)  # pods that wait themselves
    refused: set[PodKey] = field(default_factory=set)  # pods that disabled it themselves


def seen_by_pods(reports: dict[PodKey, SidecarReport], now: float) -> dict[Slot, _Seen]:
    """What the pods saw themselves, per (source, model, key)."""
    seen: dict[Slot, _Seen] = {}
    for pod, report in reports.items():
        for b in report.bindings:
            for t in b.tiers:
                if not t.resolvable:
                    continue
                if t.keys is None:
                    br = t.breaker
                    if br.shared:
                        continue
                    if br.state == "disabled":
                        _refused(seen, (t.source, t.model, 0), pod, br.disabled_reason)
                    elif br.rate_limited_for_seconds:
                        until = now + br.rate_limited_for_seconds  # the tier tells how long, a key until when
                        _waits(seen, (t.source, t.model, 0), pod, until, br.last_failure)
                    continue
                for k in t.keys:
                    if k.shared or not 0 <= k.index <= 7:
                        continue
                    if k.state == "disabled":
                        _refused(seen, (t.source, t.model, k.index), pod, k.disabled_reason)
                    elif k.state == "rate-limited" and (k.rate_limited_until or k.rate_limited_for_seconds):
                        until = k.rate_limited_until or now + (k.rate_limited_for_seconds or 0.0)
                        _waits(seen, (t.source, t.model, k.index), pod, until, k.last_failure)
    return seen


def _waits(seen: dict[Slot, _Seen], slot: Slot, pod: PodKey, until: float, reason: str | None) -> None:
    s = seen.setdefault(slot, _Seen())
    s.waiting.add(pod)
    if s.until is None or until > s.until:
        s.until, s.reason = float(math.ceil(until)), _reason(reason, "429")


def _refused(seen: dict[Slot, _Seen], slot: Slot, pod: PodKey, reason: str | None) -> None:
    s = seen.setdefault(slot, _Seen())
    s.refused.add(pod)
    s.disabled = s.disabled or _reason(reason, "disabled")


def plan_hints(reports: dict[PodKey, SidecarReport], now: float) -> dict[PodKey, HealthHints]:
    """Each reporting pod's whole set of hints now (pods not in ``reports`` get none: a pod
    that cannot be read is told nothing). Only pods that run a tier of the source and
    model; never what the pod already holds itself; at most ``MAX_HINTS`` per pod."""
    seen = seen_by_pods(reports, now)
    out: dict[PodKey, HealthHints] = {}
    for pod, report in reports.items():
        runs = {(t.source, t.model) for b in report.bindings for t in b.tiers if t.resolvable}
        hints: list[HealthHint] = []
        for (source, model, key), s in sorted(seen.items()):
            if (source, model) not in runs:
                continue
            if s.disabled is not None and pod not in s.refused:
                hints.append(HealthHint(source=source, model=model, key=key, disabled=s.disabled))
            elif s.disabled is None and s.until is not None and s.until > now and pod not in s.waiting:
                hints.append(HealthHint(source=source, model=model, key=key, rate_limited_until=s.until, reason=s.reason))
        out[pod] = HealthHints(hints=hints[:MAX_HINTS])
    return out


@dataclass
class _Sent:
    incarnation: str
    hints: HealthHints


def holds_stale(report: SidecarReport, hints: HealthHints) -> bool:
    """Does the pod report a state a hint made (``shared``) that ``hints`` no longer holds?
    Then it is sent its set again even if this process believes it was: after a leader
    change, an operator restart or a lost message, the report is the truth."""
    planned = {(h.source, h.model, h.key) for h in hints.hints}
    for b in report.bindings:
        for t in b.tiers:
            if t.keys is None:
                if t.breaker.shared and (t.source, t.model, 0) not in planned:
                    return True
                continue
            if any(k.shared and (t.source, t.model, k.index) not in planned for k in t.keys):
                return True
    return False


def _same(a: HealthHint, b: HealthHint) -> bool:
    """The same hint, give or take the second a wait read from a relative time may move by
    between two polls (not worth a message: both end within a second of each other)."""
    if (a.source, a.model, a.key, a.disabled) != (b.source, b.model, b.key, b.disabled):
        return False
    if a.rate_limited_until is None or b.rate_limited_until is None:
        return a.rate_limited_until == b.rate_limited_until
    return abs(a.rate_limited_until - b.rate_limited_until) <= 2.0


class HintMemory:
    """Per pod, the hints it was last sent (forgotten when the pod restarts: a new sidecar
    holds no hint). A pod is sent its set only when it differs from the last one, leaving
    out rate-limit hints whose time is over (the sidecar drops those by itself)."""

    def __init__(self) -> None:
        self._pods: dict[PodKey, _Sent] = {}

    def needs_send(self, pod: PodInfo, hints: HealthHints, now: float) -> bool:
        rec = self._pods.get(pod.key)
        last = rec.hints if rec is not None and rec.incarnation == pod.incarnation else EMPTY
        live = [h for h in last.hints if h.rate_limited_until is None or h.rate_limited_until > now]
        return len(live) != len(hints.hints) or not all(map(_same, live, hints.hints))

    def sent(self, pod: PodInfo, hints: HealthHints) -> None:
        self._pods[pod.key] = _Sent(pod.incarnation, hints)

    def retain(self, live: set[PodKey], namespace: str) -> None:
        for key in [k for k in self._pods if k[0] == namespace and k not in live]:
            del self._pods[key]
