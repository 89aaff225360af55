"""The operator's planning, without a cluster: resources, Secrets and pods in; each pod's
config, the pushes to make and each resource's status out (``operator/plan.py``)."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from switchyard.operator.plan import (
    AdminTokenRef,
    ConfigPlan,
    NamespaceInputs,
    PodOutcome,
    plan_configs,
    plan_statuses,
)
from switchyard.operator.selection import PodInfo
from switchyard.operator.status import PodProblem
from switchyard.operator.world import Snap, snapshot
from switchyard.sidecar.contract.report import parse_report

NOW = 1_800_000_000.0
KEY_A, KEY_B, TOKEN = "sk-aaaa-1111", "sk-bbbb-2222", "admin-token-3333"


def b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def obj(kind: str, name: str, spec: dict[str, Any], status: dict[str, Any] | None = None, generation: int = 1) -> Snap:
    return snapshot(kind, {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": generation},
                           "spec": spec, "status": status or {}})


def source(name: str, secret: str, model: str = "gpt-4o", url: str = "http://127.0.0.1:9/v1", **spec: Any) -> Snap:
    return obj("ModelSource", name, {"provider": "openai", "baseURL": url, "defaultModel": model,
                                     "credentialRef": {"name": secret, "key": "api-key"}, **spec})


def binding(name: str, app: str, primary: str, *fallbacks: str, **spec: Any) -> Snap:
    return obj("AssistantBinding", name, {
        "selector": {"matchLabels": {"app": app}}, "primary": {"sourceRef": {"name": primary}},
        "fallbacks": [{"sourceRef": {"name": f}} for f in fallbacks], **spec})


def pod(name: str, app: str, *, ip: str | None = "10.0.0.1", injected: bool = True) -> PodInfo:
    url = f"http://{ip}:4001" if ip else None
    return PodInfo("ns", name, f"uid-{name}", {"app": app}, "Running" if ip else "Pending", ip, url, f"uid-{name}|{ip}|0",
                   injected=injected)


def world(**changes: Any) -> NamespaceInputs:
    """Two apps: pods p-a1, p-a2 run binding `alpha` (source a, key-a); p-b runs `beta` (source b, key-b)."""
    base = NamespaceInputs(
        namespace="ns",
        sources=[source("a", "key-a"), source("b", "key-b", model="gpt-4o-mini")],
        profiles=[],
        bindings=[binding("alpha", "a", "a"), binding("beta", "b", "b")],
        pods=[pod("p-a1", "a"), pod("p-a2", "a"), pod("p-b", "b", ip="10.0.0.2")],
        secrets={"key-a": {"api-key": b64(KEY_A)}, "key-b": {"api-key": b64(KEY_B)},
                 "switchyard-admin-token": {"token": b64(TOKEN)}},
    )
    return replace(base, **changes)


def running(plan: ConfigPlan) -> dict[tuple[str, str], str | None]:
    """What every pod runs once this plan's pushes are done."""
    return {key: config.version for key, config in plan.configs.items()}


def pushed(plan: ConfigPlan) -> set[str]:
    return {p.pod.name for p in plan.pushes}


# --------------------------------------------------------------------------- which pods are pushed


def _model(src: str, model: str) -> Callable[[NamespaceInputs], NamespaceInputs]:
    def change(w: NamespaceInputs) -> NamespaceInputs:
        return replace(w, sources=[source(s.name, s.spec["credentialRef"]["name"], model) if s.name == src else s
                                   for s in w.sources])
    return change


def _rotate(secret: str) -> Callable[[NamespaceInputs], NamespaceInputs]:
    return lambda w: replace(w, secrets={**w.secrets, secret: {"api-key": b64("sk-rotated")}})


def _aliases(name: str) -> Callable[[NamespaceInputs], NamespaceInputs]:
    def change(w: NamespaceInputs) -> NamespaceInputs:
        return replace(w, bindings=[
            obj("AssistantBinding", b.name, {**b.spec, "aliases": [b.name, "other"]}, generation=2) if b.name == name else b
            for b in w.bindings])
    return change


PUSH_CASES: list[tuple[str, Callable[[NamespaceInputs], NamespaceInputs], set[str]]] = [
    ("an unchanged world", lambda w: w, set()),
    ("source a's model changed", _model("a", "gpt-4.1"), {"p-a1", "p-a2"}),
    ("source b's model changed", _model("b", "gpt-4.1"), {"p-b"}),
    ("the Secret of source a rotated", _rotate("key-a"), {"p-a1", "p-a2"}),
    ("the Secret of source b deleted", lambda w: replace(w, secrets={k: v for k, v in w.secrets.items() if k != "key-b"}),
     {"p-b"}),
    ("binding beta's aliases changed", _aliases("beta"), {"p-b"}),
    ("a fallback to source a added to beta",
     lambda w: replace(w, bindings=[w.bindings[0], binding("beta", "b", "b", "a")]), {"p-b"}),
    ("a new binding selects app b too",
     lambda w: replace(w, bindings=[*w.bindings, binding("gamma", "b", "a")]), {"p-b"}),
    ("binding alpha deleted: its pods get an empty config", lambda w: replace(w, bindings=w.bindings[1:]), {"p-a1", "p-a2"}),
    ("a new pod of app a", lambda w: replace(w, pods=[*w.pods, pod("p-a3", "a", ip="10.0.0.3")]), {"p-a3"}),
    ("a source no binding uses appears", lambda w: replace(w, sources=[*w.sources, source("c", "key-c")]), set()),
    ("the catalog of source a now lists its model", lambda w: replace(w, catalogs={"a": frozenset({"gpt-4o"})}), set()),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in PUSH_CASES], ids=[i for i, _, _ in PUSH_CASES])
def test_a_change_replans_exactly_the_pods_it_affects(change: Callable[[NamespaceInputs], NamespaceInputs],
                                                      expected: set[str]) -> None:
    before = plan_configs(world())
    assert pushed(before) == {"p-a1", "p-a2", "p-b"}  # nothing runs anything yet
    after = plan_configs(change(world(running=running(before))))
    assert pushed(after) == expected
    for p in after.pushes:
        assert p.version == after.configs[p.pod.key].version != p.running


def test_a_sidecar_that_runs_another_version_is_pushed_again() -> None:
    first = plan_configs(world())
    now_running = {**running(first), ("ns", "p-a2"): None}  # restarted: reports no config
    again = plan_configs(world(running=now_running))
    assert [(p.pod.name, p.running) for p in again.pushes] == [("p-a2", None)]


def test_pods_with_the_same_bindings_share_one_config_of_only_those_bindings() -> None:
    plan = plan_configs(world())
    a1, a2, b = (plan.configs[("ns", n)] for n in ("p-a1", "p-a2", "p-b"))
    assert a1.version == a2.version != b.version
    assert [x.name for x in a1.bindings] == ["alpha"] and [x.name for x in b.bindings] == ["beta"]
    assert plan.pod_bindings[("ns", "p-b")] == frozenset({"beta"})


def test_a_pod_no_binding_selects_gets_an_empty_config() -> None:
    plan = plan_configs(world(pods=[pod("p-x", "nobody")]))
    assert plan.configs[("ns", "p-x")].bindings == [] and pushed(plan) == {"p-x"}


BLOCKED_CASES = [
    ("not injected", {"pods": [pod("p-a1", "a", injected=False)]}, "NotInjected", "has no switchyard container"),
    ("no address yet", {"pods": [pod("p-a1", "a", ip=None)]}, "NoAddress", "pod is Pending without an IP yet"),
    ("no admin token (push mode)", {"delivery": "push", "secrets": {"key-a": {"api-key": b64(KEY_A)}}}, "AdminTokenMissing",
     "Secret switchyard-admin-token (key token) not found in namespace ns"),
    ("admin token not base64 (push mode)", {"delivery": "push", "secrets": {"switchyard-admin-token": {"token": "%%%"}}}, "AdminTokenMissing", ""),
    ("the token under another name (push mode)",
     {"delivery": "push", "admin_token": AdminTokenRef("sy-token", "t"), "secrets": {"switchyard-admin-token": {"token": b64(TOKEN)}}},
     "AdminTokenMissing", "Secret sy-token (key t) not found"),
]


@pytest.mark.parametrize(("changes", "reason", "message"), [c[1:] for c in BLOCKED_CASES], ids=[c[0] for c in BLOCKED_CASES])
def test_a_pod_that_cannot_be_configured_is_not_pushed_and_says_why(changes: dict[str, Any], reason: str,
                                                                   message: str) -> None:
    plan = plan_configs(world(**changes))
    problem = plan.blocked[("ns", "p-a1")]
    assert problem.reason == reason and message in problem.message
    assert "p-a1" not in pushed(plan)


def test_the_admin_token_is_planned_but_never_shown() -> None:
    plan = plan_configs(world())
    assert plan.admin_token == TOKEN
    shown = repr(plan) + repr(world())
    assert TOKEN not in shown and KEY_A not in shown and KEY_B not in shown


# --------------------------------------------------------------------------- statuses


def statuses(inp: NamespaceInputs, outcomes: dict[tuple[str, str], PodOutcome] | None = None,
             previous: dict[str, dict[str, Any]] | None = None) -> tuple[ConfigPlan, Any]:
    plan = plan_configs(inp)
    if outcomes is None:  # every pod runs its planned config and reported nothing special
        outcomes = {p.key: PodOutcome(None, True, None) for p in inp.pods}
    return plan, plan_statuses(inp, plan, outcomes, previous or {}, now=NOW)


def cond(status: dict[str, Any], type_: str) -> tuple[str, str, str]:
    c = next(c for c in status["conditions"] if c["type"] == type_)
    return c["status"], c["reason"], c["message"]


def test_a_binding_whose_source_is_missing_is_unresolved_and_not_ready() -> None:
    inp = world(bindings=[binding("alpha", "a", "ghost")])
    plan, st = statuses(inp)
    s = st.bindings["alpha"].status
    (tier,) = s["chain"]
    assert {k: tier[k] for k in ("tier", "source", "resolvable", "reason", "message")} == {
        "tier": 0, "source": "ghost", "resolvable": False, "reason": "SourceNotFound", "message": "ModelSource ghost not found"}
    assert cond(s, "Resolved") == ("False", "TierUnresolvable",
                                   "0 of 1 tiers resolvable; tier0 (ghost): SourceNotFound: ModelSource ghost not found")
    assert cond(s, "Ready")[:2] == ("False", "NoResolvableTier")
    # Its pods still get a config: the binding answers a clear error there, nothing else.
    assert [b.name for b in plan.configs[("ns", "p-a1")].bindings] == ["alpha"]


def test_a_source_that_does_not_validate_is_named_as_invalid_not_missing() -> None:
    bad = obj("ModelSource", "a", {"provider": "no-such-provider"})
    _, st = statuses(world(sources=[bad, *world().sources[1:]]))
    (tier,) = st.bindings["alpha"].status["chain"]
    assert tier["reason"] == "SourceNotFound" and tier["message"].startswith("ModelSource a is invalid: spec.provider")


def test_a_missing_or_unmarked_secret_makes_the_tier_unresolvable_without_naming_any_value() -> None:
    inp = world(secrets={"key-b": {"api-key": b64(KEY_B)}, "switchyard-admin-token": {"token": b64(TOKEN)}})
    _, st = statuses(inp)
    (tier,) = st.bindings["alpha"].status["chain"]
    assert (tier["reason"], tier["message"]) == ("SecretNotMarked", "no Secret key-a labelled switchyard.dev/credential=true in namespace ns (the operator reads no other Secret: create it with that label, or label it)")
    assert all(v not in repr(st) for v in (KEY_A, KEY_B, TOKEN))


def test_a_binding_spec_that_does_not_validate_is_reported() -> None:
    odd = obj("AssistantBinding", "odd", {"boundCredential": 42})
    plan, st = statuses(world(bindings=[*world().bindings, odd]))
    s = st.bindings["odd"].status
    assert cond(s, "Resolved")[:2] == ("False", "InvalidSpec") and "boundCredential" in cond(s, "Resolved")[2]
    assert st.bindings["odd"].report is None and "odd" in plan.invalid_bindings


def test_pods_configured_pending_or_in_trouble_are_counted_per_binding() -> None:
    inp = world()
    outcomes = {
        ("ns", "p-a1"): PodOutcome(None, True, None),
        ("ns", "p-a2"): PodOutcome(None, False, PodProblem("p-a2", "Unreachable", "no answer")),
        ("ns", "p-b"): PodOutcome(None, False, None),
    }
    _, st = statuses(inp, outcomes)
    alpha, beta = st.bindings["alpha"].status, st.bindings["beta"].status
    assert alpha["pods"] == {"selected": 2, "configured": 1,
                             "problems": [{"pod": "p-a2", "reason": "Unreachable", "message": "no answer"}]}
    assert alpha["summary"]["pods"] == "1/2" and cond(alpha, "Ready")[:2] == ("True", "Serving")
    assert beta["pods"]["problems"] == [{"pod": "p-b", "reason": "Pending", "message": "config push pending"}]
    assert cond(beta, "Ready")[:2] == ("False", "ConfigNotApplied")


def test_the_sidecars_reports_become_tier_health_and_the_active_tier() -> None:
    inp = world(bindings=[binding("alpha", "a", "a", "b"), world().bindings[1]])

    def report(state: str, last_tier: int, at: float) -> Any:
        return parse_report({"configured": True, "version": "v", "bindings": [{"name": "alpha", "namespace": "ns", "tiers": [
            {"tier": 0, "source": "a", "model": "gpt-4o", "breaker": {"state": state, "last_failure": "503",
                                                                      "last_failure_at": NOW - 5}},
            {"tier": 1, "source": "b", "model": "gpt-4o-mini", "breaker": {"state": "closed"}}],
            "last_used": {"tier": last_tier, "source": "ab"[last_tier], "model": ["gpt-4o", "gpt-4o-mini"][last_tier],
                          "at": at}}]})

    outcomes = {("ns", "p-a1"): PodOutcome(report("open", 1, NOW - 1), True, None),
                ("ns", "p-a2"): PodOutcome(report("closed", 0, NOW - 2), True, None),
                ("ns", "p-b"): PodOutcome(None, True, None)}
    _, st = statuses(inp, outcomes)
    alpha = st.bindings["alpha"]
    assert alpha.selected == 2 and alpha.health.out_of_service_tiers == 1
    breaker = alpha.status["chain"][0]["breaker"]
    assert (breaker["state"], breaker["openInPods"], breaker["closedInPods"], breaker["lastFailure"]) == ("open", 1, 1, "503")
    assert alpha.status["summary"]["breakers"] == "1/2"
    assert alpha.status["summary"]["active"] == "tier1 b/gpt-4o-mini"  # the most recent request, across pods
    assert "breaker" not in st.bindings["beta"].status["chain"][0]  # no pod reported beta's tiers


def test_conditions_keep_their_transition_time_from_the_previous_status() -> None:
    _, first = statuses(world())
    before = first.bindings["alpha"].status
    _, later = plan_statuses_at(world(), {"alpha": before}, NOW + 60)
    assert later.bindings["alpha"].status["conditions"] == before["conditions"]  # nothing changed: same times
    assert later.bindings["alpha"].status == before


def plan_statuses_at(inp: NamespaceInputs, previous: dict[str, dict[str, Any]], now: float) -> tuple[ConfigPlan, Any]:
    plan = plan_configs(inp)
    outcomes = {p.key: PodOutcome(None, True, None) for p in inp.pods}
    return plan, plan_statuses(inp, plan, outcomes, previous, now=now)


def test_a_cleared_primary_is_remembered_from_the_status() -> None:
    cleared = obj("AssistantBinding", "flip", {"boundCredential": "a", "selector": {"matchLabels": {"app": "a"}}},
                  status={"primaryConfigured": True})
    legacy = obj("AssistantBinding", "old", {"boundCredential": "a", "selector": {"matchLabels": {"app": "a"}}})
    _, st = statuses(world(bindings=[cleared, legacy]))
    assert st.bindings["flip"].status["summary"]["primary"] == "(unbound: PrimaryCleared)"
    assert st.bindings["old"].status["chain"][0]["source"] == "a"


def test_a_profile_that_does_not_validate_is_reported() -> None:
    good = obj("CapabilityProfile", "fine", {"protocol": "openai-chat"})
    bad = obj("CapabilityProfile", "broken", {"protocol": "carrier-pigeon"})
    _, st = statuses(world(profiles=[good, bad]))
    assert cond(st.profiles["fine"], "Valid")[0] == "True"
    assert cond(st.profiles["broken"], "Valid")[:2] == ("False", "InvalidSpec")


def test_planning_is_pure_same_inputs_same_plan_inputs_untouched() -> None:
    inp = world(bindings=[binding("alpha", "a", "a", "b", aliases=["alpha", "x"]), binding("beta", "b", "b", aliases=["x"])])
    frozen = copy.deepcopy(inp)
    one, two = plan_configs(inp), plan_configs(inp)
    assert running(one) == running(two) and pushed(one) == pushed(two) and one.reports == two.reports
    outcomes = {p.key: PodOutcome(None, True, None) for p in inp.pods}
    assert plan_statuses(inp, one, outcomes, {}, now=NOW) == plan_statuses(inp, two, outcomes, {}, now=NOW)
    assert inp == frozen
