"""Offline validation against the generated CRDs: schema (OAS 3.0) and CEL rules.

- Every manifest under ``examples/`` and ``tests/e2e/manifests/valid/`` validates against
  its CRD; every one under ``tests/e2e/manifests/invalid/`` is refused, by the layer its
  ``e2e.switchyard.dev/rejected-by`` annotation names, with its expected message when
  that layer is CEL (the real-API-server tier applies the same files).
- The CEL rules and the pydantic models agree: one table of samples goes through both,
  and a sample one accepts and the other refuses fails the test.

Kubernetes' CEL semantics reproduced here: defaults are applied before validation, a
null in a nullable field is an absent field (``has()`` is false), ``number`` fields are
doubles, and CEL rules run only when the schema validation passed (the API server says
"some validation rules were not checked because the object was invalid").
"""

from __future__ import annotations

import os
import string
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from pydantic import ValidationError

from switchyard.api import crd as gen
from switchyard.api.cel import CEL_RULES
from switchyard.api.models import KINDS
from switchyard.api.openapi import openapi_schema

REPO = Path(__file__).resolve().parents[3]
MANIFESTS = REPO / "tests" / "e2e" / "manifests"
PLACEHOLDERS = {"UPSTREAM": "http://127.0.0.1:9", "ADMIN_TOKEN": "t0ken"}


# --------------------------------------------------------------------------- the validator


@cache
def _schema(kind: str) -> dict[str, Any]:
    info = gen.KIND_BY_NAME[kind]
    return gen.crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _with_defaults(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = sub["default"]
            if name in out:
                out[name] = _with_defaults(sub, out[name])
        return out
    if isinstance(value, list) and "items" in schema:
        return [_with_defaults(schema["items"], v) for v in value]
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {k: _with_defaults(schema["additionalProperties"], v) for k, v in value.items()}
    return value


def _cel_value(schema: dict[str, Any], value: Any) -> Any:
    """The value as Kubernetes' CEL sees it: nulls absent, numbers as doubles."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None:
                continue
            sub = schema.get("properties", {}).get(k) or schema.get("additionalProperties") or {}
            out[k] = _cel_value(sub if isinstance(sub, dict) else {}, v)
        return out
    if isinstance(value, list):
        return [_cel_value(schema.get("items", {}), v) for v in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


_ENV = celpy.Environment()


@cache
def _program(rule: str) -> Any:
    return _ENV.program(_ENV.compile(rule))


def cel_errors(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    out: list[str] = []
    if value is None:
        return out
    for r in schema.get("x-kubernetes-validations", []):
        try:
            ok = _program(r["rule"]).evaluate({"self": celpy.json_to_cel(_cel_value(schema, value))})
        except celpy.CELEvalError as e:  # an evaluation error is a rejection too
            ok = False
            r = {**r, "message": f"{r['message']} (evaluation error: {e})"}
        if not bool(ok):
            out.append(f"{path}{r.get('fieldPath', '')}: {r['message']}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            out += cel_errors(sub, value.get(name), f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += cel_errors(schema["items"], v, f"{path}[{i}]")
    return out


def crd_errors(obj: dict[str, Any]) -> tuple[str, list[str]]:
    """("schema"|"cel"|"", messages): what the API server would refuse, and why."""
    schema = _schema(obj["kind"])
    obj = _with_defaults(schema, obj)
    errs = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in OAS30Validator(schema).iter_errors(obj)]
    if errs:
        return "schema", errs
    errs = cel_errors(schema, obj, "")
    return ("cel" if errs else ""), errs


def pydantic_errors(obj: dict[str, Any]) -> list[str]:
    try:
        KINDS[obj["kind"]].model_validate(obj)
    except ValidationError as e:
        return [err["msg"] for err in e.errors()]
    return []


# --------------------------------------------------------------------------- manifests


def _docs(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted(folder.rglob("*.yaml")):
        text = string.Template(f.read_text()).safe_substitute(PLACEHOLDERS)
        for i, doc in enumerate(yaml.safe_load_all(text)):
            if isinstance(doc, dict) and doc.get("kind") in gen.KIND_BY_NAME:
                out.append((f"{f.relative_to(REPO)}#{i}", doc))
    return out


VALID = _docs(REPO / "examples") + _docs(MANIFESTS / "valid")
INVALID = _docs(MANIFESTS / "invalid")


def test_there_are_manifests_to_check() -> None:
    assert len(VALID) >= 8 and len(INVALID) >= 10


@pytest.mark.parametrize("where, doc", VALID, ids=[w for w, _ in VALID])
def test_valid_manifest_validates_against_its_crd(where: str, doc: dict[str, Any]) -> None:
    layer, errs = crd_errors(doc)
    assert errs == [], f"{where}: refused by {layer}: {errs}"
    assert pydantic_errors(doc) == []


@pytest.mark.parametrize("where, doc", INVALID, ids=[w for w, _ in INVALID])
def test_invalid_manifest_is_refused_with_its_message(where: str, doc: dict[str, Any]) -> None:
    notes = doc["metadata"]["annotations"]
    layer, errs = crd_errors(doc)
    assert layer == notes["e2e.switchyard.dev/rejected-by"], errs
    if layer == "cel":
        assert any(notes["e2e.switchyard.dev/expect"] in e for e in errs), errs
    assert pydantic_errors(doc), "the model accepts what the CRD refuses"


# --------------------------------------------------------------------------- agreement table

OK = None


def _obj(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "switchyard.dev/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}


SRC, CAP, AB = "ModelSource", "CapabilityProfile", "AssistantBinding"
T = lambda name, model=None: {"sourceRef": {"name": name}, **({"model": model} if model else {})}  # noqa: E731

SAMPLES: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("secret credential", SRC, {"provider": "openai", "credentialRef": {"name": "k", "key": "api-key"}}, OK),
    ("keyless local", SRC, {"provider": "openai-compatible", "baseURL": "http://ollama:11434/v1"}, OK),
    ("env credential", SRC, {"provider": "anthropic", "credentialRef": {"env": "ANTHROPIC_API_KEY"}}, OK),
    ("explicit nulls", SRC, {"provider": "openai", "baseURL": None, "credentialRef": None, "models": None}, OK),
    ("null inside credentialRef", SRC, {"provider": "openai", "credentialRef": {"name": "k", "key": "v", "env": None}}, OK),
    ("harmless header", SRC, {"provider": "openai", "headers": {"OpenAI-Organization": "org-1"}}, OK),
    ("sub-second timeout", SRC, {"provider": "gemini", "timeouts": {"connectSeconds": 0.5}}, OK),
    ("compatible needs url", SRC, {"provider": "openai-compatible"}, "baseURL is required for provider openai-compatible"),
    ("ftp url", SRC, {"provider": "openai", "baseURL": "ftp://x"}, "absolute http(s) URL"),
    ("url without scheme", SRC, {"provider": "openai", "baseURL": "api.openai.com"}, "absolute http(s) URL"),
    ("authorization header", SRC, {"provider": "openai", "headers": {"Authorization": "x"}}, "carry credentials"),
    ("api key header any case", SRC, {"provider": "gemini", "headers": {"X-Goog-API-Key": "x"}}, "carry credentials"),
    ("cookie header", SRC, {"provider": "openai", "headers": {"cookie": "x"}}, "carry credentials"),
    ("both credential forms", SRC, {"provider": "openai", "credentialRef": {"name": "k", "key": "v", "env": "E"}}, "not both"),
    ("half a secret ref", SRC, {"provider": "openai", "credentialRef": {"key": "v"}}, "needs both `name` and `key`"),
    ("empty credentialRef", SRC, {"provider": "openai", "credentialRef": {}}, "set {name, key} (a Secret) or {env}"),
    ("openai over Responses", SRC, {"provider": "openai", "protocol": "openai-responses"}, OK),
    ("compatible over Responses", SRC, {"provider": "openai-compatible", "baseURL": "http://vllm:8000/v1", "protocol": "openai-responses"}, OK),
    ("explicit null protocol", SRC, {"provider": "anthropic", "protocol": None}, "schema"),  # an enum is not nullable
    ("openai over chat, said", SRC, {"provider": "openai", "protocol": "openai-chat"}, OK),
    ("anthropic over Responses", SRC, {"provider": "anthropic", "protocol": "openai-responses"}, "protocol must be one the provider speaks"),
    ("openrouter over Responses", SRC, {"provider": "openrouter", "protocol": "openai-responses"}, "protocol must be one the provider speaks"),
    ("openai over gemini", SRC, {"provider": "openai", "protocol": "gemini"}, "protocol must be one the provider speaks"),
    ("unknown protocol on a source", SRC, {"provider": "openai", "protocol": "soap"}, "schema"),
    ("Responses profile", CAP, {"protocol": "openai-responses"}, OK),
    ("unknown provider", SRC, {"provider": "azure"}, "schema"),
    ("zero timeout", SRC, {"provider": "openai", "timeouts": {"connectSeconds": 0}}, "schema"),
    ("control character in a header value", SRC, {"provider": "openai", "headers": {"X-Team": "a\x01b"}}, "schema"),
    ("CR LF in a header value", SRC, {"provider": "openai", "headers": {"X-Team": "a\r\nX-Injected: 1"}}, "schema"),
    ("header name with a space", SRC, {"provider": "openai", "headers": {"X Team": "a"}}, "header names must be HTTP tokens"),
    ("header name with a colon", SRC, {"provider": "openai", "headers": {"X-Team:": "a"}}, "header names must be HTTP tokens"),
    ("too many headers", SRC, {"provider": "openai", "headers": {f"x-h{i}": "v" for i in range(65)}}, "schema"),
    ("bad env name", SRC, {"provider": "openai", "credentialRef": {"env": "1BAD"}}, "schema"),
    ("several keys", SRC, {"provider": "openai", "credentialRefs": [{"name": "k", "key": "a"}, {"name": "k2", "key": "b"}]}, OK),
    ("one key in the list", SRC, {"provider": "openai", "credentialRefs": [{"name": "k", "key": "a"}]}, OK),
    ("null credentialRefs", SRC, {"provider": "openai", "credentialRef": {"name": "k", "key": "a"}, "credentialRefs": None}, OK),
    ("both credential fields", SRC, {"provider": "openai", "credentialRef": {"name": "k", "key": "a"},
                                     "credentialRefs": [{"name": "k", "key": "b"}]}, "set credentialRef or credentialRefs, not both"),
    ("empty credentialRefs", SRC, {"provider": "openai", "credentialRefs": []}, "schema"),
    ("nine keys", SRC, {"provider": "openai", "credentialRefs": [{"name": "k", "key": f"a{i}"} for i in range(9)]}, "schema"),
    ("half a ref in the list", SRC, {"provider": "openai", "credentialRefs": [{"key": "v"}]}, "needs both `name` and `key`"),
    ("profile", CAP, {"protocol": "gemini", "onUnsupported": {"tools": "reject", "topK": "strip"}}, OK),
    ("profile with limits", CAP, {"protocol": "openai-chat", "features": {"maxContextTokens": 8192, "maxOutputTokens": None}}, OK),
    ("unknown feature", CAP, {"protocol": "openai-chat", "onUnsupported": {"teleport": "strip"}}, "onUnsupported keys must be feature names"),
    ("unknown action", CAP, {"protocol": "openai-chat", "onUnsupported": {"tools": "explode"}}, "schema"),
    ("negative stop sequences", CAP, {"protocol": "openai-chat", "features": {"stopSequences": -1}}, "schema"),
    ("unknown protocol", CAP, {"protocol": "soap"}, "schema"),
    ("priced source", SRC, {"provider": "openai", "pricing": [
        {"model": "gpt-5", "currency": "USD", "inputPerMillion": 1.25, "outputPerMillion": 10, "cachedInputPerMillion": 0.125},
        {"model": "*", "inputPerMillion": 0, "outputPerMillion": 0, "cacheWritePerMillion": None}]}, OK),
    ("priced profile", CAP, {"protocol": "anthropic-messages", "pricing": {"currency": "EUR", "inputPerMillion": 3,
                                                                          "outputPerMillion": 15, "cacheWritePerMillion": 3.75}}, OK),
    ("negative price", SRC, {"provider": "openai", "pricing": [{"model": "m", "inputPerMillion": -1, "outputPerMillion": 1}]}, "schema"),
    ("negative cached price", CAP, {"protocol": "gemini", "pricing": {"inputPerMillion": 1, "outputPerMillion": 1,
                                                                      "cachedInputPerMillion": -0.01}}, "schema"),
    ("absurd price", SRC, {"provider": "openai", "pricing": [{"model": "m", "inputPerMillion": 2e6, "outputPerMillion": 1}]}, "schema"),
    ("price without output", SRC, {"provider": "openai", "pricing": [{"model": "m", "inputPerMillion": 1}]}, "schema"),
    ("price without model", SRC, {"provider": "openai", "pricing": [{"inputPerMillion": 1, "outputPerMillion": 1}]}, "schema"),
    ("currency not a code", CAP, {"protocol": "gemini", "pricing": {"currency": "dollars", "inputPerMillion": 1,
                                                                    "outputPerMillion": 1}}, "schema"),
    ("full chain", AB, {"primary": T("a", "m"), "fallbacks": [T("b"), T("c", "x"), T("a", "n")]}, OK),
    ("explicit null primary", AB, {"primary": None, "fallbacks": [T("a")]}, OK),
    ("same source, other model", AB, {"primary": T("a", "m1"), "fallbacks": [T("a", "m2"), T("a")]}, OK),
    ("legacy string", AB, {"boundCredential": "openai-main"}, OK),
    ("legacy object", AB, {"boundCredential": T("a", "m")}, OK),
    ("selector", AB, {"selector": {"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}}, OK),
    ("fallback repeats primary", AB, {"primary": T("a", "m"), "fallbacks": [T("a", "m")]}, "repeats the primary"),
    ("fallback repeats primary, no models", AB, {"primary": T("a"), "fallbacks": [T("b"), T("a")]}, "repeats the primary"),
    ("two equal fallbacks", AB, {"primary": T("a"), "fallbacks": [T("b", "m"), T("b", "m")]}, "two fallbacks have the same"),
    ("equal fallbacks, null primary", AB, {"primary": None, "fallbacks": [T("b"), T("b")]}, "two fallbacks have the same"),
    ("four fallbacks", AB, {"primary": T("a"), "fallbacks": [T("b"), T("c"), T("d"), T("e")]}, "schema"),
    ("breaker zero", AB, {"breaker": {"consecutiveFailures": 0}}, "schema"),
    ("breaker cooldown", AB, {"breaker": {"cooldownSeconds": 4000}}, "schema"),
    ("unknown failure kind", AB, {"fallbackOn": ["418"]}, "schema"),
    ("bad source name", AB, {"primary": T("Bad_Name")}, "schema"),
    ("empty alias", AB, {"aliases": [""]}, "schema"),
    ("limits", AB, {"limits": {"requestsPerMinute": 30, "tokensPerMinute": 50000, "tokensPerDay": 2000000,
                               "perCaller": {"requestsPerMinute": 10}}}, OK),
    ("empty limits", AB, {"limits": {}}, OK),
    ("null limits", AB, {"limits": None}, OK),
    ("zero requests per minute", AB, {"limits": {"requestsPerMinute": 0}}, "schema"),
    ("negative tokens per day", AB, {"limits": {"tokensPerDay": -5}}, "schema"),
    ("requests per minute too high", AB, {"limits": {"requestsPerMinute": 1_000_001}}, "schema"),
    ("fractional tokens per minute", AB, {"limits": {"tokensPerMinute": 1.5}}, "schema"),
    ("per-caller zero", AB, {"limits": {"perCaller": {"tokensPerMinute": 0}}}, "schema"),
]


@pytest.mark.parametrize("what, kind, spec, expect", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_crd_and_model_agree(what: str, kind: str, spec: dict[str, Any], expect: str | None) -> None:
    obj = _obj(kind, spec)
    layer, errs = crd_errors(obj)
    model_errs = pydantic_errors(obj)
    if expect is OK:
        assert errs == [], f"the CRD refuses ({layer}) what should pass: {errs}"
        assert model_errs == [], f"the model refuses what the CRD accepts: {model_errs}"
        return
    assert model_errs, "the model accepts what should be refused"
    if expect == "schema":
        assert layer == "schema", errs
    else:
        assert layer == "cel" and any(expect in e for e in errs), errs
        if kind == SRC:  # these rules restate the model's validators word for word
            assert any(expect in e for e in model_errs), (expect, model_errs)


def test_known_gap_bound_credential_shape_is_checked_by_the_operator_only() -> None:
    """`boundCredential: TierRef | str` has no structural schema, so the API server keeps
    whatever it is given; the model refuses it and the operator reports InvalidSpec."""
    obj = _obj(AB, {"boundCredential": 42})
    assert crd_errors(obj) == ("", [])
    assert pydantic_errors(obj)


@pytest.mark.parametrize(
    "breaker, ok",
    [({}, True), ({"consecutiveFailures": 100, "cooldownSeconds": 3600, "halfOpenRequests": 1}, True),
     ({"consecutiveFailures": 0}, False), ({"cooldownSeconds": 0.5}, False), ({"halfOpenRequests": 101}, False)],
)
def test_breaker_range_rule_restates_the_model(breaker: dict[str, Any], ok: bool) -> None:
    # The schema's minimum/maximum fire first on the API server; the rule is the
    # readable summary, checked here on its own.
    from switchyard.api.models import Breaker

    (rule,) = CEL_RULES["Breaker"]
    value = _cel_value(openapi_schema(Breaker), breaker)
    got = _program(rule.rule).evaluate({"self": celpy.json_to_cel(value)})
    assert bool(got) is ok
    assert "cooldownSeconds 1-3600" in rule.message


def test_every_python_validator_has_a_cel_rule() -> None:
    # Models with a model/field validator must have their rules in CEL_RULES.
    from switchyard.api import models as m

    with_validators = {
        name for name, cls in vars(m).items()
        if isinstance(cls, type) and getattr(cls, "__pydantic_decorators__", None)
        and (cls.__pydantic_decorators__.model_validators or cls.__pydantic_decorators__.field_validators)
    }
    assert with_validators <= set(CEL_RULES), with_validators - set(CEL_RULES)


if os.environ.get("SWITCHYARD_PRINT_CEL"):  # pragma: no cover - debugging aid
    for _w, _d in INVALID:
        print(_w, crd_errors(_d))
