"""spec.limits in the operator: the bundle says how many pods share each limited binding
(and only those), a scale event changes no pod's config version, and the pods' reports
add up into status.limits (``plan.py``, ``health.aggregate_limits``, ``status.py``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from test_operator_plan import NOW, binding, pod, world

from switchyard.api.status import AssistantBindingStatus
from switchyard.operator.health import aggregate_limits
from switchyard.operator.plan import PodOutcome, plan_configs, plan_statuses
from switchyard.sidecar.contract.report import parse_report

LIMITS = {"requestsPerMinute": 30, "tokensPerDay": 1000}
MINUTE0 = NOW - NOW % 60


def limited_world(**changes: Any):
    return world(bindings=[binding("alpha", "a", "a", limits=LIMITS), binding("beta", "b", "b")], **changes)


def test_bundle_counts_the_pods_of_limited_bindings_only() -> None:
    plan = plan_configs(limited_world())
    assert plan.bundle is not None and plan.bundle.pods == {"alpha": 2}


def test_not_injected_pods_do_not_take_a_share() -> None:
    inp = limited_world()
    plan = plan_configs(replace(inp, pods=[*inp.pods, pod("p-a3", "a", injected=False)]))
    assert plan.bundle is not None and plan.bundle.pods == {"alpha": 2}


def test_scaling_a_limited_binding_rewrites_the_bundle_but_no_pod_config() -> None:
    before = plan_configs(limited_world())
    inp = limited_world()
    after = plan_configs(replace(inp, pods=[*inp.pods, pod("p-a3", "a", ip="10.0.0.3")]))
    assert after.bundle is not None and before.bundle is not None
    assert after.bundle.pods == {"alpha": 3} and after.bundle.version != before.bundle.version
    assert after.configs[("ns", "p-a1")].version == before.configs[("ns", "p-a1")].version


def test_scaling_an_unlimited_binding_leaves_the_bundle_as_it_was() -> None:
    before = plan_configs(limited_world())
    inp = limited_world()
    after = plan_configs(replace(inp, pods=[*inp.pods, pod("p-b2", "b", ip="10.0.0.4")]))
    assert after.bundle.version == before.bundle.version  # type: ignore[union-attr]


def report(used_rpm: int, used_day: int, start: float = MINUTE0, limit: int = 30) -> dict[str, Any]:
    return {"configured": True, "version": "v", "bindings": [{
        "name": "alpha", "namespace": "ns", "tiers": [],
        "limits": {"pods": 2, "windows": {
            "requestsPerMinute": {"limit": limit, "share": limit / 2, "used": used_rpm, "window_start": start, "window_seconds": 60},
            "tokensPerDay": {"limit": 1000, "share": 500, "used": used_day, "window_start": NOW - NOW % 86400,
                             "window_seconds": 86400},
        }},
    }]}


def test_aggregate_adds_the_pods_of_the_same_window() -> None:
    reps = [parse_report(report(7, 100)), parse_report(report(5, 250)), parse_report(report(9, 0, start=MINUTE0 - 60))]
    usage = aggregate_limits("ns", "alpha", reps, now=NOW)
    assert usage is not None
    rpm, day = usage.windows["requestsPerMinute"], usage.windows["tokensPerDay"]
    assert (rpm.limit, rpm.used, rpm.left, rpm.reporting_pods) == (30, 12, 18, 2)  # the older window counts nothing
    assert (day.used, day.left) == (350, 650)
    assert day.as_status()["resetsAt"].endswith("T00:00:00Z")
    assert "resetsAt" not in rpm.as_status()
    assert aggregate_limits("ns", "beta", reps, now=NOW) is None


def test_a_window_that_ended_counts_nothing() -> None:
    usage = aggregate_limits("ns", "alpha", [parse_report(report(7, 100))], now=MINUTE0 + 61)
    assert usage is not None and usage.windows["requestsPerMinute"].used == 0


def test_status_carries_limits_used_and_left() -> None:
    inp = limited_world()
    plan = plan_configs(inp)
    outcomes = {p.key: PodOutcome(parse_report({**report(10, 300), "version": plan.configs[p.key].version}), True)
                for p in inp.pods if p.labels["app"] == "a"}
    statuses = plan_statuses(inp, plan, outcomes, {}, now=NOW)
    status = statuses.bindings["alpha"].status
    AssistantBindingStatus.model_validate(status)
    assert status["limits"]["requestsPerMinute"] == {"limit": 30, "used": 20, "left": 10, "reportingPods": 2}
    assert status["limits"]["tokensPerDay"]["used"] == 600
    assert "limits" not in statuses.bindings["beta"].status


async def test_the_reconciler_rewrites_the_config_secret_when_a_limited_binding_scales() -> None:
    from test_operator_delivery import bundle as written
    from test_operator_delivery import make

    from switchyard.operator.selection import PodInfo
    from switchyard.operator.world import snapshot
    from switchyard.sidecar.contract.delivery import assemble

    rec, kube, world = make()
    spec = {"selector": {"matchLabels": {"app": "a"}}, "primary": {"sourceRef": {"name": "main"}},
            "limits": {"requestsPerMinute": 30}}
    world.bindings_by_ns["ns"] = [snapshot("AssistantBinding", {
        "metadata": {"name": "support", "namespace": "ns", "uid": "uid-support", "generation": 1}, "spec": spec, "status": {}})]
    await rec.reconcile_namespace("ns")
    first = written(kube)
    assert first.pods == {"support": 1}
    world.pods_by_ns["ns"].append(PodInfo("ns", "p-1", "u1", {"app": "a"}, "Pending", None, None, "u1||0|"))
    await rec.reconcile_namespace("ns")
    second = written(kube)
    assert second.pods == {"support": 2} and len(kube.writes) == 2
    assert assemble(second, {"app": "a"}).version == assemble(first, {"app": "a"}).version
