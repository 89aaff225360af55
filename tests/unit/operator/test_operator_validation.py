"""The apply-time check of an AssistantBinding: warnings from the indexes, never a refusal (pure)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from switchyard.operator import main
from switchyard.operator.validation import binding_warnings

V = "switchyard.dev/v1alpha1"


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": V, "kind": kind, "metadata": {"name": name, "namespace": "team-a"}, "spec": spec}


SOURCES = [
    doc("ModelSource", "main", {"provider": "openai", "defaultModel": "gpt-4o",
                                "credentialRef": {"name": "openai-key", "key": "api-key"}}),
    doc("ModelSource", "local", {"provider": "openai-compatible", "baseURL": "http://127.0.0.1:11434/v1",
                                 "defaultModel": "qwen", "capabilityProfileRef": {"name": "small"}}),
    doc("ModelSource", "claude", {"provider": "anthropic", "defaultModel": "claude-sonnet-4-5",
                                  "credentialRef": {"name": "anthropic-key", "key": "api-key"}}),
]
PROFILES = [doc("CapabilityProfile", "small", {"protocol": "openai-chat", "features": {"vision": False, "tools": False},
                                               "onUnsupported": {"vision": "strip", "tools": "skip-tier"}})]
SECRETS = {"openai-key": {"api-key": True}, "anthropic-key": {"other": True}}


def warnings_for(spec: dict[str, Any], **kw: Any) -> list[str]:
    args: dict[str, Any] = dict(sources=SOURCES, profiles=PROFILES, secret_keys=SECRETS.get, catalogs={}, primary_was_set=False)
    args.update(kw)
    return binding_warnings(doc("AssistantBinding", "support", spec), **args)


CHAIN = {"primary": {"sourceRef": {"name": "main"}}, "fallbacks": [{"sourceRef": {"name": "local"}}, {"sourceRef": {"name": "claude"}}]}


def test_a_sound_chain_gets_no_warning() -> None:
    assert warnings_for({"primary": {"sourceRef": {"name": "main"}}, "requires": {"vision": True, "tools": True}}) == []
    assert warnings_for({"primary": None}) == []  # deliberately unbound: nothing to warn about


def test_incompatible_and_unresolvable_tiers_are_named() -> None:
    assert warnings_for({**CHAIN, "requires": {"vision": True, "tools": True}}) == [
        "switchyard: tier1 (local/qwen) lacks tools, vision (spec.requires): requests will skip this tier",
        "switchyard: tier2 (claude/claude-sonnet-4-5) is unresolvable: SecretKeyMissing: Secret anthropic-key has no key api-key",
    ]


def test_degradable_tier_says_it_serves_degraded() -> None:
    got = warnings_for({"primary": {"sourceRef": {"name": "local"}}, "requires": {"vision": True}, "allowDegrading": True})
    assert got == ["switchyard: tier0 (local/qwen) lacks vision (spec.requires): it will serve degraded (allowDegrading)"]


def test_catalog_and_missing_objects() -> None:
    got = warnings_for({"primary": {"sourceRef": {"name": "main"}, "model": "gpt-imaginary"},
                        "fallbacks": [{"sourceRef": {"name": "ghost"}}]},
                       catalogs={("team-a", "main"): ["gpt-4o"]}, secret_keys=lambda name: None)
    assert got == [
        "switchyard: tier0 (main/gpt-imaginary) is unresolvable: ModelNotInCatalog: model gpt-imaginary is not in the live catalog of ModelSource main",
        "switchyard: tier1 (ghost) is unresolvable: SourceNotFound: ModelSource ghost not found",
    ]


def test_an_invalid_source_is_named_as_such() -> None:
    broken = doc("ModelSource", "ghost", {"provider": "openai-compatible"})  # no baseURL
    got = warnings_for({"primary": {"sourceRef": {"name": "ghost"}}}, sources=[*SOURCES, broken])
    assert got == ["switchyard: tier0 (ghost) is unresolvable: SourceNotFound: ModelSource ghost is invalid: "
                   "baseURL is required for provider openai-compatible"]


def test_invalid_binding_spec_and_bounded_length() -> None:
    got = warnings_for({"boundCredential": 42})
    assert len(got) == 1 and got[0].startswith("switchyard: the spec does not validate: ")
    long_name = "x" * 250
    got = warnings_for({"primary": {"sourceRef": {"name": long_name}}})
    assert len(got[0]) == 256 and got[0].endswith("…")


def test_legacy_primary_follows_the_recorded_intent() -> None:
    spec = {"boundCredential": "ghost"}
    assert warnings_for(spec) == ["switchyard: tier0 (ghost) is unresolvable: SourceNotFound: ModelSource ghost not found"]
    assert warnings_for(spec, primary_was_set=True) == []  # cleared on purpose: unbound, no tier to warn about


def test_no_secret_value_is_needed_or_shown() -> None:
    got = warnings_for(CHAIN)
    assert all("present" not in w for w in got)


@pytest.mark.parametrize("holder", [
    SimpleNamespace(),  # the operator has not started yet
    SimpleNamespace(reconciler=SimpleNamespace(check_binding=lambda body, old: 1 / 0)),  # a bug
])
async def test_the_webhook_handler_never_raises(holder: Any) -> None:
    warnings: list[str] = []
    await main.validate_binding(body={"metadata": {}}, old=None, warnings=warnings, memo=SimpleNamespace(holder=holder))
    assert warnings == []


async def test_the_webhook_handler_passes_warnings_on() -> None:
    seen: list[Any] = []

    def check(body: dict[str, Any], old: dict[str, Any] | None) -> list[str]:
        seen.append((body, old))
        return ["switchyard: w"]

    warnings: list[str] = []
    memo = SimpleNamespace(holder=SimpleNamespace(reconciler=SimpleNamespace(check_binding=check)))
    await main.validate_binding(body={"metadata": {"name": "b"}}, old={"status": {}}, warnings=warnings, memo=memo)
    assert warnings == ["switchyard: w"] and seen == [({"metadata": {"name": "b"}}, {"status": {}})]


def test_an_unusable_key_of_a_several_key_source_is_named_by_index() -> None:
    keyed = doc("ModelSource", "keyed", {"provider": "openai", "defaultModel": "gpt-4o", "credentialRefs": [
        {"name": "openai-key", "key": "nope"}, {"name": "openai-key", "key": "api-key"}]})
    got = warnings_for({"primary": {"sourceRef": {"name": "keyed"}}}, sources=[*SOURCES, keyed])
    assert got == ["switchyard: tier0 (keyed/gpt-4o) key 0 is unusable: SecretKeyMissing: Secret openai-key has no key nope; "
                   "the tier serves with its other keys"]
