"""Per-tier circuit breaker: a small state record and pure transitions.

State (``TierHealth``) is kept apart from behaviour (the functions below), as in kopf:
the functions take the clock as an argument, so every transition is testable without
sleeping. ``BreakerBoard`` owns the records of one running sidecar, keyed by binding and
tier identity, and survives config swaps for tiers that did not change.

States::

    closed --N consecutive failures--> open --cooldown over--> half-open
      ^                                  ^                         |
      |                                  +------ a failure --------+
      +---------- halfOpenRequests successes in a row -------------+

Separately from the state, a 429 with ``Retry-After`` keeps the tier out until the time
the upstream asked for (``rate_limited_until``), whatever the breaker says.

What happens when every tier is out: the request is answered at once with a
protocol-shaped 503 listing each tier and why (never queued, never sent to an open tier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from switchyard.sidecar.config import CompiledBreaker


class State(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(slots=True)
class Transition:
    at: float  # wall-clock seconds
    from_state: str
    to_state: str
    reason: str


@dataclass(slots=True)
class TierHealth:
    state: State = State.CLOSED
    consecutive_failures: int = 0
    open_until: float = 0.0  # monotonic: while OPEN, the tier is skipped until then
    rate_limited_until: float = 0.0  # monotonic: Retry-After honoured until then
    half_open_in_flight: int = 0
    half_open_passed: int = 0
    last_failure: str | None = None
    last_failure_at: float | None = None  # wall clock
    last_success_at: float | None = None  # wall clock
    transitions: list[Transition] = field(default_factory=list)  # newest last, bounded
    transition_count: int = 0  # all transitions ever, for exporting new ones


@dataclass(slots=True, frozen=True)
class Admission:
    allowed: bool
    reason: str = ""  # why not, e.g. "breaker-open(retry in 12s)"
    trial: bool = False  # a half-open trial request: its outcome decides the state


_MAX_TRANSITIONS = 20


def _move(h: TierHealth, to: State, reason: str, wall: float) -> None:
    if h.state is to:
        return
    h.transitions.append(Transition(wall, h.state.value, to.value, reason))
    h.transition_count += 1
    if len(h.transitions) > _MAX_TRANSITIONS:
        del h.transitions[0]
    h.state = to


def _secs(delta: float) -> int:
    return max(1, math.ceil(delta))


def admit(h: TierHealth, b: CompiledBreaker, now: float, wall: float) -> Admission:
    """May a request be sent to this tier now? A granted trial must be settled with
    record_success / record_failure / release."""
    if now < h.rate_limited_until:
        return Admission(False, f"rate-limited(retry in {_secs(h.rate_limited_until - now)}s)")
    if h.state is State.OPEN:
        if now < h.open_until:
            return Admission(False, f"breaker-open(retry in {_secs(h.open_until - now)}s)")
        _move(h, State.HALF_OPEN, "cooldown over", wall)
        h.half_open_in_flight = 0
        h.half_open_passed = 0
    if h.state is State.HALF_OPEN:
        if h.half_open_in_flight + h.half_open_passed >= b.half_open_requests:
            return Admission(False, "breaker-half-open(trial in flight)")
        h.half_open_in_flight += 1
        return Admission(True, trial=True)
    return Admission(True)


def record_success(h: TierHealth, b: CompiledBreaker, admission: Admission, wall: float) -> None:
    h.consecutive_failures = 0
    h.last_success_at = wall
    if admission.trial and h.state is State.HALF_OPEN:
        h.half_open_in_flight = max(0, h.half_open_in_flight - 1)
        h.half_open_passed += 1
        if h.half_open_passed >= b.half_open_requests:
            _move(h, State.CLOSED, "trial requests succeeded", wall)
            h.half_open_passed = 0


def record_failure(
    h: TierHealth,
    b: CompiledBreaker,
    admission: Admission,
    reason: str,
    now: float,
    wall: float,
    retry_after: float | None = None,
) -> None:
    h.last_failure = reason
    h.last_failure_at = wall
    if retry_after is not None and retry_after > 0:
        h.rate_limited_until = max(h.rate_limited_until, now + retry_after)
    if h.state is State.HALF_OPEN:
        if admission.trial:
            h.half_open_in_flight = max(0, h.half_open_in_flight - 1)
        h.half_open_passed = 0
        h.open_until = now + b.cooldown_seconds
        _move(h, State.OPEN, f"trial failed: {reason}", wall)
        return
    h.consecutive_failures += 1
    if h.state is State.CLOSED and h.consecutive_failures >= b.consecutive_failures:
        h.open_until = now + b.cooldown_seconds
        _move(h, State.OPEN, f"{h.consecutive_failures} consecutive failures, last: {reason}", wall)


def release(h: TierHealth, admission: Admission) -> None:
    """The admitted request ended without a verdict on the tier (client went away,
    request rejected before sending): give back a half-open trial slot."""
    if admission.trial and h.state is State.HALF_OPEN:
        h.half_open_in_flight = max(0, h.half_open_in_flight - 1)


class BreakerBoard:
    """All tier health records of one sidecar, keyed by (binding, tier identity)."""

    def __init__(self) -> None:
        self._health: dict[tuple[str, str], TierHealth] = {}

    def get(self, binding: str, tier_key: str) -> TierHealth:
        key = (binding, tier_key)
        h = self._health.get(key)
        if h is None:
            h = self._health[key] = TierHealth()
        return h

    def retain(self, keys: set[tuple[str, str]]) -> None:
        """After a config swap: forget tiers that no longer exist, keep the others."""
        for key in list(self._health):
            if key not in keys:
                del self._health[key]

    def items(self) -> list[tuple[tuple[str, str], TierHealth]]:
        return list(self._health.items())
