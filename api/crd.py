"""The three CustomResourceDefinitions, rendered from the pydantic models.

The models in ``models.py`` are the single source of truth for the specs; this module
turns them into ``apiextensions.k8s.io/v1`` CRDs so the API server enforces the same
shape, defaults, enums and ranges before the operator ever sees an object:

- structural OpenAPI v3 schemas: pydantic's JSON schema with every ``$ref`` inlined,
  ``anyOf [X, null]`` turned into ``X`` + ``nullable: true``, JSON-Schema-2020 exclusive
  bounds turned into their OpenAPI 3.0 form, and the defaults that pydantic leaves out of
  its schema (``default_factory``) added back where they mean something;
- ``x-kubernetes-validations`` CEL rules for what the models check in Python validators
  (``CEL_RULES``; ``tests/unit/test_crd_cel.py`` runs the same samples through pydantic
  and through these rules and fails when they disagree);
- the status subresource, whose schema comes from the status models below: exactly what
  the operator writes (``switchyard.operator.status`` builds them);
- short names, the ``switchyard`` category and printer columns.

Run ``python -m switchyard.api.crd`` to rewrite ``crds/`` and ``docs/resources.md``;
``--check`` exits non-zero when a committed file differs from what this module renders
(CI runs the same comparison in ``tests/unit/test_crd_generated.py``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from switchyard.sidecar.contract.report import FAILURE_CLASSES, TIER_STATES

from . import models as m

# --------------------------------------------------------------------------- status models
#
# What the operator writes under `.status`. Plain pydantic models (camelCase on the wire,
# like the specs) so the CRD's status schema and the operator's status builder cannot drift.

ConditionStatus = Literal["True", "False", "Unknown"]
BreakerState = Literal[(*TIER_STATES, "unknown")]  # type: ignore[valid-type]  # unknown: no pod reported the tier
FailureClass = Literal[FAILURE_CLASSES]  # type: ignore[valid-type]


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Condition(_Status):
    """A standard Kubernetes condition (the shape of metav1.Condition)."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason for the condition's last transition.")
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was computed from."
    )


class TierBreakerStatus(_Status):
    """One tier's health, as the selected sidecars report it (see docs/failure-handling.md)."""

    state: BreakerState = Field(
        description="Worst state across the pods that report this tier: disabled > open > rate-limited > "
        "half-open > closed; unknown when no pod reported it. disabled: a permanent failure (401, 403, "
        "404 model) took the tier out until its ModelSource, Secret or the binding changes, or an admin resets it."
    )
    closed_in_pods: int = Field(default=0, ge=0, description="Pods in which this tier is closed (in service).")
    open_in_pods: int = Field(default=0, ge=0, description="Pods in which this tier's breaker is open.")
    half_open_in_pods: int = Field(default=0, ge=0, description="Pods in which this tier's breaker is half-open.")
    rate_limited_in_pods: int = Field(
        default=0, ge=0, description="Pods in which this tier waits out the upstream's Retry-After."
    )
    disabled_in_pods: int = Field(default=0, ge=0, description="Pods in which this tier is disabled.")
    reporting_pods: int = Field(default=0, ge=0, description="Pods that reported this tier (configured with the current chain).")
    disabled_reason: str | None = Field(
        default=None, max_length=256,
        description="Why the tier is disabled, as the upstream answered it (e.g. 401); absent unless disabled in some pod.",
    )
    last_failure: str | None = Field(default=None, description="Most recent failure reason reported by any pod.")
    last_failure_class: FailureClass | None = Field(
        default=None, description="The class of that failure: transient, rate-limited or permanent."
    )
    last_failure_at: str | None = Field(default=None, description="When that failure happened (RFC 3339).")


class ChainTierStatus(_Status):
    """One tier of the resolved chain: resolvable, or exactly why not."""

    tier: int = Field(ge=0, description="Position in the chain: 0 is the primary, 1-3 the fallbacks.")
    source: str = Field(description="The ModelSource name.")
    model: str | None = Field(default=None, description="The model requested from it (after defaultModel).")
    protocol: str | None = Field(default=None, description="Wire protocol of the tier.")
    resolvable: bool = Field(description="True when the tier can take traffic (source, secret, model and profile all resolve).")
    reason: str | None = Field(
        default=None,
        description="Why the tier is not resolvable: SourceNotFound, SecretNotFound, SecretKeyMissing, "
        "SecretUnreadable, EnvCredentialNotAllowed, ModelNotSet, ModelNotAllowed, ModelNotInCatalog, "
        "ProfileNotFound or ProtocolMismatch.",
    )
    message: str | None = Field(default=None, description="The exact problem, naming the object and key at fault.")
    incompatible: list[str] = Field(
        default_factory=list, max_length=16,
        description="What spec.requires asks for that this tier's CapabilityProfile lacks (e.g. vision, "
        "maxContextTokens>=100000); absent when the tier has all of it. Requests skip an incompatible tier.",
    )
    degradable: bool | None = Field(
        default=None,
        description="Set with incompatible: true when allowDegrading lets the tier serve anyway (degraded) "
        "because its profile strips or maps every missing feature; false when requests skip it.",
    )
    breaker: TierBreakerStatus | None = Field(default=None, description="Breaker state from the sidecars; absent until a pod reports.")


class ActiveTierStatus(_Status):
    """The tier that served the binding's most recent request (from the sidecars' last-used record)."""

    tier: int = Field(ge=0, description="Chain position of the tier that served last.")
    source: str = Field(description="Its ModelSource.")
    model: str = Field(description="Its model.")
    last_used_at: str | None = Field(default=None, description="When it last served (RFC 3339).")
    pods: int = Field(default=0, ge=0, description="Pods whose most recent request this tier served.")


class PodProblem(_Status):
    """A selected pod whose sidecar does not run the current config, and why."""

    pod: str = Field(description="Pod name.")
    reason: str = Field(
        description="AdminTokenMissing, NoAddress, Unreachable, Unauthorized, SchemaMismatch, Rejected or Stale."
    )
    message: str = Field(default="", description="Details (never a secret).")


class PodsStatus(_Status):
    """How many pods carry this binding and run its current config."""

    selected: int = Field(default=0, ge=0, description="Pods matched by spec.selector that carry the sidecar.")
    configured: int = Field(default=0, ge=0, description="Of those, pods whose sidecar runs the current config version.")
    problems: list[PodProblem] = Field(
        default_factory=list, max_length=20, description="Up to 20 pods that are not configured, with the reason."
    )


class BindingSummary(_Status):
    """Short strings for `kubectl get assistantbinding` columns."""

    primary: str = Field(description="PRIMARY column: source/model of tier 0, or (unbound: reason).")
    active: str | None = Field(default=None, description="ACTIVE column: the tier serving now, e.g. `tier1 backup/gpt-4o-mini`; `-` before any traffic.")
    breakers: str = Field(
        description="BREAKERS column: tiers out of service (breaker open or tier disabled) in at least one pod / tiers in the chain."
    )
    pods: str = Field(description="PODS column: configured/selected.")


class AssistantBindingStatus(_Status):
    """What the operator reports on an AssistantBinding."""

    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation this status describes.")
    primary_configured: bool = Field(
        default=False,
        description="True once spec.primary has been set (to a tier or to null). Kept across restarts so a "
        "primary that was cleared stays cleared and the deprecated boundCredential is never read again.",
    )
    chain: list[ChainTierStatus] = Field(default_factory=list, max_length=4, description="The resolved chain, tier by tier.")
    active: ActiveTierStatus | None = Field(default=None, description="The tier serving now; absent before any traffic.")
    pods: PodsStatus = Field(default_factory=PodsStatus, description="Selected and configured pods.")
    alias_conflicts: list[str] = Field(
        default_factory=list, max_length=50, description="Aliases another binding of a shared pod already claims: `alias (taken by ns/name)`."
    )
    summary: BindingSummary | None = Field(default=None, description="Printer-column strings.")
    conditions: list[Condition] = Field(
        default_factory=list, max_length=8, description="Resolved, Ready and ChainCompatible."
    )


class CatalogStatus(_Status):
    """The live model list of a ModelSource, from its list-models endpoint."""

    models: list[str] = Field(default_factory=list, max_length=2000, description="Model ids the upstream lists (at most 2000).")
    count: int = Field(default=0, ge=0, description="How many models the upstream lists (may exceed the ids kept).")
    fetched_at: str | None = Field(default=None, description="When the list was fetched (RFC 3339).")


class ModelSourceStatus(_Status):
    """What the operator reports on a ModelSource."""

    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation this status describes.")
    catalog: CatalogStatus | None = Field(default=None, description="The live model catalog; absent until fetched.")
    conditions: list[Condition] = Field(default_factory=list, max_length=8, description="CredentialValid and CatalogReady.")


class CapabilityProfileStatus(_Status):
    """What the operator reports on a CapabilityProfile."""

    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation this status describes.")
    conditions: list[Condition] = Field(default_factory=list, max_length=8, description="Valid.")


# --------------------------------------------------------------------------- CEL rules


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
        # ModelSourceSpec._base_url_needed
        Rule(
            f"!(self.provider in {_cel_list(_NEEDS_BASE_URL)}) || has(self.baseURL)",
            "baseURL is required for provider " + " and ".join(_NEEDS_BASE_URL),
            field_path=".baseURL",
            reason="FieldValueRequired",
        ),
        # ModelSourceSpec._url_shape
        Rule(
            "!has(self.baseURL) || self.baseURL.matches('^https?://[^/\\\\s]+')",
            "baseURL must be an absolute http(s) URL, e.g. https://api.openai.com/v1",
            field_path=".baseURL",
        ),
        # ModelSourceSpec._no_credential_headers
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

# Fields the models leave undescribed (Kubernetes' own label-selector shape).
FALLBACK_DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("LabelSelector", "matchLabels"): "Labels a pod must carry, all of them (key: value).",
    ("LabelSelector", "matchExpressions"): "Set-based requirements a pod's labels must meet, all of them.",
    ("LabelSelectorRequirement", "key"): "The label key the requirement applies to.",
    ("LabelSelectorRequirement", "operator"): "In, NotIn, Exists or DoesNotExist.",
    ("LabelSelectorRequirement", "values"): "Label values for In and NotIn; empty for Exists and DoesNotExist.",
}

# --------------------------------------------------------------------------- schema conversion

_DROP = {"title", "deprecated", "$defs", "propertyNames", "const", "examples"}
# `propertyNames` is not structural; its enum becomes a CEL rule (CEL_RULES) and, here, a
# `maxProperties` bound (a map keyed by N names has at most N entries) that keeps the rule
# inside the API server's CEL cost budget.


def _model_classes() -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}
    for mod_vars in (vars(m), globals()):
        for name, obj in mod_vars.items():
            if isinstance(obj, type) and issubclass(obj, BaseModel):
                out[name] = obj
    return out


def _factory_defaults(cls: type[BaseModel]) -> dict[str, Any]:
    """Defaults pydantic leaves out of its JSON schema (default_factory), where they matter.

    A nested model gets ``default: {}`` so the API server fills in its own defaults; a
    non-empty list (``fallbackOn``) gets its value; empty lists and maps get none (absent
    and empty mean the same to the models, and nothing is gained by storing ``[]``).
    """
    out: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        if info.default_factory is None:
            continue
        value = info.default_factory()  # type: ignore[call-arg]
        alias = info.alias or to_camel(name)
        if isinstance(value, BaseModel):
            if any(f.default_factory is None and f.default is not None for f in type(value).model_fields.values()):
                out[alias] = {}
        elif value:
            out[alias] = value
    return out


class _Converter:
    def __init__(self, defs: dict[str, Any], *, defaults: bool) -> None:
        self.defs = defs
        self.defaults = defaults
        self.classes = _model_classes()

    def convert(self, node: dict[str, Any], owner: str | None = None) -> dict[str, Any]:
        node = dict(node)
        if "$ref" in node:
            name = node.pop("$ref").rsplit("/", 1)[-1]
            inner = self.convert(self.defs[name], owner=name)
            siblings = {k: v for k, v in node.items() if k not in _DROP}
            inner.update(self.convert(siblings, owner=None) if siblings else {})
            return inner
        if "anyOf" in node:
            options = node.pop("anyOf")
            non_null = [o for o in options if o != {"type": "null"}]
            nullable = len(non_null) < len(options)
            if len(non_null) == 1:
                out = self.convert(non_null[0])
            else:
                # A union of types (string or object) is not expressible structurally:
                # keep the value as is and let the operator validate it with the model.
                out = {"x-kubernetes-preserve-unknown-fields": True}
            rest = self.convert(node) if node else {}
            out.update(rest)
            if nullable:
                out["nullable"] = True
            return out

        out: dict[str, Any] = {}
        names = node.get("propertyNames", {}).get("enum")
        if names and "maxProperties" not in node:
            out["maxProperties"] = len(names)
        for key, value in node.items():
            if key in _DROP:
                continue
            if key == "default" and (value is None or not self.defaults):
                continue
            if key == "additionalProperties":
                if isinstance(value, dict):
                    out[key] = self.convert(value)
                continue  # `false`: pruning already drops unknown fields
            if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
                out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
                out[key] = True
                continue
            if key == "items":
                out[key] = self.convert(value)
                continue
            if key == "properties":
                props = {}
                for pname, pschema in value.items():
                    props[pname] = self.convert(pschema)
                    if "description" not in props[pname] and owner:
                        desc = FALLBACK_DESCRIPTIONS.get((owner, pname))
                        if desc:
                            props[pname]["description"] = desc
                out[key] = props
                continue
            out[key] = copy.deepcopy(value)

        if owner is not None and owner in self.classes:
            cls = self.classes[owner]
            if self.defaults and "properties" in out:
                for alias, default in _factory_defaults(cls).items():
                    out["properties"].setdefault(alias, {}).setdefault("default", default)
            rules = CEL_RULES.get(owner)
            if rules:
                out["x-kubernetes-validations"] = [r.render() for r in rules]
        if out.get("enum") and "type" not in out:
            out["type"] = "string"
        return _ordered(out)


_KEY_ORDER = (
    "type", "description", "nullable", "default", "enum", "format", "minimum", "exclusiveMinimum",
    "maximum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "maxProperties",
    "x-kubernetes-preserve-unknown-fields", "required", "properties", "additionalProperties", "items",
    "x-kubernetes-validations",
)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Keys in a fixed, readable order (type and description first, children last)."""
    rank = {k: i for i, k in enumerate(_KEY_ORDER)}
    return dict(sorted(node.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def openapi_schema(model: type[BaseModel], *, defaults: bool = True) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (refs inlined, nullable, defaults, CEL).

    ``defaults=False`` for status schemas: the operator writes the whole status, and the
    API server should not invent any of it.
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    conv = _Converter(raw.get("$defs", {}), defaults=defaults)
    return conv.convert(raw, owner=model.__name__)


# --------------------------------------------------------------------------- the CRDs


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[dict[str, Any], ...]


def _cond(type_: str, field: str = "status") -> str:
    return f'.status.conditions[?(@.type=="{type_}")].{field}'


AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind="AssistantBinding",
        plural="assistantbindings",
        singular="assistantbinding",
        short_names=("ab",),
        spec=m.AssistantBindingSpec,
        status=AssistantBindingStatus,
        description="An assistant's routing identity: its explicit primary, up to three fallbacks, "
        "and the circuit breaker of each tier.",
        columns=(
            {"name": "Primary", "type": "string", "jsonPath": ".status.summary.primary",
             "description": "source/model of tier 0, or why the binding is unbound"},
            {"name": "Active", "type": "string", "jsonPath": ".status.summary.active",
             "description": "The tier serving now (last used, from the sidecars)"},
            {"name": "Breakers", "type": "string", "jsonPath": ".status.summary.breakers",
             "description": "Tiers out of service (breaker open or tier disabled) in at least one pod / tiers"},
            {"name": "Pods", "type": "string", "jsonPath": ".status.summary.pods",
             "description": "Pods running the current config / pods selected"},
            {"name": "Ready", "type": "string", "jsonPath": _cond("Ready"),
             "description": "Can the binding serve now?"},
            AGE,
            {"name": "Reason", "type": "string", "jsonPath": _cond("Ready", "reason"), "priority": 1,
             "description": "Why it is (not) ready"},
            {"name": "Compatible", "type": "string", "jsonPath": _cond("ChainCompatible"), "priority": 1,
             "description": "Does every tier have what spec.requires asks for?"},
        ),
    ),
    KindInfo(
        kind="ModelSource",
        plural="modelsources",
        singular="modelsource",
        short_names=("ms",),
        spec=m.ModelSourceSpec,
        status=ModelSourceStatus,
        description="One concrete upstream: a provider endpoint with its credential.",
        columns=(
            {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"},
            {"name": "Model", "type": "string", "jsonPath": ".spec.defaultModel",
             "description": "The default model"},
            {"name": "Models", "type": "integer", "jsonPath": ".status.catalog.count",
             "description": "Size of the live catalog"},
            {"name": "Credential", "type": "string", "jsonPath": _cond("CredentialValid"),
             "description": "Did the upstream accept the credential?"},
            AGE,
            {"name": "Base URL", "type": "string", "jsonPath": ".spec.baseURL", "priority": 1},
            {"name": "Catalog", "type": "string", "jsonPath": _cond("CatalogReady", "reason"), "priority": 1},
        ),
    ),
    KindInfo(
        kind="CapabilityProfile",
        plural="capabilityprofiles",
        singular="capabilityprofile",
        short_names=("cap",),
        spec=m.CapabilityProfileSpec,
        status=CapabilityProfileStatus,
        description="What a destination supports, and what to do with each feature it does not.",
        columns=(
            {"name": "Protocol", "type": "string", "jsonPath": ".spec.protocol"},
            {"name": "Streaming", "type": "boolean", "jsonPath": ".spec.features.streaming"},
            {"name": "Tools", "type": "boolean", "jsonPath": ".spec.features.tools"},
            {"name": "Vision", "type": "boolean", "jsonPath": ".spec.features.vision"},
            {"name": "Reasoning", "type": "string", "jsonPath": ".spec.features.reasoning"},
            AGE,
            {"name": "Context", "type": "integer", "jsonPath": ".spec.features.maxContextTokens", "priority": 1},
        ),
    ),
)

KIND_BY_NAME = {k.kind: k for k in KINDS}


def crd(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec_schema = openapi_schema(info.spec)
    spec_schema.pop("description", None)
    spec_schema["description"] = (info.spec.__doc__ or "").strip().splitlines()[0]
    status_schema = openapi_schema(info.status, defaults=False)
    required = ["spec"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{m.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "switchyard"},
        },
        "spec": {
            "group": m.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": ["switchyard"],
            },
            "versions": [
                {
                    "name": m.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in info.columns],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": info.description,
                            "required": required,
                            "properties": {
                                "apiVersion": {"type": "string", "description": "switchyard.dev/v1alpha1"},
                                "kind": {"type": "string", "description": info.kind},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for every kind."""
    return {f"{info.plural}.{m.GROUP}.yaml": crd(info) for info in KINDS}


# --------------------------------------------------------------------------- docs/resources.md


def _type_of(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-preserve-unknown-fields"):
        t = "any"
    elif node.get("type") == "array":
        t = f"[]{_type_of(node.get('items', {}))}"
    elif node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        t = f"map[string]{_type_of(node['additionalProperties'])}"
    else:
        t = str(node.get("type", "any"))
    return t


def _checks(node: dict[str, Any], required: bool) -> str:
    out = []
    if required:
        out.append("required")
    if node.get("nullable"):
        out.append("may be null")
    if "enum" in node:
        out.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    items = node.get("items", {})
    if "enum" in items:
        out.append("each one of " + ", ".join(f"`{v}`" for v in items["enum"]))
    lo, hi = node.get("minimum"), node.get("maximum")
    if lo is not None:
        out.append(f"{'>' if node.get('exclusiveMinimum') else '>='} {lo:g}")
    if hi is not None:
        out.append(f"{'<' if node.get('exclusiveMaximum') else '<='} {hi:g}")
    for key, label in (("minLength", "min length"), ("maxLength", "max length"), ("maxItems", "max items")):
        if key in node:
            out.append(f"{label} {node[key]}")
    for key, label in (("maxLength", "each max length"), ("minLength", "each min length")):
        if key in items and items.get("type") == "string":
            out.append(f"{label} {items[key]}")
    if "pattern" in node:
        out.append("DNS-1123 subdomain" if node["pattern"] == m._DNS_SUBDOMAIN.pattern else f"pattern `{node['pattern']}`")
    return "; ".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _walk(node: dict[str, Any], path: str, required: bool, rows: list[str], rules: list[str], root: str) -> None:
    if path:
        default = node.get("default")
        shown = "" if default is None else f"`{json.dumps(default)}`"
        rows.append(
            f"| `{path}` | {_type_of(node)} | {shown} | {_cell(_checks(node, required))} | {_cell(node.get('description', ''))} |"
        )
    for r in node.get("x-kubernetes-validations", []):
        rules.append(f"- `.{root}{'.' + path if path else ''}`: {r['message']}  \n  `{r['rule']}`")
    target = node.get("items", node) if node.get("type") == "array" else node
    suffix = "[]" if node.get("type") == "array" else ""
    req = set(target.get("required", []))
    for name, child in target.get("properties", {}).items():
        _walk(child, f"{path}{suffix}.{name}" if path else name, name in req, rows, rules, root)


def resources_markdown() -> str:
    """docs/resources.md: every field of every kind, with default and validation."""
    lines = [
        "<!-- Generated by `python -m switchyard.api.crd` from api/models.py and api/crd.py; do not edit. -->",
        "",
        "# Resource reference",
        "",
        f"Group `{m.GROUP}`, version `{m.VERSION}`, all kinds namespaced. References (`sourceRef`,",
        "`capabilityProfileRef`, `credentialRef`) always point into the object's own namespace.",
        "Defaults are applied by the API server when an object is stored, so `kubectl get -o yaml`",
        "shows them. `may be null` fields accept an explicit `null`, which is kept (see `primary`).",
        "The CEL rules (`x-kubernetes-validations`) listed under each table are checked by the",
        "API server too: `kubectl apply` refuses an object that breaks one and prints the message. The status fields are written by the operator only;",
        "[status.md](status.md) explains the conditions and reasons.",
        "",
    ]
    for info in KINDS:
        doc = crd(info)
        version = doc["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        names = doc["spec"]["names"]
        lines += [
            f"## {info.kind}",
            "",
            info.description,
            "",
            f"Short name `{', '.join(names['shortNames'])}`, category `switchyard` (`kubectl get switchyard` lists all three kinds).",
            "",
            "`kubectl get " + names["shortNames"][0] + "` columns: "
            + ", ".join(f"{c['name'].upper()} (`{c['jsonPath']}`)" for c in version["additionalPrinterColumns"]
                        if not c.get("priority"))
            + "; with `-o wide` also "
            + ", ".join(c["name"].upper() for c in version["additionalPrinterColumns"] if c.get("priority"))
            + ".",
            "",
        ]
        for part in ("spec", "status"):
            rows: list[str] = []
            rules: list[str] = []
            _walk(schema["properties"][part], "", False, rows, rules, part)
            lines += [
                f"### {info.kind} `.{part}`",
                "",
                "| Field | Type | Default | Validation | Description |",
                "|---|---|---|---|---|",
                *rows,
                "",
            ]
            if rules:
                lines += [f"CEL rules (`x-kubernetes-validations`) under `.{part}`: where, message, rule.", "", *rules, ""]
    return "\n".join(lines).rstrip() + "\n"


HEADER = (
    "# Generated by `python -m switchyard.api.crd` from api/models.py and api/crd.py.\n"
    "# Do not edit: change the models and regenerate (a test fails when this file is stale).\n"
)


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def render_yaml(doc: dict[str, Any]) -> str:
    return HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def rendered_files(repo: Path) -> dict[Path, str]:
    """Every generated file (the CRDs, the Helm chart's copy of them, and the resource
    reference), path -> content."""
    out: dict[Path, str] = {}
    for name, doc in all_crds().items():
        text = render_yaml(doc)
        out[repo / "crds" / name] = text
        out[repo / "charts" / "switchyard" / "crds" / name] = text
    out[repo / "docs" / "resources.md"] = resources_markdown()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switchyard.api.crd", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="repository root")
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered_files(Path(args.repo)).items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
