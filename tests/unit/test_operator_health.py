"""Sidecar /admin/status reports combined into one view per binding (pure)."""

from __future__ import annotations

from typing import Any

from switchyard.compiler.compile import BindingReport, TierReport
from switchyard.operator.health import aggregate, all_resolvable_tiers_open

REPORT = BindingReport("ns", "b", ["b"], False, None, False, [
    TierReport(0, "main", "gpt-4o", "openai-chat", True),
    TierReport(1, "local", "llama", "openai-chat", True),
    TierReport(2, "gone", None, "openai-chat", False, "SourceNotFound", "ModelSource gone not found"),
])


def pod_status(states: list[str], *, last: tuple[int, str, str, float] | None = None, name: str = "b",
               failures: dict[int, tuple[str, float]] | None = None, models: tuple[str, ...] = ("gpt-4o", "llama", "")) -> dict[str, Any]:
    tiers = []
    for i, (src, state) in enumerate(zip(("main", "local", "gone"), states, strict=False)):
        f = (failures or {}).get(i)
        tiers.append({"tier": i, "source": src, "model": models[i],
                      "breaker": {"state": state, "last_failure": f[0] if f else None, "last_failure_at": f[1] if f else None}})
    used = {"tier": last[0], "source": last[1], "model": last[2], "at": last[3]} if last else None
    return {"configured": True, "version": "v", "bindings": [
        {"name": name, "namespace": "ns", "tiers": tiers, "last_used": used}]}


def test_counts_per_tier_across_pods() -> None:
    h = aggregate(REPORT, [
        pod_status(["open", "closed", "closed"], failures={0: ("5xx", 10.0)}),
        pod_status(["half-open", "closed", "closed"], failures={0: ("timeout", 20.0)}),
    ])
    t0 = h.tiers[0]
    assert (t0.state, t0.open_in_pods, t0.half_open_in_pods, t0.reporting_pods) == ("open", 1, 1, 2)
    assert (t0.last_failure, t0.last_failure_at) == ("timeout", 20.0)  # the most recent
    assert h.tiers[1].state == "closed" and h.open_tiers == 1
    assert h.tiers[2].reporting_pods == 0 and h.tiers[2].state == "unknown"  # model "" != None: not this chain


def test_active_tier_is_the_most_recent_last_used() -> None:
    h = aggregate(REPORT, [
        pod_status(["closed"] * 3, last=(0, "main", "gpt-4o", 100.0)),
        pod_status(["closed"] * 3, last=(1, "local", "llama", 200.0)),
        pod_status(["closed"] * 3, last=(1, "local", "llama", 150.0)),
    ])
    assert h.active is not None
    assert (h.active.tier, h.active.label, h.active.at, h.active.pods) == (1, "tier1 local/llama", 200.0, 2)


def test_reports_from_another_chain_are_ignored() -> None:
    stale = pod_status(["open", "open", "open"], models=("gpt-3.5", "llama", ""), last=(0, "main", "gpt-3.5", 5.0))
    other = pod_status(["open"] * 3, name="someone-else")
    h = aggregate(REPORT, [stale, other, {"configured": False, "bindings": []}])
    assert h.tiers[0].reporting_pods == 0 and h.active is None
    assert h.tiers[1].open_in_pods == 1


def test_all_resolvable_tiers_open() -> None:
    both_open = aggregate(REPORT, [pod_status(["open", "open", "closed"]), pod_status(["open", "open", "closed"])])
    assert all_resolvable_tiers_open(REPORT, both_open)
    one_pod_ok = aggregate(REPORT, [pod_status(["open", "open", "closed"]), pod_status(["open", "closed", "closed"])])
    assert not all_resolvable_tiers_open(REPORT, one_pod_ok)
    assert not all_resolvable_tiers_open(REPORT, aggregate(REPORT, []))  # nobody reported: not "all open"
