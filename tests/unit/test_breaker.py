"""Breaker transitions, driven by a fake clock (no sleeping)."""

from switchyard.sidecar.config import CompiledBreaker
from switchyard.sidecar.routing.breaker import State, TierHealth, admit, record_failure, record_success, release

B = CompiledBreaker(consecutive_failures=3, cooldown_seconds=30, half_open_requests=2)


def fail(h: TierHealth, now: float, retry_after: float | None = None) -> None:
    a = admit(h, B, now, now)
    assert a.allowed
    record_failure(h, B, a, "5xx", now, now, retry_after)


def test_opens_after_n_consecutive_failures_and_skips_during_cooldown() -> None:
    h = TierHealth()
    fail(h, 0)
    fail(h, 1)
    assert h.state is State.CLOSED
    fail(h, 2)
    assert h.state is State.OPEN
    denied = admit(h, B, 10, 10)
    assert not denied.allowed
    assert denied.reason == "breaker-open(retry in 22s)"


def test_success_resets_the_consecutive_count() -> None:
    h = TierHealth()
    fail(h, 0)
    fail(h, 1)
    a = admit(h, B, 2, 2)
    record_success(h, B, a, 2)
    fail(h, 3)
    fail(h, 4)
    assert h.state is State.CLOSED


def test_half_open_lets_exactly_n_trials_through_and_closes_when_all_succeed() -> None:
    h = TierHealth()
    for t in range(3):
        fail(h, t)
    first = admit(h, B, 40, 40)
    second = admit(h, B, 40, 40)
    third = admit(h, B, 40, 40)
    assert h.state is State.HALF_OPEN
    assert first.trial and second.trial
    assert not third.allowed and third.reason == "breaker-half-open(trial in flight)"
    record_success(h, B, first, 41)
    assert h.state is State.HALF_OPEN
    record_success(h, B, second, 41)
    assert h.state is State.CLOSED
    assert [t.to_state for t in h.transitions] == ["open", "half-open", "closed"]


def test_a_failed_trial_reopens_for_a_new_cooldown() -> None:
    h = TierHealth()
    for t in range(3):
        fail(h, t)
    trial = admit(h, B, 40, 40)
    record_failure(h, B, trial, "timeout", 40, 40)
    assert h.state is State.OPEN
    assert not admit(h, B, 69, 69).allowed
    assert admit(h, B, 70, 70).allowed


def test_released_trial_gives_its_slot_back() -> None:
    h = TierHealth()
    for t in range(3):
        fail(h, t)
    a = admit(h, B, 40, 40)
    b = admit(h, B, 40, 40)
    assert not admit(h, B, 40, 40).allowed
    release(h, a)
    assert admit(h, B, 40, 40).allowed
    release(h, b)


def test_retry_after_keeps_the_tier_out_even_while_closed() -> None:
    h = TierHealth()
    fail(h, 0, retry_after=12)
    assert h.state is State.CLOSED
    denied = admit(h, B, 5, 5)
    assert not denied.allowed and denied.reason == "rate-limited(retry in 7s)"
    assert admit(h, B, 12, 12).allowed


def test_transition_history_is_bounded_but_counted() -> None:
    h = TierHealth()
    now = 0.0
    for _ in range(30):
        for _ in range(3):
            fail(h, now)
        now += 31
        a = admit(h, B, now, now)
        b = admit(h, B, now, now)
        record_success(h, B, a, now)
        record_success(h, B, b, now)
    assert len(h.transitions) == 20
    assert h.transition_count == 90
