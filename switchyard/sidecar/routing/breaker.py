"""Per-tier health: a small state record and pure transitions, one per failure class.

State (``TierHealth``) is kept apart from behaviour (the functions below), as in kopf:
the functions take the clock as an argument, so every transition is testable without
sleeping. ``BreakerBoard`` owns the records of one running sidecar, keyed by binding and
tier identity, and survives config swaps for tiers that did not change.

Failure classes (``routing.classify``) decide what a failure does:

- **transient** (5xx, reset, connect error, timeouts, empty answers) counts toward the
  breaker::

    closed --N consecutive failures--> open --cooldown over--> [probe] --> half-open
      ^                                  ^                          |          |
      |                                  +---- probe or trial fails-+----------+
      +------------- halfOpenRequests successful trials ------------------------+

  With ``probe: models`` (the default) an open tier whose cooldown is over is checked
  with a prompt-free call (``sidecar.probe``) before any user request goes to it; a
  failed check re-arms the cooldown, doubled each time up to ``maxCooldownSeconds``.
- **rate-limited** (429, quota) keeps the tier out for as long as the upstream asked
  (capped by ``maxRetryAfterSeconds``; the cooldown when it did not say), without
  counting toward the breaker.
- **permanent** (the tier's key refused: 401/403; its own model not found) disables the
  tier once a prompt-free check confirms it (``record_suspect``, then the prober's
  ``confirm``): one client's request naming something that does not exist cannot take a
  tier away from every caller. A disabled tier gets no user request until its config
  changes (a new key, model or URL: its fingerprint) or an admin resets it.

Several keys per source (``CompiledTier.keys``): each key has a record of its own (the
same ``TierHealth`` shape; only ``rate_limited_until``, ``disabled`` and the last failure
are used), kept by the board next to its tier's. A 429 or a refused key (401/403,
confirmed) is the key's, not the tier's: ``rate_limit`` / ``disable`` act on the key's
record. The tier's own record still takes every transient failure (a 5xx or a timeout is
the upstream's, whichever key was sent), and stands for its keys when none is usable:
every key rate-limited -> the tier waits until the first key is back; every key disabled
-> the tier is disabled (``state.Runtime.settle_keys``).

What happens when every tier is out: the request is answered at once with a
protocol-shaped error listing each tier and why (never queued, never sent to a tier
that is out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from switchyard.sidecar.contract.config import CompiledBreaker
from switchyard.sidecar.contract.report import TIER_STATES, FailureClass, TierState

TRANSIENT = FailureClass.TRANSIENT.value
RATE_LIMITED = FailureClass.RATE_LIMITED.value
PERMANENT = FailureClass.PERMANENT.value


class State(str, Enum):
    CLOSED = TierState.CLOSED.value
    OPEN = TierState.OPEN.value
    HALF_OPEN = TierState.HALF_OPEN.value
    DISABLED = TierState.DISABLED.value


STATES = TIER_STATES
"""The values the breaker-state metric and status use (rate-limited is an overlay)."""


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
    reopened: int = 0  # failed checks/trials in a row since it first opened: the backoff exponent
    rate_limited_until: float = 0.0  # monotonic: Retry-After honoured until then (own or shared: the later)
    own_rate_limited_until: float = 0.0  # monotonic: what this sidecar's own 429s asked for
    hint_rate_limited_until: float = 0.0  # monotonic: what another pod saw (a shared-health hint)
    hint_disabled: str | None = None  # another pod saw it refused: suspected until this sidecar's check says
    half_open_in_flight: int = 0
    half_open_passed: int = 0
    probing: bool = False  # a prompt-free check is in flight
    confirming: bool = False  # a check of a permanent-looking failure is in flight
    disabled_reason: str | None = None
    disabled_fingerprint: str | None = None  # the tier's config when it was disabled
    last_failure: str | None = None
    last_failure_class: str | None = None
    last_failure_at: float | None = None  # wall clock
    last_success_at: float | None = None  # wall clock
    transitions: list[Transition] = field(default_factory=list)  # newest last, bounded
    transition_count: int = 0  # all transitions ever, for exporting new ones


@dataclass(slots=True, frozen=True)
class Admission:
    allowed: bool
    reason: str = ""  # why not, e.g. "breaker-open(retry in 12s)"
    trial: bool = False  # a half-open trial request: its outcome decides the state
    probe_due: bool = False  # the cooldown is over and a prompt-free check should run now
    kind: str = ""  # why not, as a metric label: breaker | rate-limited | disabled


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


def effective_state(h: TierHealth, now: float) -> str:
    """The state as reported (status, metric): rate-limited shows over closed/half-open."""
    if h.state is State.CLOSED or h.state is State.HALF_OPEN:
        if now < h.rate_limited_until:
            return RATE_LIMITED
    return h.state.value


def _open(h: TierHealth, b: CompiledBreaker, now: float, wall: float, reason: str) -> None:
    """(Re)open with the cooldown doubled for each failed check or trial in a row."""
    wait = min(b.cooldown_seconds * (2 ** h.reopened), b.max_cooldown_seconds)
    h.open_until = now + wait
    h.half_open_in_flight = 0
    h.half_open_passed = 0
    _move(h, State.OPEN, reason, wall)


def admit(h: TierHealth, b: CompiledBreaker, now: float, wall: float) -> Admission:
    """May a request be sent to this tier now? A granted trial must be settled with
    record_success / record_failure / release."""
    if h.state is State.DISABLED:
        return Admission(False, f"disabled({h.disabled_reason})", kind="disabled")
    if h.hint_disabled is not None:  # another pod saw it refused: no user request until our check says
        return Admission(False, f"suspected({h.hint_disabled}; checking)", kind="breaker")
    if now < h.rate_limited_until:
        return Admission(False, f"rate-limited(retry in {_secs(h.rate_limited_until - now)}s)", kind="rate-limited")
    if h.state is State.OPEN:
        if now < h.open_until:
            return Admission(False, f"breaker-open(retry in {_secs(h.open_until - now)}s)", kind="breaker")
        if b.probe != "none":
            # The tier is checked without a prompt first; no user request is spent on it.
            return Admission(False, "breaker-probing", probe_due=not h.probing, kind="breaker")
        _move(h, State.HALF_OPEN, "cooldown over", wall)
        h.half_open_in_flight = 0
        h.half_open_passed = 0
    if h.state is State.HALF_OPEN:
        if h.half_open_in_flight + h.half_open_passed >= b.half_open_requests:
            return Admission(False, "breaker-half-open(trial in flight)", kind="breaker")
        h.half_open_in_flight += 1
        return Admission(True, trial=True)
    return Admission(True)


def probe_due(h: TierHealth, b: CompiledBreaker, now: float) -> bool:
    """Should a prompt-free check run now (the prober's question, without a request)?"""
    return b.probe != "none" and h.state is State.OPEN and not h.probing and now >= h.open_until


def record_success(h: TierHealth, b: CompiledBreaker, admission: Admission, wall: float) -> None:
    h.consecutive_failures = 0
    h.last_success_at = wall
    if admission.trial and h.state is State.HALF_OPEN:
        h.half_open_in_flight = max(0, h.half_open_in_flight - 1)
        h.half_open_passed += 1
        if h.half_open_passed >= b.half_open_requests:
            _move(h, State.CLOSED, "trial requests succeeded", wall)
            h.half_open_passed = 0
            h.reopened = 0


def record_failure(
    h: TierHealth,
    b: CompiledBreaker,
    admission: Admission,
    cls: str,
    reason: str,
    now: float,
    wall: float,
    retry_after: float | None = None,
    fingerprint: str | None = None,
) -> None:
    """A failed request. ``cls`` is the failure class (TRANSIENT, RATE_LIMITED, PERMANENT)."""
    h.last_failure = reason
    h.last_failure_class = cls
    h.last_failure_at = wall
    trial = admission.trial and h.state is State.HALF_OPEN
    if trial:
        h.half_open_in_flight = max(0, h.half_open_in_flight - 1)
    if cls == PERMANENT:
        disable(h, reason, fingerprint, wall)
        return
    if cls == RATE_LIMITED:
        rate_limit(h, b, now, retry_after)
        return
    if trial:
        h.reopened += 1
        _open(h, b, now, wall, f"trial failed: {reason}")
        return
    h.consecutive_failures += 1
    if h.state is State.CLOSED and h.consecutive_failures >= b.consecutive_failures:
        h.reopened = 0
        _open(h, b, now, wall, f"{h.consecutive_failures} consecutive failures, last: {reason}")


def record_suspect(h: TierHealth, admission: Admission, cls: str, reason: str, wall: float) -> bool:
    """A failure that would disable the tier, before a prompt-free check confirms it: it
    is the tier's last failure and nothing more (a half-open trial slot is given back).
    True when a check should start (none is running)."""
    h.last_failure = reason
    h.last_failure_class = cls
    h.last_failure_at = wall
    release(h, admission)
    if h.confirming or h.state is State.DISABLED:
        return False
    h.confirming = True
    return True


def confirmed(h: TierHealth, reason: str, fingerprint: str | None, wall: float) -> None:
    """The check agreed (the key is refused, the model is not there): disable the tier."""
    h.confirming = False
    h.hint_disabled = None  # this sidecar's own check said so: its own knowledge now
    if h.state is not State.DISABLED:
        disable(h, reason, fingerprint, wall)


def not_confirmed(h: TierHealth) -> None:
    h.confirming = False
    h.hint_disabled = None  # a false hint cost one check and nothing else


def rate_limit(h: TierHealth, b: CompiledBreaker, now: float, retry_after: float | None) -> None:
    wait = retry_after if retry_after is not None and retry_after > 0 else b.cooldown_seconds
    until = now + min(wait, b.max_retry_after_seconds)
    h.own_rate_limited_until = max(h.own_rate_limited_until, until)
    h.rate_limited_until = max(h.rate_limited_until, until)


# Shared health (docs/shared-health.md): what another pod saw, told by the operator. A
# hint never outlasts this sidecar's own cap, never shortens what it learned itself, and
# is dropped (``drop_hints``) when the operator no longer sends it.


def hint_rate_limit(h: TierHealth, b: CompiledBreaker, now: float, until: float) -> tuple[bool, bool]:
    """Another pod was told to wait until ``until`` (monotonic, on this clock): wait too,
    exactly as for a 429 of its own, capped by ``maxRetryAfterSeconds``. (changed, clamped)"""
    cap = now + b.max_retry_after_seconds
    clamped = until > cap
    until = min(until, cap)
    h.hint_rate_limited_until = until
    if until <= h.rate_limited_until:
        return False, clamped  # it knew as much
    h.rate_limited_until = until
    return True, clamped


def hint_suspect(h: TierHealth, reason: str) -> bool:
    """Another pod saw it refused. Not trusted as such (whoever may send a hint could
    otherwise disable tiers): no user request goes to it until this sidecar's own
    prompt-free check says (``confirmed`` / ``not_confirmed``). True when a check should
    start now."""
    if h.state is State.DISABLED:
        return False  # it knows
    h.hint_disabled = reason
    if h.confirming:
        return False  # a check of its own is running: it settles the suspicion too
    h.confirming = True
    return True


def is_shared(h: TierHealth, now: float) -> bool:
    """Does this record wait (or stay out) only because of a hint, not its own evidence?
    (A wait of its own wins: the operator must still see it while a suspicion is checked.)"""
    if h.hint_rate_limited_until > now and h.hint_rate_limited_until > h.own_rate_limited_until:
        return True
    return h.hint_disabled is not None and h.state is not State.DISABLED and h.own_rate_limited_until <= now


def drop_hints(h: TierHealth) -> bool:
    """The operator no longer sends it: forget what hints made, keep what it learned itself.
    True when something was dropped."""
    had = h.hint_rate_limited_until > 0.0 or h.hint_disabled is not None
    if h.hint_rate_limited_until > 0.0:
        h.hint_rate_limited_until = 0.0
        h.rate_limited_until = h.own_rate_limited_until
    h.hint_disabled = None  # a check in flight still settles the tier by itself
    return had


def disable(h: TierHealth, reason: str, fingerprint: str | None, wall: float) -> None:
    h.disabled_reason = reason
    h.disabled_fingerprint = fingerprint
    h.probing = False
    _move(h, State.DISABLED, reason, wall)


def enable(h: TierHealth, reason: str, wall: float) -> None:
    """Back in service after a config change or an admin reset: a clean slate."""
    if h.state is State.CLOSED and h.rate_limited_until == 0.0 and h.hint_disabled is None:
        return
    h.consecutive_failures = 0
    h.reopened = 0
    h.rate_limited_until = 0.0
    h.own_rate_limited_until = 0.0
    h.hint_rate_limited_until = 0.0
    h.hint_disabled = None
    h.disabled_reason = None
    h.disabled_fingerprint = None
    h.probing = False
    h.half_open_in_flight = 0
    h.half_open_passed = 0
    if h.state is not State.CLOSED:
        _move(h, State.CLOSED, reason, wall)


def probe_passed(h: TierHealth, wall: float) -> None:
    h.probing = False
    if h.state is State.OPEN:
        h.half_open_in_flight = 0
        h.half_open_passed = 0
        _move(h, State.HALF_OPEN, "prompt-free check passed", wall)


def probe_failed(
    h: TierHealth,
    b: CompiledBreaker,
    cls: str,
    reason: str,
    now: float,
    wall: float,
    retry_after: float | None = None,
    fingerprint: str | None = None,
) -> None:
    """A failed check re-arms the cooldown with backoff; it cost no user request."""
    h.probing = False
    h.last_failure = f"check: {reason}"
    h.last_failure_class = cls
    h.last_failure_at = wall
    if h.state is not State.OPEN:
        return
    if cls == PERMANENT:
        disable(h, reason, fingerprint, wall)
        return
    if cls == RATE_LIMITED:
        rate_limit(h, b, now, retry_after)
    h.reopened += 1
    wait = min(b.cooldown_seconds * (2 ** h.reopened), b.max_cooldown_seconds)
    h.open_until = max(now + wait, h.rate_limited_until)


def release(h: TierHealth, admission: Admission) -> None:
    """The admitted request ended without a verdict on the tier (client went away,
    request rejected before sending): give back a half-open trial slot."""
    if admission.trial and h.state is State.HALF_OPEN:
        h.half_open_in_flight = max(0, h.half_open_in_flight - 1)


class BreakerBoard:
    """All tier health records of one sidecar, keyed by (binding, tier identity)."""

    def __init__(self) -> None:
        self._health: dict[tuple[str, str], TierHealth] = {}
        self._keys: dict[tuple[str, str, int], TierHealth] = {}  # (binding, tier identity, key index)

    def key(self, binding: str, tier_key: str, index: int) -> TierHealth:
        """The record of one key of a tier with several (created closed)."""
        k = (binding, tier_key, index)
        h = self._keys.get(k)
        if h is None:
            h = self._keys[k] = TierHealth()
        return h

    def peek_key(self, binding: str, tier_key: str, index: int) -> TierHealth | None:
        return self._keys.get((binding, tier_key, index))

    def get(self, binding: str, tier_key: str) -> TierHealth:
        key = (binding, tier_key)
        h = self._health.get(key)
        if h is None:
            h = self._health[key] = TierHealth()
        return h

    def peek(self, binding: str, tier_key: str) -> TierHealth | None:
        return self._health.get((binding, tier_key))

    def retain(self, keys: set[tuple[str, str]], key_slots: set[tuple[str, str, int]] | None = None) -> None:
        """After a config swap: forget tiers (and keys: ``key_slots``) that no longer
        exist, keep the others."""
        for key in list(self._health):
            if key not in keys:
                del self._health[key]
        for slot in list(self._keys):
            if key_slots is None or slot not in key_slots:
                del self._keys[slot]

    def items(self) -> list[tuple[tuple[str, str], TierHealth]]:
        return list(self._health.items())
