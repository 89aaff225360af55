"""The compiler: chains resolved from resources, with the exact reason when a tier is not."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from switchyard.api.manifests import ResourceSet, parse_document
from switchyard.compiler import compile_config


def resources(text: str) -> ResourceSet:
    rs = ResourceSet()
    for i, doc in enumerate(yaml.safe_load_all(text), 1):
        r, errors = parse_document(doc, index=i)
        assert not errors, [str(e) for e in errors]
        {"ModelSource": rs.sources, "CapabilityProfile": rs.profiles, "AssistantBinding": rs.bindings, "Secret": rs.secrets}[
            r.kind
        ].append(r)
    return rs


SOURCES = """
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: oa}
spec:
  provider: openai
  defaultModel: gpt-5
  models: [gpt-5, gpt-5-mini]
  credentialRef: {name: keys, key: openai}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: an}
spec:
  provider: anthropic
  defaultModel: claude-sonnet-4-5
  credentialRef: {name: keys, key: anthropic}
---
apiVersion: v1
kind: Secret
metadata: {name: keys}
data:
  openai: %s
""" % base64.b64encode(b"sk-openai-secret").decode()


def binding(spec: str, name: str = "helper") -> str:
    return f"---\napiVersion: switchyard.dev/v1alpha1\nkind: AssistantBinding\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def compile_text(text: str, **kw: Any):
    return compile_config(resources(text), **kw)


def test_resolved_chain_and_exact_reasons() -> None:
    res = compile_text(
        SOURCES
        + binding(
            "{primary: {sourceRef: {name: oa}}, fallbacks: [{sourceRef: {name: an}}, {sourceRef: {name: oa}, model: o3},"
            " {sourceRef: {name: gone}}]}"
        )
    )
    rep = res.reports[("default", "helper")]
    assert [(t.resolvable, t.reason) for t in rep.tiers] == [
        (True, None),
        (False, "SecretKeyMissing"),
        (False, "ModelNotAllowed"),
        (False, "SourceNotFound"),
    ]
    assert rep.tiers[1].message == "Secret keys has no key anthropic"
    tiers = res.config.bindings[0].tiers
    assert tiers[0].credential.get_secret_value() == "sk-openai-secret"
    assert tiers[0].auth == "bearer" and tiers[0].model == "gpt-5"
    assert tiers[0].profile.name == "builtin-openai"
    assert tiers[3].problem.startswith("SourceNotFound")


def test_credentials_never_appear_in_the_redacted_view_or_repr() -> None:
    res = compile_text(SOURCES + binding("{primary: {sourceRef: {name: oa}}}"))
    assert "sk-openai-secret" not in str(res.config.redacted())
    assert "sk-openai-secret" not in repr(res.config)
    assert b"sk-openai-secret" in res.config.to_wire()


def test_version_changes_with_content_and_secret_but_not_otherwise() -> None:
    a = compile_text(SOURCES + binding("{primary: {sourceRef: {name: oa}}}")).config.version
    b = compile_text(SOURCES + binding("{primary: {sourceRef: {name: oa}}}")).config.version
    c = compile_text(SOURCES.replace(base64.b64encode(b"sk-openai-secret").decode(), base64.b64encode(b"rotated").decode()) + binding("{primary: {sourceRef: {name: oa}}}")).config.version
    assert a == b != c


def test_explicit_null_primary_is_unbound_and_boundcredential_is_ignored() -> None:
    res = compile_text(SOURCES + binding("{primary: null, boundCredential: oa}"))
    rep = res.reports[("default", "helper")]
    assert rep.unbound and rep.unbound_reason == "PrimaryNull" and not rep.legacy_primary
    assert res.config.bindings[0].tiers == []


def test_boundcredential_is_read_only_while_primary_was_never_set() -> None:
    res = compile_text(SOURCES + binding("{boundCredential: oa}"))
    rep = res.reports[("default", "helper")]
    assert rep.legacy_primary and rep.tiers[0].source == "oa"
    # once the operator has seen `primary` set, a cleared primary stays cleared
    res = compile_text(SOURCES + binding("{boundCredential: oa}"), primary_was_set=lambda b: True)
    rep = res.reports[("default", "helper")]
    assert rep.unbound and rep.unbound_reason == "PrimaryCleared"


def test_env_credentials_are_standalone_only() -> None:
    text = """
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: oa}
spec: {provider: openai, defaultModel: gpt-5, credentialRef: {env: MY_KEY}}
""" + binding("{primary: {sourceRef: {name: oa}}}")
    assert compile_text(text).reports[("default", "helper")].tiers[0].reason == "EnvCredentialNotAllowed"
    assert compile_text(text, standalone=True, environ={}).reports[("default", "helper")].tiers[0].reason == "EnvNotSet"
    ok = compile_text(text, standalone=True, environ={"MY_KEY": "k"})
    assert ok.reports[("default", "helper")].resolved


def test_alias_conflicts_keep_the_first_binding() -> None:
    res = compile_text(SOURCES + binding("{aliases: [shared], primary: {sourceRef: {name: oa}}}", "a") + binding("{aliases: [shared, own], primary: {sourceRef: {name: oa}}}", "b"))
    assert res.reports[("default", "a")].aliases == ["shared"]
    assert res.reports[("default", "b")].aliases == ["own"]
    assert res.reports[("default", "b")].alias_conflicts == ["shared (taken by default/a)"]


def test_catalog_marks_models_missing_upstream() -> None:
    res = compile_text(SOURCES + binding("{primary: {sourceRef: {name: oa}}}"), catalogs={("default", "oa"): ["gpt-4o"]})
    assert res.reports[("default", "helper")].tiers[0].reason == "ModelNotInCatalog"


def test_model_profile_override_and_missing_profile() -> None:
    text = SOURCES.replace("models: [gpt-5, gpt-5-mini]", "modelProfiles: [{model: 'gpt-5*', capabilityProfileRef: {name: text-only}}]")
    text += """---
apiVersion: switchyard.dev/v1alpha1
kind: CapabilityProfile
metadata: {name: text-only}
spec: {protocol: openai-chat, features: {vision: false}, onUnsupported: {vision: reject}}
"""
    res = compile_text(text + binding("{primary: {sourceRef: {name: oa}}}"))
    profile = res.config.bindings[0].tiers[0].profile
    assert profile.name == "text-only" and profile.features["vision"] is False
    assert profile.on_unsupported["vision"] == "reject"
    assert profile.on_unsupported["tools"] == "skip-tier"  # documented default fills the rest


def test_the_compiled_profile_carries_embedding_dimensions() -> None:
    """A model's own profile (modelProfiles) declares its embedding space; builtin
    profiles declare none (unknown: compatible with no other tier)."""
    text = SOURCES.replace(
        "models: [gpt-5, gpt-5-mini]", "modelProfiles: [{model: text-embedding-3-small, capabilityProfileRef: {name: emb-small}}]"
    )
    text += """---
apiVersion: switchyard.dev/v1alpha1
kind: CapabilityProfile
metadata: {name: emb-small}
spec: {protocol: openai-chat, features: {embeddingDimensions: 1536}}
"""
    res = compile_text(text + binding("{primary: {sourceRef: {name: oa}, model: text-embedding-3-small}, fallbacks: [{sourceRef: {name: oa}}]}"))
    first, second = res.config.bindings[0].tiers
    assert first.profile.features["embeddingDimensions"] == 1536
    assert second.profile.features["embeddingDimensions"] is None
    bad = text.replace("embeddingDimensions: 1536", "embeddingDimensions: 0")
    with pytest.raises(AssertionError, match="greater than or equal to 1"):
        compile_text(bad)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{fallbacks: [{sourceRef: {name: a}}, {sourceRef: {name: b}}, {sourceRef: {name: c}}, {sourceRef: {name: d}}]}", "at most 3"),
        ("{primary: {sourceRef: {name: a}}, fallbacks: [{sourceRef: {name: a}}]}", "duplicate tier"),
        ("{breaker: {consecutiveFailures: 0}}", "greater than or equal to 1"),
        ("{primry: {sourceRef: {name: a}}}", "Extra inputs are not permitted"),
    ],
)
def test_invalid_bindings_are_refused_with_field_paths(spec: str, message: str) -> None:
    doc = yaml.safe_load(binding(spec).lstrip("-\n"))
    _, errors = parse_document(doc, file="x.yaml")
    assert errors, spec
    text = " ".join(str(e) for e in errors)
    assert "x.yaml" in text and "AssistantBinding/helper" in text
    assert message in text or (message == "at most 3" and "at most 3 items" in text), text


@pytest.mark.parametrize(
    ("source", "requires", "missing"),
    [
        ("openai", "{vision: true, tools: true, reasoning: true, structuredOutput: true}", ()),
        ("anthropic", "{vision: true, reasoning: true, structuredOutput: true, minContextTokens: 200000}", ()),
        ("anthropic", "{minContextTokens: 400000}", ("maxContextTokens>=400000",)),
        ("local", "{vision: true, parallelToolCalls: true, tools: true}", ("parallelToolCalls", "vision")),
        ("local", "{reasoning: true, minContextTokens: 1000000}", ("reasoning",)),  # unknown limits are not held against it
    ],
)
def test_requires_against_the_builtin_profiles(source: str, requires: str, missing: tuple[str, ...]) -> None:
    text = SOURCES + """---
apiVersion: v1
kind: Secret
metadata: {name: more}
stringData: {anthropic: k}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: local}
spec: {provider: openai-compatible, baseURL: "http://127.0.0.1:11434/v1", defaultModel: qwen}
"""
    text = text.replace("credentialRef: {name: keys, key: anthropic}", "credentialRef: {name: more, key: anthropic}")
    src = {"openai": "oa", "anthropic": "an", "local": "local"}[source]
    res = compile_text(text + binding(f"{{primary: {{sourceRef: {{name: {src}}}}}, requires: {requires}}}"))
    tier = res.reports[("default", "helper")].tiers[0]
    assert tier.resolvable and tier.incompatible == missing
    assert res.config.bindings[0].tiers[0].incompatible == list(missing)


def test_allow_degrading_needs_strip_or_map_for_every_missing_feature() -> None:
    local = """---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: local}
spec: {provider: openai-compatible, baseURL: "http://127.0.0.1:11434/v1", defaultModel: qwen}
"""
    # vision defaults to skip-tier: not degradable; parallelToolCalls defaults to strip: degradable
    res = compile_text(SOURCES + local + binding("{primary: {sourceRef: {name: local}}, requires: {vision: true}, allowDegrading: true}"))
    assert not res.config.bindings[0].tiers[0].degradable
    res = compile_text(SOURCES + local + binding("{primary: {sourceRef: {name: local}}, requires: {parallelToolCalls: true}, allowDegrading: true}"))
    assert res.config.bindings[0].tiers[0].degradable


def _source(name: str, spec: str) -> str:
    return f"---\napiVersion: switchyard.dev/v1alpha1\nkind: ModelSource\nmetadata: {{name: {name}}}\nspec: {spec}\n"


@pytest.mark.parametrize(
    ("spec", "protocol", "profile"),
    [
        ("{provider: openai, defaultModel: gpt-5, credentialRef: {name: keys, key: openai}}", "openai-chat", "builtin-openai"),
        ("{provider: openai, protocol: openai-chat, defaultModel: gpt-5, credentialRef: {name: keys, key: openai}}", "openai-chat", "builtin-openai"),
        ("{provider: openai, protocol: openai-responses, defaultModel: gpt-5-codex, credentialRef: {name: keys, key: openai}}",
         "openai-responses", "builtin-openai-responses"),
        ("{provider: openai-compatible, protocol: openai-responses, baseURL: 'http://vllm:8000/v1', defaultModel: gpt-oss}",
         "openai-responses", "builtin-openai-compatible-responses"),
        # before spec.protocol, an openai-compatible source chose its protocol by its profile; it still may
        ("{provider: openai-compatible, baseURL: 'http://vllm:8000/v1', defaultModel: m, capabilityProfileRef: {name: builtin-openai-responses}}",
         "openai-responses", "builtin-openai-responses"),
    ],
)
def test_source_protocol_chooses_the_wire_and_the_builtin_profile(spec: str, protocol: str, profile: str) -> None:
    res = compile_text(SOURCES + _source("src", spec) + binding("{primary: {sourceRef: {name: src}}}"))
    (tier,) = res.config.bindings[0].tiers
    assert tier.problem is None, tier.problem
    assert (tier.protocol, tier.profile.name, tier.profile.protocol) == (protocol, profile, protocol)
    assert res.reports[("default", "helper")].tiers[0].protocol == protocol
    if tier.credential is not None:
        assert tier.auth == "bearer"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{provider: openai, protocol: openai-responses, defaultModel: gpt-5, capabilityProfileRef: {name: builtin-openai}}",
         "CapabilityProfile builtin-openai speaks openai-chat but provider openai is set to speak openai-responses"),
        ("{provider: openai-compatible, protocol: openai-chat, baseURL: 'http://vllm:8000/v1', defaultModel: m, capabilityProfileRef: {name: builtin-openai-responses}}",
         "CapabilityProfile builtin-openai-responses speaks openai-responses but provider openai-compatible is set to speak openai-chat"),
        ("{provider: openai, defaultModel: gpt-5, capabilityProfileRef: {name: builtin-openai-responses}}",
         "CapabilityProfile builtin-openai-responses speaks openai-responses but provider openai speaks openai-chat"),
    ],
)
def test_a_profile_of_another_protocol_than_the_source_is_a_mismatch(spec: str, message: str) -> None:
    res = compile_text(SOURCES + _source("src", spec) + binding("{primary: {sourceRef: {name: src}}}"))
    (rep,) = res.reports[("default", "helper")].tiers
    assert (rep.resolvable, rep.reason, rep.message) == (False, "ProtocolMismatch", message)


def test_a_protocol_the_provider_does_not_speak_is_refused() -> None:
    from switchyard.api.manifests import parse_document

    doc = yaml.safe_load(_source("src", "{provider: anthropic, protocol: openai-responses}"))
    _, errors = parse_document(doc, index=1)
    assert any("protocol must be one the provider speaks: anthropic takes anthropic-messages, not openai-responses" in str(e) for e in errors)
