"""Sidecar /admin/status reports combined into one view per binding (pure)."""

from __future__ import annotations


from switchyard.compiler.compile import BindingReport, TierReport
from switchyard.operator.health import aggregate, all_resolvable_tiers_out, disabled_tiers
from switchyard.sidecar.contract.report import SidecarReport, parse_report

REPORT = BindingReport("ns", "b", ["b"], False, None, False, [
    TierReport(0, "main", "gpt-4o", "openai-chat", True),
    TierReport(1, "local", "llama", "openai-chat", True),
    TierReport(2, "gone", None, "openai-chat", False, "SourceNotFound", "ModelSource gone not found"),
])


def pod_status(states: list[str], *, last: tuple[int, str, str, float] | None = None, name: str = "b",
               failures: dict[int, tuple[str, float]] | None = None, models: tuple[str, ...] = ("gpt-4o", "llama", ""),
               classes: dict[int, str] | None = None, disabled: dict[int, str] | None = None) -> SidecarReport:
    tiers = []
    for i, (src, state) in enumerate(zip(("main", "local", "gone"), states, strict=False)):
        f = (failures or {}).get(i)
        breaker = {"state": state, "last_failure": f[0] if f else None, "last_failure_at": f[1] if f else None,
                   "last_failure_class": (classes or {}).get(i)}
        if (disabled or {}).get(i):
            breaker["disabled_reason"] = disabled[i]  # type: ignore[index]
        tiers.append({"tier": i, "source": src, "model": models[i], "breaker": breaker})
    used = {"tier": last[0], "source": last[1], "model": last[2], "at": last[3]} if last else None
    return parse_report({"configured": True, "version": "v", "bindings": [
        {"name": name, "namespace": "ns", "tiers": tiers, "last_used": used}]})


def test_counts_per_tier_across_pods() -> None:
    h = aggregate(REPORT, [
        pod_status(["open", "closed", "closed"], failures={0: ("5xx", 10.0)}),
        pod_status(["half-open", "closed", "closed"], failures={0: ("timeout", 20.0)}),
    ])
    t0 = h.tiers[0]
    assert (t0.state, t0.open_in_pods, t0.half_open_in_pods, t0.reporting_pods) == ("open", 1, 1, 2)
    assert (t0.last_failure, t0.last_failure_at) == ("timeout", 20.0)  # the most recent
    assert h.tiers[1].state == "closed" and h.out_of_service_tiers == 1
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
    h = aggregate(REPORT, [stale, other, parse_report({"configured": False, "bindings": []})])
    assert h.tiers[0].reporting_pods == 0 and h.active is None
    assert h.tiers[1].open_in_pods == 1


def test_all_resolvable_tiers_out() -> None:
    both_open = aggregate(REPORT, [pod_status(["open", "open", "closed"]), pod_status(["open", "open", "closed"])])
    assert all_resolvable_tiers_out(REPORT, both_open)
    one_pod_ok = aggregate(REPORT, [pod_status(["open", "open", "closed"]), pod_status(["open", "closed", "closed"])])
    assert not all_resolvable_tiers_out(REPORT, one_pod_ok)
    assert not all_resolvable_tiers_out(REPORT, aggregate(REPORT, []))  # nobody reported: not "all open"


def test_the_five_states_are_counted_and_the_worst_shown() -> None:
    h = aggregate(REPORT, [
        pod_status(["disabled", "rate-limited", "closed"], failures={0: ("401", 30.0), 1: ("429(retry in 12s)", 31.0)},
                   classes={0: "permanent", 1: "rate-limited"}, disabled={0: "401"}),
        pod_status(["open", "half-open", "closed"], failures={0: ("503", 20.0)}, classes={0: "transient"}),
        pod_status(["closed", "closed", "closed"]),
    ])
    t0, t1 = h.tiers[0], h.tiers[1]
    assert t0.state == "disabled"  # disabled > open > rate-limited > half-open > closed
    assert (t0.disabled_in_pods, t0.open_in_pods, t0.closed_in_pods, t0.reporting_pods) == (1, 1, 1, 3)
    assert (t0.disabled_reason, t0.last_failure, t0.last_failure_class) == ("401", "401", "permanent")
    assert t1.state == "rate-limited" and (t1.rate_limited_in_pods, t1.half_open_in_pods, t1.closed_in_pods) == (1, 1, 1)
    assert t1.last_failure_class == "rate-limited"
    assert h.out_of_service_tiers == 1  # rate-limited is not out of service: it comes back by itself
    st = t0.as_status()
    assert {k: st[k] for k in ("state", "closedInPods", "openInPods", "halfOpenInPods", "rateLimitedInPods",
                               "disabledInPods", "reportingPods", "disabledReason", "lastFailureClass")} == {
        "state": "disabled", "closedInPods": 1, "openInPods": 1, "halfOpenInPods": 0, "rateLimitedInPods": 0,
        "disabledInPods": 1, "reportingPods": 3, "disabledReason": "401", "lastFailureClass": "permanent"}
    assert t1.as_status()["disabledReason"] is None


def test_what_the_sidecar_says_is_bounded_and_checked() -> None:
    h = aggregate(REPORT, [
        pod_status(["disabled", "exploded", "closed"], failures={0: ("x" * 1000, 5.0)}, classes={0: "cosmic"},
                   disabled={0: "y" * 1000}),
    ])
    t0 = h.tiers[0]
    assert len(t0.disabled_reason or "") == 256 and len(t0.last_failure or "") == 256
    assert t0.last_failure_class is None  # not a class the CRD's enum allows: left out, not guessed
    assert h.tiers[1].reporting_pods == 0 and h.tiers[1].state == "unknown"  # an unknown state is not counted
    # A disabled tier whose sidecar gave no reason still says so.
    assert aggregate(REPORT, [pod_status(["disabled", "closed", "closed"])]).tiers[0].disabled_reason == "unknown"


def test_disabled_tiers_of_one_pod() -> None:
    st = pod_status(["disabled", "open", "disabled"], disabled={0: "401", 2: "404"})
    assert disabled_tiers(st, "ns", "b") == [0, 2]
    assert disabled_tiers(st, "ns", "other") == [] and disabled_tiers(parse_report({}), "ns", "b") == []


def test_disabled_counts_as_out_of_service_for_ready() -> None:
    mixed = aggregate(REPORT, [pod_status(["disabled", "open", "closed"], disabled={0: "401"}),
                               pod_status(["open", "disabled", "closed"], disabled={1: "403"})])
    assert all_resolvable_tiers_out(REPORT, mixed)
    rate_limited = aggregate(REPORT, [pod_status(["disabled", "rate-limited", "closed"], disabled={0: "401"})])
    assert not all_resolvable_tiers_out(REPORT, rate_limited)  # waiting out a Retry-After: back by itself


def _with_usage(report: SidecarReport, tokens: dict[str, int] | None, cost: dict[str, str] | None, name: str = "b") -> SidecarReport:
    data = report.to_wire()
    for b in data["bindings"]:
        if b["name"] == name:
            b["usage"] = {"tokens": tokens or {}, "cost": cost or {}}
    return parse_report(data)


def test_usage_is_summed_over_the_pods_that_report_it_exactly() -> None:
    from decimal import Decimal

    one = _with_usage(pod_status(["closed"] * 3), {"input": 2400, "output": 50, "cached_input": 2000, "cache_write": 300},
                      {"EUR": "0.002775000000", "USD": "0.1"})
    two = _with_usage(pod_status(["closed"] * 3, models=("gpt-3.5", "llama", "")), {"input": 10, "output": 5, "reasoning": 2},
                      {"USD": "0.2"})  # another chain: its usage still counts (totals of the binding)
    silent = pod_status(["closed"] * 3)  # no traffic yet: no usage
    other = _with_usage(pod_status(["closed"] * 3, name="someone-else"), {"input": 1}, {"USD": "9"}, name="someone-else")
    bad = _with_usage(pod_status(["closed"] * 3), {"input": 1}, {"USD": "lots", "GBP": "-1"})  # unreadable amounts: left out
    u = aggregate(REPORT, [one, two, silent, other, bad]).usage
    assert u is not None
    assert (u.input, u.output, u.cached_input, u.cache_write, u.reasoning, u.pods) == (2411, 55, 2000, 300, 2, 3)
    assert u.cost == {"EUR": Decimal("0.002775"), "USD": Decimal("0.3")}  # 0.1 + 0.2 with no float in between
    assert aggregate(REPORT, [silent]).usage is None


def test_a_report_with_usage_still_reads_in_an_older_reader() -> None:
    data = _with_usage(pod_status(["closed"] * 3), {"input": 1, "output": 1}, {"USD": "0.5"}).to_wire()
    assert data["report_version"] == 1  # an addition: the version does not change
    assert data["bindings"][0]["usage"] == {"tokens": {"input": 1, "output": 1, "cached_input": 0, "cache_write": 0,
                                                       "reasoning": 0}, "cost": {"USD": "0.5"}}
    assert "usage" not in pod_status(["closed"] * 3).to_wire()["bindings"][0]


def test_keys_by_index_across_pods_and_rendered_in_the_chain_status() -> None:
    """A source with several keys: each key's worst state across pods, with how many pods
    wait it out (and until when) or have it disabled; rendered on the binding's chain."""
    from switchyard.api.status import AssistantBindingStatus
    from switchyard.compiler.compile import KeyReport
    from switchyard.operator.status import BindingInputs, binding_status, prune

    report = BindingReport("ns", "b", ["b"], False, None, False, [
        TierReport(0, "main", "gpt-4o", "openai-chat", True, keys=(
            KeyReport(0, True), KeyReport(1, True), KeyReport(2, False, "SecretNotMarked", "no Secret k3 labelled ..."))),
    ])

    def pod(keys: list[dict]) -> SidecarReport:
        return parse_report({"configured": True, "version": "v", "bindings": [{"name": "b", "namespace": "ns", "tiers": [
            {"tier": 0, "source": "main", "model": "gpt-4o", "breaker": {"state": "closed"}, "keys": keys}]}]})

    h = aggregate(report, [
        pod([{"index": 0, "state": "rate-limited", "rate_limited_for_seconds": 20, "rate_limited_until": 1_000_020},
             {"index": 1, "state": "usable"}, {"index": 2, "state": "unresolvable", "problem": "SecretNotMarked: x"}]),
        pod([{"index": 0, "state": "rate-limited", "rate_limited_until": 1_000_050}, {"index": 1, "state": "disabled",
             "disabled_reason": "401"}, {"index": 2, "state": "unresolvable"}]),
        pod([{"index": 0, "state": "usable"}, {"index": 1, "state": "usable"}, {"index": 2, "state": "brand-new-state"}]),
    ])
    k = h.tiers[0].keys
    assert (k[0].state, k[0].rate_limited_in_pods, k[0].rate_limited_until) == ("rate-limited", 2, 1_000_050)
    assert (k[1].state, k[1].disabled_in_pods, k[1].disabled_reason) == ("disabled", 1, "401")
    status = prune(binding_status(BindingInputs("b", 1, {}, True, report, health=h), now=1_000_000))
    AssistantBindingStatus.model_validate(status)
    assert status["chain"][0]["keys"] == [
        {"index": 0, "state": "rate-limited", "rateLimitedInPods": 2, "rateLimitedUntil": "1970-01-12T13:47:30Z",
         "disabledInPods": 0},
        {"index": 1, "state": "disabled", "reason": "401", "rateLimitedInPods": 0, "disabledInPods": 1},
        {"index": 2, "state": "unresolvable", "reason": "SecretNotMarked", "message": "no Secret k3 labelled ..."},
    ]
    # No pod reported yet: the keys as compiled.
    quiet = binding_status(BindingInputs("b", 1, {}, True, report), now=1_000_000)
    assert [(k["index"], k["state"]) for k in quiet["chain"][0]["keys"]] == [(0, "usable"), (1, "usable"), (2, "unresolvable")]
