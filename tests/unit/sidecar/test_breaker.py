"""Tier health transitions for each failure class, driven by a fake clock (no sleeping)."""

from switchyard.sidecar.contract.config import CompiledBreaker
from switchyard.sidecar.routing.breaker import (
    PERMANENT,
    RATE_LIMITED,
    TRANSIENT,
    State,
    TierHealth,
    admit,
    effective_state,
    enable,
    probe_due,
    probe_failed,
    probe_passed,
    record_failure,
    record_success,
    release,
)

B = CompiledBreaker(consecutive_failures=3, cooldown_seconds=30, half_open_requests=2, probe="none", max_cooldown_seconds=100)
P = CompiledBreaker(consecutive_failures=3, cooldown_seconds=30, half_open_requests=1, probe="models", max_cooldown_seconds=100)


def fail(h: TierHealth, now: float, b: CompiledBreaker = B, cls: str = TRANSIENT, retry_after: float | None = None) -> None:
    a = admit(h, b, now, now)
    assert a.allowed
    record_failure(h, b, a, cls, "5xx", now, now, retry_after, "fp1")


def test_opens_after_n_consecutive_failures_and_skips_during_cooldown() -> None:
    h = TierHealth()
    fail(h, 0)
    fail(h, 1)
    assert h.state is State.CLOSED
    fail(h, 2)
    assert h.state is State.OPEN
    denied = admit(h, B, 10, 10)
    assert not denied.allowed and denied.kind == "breaker"
    assert denied.reason == "breaker-open(retry in 22s)"


def test_success_resets_the_consecutive_count() -> None:
    h = TierHealth()
    fail(h, 0)
    fail(h, 1)
    record_success(h, B, admit(h, B, 2, 2), 2)
    fail(h, 3)
    fail(h, 4)
    assert h.state is State.CLOSED


def test_half_open_lets_exactly_n_trials_through_and_closes_when_all_succeed() -> None:
    h = TierHealth()
    for t in range(3):
        fail(h, t)
    first, second, third = (admit(h, B, 40, 40) for _ in range(3))
    assert h.state is State.HALF_OPEN
    assert first.trial and second.trial
    assert not third.allowed and third.reason == "breaker-half-open(trial in flight)"
    record_success(h, B, first, 41)
    assert h.state is State.HALF_OPEN
    record_success(h, B, second, 41)
    assert h.state is State.CLOSED
    assert [t.to_state for t in h.transitions] == ["open", "half-open", "closed"]


def test_a_failed_trial_reopens_with_a_doubled_cooldown_capped() -> None:
    h = TierHealth()
    for t in range(3):
        fail(h, t)
    record_failure(h, B, admit(h, B, 40, 40), TRANSIENT, "timeout", 40, 40)
    assert h.state is State.OPEN and h.open_until == 40 + 60
    record_failure(h, B, admit(h, B, 100, 100), TRANSIENT, "timeout", 100, 100)
    assert h.open_until == 100 + 100  # 120 capped at maxCooldownSeconds
    a, b = admit(h, B, 200, 200), admit(h, B, 200, 200)
    record_success(h, B, a, 200)
    record_success(h, B, b, 200)
    assert h.state is State.CLOSED and h.reopened == 0


def test_released_trial_gives_its_slot_back() -> None:
    h = TierHealth()
    for t in range(3):
        fail(h, t)
    a = admit(h, B, 40, 40)
    admit(h, B, 40, 40)
    assert not admit(h, B, 40, 40).allowed
    release(h, a)
    assert admit(h, B, 40, 40).allowed


def test_rate_limited_skips_for_the_wait_asked_without_counting_toward_the_breaker() -> None:
    h = TierHealth()
    for t in range(5):
        a = admit(h, B, t * 20, t * 20)
        assert a.allowed
        record_failure(h, B, a, RATE_LIMITED, "429", t * 20, t * 20, retry_after=12)
    assert h.state is State.CLOSED and h.consecutive_failures == 0
    denied = admit(h, B, 85, 85)
    assert not denied.allowed and denied.reason == "rate-limited(retry in 7s)" and denied.kind == "rate-limited"
    assert effective_state(h, 85) == "rate-limited"
    assert effective_state(h, 92) == "closed"
    assert admit(h, B, 92, 92).allowed


def test_rate_limit_wait_is_capped_and_defaults_to_the_cooldown() -> None:
    cap = CompiledBreaker(cooldown_seconds=30, max_retry_after_seconds=60)
    h = TierHealth()
    record_failure(h, cap, admit(h, cap, 0, 0), RATE_LIMITED, "429", 0, 0, retry_after=3600)
    assert h.rate_limited_until == 60
    h = TierHealth()
    record_failure(h, cap, admit(h, cap, 0, 0), RATE_LIMITED, "429", 0, 0, retry_after=None)
    assert h.rate_limited_until == 30


def test_permanent_disables_until_enabled() -> None:
    h = TierHealth()
    fail(h, 0, cls=PERMANENT)
    assert h.state is State.DISABLED and h.disabled_fingerprint == "fp1"
    denied = admit(h, B, 1e9, 1e9)
    assert not denied.allowed and denied.kind == "disabled" and denied.reason == "disabled(5xx)"
    enable(h, "tier config changed", 10)
    assert h.state is State.CLOSED and admit(h, B, 11, 11).allowed


def test_probe_mode_checks_before_any_request_and_backs_off_on_failure() -> None:
    h = TierHealth()
    for t in range(3):
        fail(h, t, P)
    assert not probe_due(h, P, 31)
    assert probe_due(h, P, 32)
    denied = admit(h, P, 32, 32)
    assert not denied.allowed and denied.reason == "breaker-probing" and denied.probe_due
    h.probing = True
    assert not admit(h, P, 32, 32).probe_due  # one check at a time
    probe_failed(h, P, TRANSIENT, "503", 32, 32)
    assert h.state is State.OPEN and h.open_until == 32 + 60 and not h.probing
    assert probe_due(h, P, 92)
    probe_passed(h, 92)
    assert h.state is State.HALF_OPEN
    trial = admit(h, P, 92, 92)
    assert trial.trial
    record_success(h, P, trial, 93)
    assert h.state is State.CLOSED
    assert [t.to_state for t in h.transitions] == ["open", "half-open", "closed"]


def test_a_check_refused_for_the_key_disables_the_tier() -> None:
    h = TierHealth()
    for t in range(3):
        fail(h, t, P)
    probe_failed(h, P, PERMANENT, "401", 40, 40, fingerprint="fp2")
    assert h.state is State.DISABLED and h.disabled_fingerprint == "fp2"


def test_transition_history_is_bounded_but_counted() -> None:
    h = TierHealth()
    now = 0.0
    for _ in range(30):
        for _ in range(3):
            fail(h, now)
        now += 31
        a, b = admit(h, B, now, now), admit(h, B, now, now)
        record_success(h, B, a, now)
        record_success(h, B, b, now)
    assert len(h.transitions) == 20
    assert h.transition_count == 90


def test_an_admin_reset_closes_a_half_open_tier() -> None:
    """Issue 15: a reset of a half-open tier answered that it was reset and changed nothing."""
    h = TierHealth()
    for t in range(3):
        fail(h, t)
    assert admit(h, B, 40, 40).trial and h.state is State.HALF_OPEN
    enable(h, "reset by admin", 41)
    assert h.state is State.CLOSED and h.half_open_in_flight == 0
    assert h.transitions[-1].to_state == "closed"


# Shared health (docs/shared-health.md): hints from the operator, on the same record.


def test_a_rate_limit_hint_waits_like_an_own_429_capped_and_dropped_without_touching_own_evidence() -> None:
    from switchyard.sidecar.routing.breaker import drop_hints, hint_rate_limit, is_shared, rate_limit

    h = TierHealth()
    b = CompiledBreaker(max_retry_after_seconds=60)
    assert hint_rate_limit(h, b, 0, 500) == (True, True)  # clamped to the cap
    assert h.rate_limited_until == 60 and is_shared(h, 1)
    denied = admit(h, b, 10, 10)
    assert not denied.allowed and denied.kind == "rate-limited"
    rate_limit(h, b, 10, 20.0)  # its own 429 meanwhile: until 30, shorter than the hint
    assert drop_hints(h) and h.rate_limited_until == 30 and not is_shared(h, 11)
    assert admit(h, b, 31, 31).allowed
    assert hint_rate_limit(h, b, 31, 35) == (True, False)
    rate_limit(h, b, 32, 50.0)  # its own wait is now the longer: not shared any more
    assert not is_shared(h, 33) and drop_hints(h) and h.rate_limited_until == 82


def test_a_disabled_hint_is_a_suspicion_that_blocks_requests_until_the_check_settles_it() -> None:
    from switchyard.sidecar.routing.breaker import confirmed, hint_suspect, is_shared, not_confirmed, rate_limit

    h = TierHealth()
    assert hint_suspect(h, "401")  # a check should start
    assert not hint_suspect(h, "401")  # one at a time
    denied = admit(h, P, 0, 0)
    assert not denied.allowed and denied.reason == "suspected(401; checking)" and is_shared(h, 0)
    not_confirmed(h)
    assert admit(h, P, 0, 0).allowed and h.state is State.CLOSED
    assert hint_suspect(h, "401")
    rate_limit(h, P, 0, 30.0)  # its own 429 meanwhile: its own wait is reported as its own
    assert not is_shared(h, 1)
    confirmed(h, "401", "fp", 1.0)
    assert h.state is State.DISABLED and not is_shared(h, 1) and not hint_suspect(h, "401")
    enable(h, "reset", 2.0)
    assert h.hint_disabled is None and admit(h, P, 3, 3).allowed
