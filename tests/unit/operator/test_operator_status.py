"""Binding, profile and source status built from compiler reports, health and pods (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.api.status import AssistantBindingStatus, CapabilityProfileStatus, ModelSourceStatus
from switchyard.compiler.compile import BindingReport, TierReport
from switchyard.operator.conditions import condition, get, rfc3339
from switchyard.operator.health import ActiveTier, BindingHealth, TierHealth
from switchyard.operator.status import (
    BindingInputs,
    CredentialCheck,
    PodProblem,
    PodsView,
    binding_status,
    merge_patch,
    profile_status,
    prune,
    source_status,
)

NOW = 1_800_000_000.0


def report(*resolvable: bool, unbound: str | None = None, legacy: bool = False,
           lacks: dict[int, tuple[str, ...]] | None = None, degradable: frozenset[int] = frozenset()) -> BindingReport:
    tiers = [
        TierReport(i, f"src{i}", f"m{i}", "openai-chat", ok, None if ok else "SecretNotFound", None if ok else f"Secret k{i} not found",
                   incompatible=(lacks or {}).get(i, ()), degradable=i in degradable)
        for i, ok in enumerate(resolvable)
    ]
    return BindingReport("ns", "b", ["b"], unbound is not None, unbound, legacy, [] if unbound else tiers)


def inputs(r: BindingReport | None, **kw: Any) -> BindingInputs:
    base: dict[str, Any] = dict(name="b", generation=3, previous={}, primary_evidence=True, report=r)
    base.update(kw)
    return BindingInputs(**base)


def build(inp: BindingInputs, now: float = NOW) -> dict[str, Any]:
    out = prune(binding_status(inp, now=now))
    AssistantBindingStatus.model_validate(out)  # the CRD's status schema comes from this model
    return out


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


PODS_OK = PodsView(selected=2, configured=2)


def test_serving_binding() -> None:
    health = BindingHealth(tiers={0: TierHealth("closed", reporting_pods=2), 1: TierHealth("closed", reporting_pods=2)},
                           active=ActiveTier(0, "src0", "m0", NOW - 5, 2))
    st = build(inputs(report(True, True), health=health, pods=PODS_OK))
    assert conds(st) == {"Resolved": ("True", "AllTiersResolved"), "Ready": ("True", "Serving"),
                         "ChainCompatible": ("True", "NoRequirements")}
    assert st["summary"] == {"primary": "src0/m0", "active": "tier0 src0/m0", "breakers": "0/2", "pods": "2/2"}
    assert st["observedGeneration"] == 3 and st["primaryConfigured"] is True
    assert st["active"] == {"tier": 0, "source": "src0", "model": "m0", "lastUsedAt": rfc3339(NOW - 5), "pods": 2}
    assert st["chain"][0]["breaker"]["state"] == "closed"
    assert "aliasConflicts" not in st


def test_never_ready_while_every_usable_tier_is_open_in_every_pod() -> None:
    open_all = TierHealth("open", open_in_pods=2, reporting_pods=2, last_failure="5xx", last_failure_at=NOW)
    health = BindingHealth(tiers={0: open_all, 1: open_all, 2: TierHealth("unknown")})
    st = build(inputs(report(True, True, False), health=health, pods=PODS_OK))
    assert conds(st)["Ready"] == ("False", "AllTiersOpen")
    assert st["summary"]["breakers"] == "2/3"
    assert st["chain"][0]["breaker"]["lastFailure"] == "5xx"
    # Open in one pod of two: the other pod still serves.
    half = TierHealth("open", open_in_pods=1, reporting_pods=2)
    st = build(inputs(report(True, True), health=BindingHealth(tiers={0: half, 1: half}), pods=PODS_OK))
    assert conds(st)["Ready"] == ("True", "Serving")


def test_ready_reasons_in_order() -> None:
    assert conds(build(inputs(None, invalid_message="spec.boundCredential: bad")))["Ready"] == ("False", "InvalidSpec")
    assert conds(build(inputs(report(unbound="PrimaryNull"))))["Ready"] == ("False", "PrimaryNull")
    assert conds(build(inputs(report(False, False), pods=PODS_OK)))["Ready"] == ("False", "NoResolvableTier")
    assert conds(build(inputs(report(True))))["Ready"] == ("False", "NoPodsSelected")
    pending = PodsView(selected=1, configured=0, problems=(PodProblem("p-0", "Unreachable", "no answer"),))
    st = build(inputs(report(True), pods=pending))
    assert conds(st)["Ready"] == ("False", "ConfigNotApplied")
    assert "p-0: Unreachable no answer" in get(st["conditions"], "Ready")["message"]
    assert st["pods"]["problems"] == [{"pod": "p-0", "reason": "Unreachable", "message": "no answer"}]


def test_serving_from_a_fallback_is_ready_and_says_so() -> None:
    health = BindingHealth(tiers={0: TierHealth("open", open_in_pods=1, reporting_pods=1), 1: TierHealth("closed", reporting_pods=1)},
                           active=ActiveTier(1, "src1", "m1", NOW, 1))
    st = build(inputs(report(True, True), health=health, pods=PodsView(1, 1)))
    ready = get(st["conditions"], "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Serving")
    assert "serving from tier1 src1/m1 (a fallback)" in ready["message"]
    assert st["summary"]["active"] == "tier1 src1/m1"


def test_resolved_names_every_unresolvable_tier_exactly() -> None:
    st = build(inputs(report(True, False, False), pods=PODS_OK))
    resolved = get(st["conditions"], "Resolved")
    assert (resolved["status"], resolved["reason"]) == ("False", "TierUnresolvable")
    assert resolved["message"] == (
        "1 of 3 tiers resolvable; tier1 (src1/m1): SecretNotFound: Secret k1 not found; "
        "tier2 (src2/m2): SecretNotFound: Secret k2 not found"
    )
    assert conds(st)["Ready"] == ("True", "Serving")  # one usable tier is enough to serve


@pytest.mark.parametrize("reason", ["PrimaryNull", "PrimaryCleared", "PrimaryNotSet"])
def test_unbound_binding(reason: str) -> None:
    st = build(inputs(report(unbound=reason), pods=PODS_OK))
    assert conds(st) == {"Resolved": ("False", reason), "Ready": ("False", reason), "ChainCompatible": ("Unknown", reason)}
    assert st["summary"]["primary"] == f"(unbound: {reason})"
    assert st["chain"] == [] and st["summary"]["breakers"] == "0/0"


def test_legacy_primary_is_flagged_and_alias_conflicts_reported() -> None:
    st = build(inputs(report(True, legacy=True), primary_evidence=False))
    assert "deprecated boundCredential" in get(st["conditions"], "Resolved")["message"]
    assert st["primaryConfigured"] is False
    st = build(inputs(report(True), alias_conflicts=("gpt-* (taken by ns/other)",)))
    assert conds(st)["Resolved"] == ("False", "AliasConflict")
    assert st["aliasConflicts"] == ["gpt-* (taken by ns/other)"]


def test_primary_configured_is_sticky() -> None:
    st = build(inputs(report(unbound="PrimaryCleared"), primary_evidence=False, previous={"primaryConfigured": True}))
    assert st["primaryConfigured"] is True


def test_same_inputs_same_status_and_transition_time_kept() -> None:
    inp = inputs(report(True), pods=PODS_OK)
    first = build(inp, NOW)
    again = build(inputs(report(True), pods=PODS_OK, previous=first), NOW + 60)
    assert again == first  # nothing to write
    changed = build(inputs(report(False), pods=PODS_OK, previous=first), NOW + 120)
    assert get(changed["conditions"], "Resolved")["lastTransitionTime"] == rfc3339(NOW + 120)


def test_condition_messages_are_bounded() -> None:
    c = condition("Ready", "False", "X", "m" * 5000, now=NOW, generation=None)
    assert len(c["message"]) == 2000 and "observedGeneration" not in c


def test_profile_status() -> None:
    ok = prune(profile_status(2, None, {}, now=NOW))
    CapabilityProfileStatus.model_validate(ok)
    assert conds(ok) == {"Valid": ("True", "Valid"), "Ready": ("True", "Ready")}
    bad = prune(profile_status(2, "features.stopSequences: too big", ok, now=NOW))
    assert conds(bad) == {"Valid": ("False", "InvalidSpec"), "Ready": ("False", "InvalidSpec")}


def test_source_status_keeps_a_verdict_through_an_inconclusive_check() -> None:
    accepted = CredentialCheck("True", "Accepted", "ok", True, "Fetched", "2 models")
    first = prune(source_status(1, accepted, {"models": ["a", "b"], "count": 2, "fetchedAt": rfc3339(NOW)}, {}, now=NOW))
    ModelSourceStatus.model_validate(first)
    down = CredentialCheck("Unknown", "CheckFailed", "timeout", False, "Unreachable", "timeout")
    second = prune(source_status(1, down, first["catalog"], first, now=NOW + 30))
    assert conds(second) == {"CredentialValid": ("True", "Accepted"), "CatalogReady": ("False", "Unreachable"),
                             "Ready": ("False", "Unreachable")}
    assert second["catalog"]["count"] == 2


def test_source_ready_means_credential_not_refused_and_catalog_fetched() -> None:
    def ready(check: CredentialCheck) -> tuple[str, str]:
        st = prune(source_status(1, check, None, {}, now=NOW))
        ModelSourceStatus.model_validate(st)
        return conds(st)["Ready"]

    assert ready(CredentialCheck("True", "Accepted", "ok", True, "Fetched", "2 models")) == ("True", "Ready")
    assert ready(CredentialCheck("Unknown", "CheckFailed", "404", False, "NoCatalogEndpoint", "404")) == ("True", "Ready")
    assert ready(CredentialCheck("False", "SecretNotMarked", "no Secret k", False, "CredentialMissing", "x")) == (
        "False", "SecretNotMarked")
    assert ready(CredentialCheck("False", "Unauthorized", "401", False, "Unauthorized", "401")) == ("False", "Unauthorized")


def test_conditions_follow_metav1_condition() -> None:
    """A list map keyed on type, a date-time lastTransitionTime, metav1's reason pattern."""
    import pytest
    from pydantic import ValidationError

    from switchyard.api.status import Condition

    schema = ModelSourceStatus.model_json_schema(by_alias=True)
    conditions = schema["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]
    cond = schema["$defs"]["Condition"]["properties"]
    assert cond["lastTransitionTime"]["format"] == "date-time"
    for bad in ("", "has space", "1Starts", "Ends-"):
        with pytest.raises(ValidationError):
            Condition.model_validate({"type": "Ready", "status": "True", "reason": bad, "lastTransitionTime": "x"})


def test_merge_patch_and_prune() -> None:
    current = {"a": 1, "summary": {"active": "tier1 x", "pods": "1/1"}, "gone": [1]}
    desired = prune({"a": 1, "summary": {"pods": "2/2", "active": None}, "new": None})
    assert desired == {"a": 1, "summary": {"pods": "2/2"}}
    assert merge_patch(current, desired) == {"summary": {"pods": "2/2", "active": None}, "gone": None}
    assert merge_patch(desired, desired) == {}


# --------------------------------------------------------------------------- failure classes (issue 10)


def test_breakers_count_tiers_out_of_service_open_or_disabled() -> None:
    health = BindingHealth(tiers={
        0: TierHealth("disabled", disabled_in_pods=1, reporting_pods=2, disabled_reason="401",
                      last_failure="401", last_failure_class="permanent", last_failure_at=NOW),
        1: TierHealth("rate-limited", rate_limited_in_pods=2, reporting_pods=2, last_failure="429(retry in 12s)",
                      last_failure_class="rate-limited", last_failure_at=NOW),
        2: TierHealth("open", open_in_pods=1, half_open_in_pods=1, reporting_pods=2),
        3: TierHealth("closed", reporting_pods=2),
    })
    st = build(inputs(report(True, True, True, True), health=health, pods=PODS_OK))
    assert st["summary"]["breakers"] == "2/4"  # tier0 disabled + tier2 open; rate-limited comes back by itself
    b0, b1 = st["chain"][0]["breaker"], st["chain"][1]["breaker"]
    assert b0 == {"state": "disabled", "closedInPods": 1, "openInPods": 0, "halfOpenInPods": 0, "rateLimitedInPods": 0,
                  "disabledInPods": 1, "reportingPods": 2, "disabledReason": "401", "lastFailure": "401",
                  "lastFailureClass": "permanent", "lastFailureAt": rfc3339(NOW)}
    assert (b1["state"], b1["rateLimitedInPods"], b1["lastFailureClass"]) == ("rate-limited", 2, "rate-limited")
    assert "disabledReason" not in b1
    assert conds(st)["Ready"] == ("True", "Serving")


def test_not_ready_when_every_tier_is_disabled_or_open_everywhere() -> None:
    disabled = TierHealth("disabled", disabled_in_pods=2, reporting_pods=2, disabled_reason="401")
    opened = TierHealth("open", open_in_pods=2, reporting_pods=2)
    st = build(inputs(report(True, True), health=BindingHealth(tiers={0: disabled, 1: opened}), pods=PODS_OK))
    ready = get(st["conditions"], "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AllTiersOpen")
    assert "breaker open or tier disabled" in ready["message"]
    assert st["summary"]["breakers"] == "2/2"


def test_chain_compatible_names_each_tier_and_missing_feature() -> None:
    r = report(True, True, True, lacks={1: ("vision",), 2: ("tools", "maxContextTokens>=100000")}, degradable=frozenset({2}))
    st = build(inputs(r, pods=PODS_OK, requires=True))
    c = get(st["conditions"], "ChainCompatible")
    assert (c["status"], c["reason"]) == ("False", "Incompatible")
    assert c["message"] == ("tier1 (src1/m1): lacks vision; "
                            "tier2 (src2/m2): lacks tools, maxContextTokens>=100000 (serves degraded: allowDegrading)")
    assert st["chain"][1]["incompatible"] == ["vision"] and st["chain"][1]["degradable"] is False
    assert st["chain"][2]["degradable"] is True and "incompatible" not in st["chain"][0]
    assert conds(st)["Ready"] == ("True", "Serving")  # Ready stays as it was: requests skip the tier


def test_chain_compatible_when_every_checked_tier_has_it() -> None:
    st = build(inputs(report(True, False, True), pods=PODS_OK, requires=True))
    c = get(st["conditions"], "ChainCompatible")
    assert (c["status"], c["reason"]) == ("True", "Compatible")
    assert c["message"] == "2 of 3 tiers have what spec.requires asks for; not checked (unresolvable): tier1"
    st = build(inputs(report(True, False, lacks={0: ("vision",)}), pods=PODS_OK, requires=True))
    assert get(st["conditions"], "ChainCompatible")["message"] == (
        "tier0 (src0/m0): lacks vision; not checked (unresolvable): tier1")
    assert conds(build(inputs(None, invalid_message="bad")))["ChainCompatible"] == ("Unknown", "InvalidSpec")


def test_usage_goes_to_status_with_exact_amounts() -> None:
    from decimal import Decimal

    from switchyard.operator.health import BindingUsage

    usage = BindingUsage(input=2411, output=55, cached_input=2000, cache_write=300, reasoning=2, pods=2,
                         cost={"USD": Decimal("0.300000000000"), "EUR": Decimal("0.002775000000")})
    st = build(inputs(report(True), health=BindingHealth(tiers={0: TierHealth("closed", reporting_pods=2)}, usage=usage),
                      pods=PODS_OK))
    assert st["usage"] == {"inputTokens": 2411, "outputTokens": 55, "cachedInputTokens": 2000, "cacheWriteTokens": 300,
                           "reasoningTokens": 2, "pods": 2,
                           "cost": [{"currency": "EUR", "amount": "0.002775"}, {"currency": "USD", "amount": "0.3"}]}
    assert "usage" not in build(inputs(report(True), pods=PODS_OK))


def test_source_status_lists_several_keys_by_index_and_validates() -> None:
    keys = [{"index": 0, "resolvable": False, "reason": "SecretNotMarked", "message": "no Secret k labelled ..."},
            {"index": 1, "resolvable": True, "reason": None, "message": None}]
    st = prune(source_status(1, CredentialCheck("True", "Accepted", "ok (with key 1)", True, "Fetched", "2 models"),
                             None, {}, now=NOW, keys=keys))
    ModelSourceStatus.model_validate(st)
    assert st["keys"] == [keys[0], {"index": 1, "resolvable": True}]
    assert "keys" not in prune(source_status(1, CredentialCheck("True", "Accepted", "ok", True, "Fetched", "x"), None, {}, now=NOW))
