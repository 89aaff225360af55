"""TierLease: every way out of an attempt leaves the tier's breaker right (fake clock)."""

from __future__ import annotations

from switchyard.sidecar.contract.config import CompiledBinding, CompiledBreaker, CompiledConfig, CompiledProfile, CompiledTier
from switchyard.sidecar.routing import classify
from switchyard.sidecar.routing.breaker import State
from switchyard.sidecar.routing.classify import Failure
from switchyard.sidecar.state import Runtime


def one_binding(**breaker: object) -> CompiledConfig:
    profile = CompiledProfile(name="p", protocol="openai-chat", features={}, on_unsupported={})
    tier = CompiledTier(index=0, source="src", provider="openai", protocol="openai-chat", base_url="http://127.0.0.1:9", model="m", profile=profile)
    b = CompiledBinding(name="assistant", aliases=["assistant"], tiers=[tier], breaker=CompiledBreaker(probe="none", **breaker))  # type: ignore[arg-type]
    return CompiledConfig(bindings=[b]).with_version()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def runtime() -> tuple[Runtime, CompiledBinding, Clock]:
    clock = Clock()
    rt = Runtime(clock=clock)
    config = one_binding(consecutive_failures=2, half_open_requests=1)
    rt.install(config)
    return rt, config.bindings[0], clock


def open_then_half_open(rt: Runtime, b: CompiledBinding, clock: Clock) -> None:
    tier = b.tiers[0]
    for _ in range(2):
        with rt.admit(b, tier) as lease:
            lease.failed(Failure(classify.SERVER_ERROR, "503", 503))
    assert rt.health(b, tier).state is State.OPEN
    clock.now += 3600  # past any cooldown; probe "none": the next admission is a trial


def test_leaving_without_a_verdict_gives_a_half_open_trial_back() -> None:
    rt, b, clock = runtime()
    open_then_half_open(rt, b, clock)
    tier = b.tiers[0]
    with rt.admit(b, tier) as lease:
        assert lease.allowed and lease.admission.trial
        assert not rt.admit(b, tier).allowed, "one trial at a time"
    again = rt.admit(b, tier)
    assert again.allowed and again.admission.trial, "the slot came back"
    again.release()


def test_an_exception_inside_the_lease_releases_it() -> None:
    rt, b, clock = runtime()
    open_then_half_open(rt, b, clock)
    tier = b.tiers[0]
    try:
        with rt.admit(b, tier):
            raise ConnectionResetError("client went away")
    except ConnectionResetError:
        pass
    assert rt.admit(b, tier).allowed


def test_success_of_a_trial_closes_the_breaker() -> None:
    rt, b, clock = runtime()
    open_then_half_open(rt, b, clock)
    with rt.admit(b, b.tiers[0]) as lease:
        lease.succeeded()
    assert rt.health(b, b.tiers[0]).state is State.CLOSED


def test_a_failure_that_is_not_the_tiers_is_no_verdict() -> None:
    rt, b, _ = runtime()
    tier = b.tiers[0]
    for _ in range(5):
        with rt.admit(b, tier) as lease:
            lease.failed(Failure(classify.CLIENT_ERROR, "400", 400))
    assert rt.health(b, tier).state is State.CLOSED
    assert rt.health(b, tier).consecutive_failures == 0


def test_a_verdict_is_recorded_once() -> None:
    rt, b, _ = runtime()
    tier = b.tiers[0]
    with rt.admit(b, tier) as lease:
        lease.failed(Failure(classify.SERVER_ERROR, "503", 503))
        lease.failed(Failure(classify.SERVER_ERROR, "503", 503))
        lease.succeeded()
    assert rt.health(b, tier).consecutive_failures == 1


def test_a_refused_admission_kicks_no_probe_without_a_probe_setting_and_counts_its_transition() -> None:
    rt, b, clock = runtime()
    tier = b.tiers[0]
    for _ in range(2):
        with rt.admit(b, tier) as lease:
            lease.failed(Failure(classify.SERVER_ERROR, "503", 503))
    refused = rt.admit(b, tier)
    assert not refused.allowed and refused.admission.kind == "breaker"
    assert rt.out_now(b, tier) == "breaker-open"
    sample = rt.metrics.registry.get_sample_value(
        "switchyard_breaker_transitions_total", {"binding": b.name, "tier": "0", "source": tier.source, "to_state": "open"}
    )
    assert sample == 1.0
