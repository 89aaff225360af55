"""Shared tier health, the operator's side (operator/sharing.py): which pod is told what.

Only pods that run a tier of the same source and model; keys by index; only what a pod saw
itself is passed on (a state marked ``shared`` came from a hint: never echoed); a pod is
not told what it holds itself; a pod is sent its set only when it changed."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.operator import sharing
from switchyard.operator.selection import PodInfo
from switchyard.sidecar.contract.health import HealthHints, SignatureError, sign, verify
from switchyard.sidecar.contract.report import parse_report

NOW = 1_800_000_000.0


def tier(source: str, model: str, index: int = 0, *, breaker: dict[str, Any] | None = None,
         keys: list[dict[str, Any]] | None = None, resolvable: bool = True) -> dict[str, Any]:
    t: dict[str, Any] = {"tier": index, "source": source, "model": model, "resolvable": resolvable,
                         "breaker": breaker or {"state": "closed"}}
    if keys is not None:
        t["keys"] = keys
    return t


def report(*tiers: dict[str, Any], binding: str = "helper") -> Any:
    return parse_report({"configured": True, "version": "v1", "bindings": [
        {"name": binding, "namespace": "team-a", "tiers": list(tiers)}]})


def pod(name: str, incarnation: str = "i1") -> PodInfo:
    return PodInfo("team-a", name, f"uid-{name}", {}, "Running", "10.0.0.1", "http://10.0.0.1:4001", incarnation)


RL = {"state": "rate-limited", "rate_limited_for_seconds": 30.0, "last_failure": "429(retry in 30s)"}


def test_a_rate_limited_tier_is_told_to_the_other_pods_that_run_that_source_and_model_only() -> None:
    reports = {
        ("team-a", "a"): report(tier("openai", "gpt-5", breaker=RL), tier("backup", "m", 1)),
        ("team-a", "b"): report(tier("openai", "gpt-5"), tier("backup", "m", 1)),
        ("team-a", "c"): report(tier("openai", "gpt-4o-mini"), tier("backup", "m", 1)),  # another model
        ("team-a", "d"): report(tier("other", "x")),  # another source
        ("team-a", "e"): report(tier("backup", "m"), tier("openai", "gpt-5", 1), binding="other"),  # as a fallback
    }
    planned = sharing.plan_hints(reports, NOW)
    assert planned[("team-a", "a")].hints == []  # it knows
    for name in ("b", "e"):
        [h] = planned[("team-a", name)].hints
        assert (h.source, h.model, h.key, h.rate_limited_until, h.reason) == ("openai", "gpt-5", 0, NOW + 30, "429(retry in 30s)")
    assert planned[("team-a", "c")].hints == [] and planned[("team-a", "d")].hints == []


def test_the_latest_wait_wins_and_a_pod_that_waits_itself_is_not_told() -> None:
    later = {**RL, "rate_limited_for_seconds": 89.6}
    reports = {
        ("team-a", "a"): report(tier("openai", "gpt-5", breaker=RL)),
        ("team-a", "b"): report(tier("openai", "gpt-5", breaker=later)),
        ("team-a", "c"): report(tier("openai", "gpt-5")),
    }
    planned = sharing.plan_hints(reports, NOW)
    assert planned[("team-a", "a")].hints == [] and planned[("team-a", "b")].hints == []
    assert [h.rate_limited_until for h in planned[("team-a", "c")].hints] == [NOW + 90]


def test_keys_by_index_and_a_disabled_key_is_told_as_disabled() -> None:
    keys = [{"index": 0, "state": "disabled", "disabled_reason": "401"},
            {"index": 1, "state": "rate-limited", "rate_limited_until": NOW + 20, "last_failure": "429(retry in 20s)"},
            {"index": 2, "state": "usable"}]
    reports = {("team-a", "a"): report(tier("multi", "m", keys=keys)),
               ("team-a", "b"): report(tier("multi", "m", keys=[{"index": i, "state": "usable"} for i in range(3)]))}
    hints = sharing.plan_hints(reports, NOW)[("team-a", "b")].hints
    assert [(h.key, h.kind, h.disabled, h.rate_limited_until) for h in hints] == [
        (0, "disabled", "401", None), (1, "rate-limited", None, NOW + 20)]


def test_what_a_pod_holds_from_a_hint_is_never_passed_on() -> None:
    shared = {**RL, "shared": True}
    reports = {("team-a", "a"): report(tier("openai", "gpt-5", breaker=shared)),
               ("team-a", "b"): report(tier("openai", "gpt-5", keys=None))}
    assert all(h.hints == [] for h in sharing.plan_hints(reports, NOW).values())
    k = [{"index": 0, "state": "rate-limited", "rate_limited_until": NOW + 20, "shared": True}]
    reports = {("team-a", "a"): report(tier("multi", "m", keys=k)),
               ("team-a", "b"): report(tier("multi", "m", keys=[{"index": 0, "state": "usable"}]))}
    assert all(h.hints == [] for h in sharing.plan_hints(reports, NOW).values())


def test_a_disabled_tier_and_free_text_reasons_are_cut_to_the_hint_alphabet() -> None:
    bad = {"state": "disabled", "disabled_reason": "401 <b>bad key</b>\n" + "x" * 200}
    reports = {("team-a", "a"): report(tier("openai", "gpt-5", breaker=bad)),
               ("team-a", "b"): report(tier("openai", "gpt-5"))}
    [h] = sharing.plan_hints(reports, NOW)[("team-a", "b")].hints
    assert h.kind == "disabled" and h.disabled.startswith("401 bbad key/b") and len(h.disabled) <= 64


def test_an_unresolvable_tier_and_a_wait_that_is_over_are_not_told() -> None:
    reports = {("team-a", "a"): report(tier("openai", "gpt-5", breaker={**RL, "rate_limited_for_seconds": None})),
               ("team-a", "b"): report(tier("openai", "gpt-5")),
               ("team-a", "c"): report(tier("openai", "gpt-5", resolvable=False))}
    assert all(h.hints == [] for h in sharing.plan_hints(reports, NOW).values())


def test_a_pod_is_sent_its_set_only_when_it_changed_once_empty_and_again_after_a_restart() -> None:
    mem = sharing.HintMemory()
    p = pod("b")
    quiet = HealthHints(hints=[])
    assert not mem.needs_send(p, quiet, NOW)  # nothing ever sent, nothing to say
    reports = {("team-a", "a"): report(tier("openai", "gpt-5", breaker=RL)), ("team-a", "b"): report(tier("openai", "gpt-5"))}
    hints = sharing.plan_hints(reports, NOW)[p.key]
    assert mem.needs_send(p, hints, NOW)
    mem.sent(p, hints)
    assert not mem.needs_send(p, hints, NOW)
    moved = sharing.plan_hints(reports, NOW + 0.7)[p.key]  # read again a poll later: the same wait, give or take a second
    assert not mem.needs_send(p, moved, NOW + 0.7)
    assert mem.needs_send(pod("b", "i2"), hints, NOW)  # restarted: it holds nothing
    assert mem.needs_send(p, quiet, NOW)  # the clearing hint, once the wait is no longer reported early
    assert not mem.needs_send(p, quiet, NOW + 31)  # the wait is over: the sidecar dropped it by itself


def test_the_signature_covers_body_and_time_and_names_no_value() -> None:
    body = b'{"hints_version":1,"hints":[]}'
    header = sign("tok-123", int(NOW), body)
    assert "tok-123" not in header
    assert verify("tok-123", header, body, NOW + 5) == int(NOW)
    for token, hdr, b, now in [("other", header, body, NOW), ("tok-123", header, body + b" ", NOW),
                               ("tok-123", header, body, NOW + 61), ("tok-123", "t=1,v1=zz", body, NOW)]:
        with pytest.raises(SignatureError) as e:
            verify(token, hdr, b, now)
        assert "tok-123" not in str(e.value)


def test_a_pod_that_reports_a_hint_the_plan_no_longer_holds_is_told_again() -> None:
    """After a leader change (a fresh HintMemory) the report is the truth: a pod still
    holding a hint-made wait that nobody reports any more gets the clearing set."""
    held = report(tier("openai", "gpt-5", breaker={**RL, "shared": True}))
    assert sharing.holds_stale(held, HealthHints(hints=[]))
    planned = sharing.plan_hints({("team-a", "a"): report(tier("openai", "gpt-5", breaker=RL)), ("team-a", "b"): held}, NOW)
    assert not sharing.holds_stale(held, planned[("team-a", "b")])  # still seen by a: nothing stale
    keyed = report(tier("multi", "m", keys=[{"index": 1, "state": "rate-limited", "rate_limited_for_seconds": 5.0,
                                             "shared": True}]))
    assert sharing.holds_stale(keyed, HealthHints(hints=[]))
    assert not sharing.holds_stale(report(tier("openai", "gpt-5", breaker=RL)), HealthHints(hints=[]))  # its own
