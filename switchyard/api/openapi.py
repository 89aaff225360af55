"""Pydantic JSON schema -> structural OpenAPI v3 schema, as a CRD needs it.

The API server accepts only structural schemas, so ``openapi_schema`` takes pydantic's
JSON schema of a model (a spec model from ``models.py`` or a status model from
``status.py``) and inlines every ``$ref``, turns ``anyOf [X, null]`` into ``X`` +
``nullable: true``, turns JSON-Schema-2020 exclusive bounds into their OpenAPI 3.0 form,
adds back the defaults pydantic leaves out of its schema (``default_factory``) where they
mean something, and attaches the CEL rules of ``cel.py`` to every use of a model. Keys come
out in a fixed, readable order. ``crd.py`` puts the results into the CRDs; nothing here
knows about kinds or files.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from . import models as m
from . import status
from .cel import CEL_RULES

# Fields the models leave undescribed (Kubernetes' own label-selector shape).
FALLBACK_DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("LabelSelector", "matchLabels"): "Labels a pod must carry, all of them (key: value).",
    ("LabelSelector", "matchExpressions"): "Set-based requirements a pod's labels must meet, all of them.",
    ("LabelSelectorRequirement", "key"): "The label key the requirement applies to.",
    ("LabelSelectorRequirement", "operator"): "In, NotIn, Exists or DoesNotExist.",
    ("LabelSelectorRequirement", "values"): "Label values for In and NotIn; empty for Exists and DoesNotExist.",
}

_DROP = {"title", "deprecated", "$defs", "propertyNames", "const", "examples"}
# `propertyNames` is not structural; its enum becomes a CEL rule (CEL_RULES) and, here, a
# `maxProperties` bound (a map keyed by N names has at most N entries) that keeps the rule
# inside the API server's CEL cost budget.


def _model_classes() -> dict[str, type[BaseModel]]:
    """Class name -> class for every model a schema's ``$defs`` can name (specs and statuses)."""
    out: dict[str, type[BaseModel]] = {}
    for mod_vars in (vars(m), vars(status)):
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
