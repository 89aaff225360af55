"""The CEL rules (``x-kubernetes-validations``) that restate the models' Python validators.

Each pydantic model in ``models.py`` that checks something in a ``field_validator`` or
``model_validator`` has its rules here, keyed by class name, each with the message the API
server prints when ``kubectl apply`` breaks it. ``openapi.py`` attaches them to every use
of that model in the CRDs' schemas, and ``docs/resources.md`` lists them under each table.
``tests/unit/api/test_crd_validation.py`` runs one table of samples through pydantic and
through these rules and fails when they disagree, and fails when a model with a validator
has no entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from . import models as m


@dataclass(frozen=True)
class Rule:
    """One `x-kubernetes-validations` entry, attached to every use of a model."""

    rule: str
    message: str
    field_path: str | None = None
    # FieldValueInvalid (default), FieldValueForbidden or FieldValueRequired. Not
    # FieldValueDuplicate: the API server prints "Duplicate value" and drops the message.
    reason: str | None = None

    def render(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def _cel_list(values: Any) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _range_rule(model: type[BaseModel], what: str) -> Rule:
    """One readable rule that restates a model's numeric ranges (ge/le) for all its fields."""
    clauses, parts = [], []
    for name, info in model.model_fields.items():
        lo = hi = None
        for meta in info.metadata:
            lo = getattr(meta, "ge", lo)
            hi = getattr(meta, "le", hi)
        if lo is None or hi is None:
            continue
        alias = to_camel(name)
        num = (lambda v: f"{float(v)}") if info.annotation is float else (lambda v: f"{int(v)}")
        clauses.append(f"(!has(self.{alias}) || (self.{alias} >= {num(lo)} && self.{alias} <= {num(hi)}))")
        parts.append(f"{alias} {lo:g}-{hi:g}")
    return Rule(" && ".join(clauses), f"{what} numbers out of range: " + ", ".join(parts))


def _model_key(var: str) -> str:
    return f"(has({var}.model) ? {var}.model : '')"


_NEEDS_BASE_URL = [p.value for p, url in m.DEFAULT_BASE_URL.items() if url is None]

CEL_RULES: dict[str, list[Rule]] = {
    # CredentialRef._one_form, one rule per message.
    "CredentialRef": [
        Rule(
            "!(has(self.env) && (has(self.name) || has(self.key)))",
            "set either {name, key} (a Secret) or {env}, not both",
        ),
        Rule("has(self.name) == has(self.key)", "a Secret reference needs both `name` and `key`"),
        Rule(
            "has(self.name) || has(self.key) || has(self.env)",
            "set {name, key} (a Secret) or {env} (standalone only)",
        ),
    ],
    "ModelSourceSpec": [
        # ModelSourceSpec._one_credential_field
        Rule(
            "!(has(self.credentialRef) && has(self.credentialRefs))",
            "set credentialRef or credentialRefs, not both",
            field_path=".credentialRefs",
        ),
        # ModelSourceSpec._base_url_needed
        Rule(
            f"!(self.provider in {_cel_list(_NEEDS_BASE_URL)}) || has(self.baseURL)",
            "baseURL is required for provider " + " and ".join(_NEEDS_BASE_URL),
            field_path=".baseURL",
            reason="FieldValueRequired",
        ),
        # ModelSourceSpec._protocol_fits_provider
        Rule(
            "!has(self.protocol) || "
            + " || ".join(
                f"(self.provider == '{p.value}' && self.protocol in {_cel_list(x.value for x in ps)})"
                for p, ps in m.PROVIDER_PROTOCOLS.items()
            ),
            "protocol must be one the provider speaks: "
            + "; ".join(f"{p.value}: {', '.join(x.value for x in ps)}" for p, ps in m.PROVIDER_PROTOCOLS.items()),
            field_path=".protocol",
        ),
        # ModelSourceSpec._url_shape
        Rule(
            "!has(self.baseURL) || self.baseURL.matches('^https?://[^/\\\\s]+')",
            "baseURL must be an absolute http(s) URL, e.g. https://api.openai.com/v1",
            field_path=".baseURL",
        ),
        # ModelSourceSpec._no_credential_headers (names; values carry a pattern)
        Rule(
            "!has(self.headers) || self.headers.all(h, h.matches('" + m.HEADER_NAME.replace("\\", "\\\\").replace("'", "\\'") + "'))",
            "header names must be HTTP tokens (letters, digits and !#$%&'*+.^_`|~-)",
            field_path=".headers",
        ),
        Rule(
            "!has(self.headers) || self.headers.all(h, !h.matches('(?i)^("
            + "|".join(sorted(m.CREDENTIAL_HEADERS))
            + ")$'))",
            "headers " + ", ".join(sorted(m.CREDENTIAL_HEADERS)) + " carry credentials; use credentialRef (a Secret) instead",
            field_path=".headers",
            reason="FieldValueForbidden",
        ),
    ],
    "CapabilityProfileSpec": [
        # the keys of onUnsupported are FeatureName (pydantic: propertyNames, not structural)
        Rule(
            f"!has(self.onUnsupported) || self.onUnsupported.all(f, f in {_cel_list(m.FEATURE_NAMES)})",
            "onUnsupported keys must be feature names: " + ", ".join(m.FEATURE_NAMES),
            field_path=".onUnsupported",
        ),
    ],
    "AssistantBindingSpec": [
        Rule(
            "!has(self.fallbacks) || size(self.fallbacks) <= 3",
            "at most 3 fallbacks: a chain is the primary plus up to three fallback tiers",
            field_path=".fallbacks",
        ),
        # AssistantBindingSpec._no_duplicate_tiers (a tier is sourceRef.name + model)
        Rule(
            "!has(self.primary) || !has(self.fallbacks) || !self.fallbacks.exists(f, "
            f"f.sourceRef.name == self.primary.sourceRef.name && {_model_key('f')} == {_model_key('self.primary')})",
            "duplicate tier: a fallback repeats the primary (same sourceRef and model)",
            field_path=".fallbacks",
        ),
        Rule(
            "!has(self.fallbacks) || self.fallbacks.all(a, self.fallbacks.exists_one(b, "
            f"b.sourceRef.name == a.sourceRef.name && {_model_key('b')} == {_model_key('a')}))",
            "duplicate tier: two fallbacks have the same sourceRef and model",
            field_path=".fallbacks",
        ),
    ],
    "Breaker": [_range_rule(m.Breaker, "breaker")],
}
"""CEL rules per model class name. Each restates a Python validator of that model."""
