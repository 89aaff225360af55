"""Which health transitions become Events, and the limiter that prevents storms (pure)."""

from __future__ import annotations

from switchyard.operator.events import EventLimiter, EventSpec, HealthMemo, health_events
from switchyard.operator.health import ActiveTier, BindingHealth, TierHealth

LABELS = {0: "main/gpt-4o", 1: "local/llama"}


def memo(active: int | None, open0: int, open1: int = 0, failure: str | None = None) -> HealthMemo:
    h = BindingHealth(
        tiers={0: TierHealth("open" if open0 else "closed", open_in_pods=open0, reporting_pods=2, last_failure=failure),
               1: TierHealth("open" if open1 else "closed", open_in_pods=open1, reporting_pods=2)},
        active=None if active is None else ActiveTier(active, *LABELS[active].split("/"), at=1.0, pods=1),
    )
    return HealthMemo.of(h, LABELS)


def reasons(events: list[EventSpec]) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in events]


def test_nothing_on_first_sight_or_without_change() -> None:
    assert health_events(None, memo(0, 0), selected_pods=2) == []
    assert health_events(memo(0, 0), memo(0, 0), selected_pods=2) == []


def test_breaker_opens_and_traffic_moves_to_a_fallback() -> None:
    events = health_events(memo(0, 0), memo(1, 1, failure="5xx (HTTP 500)"), selected_pods=2)
    assert reasons(events) == [("Warning", "ActiveTierChanged"), ("Warning", "BreakerOpened")]
    assert events[0].message == "now serving from tier1 local/llama (was tier0 main/gpt-4o)"
    assert events[1].message == "tier0 main/gpt-4o: breaker open in 1 of 2 pods; last failure: 5xx (HTTP 500)"


def test_recovery_is_normal() -> None:
    events = health_events(memo(1, 2), memo(0, 0), selected_pods=2)
    assert reasons(events) == [("Normal", "ActiveTierChanged"), ("Normal", "BreakerClosed")]


def test_spreading_to_more_pods_is_not_a_new_event() -> None:
    assert health_events(memo(1, 1), memo(1, 2), selected_pods=2) == []


def test_unknown_is_not_closed() -> None:
    prev = memo(1, 2)
    silent = HealthMemo.of(BindingHealth(tiers={0: TierHealth("unknown"), 1: TierHealth("unknown")}), LABELS)
    carried = silent.carry_over(prev)
    assert health_events(prev, carried, selected_pods=2) == []
    assert carried.active_tier == 1 and dict(carried.open_in_pods)[0] == 2


def test_memo_rebuilt_from_written_status_after_a_restart() -> None:
    status = {
        "active": {"tier": 1}, "summary": {"active": "tier1 local/llama"},
        "chain": [{"tier": 0, "source": "main", "model": "gpt-4o", "breaker": {"openInPods": 2}},
                  {"tier": 1, "source": "local", "model": "llama", "breaker": {"openInPods": 0}}],
    }
    prev = HealthMemo.from_status(status)
    assert prev is not None and prev.active_tier == 1
    assert health_events(prev, memo(1, 2), selected_pods=2) == []  # no replay of old events
    assert HealthMemo.from_status({}) is None


def test_limiter_one_per_interval_and_folds_the_rest() -> None:
    lim = EventLimiter(min_interval_seconds=60, burst=5, refill_seconds=30)
    ev = EventSpec("Warning", "BreakerOpened", "tier0 open", "tier0")
    assert lim.admit("ab/ns/b", ev, 0.0) == ev
    assert lim.admit("ab/ns/b", ev, 10.0) is None
    assert lim.admit("ab/ns/b", ev, 20.0) is None
    folded = lim.admit("ab/ns/b", ev, 61.0)
    assert folded is not None and folded.message == "tier0 open (2 similar events suppressed)"
    # Another tier or reason is its own series.
    assert lim.admit("ab/ns/b", EventSpec("Warning", "BreakerOpened", "tier1 open", "tier1"), 62.0) is not None


def test_limiter_bucket_caps_a_storm_per_object() -> None:
    lim = EventLimiter(min_interval_seconds=0, burst=3, refill_seconds=10)
    sent = [lim.admit("o", EventSpec("Warning", "R", f"m{i}", f"s{i}"), 0.0) for i in range(10)]
    assert sum(e is not None for e in sent) == 3
    assert lim.admit("o", EventSpec("Warning", "R", "late", "s99"), 10.0) is not None  # refilled one token
    assert lim.admit("other", EventSpec("Warning", "R", "m", "s0"), 0.0) is not None  # per object
    lim.forget("o")
    assert lim.admit("o", EventSpec("Warning", "R", "m", "s0"), 10.0) is not None


# --------------------------------------------------------------------------- disabled tiers (issue 10)


def tiers(t0: TierHealth, labels: dict[int, str] = LABELS) -> HealthMemo:
    return HealthMemo.of(BindingHealth(tiers={0: t0, 1: TierHealth("closed", reporting_pods=2)}), labels)


CLOSED = TierHealth("closed", reporting_pods=2)
OPEN = TierHealth("open", open_in_pods=1, reporting_pods=2, last_failure="503")


def disabled(pods: int = 1, reason: str = "401") -> TierHealth:
    return TierHealth("disabled", disabled_in_pods=pods, reporting_pods=2, disabled_reason=reason, last_failure=reason,
                      last_failure_class="permanent")


def test_tier_disabled_once_with_the_upstreams_reason() -> None:
    events = health_events(tiers(CLOSED), tiers(disabled()), selected_pods=2)
    assert reasons(events) == [("Warning", "TierDisabled")]
    assert events[0].message == (
        "tier0 main/gpt-4o: disabled in 1 of 2 pods: the upstream answered 401; no request goes to it until its "
        "ModelSource, Secret or this binding changes, or an admin resets it")
    assert events[0].subject == "tier0"
    # Every later poll sees the same state, or the tier disabled in one more pod: nothing new.
    assert health_events(tiers(disabled()), tiers(disabled()), selected_pods=2) == []
    assert health_events(tiers(disabled()), tiers(disabled(2, "403")), selected_pods=2) == []


def test_tier_enabled_when_no_pod_has_it_disabled() -> None:
    events = health_events(tiers(disabled(2)), tiers(CLOSED), selected_pods=2)
    assert reasons(events) == [("Normal", "TierEnabled")]
    assert events[0].message == "tier0 main/gpt-4o: back in service, no longer disabled in any pod"
    assert health_events(tiers(disabled(2)), tiers(disabled(1)), selected_pods=2) == []


def test_an_open_tier_that_gets_disabled_is_not_closed() -> None:
    # The prompt-free check answered 401: open -> disabled. "BreakerClosed" would be a lie.
    events = health_events(tiers(OPEN), tiers(disabled()), selected_pods=2)
    assert reasons(events) == [("Warning", "TierDisabled")]


def test_a_tier_that_now_points_elsewhere_raises_nothing_for_its_old_self() -> None:
    moved = {0: "other/gpt-4.1", 1: "local/llama"}
    assert health_events(tiers(disabled()), tiers(CLOSED, moved), selected_pods=2) == []
    events = health_events(tiers(disabled()), tiers(disabled(1, "404"), moved), selected_pods=2)
    assert reasons(events) == [("Warning", "TierDisabled")]
    assert "tier0 other/gpt-4.1" in events[0].message and "answered 404" in events[0].message


def test_disabled_state_survives_silence_and_restarts() -> None:
    prev = tiers(disabled())
    silent = HealthMemo.of(BindingHealth(tiers={0: TierHealth("unknown"), 1: TierHealth("unknown")}), LABELS)
    carried = silent.carry_over(prev)
    assert dict(carried.disabled_in_pods)[0] == 1 and dict(carried.disabled_reasons)[0] == "401"
    assert health_events(prev, carried, selected_pods=2) == []
    status = {"chain": [
        {"tier": 0, "source": "main", "model": "gpt-4o", "breaker": {"disabledInPods": 1, "disabledReason": "401"}},
        {"tier": 1, "source": "local", "model": "llama", "breaker": {"disabledInPods": 0}}]}
    rebuilt = HealthMemo.from_status(status)
    assert rebuilt is not None
    assert health_events(rebuilt, tiers(disabled()), selected_pods=2) == []  # a new leader does not replay it
    assert reasons(health_events(rebuilt, tiers(CLOSED), selected_pods=2)) == [("Normal", "TierEnabled")]
