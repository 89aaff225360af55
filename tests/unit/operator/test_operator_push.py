"""When the operator pushes config to a pod, and how it backs off (pure state)."""

from __future__ import annotations

from switchyard.operator.push import PushMemory
from switchyard.operator.selection import PodInfo
from switchyard.operator.status import PodProblem


def pod(incarnation: str = "u1|http://10.0.0.1:4001|0|t0", name: str = "p") -> PodInfo:
    return PodInfo("ns", name, "u1", {}, "Running", "10.0.0.1", "http://10.0.0.1:4001", incarnation)


PROBLEM = PodProblem("p", "Unreachable", "no answer")


def test_idempotent_by_version() -> None:
    m = PushMemory()
    assert m.needs_push(pod(), "v1", 0.0)
    m.pushed(pod(), "v1")
    assert not m.needs_push(pod(), "v1", 1.0) and m.runs(pod(), "v1")
    assert m.needs_push(pod(), "v2", 1.0)


def test_restart_or_move_forgets_what_the_sidecar_ran() -> None:
    m = PushMemory()
    m.pushed(pod(), "v1")
    assert m.needs_push(pod("u1|http://10.0.0.1:4001|1|t1"), "v1", 0.0)  # container restarted
    m.pushed(pod("u1|http://10.0.0.1:4001|1|t1"), "v1")
    assert m.needs_push(pod("u1|http://10.0.0.9:4001|1|t1"), "v1", 0.0)  # new IP


def test_the_sidecar_is_believed_over_memory() -> None:
    m = PushMemory()
    m.pushed(pod(), "v1")
    m.observed(pod(), None)  # restarted in place: reports no config
    assert m.needs_push(pod(), "v1", 0.0)


def test_exponential_backoff_capped_and_a_new_version_tried_at_once() -> None:
    m = PushMemory(backoff_initial_seconds=1, backoff_max_seconds=5)
    delays = []
    now = 0.0
    for _ in range(5):
        assert m.needs_push(pod(), "v1", now)
        delays.append(m.failed(pod(), "v1", PROBLEM, now))
        assert not m.needs_push(pod(), "v1", now + delays[-1] - 0.01)
        now += delays[-1]
    assert delays == [1, 2, 4, 5, 5]
    assert m.problem(pod()) == PROBLEM
    assert m.retry_in([pod()], now - 1) == 1
    assert m.needs_push(pod(), "v2", now - 4)  # a new config is not held back by old failures
    m.pushed(pod(), "v2")
    assert m.problem(pod()) is None and m.retry_in([pod()], now) is None


def test_retain_forgets_gone_pods_of_that_namespace_only() -> None:
    m = PushMemory()
    m.pushed(pod(name="a"), "v1")
    m.pushed(pod(name="b"), "v1")
    m.retain({("ns", "a")}, "ns")
    assert m.runs(pod(name="a"), "v1") and not m.runs(pod(name="b"), "v1")


def test_generation_memory_per_pod_and_binding() -> None:
    m = PushMemory()
    # First sight without a baseline (a new binding): nothing to compare with.
    assert not m.generation_changed(pod(), "support", 1, None)
    m.generation_applied(pod(), "support", 1)
    assert not m.generation_changed(pod(), "support", 1, None)
    assert m.generation_changed(pod(), "support", 2, None)
    # A pod this process has not configured: the status's observedGeneration is the baseline,
    # remembered even when the pod cannot be reached now.
    other = pod(name="q")
    assert m.generation_changed(other, "support", 3, 2)
    assert m.generation_changed(other, "support", 3, 3)  # the baseline was kept: still to do
    m.generation_applied(other, "support", 3)
    assert not m.generation_changed(other, "support", 3, 3)
    # A binding the pod no longer runs is forgotten (its sidecar forgot its tiers too).
    m.retain_generations(other, frozenset())
    assert not m.generation_changed(other, "support", 4, None)
    # A restarted sidecar starts from nothing.
    assert not m.generation_changed(pod("u1|http://10.0.0.1:4001|1|t1"), "support", 2, None)
