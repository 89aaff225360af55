"""The generated CRDs are structural, as apiextensions.k8s.io/v1 requires.

No PyPI package checks these rules, so this is a short checker of the ones a schema
generator can break (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/
custom-resource-definitions/#specifying-a-structural-schema), plus the CRD-level rules
(names, printer columns, the status subresource). It is tested on bad schemas too, so a
checker that accepts everything cannot pass.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from switchyard.api import crd as gen

# Keywords of JSONSchemaProps that a structural schema may use (no $ref, no junctors
# here: our generator never needs anyOf/allOf/oneOf/not).
ALLOWED = {
    "type", "description", "nullable", "default", "enum", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems",
    "maxItems", "minProperties", "maxProperties", "required", "properties", "additionalProperties",
    "items", "example", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
    "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource",
}
FORBIDDEN = {"$ref", "$schema", "definitions", "id", "uniqueItems", "additionalItems", "patternProperties",
             "dependencies", "anyOf", "allOf", "oneOf", "not", "title", "readOnly", "writeOnly", "deprecated"}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list}
RULE_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}


def structural_problems(node: Any, path: str = "") -> list[str]:
    """Every structural-schema violation under ``node``, as "path: problem"."""
    out: list[str] = []
    if not isinstance(node, dict):
        return [f"{path}: a schema must be an object"]
    for key in node:
        if key in FORBIDDEN:
            out.append(f"{path}: {key} is not allowed in a structural schema")
        elif key not in ALLOWED:
            out.append(f"{path}: unknown keyword {key}")
    untyped_ok = node.get("x-kubernetes-preserve-unknown-fields") is True or node.get("x-kubernetes-int-or-string")
    t = node.get("type")
    if t is None and not untyped_ok:
        out.append(f"{path}: missing type")
    if t is not None and t not in TYPES:
        out.append(f"{path}: type {t!r} is not one of {sorted(TYPES)}")
    if "x-kubernetes-preserve-unknown-fields" in node and node["x-kubernetes-preserve-unknown-fields"] is not True:
        out.append(f"{path}: x-kubernetes-preserve-unknown-fields must be true when set")
    if "properties" in node and "additionalProperties" in node:
        out.append(f"{path}: properties and additionalProperties are mutually exclusive")
    if "additionalProperties" in node and not isinstance(node["additionalProperties"], dict):
        out.append(f"{path}: additionalProperties must be a schema (false is not allowed)")
    if t == "array" and not isinstance(node.get("items"), dict):
        out.append(f"{path}: an array needs exactly one items schema")
    if t != "object" and ("properties" in node or "additionalProperties" in node or "required" in node):
        out.append(f"{path}: properties/required on a non-object")
    for name in node.get("required", []):
        if name not in node.get("properties", {}):
            out.append(f"{path}: required field {name} is not declared")
    py = PY_TYPES.get(t or "")
    for value in node.get("enum", []):
        if py and not isinstance(value, py):
            out.append(f"{path}: enum value {value!r} is not a {t}")
    if "default" in node and py and not isinstance(node["default"], py):
        out.append(f"{path}: default {node['default']!r} is not a {t}")
    for i, rule in enumerate(node.get("x-kubernetes-validations", [])):
        if not rule.get("rule") or not (rule.get("message") or rule.get("messageExpression")):
            out.append(f"{path}: validation {i} needs a rule and a message")
        if rule.get("reason") and rule["reason"] not in RULE_REASONS:
            out.append(f"{path}: validation {i} has an unknown reason {rule['reason']}")
        fp = rule.get("fieldPath")
        if fp and not (fp.startswith(".") and fp[1:].split(".")[0] in node.get("properties", {})):
            out.append(f"{path}: validation {i} fieldPath {fp} names no declared field")
    for name, child in node.get("properties", {}).items():
        out += structural_problems(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        out += structural_problems(node["additionalProperties"], f"{path}.*")
    if isinstance(node.get("items"), dict):
        out += structural_problems(node["items"], f"{path}[]")
    return out


def crd_problems(doc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    spec = doc["spec"]
    names = spec["names"]
    if doc["metadata"]["name"] != f"{names['plural']}.{spec['group']}":
        out.append("metadata.name must be <plural>.<group>")
    for n in ("plural", "singular", *names.get("shortNames", [])):
        value = names.get(n, n)
        if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", value):
            out.append(f"name {value!r} is not a lowercase DNS label")
    if sum(v["storage"] for v in spec["versions"]) != 1:
        out.append("exactly one version must be the storage version")
    for v in spec["versions"]:
        schema = v["schema"]["openAPIV3Schema"]
        if schema.get("type") != "object":
            out.append("the root must be an object")
        if set(schema["properties"].get("metadata", {})) - {"type"}:
            out.append("metadata may not be constrained beyond its type here")
        out += structural_problems(schema, f"{v['name']}")
        if "status" in v.get("subresources", {}) and "status" not in schema["properties"]:
            out.append("status subresource without a status schema")
        for col in v.get("additionalPrinterColumns", []):
            if col["type"] not in {"string", "integer", "number", "boolean", "date"}:
                out.append(f"column {col['name']}: bad type {col['type']}")
            if not col["jsonPath"].startswith("."):
                out.append(f"column {col['name']}: jsonPath must start with '.'")
            if not _column_path_declared(schema, col["jsonPath"]):
                out.append(f"column {col['name']}: {col['jsonPath']} names no declared field")
    return out


def _column_path_declared(schema: dict[str, Any], json_path: str) -> bool:
    """A printer column's JSONPath must reach a declared field (filters on lists allowed)."""
    node = schema
    for part in re.sub(r"\[\?\(.*?\)\]", "[]", json_path).strip(".").split("."):
        name, is_list = part.removesuffix("[]"), part.endswith("[]")
        if name in ("metadata",) and node is schema:
            return True
        node = node.get("properties", {}).get(name)
        if node is None:
            return False
        if is_list:
            node = node.get("items", {})
    return True


@pytest.mark.parametrize("name", sorted(gen.all_crds()))
def test_generated_crd_is_structural(name: str) -> None:
    assert crd_problems(gen.all_crds()[name]) == []


@pytest.mark.parametrize(
    "schema, problem",
    [
        ({"type": "object", "properties": {"a": {"description": "x"}}}, ".a: missing type"),
        ({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}, "anyOf is not allowed"),
        ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "$ref is not allowed"),
        ({"type": "object", "additionalProperties": False}, "false is not allowed"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}, "mutually exclusive"),
        ({"type": "array"}, "exactly one items schema"),
        ({"type": "object", "required": ["b"], "properties": {}}, "required field b"),
        ({"type": "string", "enum": ["a", 1]}, "enum value 1"),
        ({"type": "integer", "default": "3"}, "default '3'"),
        ({"type": "object", "x-kubernetes-validations": [{"rule": "true"}]}, "needs a rule and a message"),
        ({"type": "object", "properties": {}, "x-kubernetes-validations": [{"rule": "true", "message": "m", "fieldPath": ".nope"}]}, "fieldPath .nope"),
        ({"type": "string", "title": "T"}, "title is not allowed"),
    ],
)
def test_checker_rejects_non_structural(schema: dict[str, Any], problem: str) -> None:
    problems = structural_problems(schema)
    assert any(problem in p for p in problems), problems


def test_every_kind_has_short_name_category_status_and_columns() -> None:
    by_kind = {d["spec"]["names"]["kind"]: d for d in gen.all_crds().values()}
    assert {k: d["spec"]["names"]["shortNames"] for k, d in by_kind.items()} == {
        "AssistantBinding": ["ab"], "ModelSource": ["ms"], "CapabilityProfile": ["cap"],
    }
    for d in by_kind.values():
        v = d["spec"]["versions"][0]
        assert d["spec"]["names"]["categories"] == ["switchyard"]
        assert v["subresources"] == {"status": {}}
    cols = lambda k: [c["name"].upper() for c in by_kind[k]["spec"]["versions"][0]["additionalPrinterColumns"] if not c.get("priority")]  # noqa: E731
    assert cols("AssistantBinding") == ["PRIMARY", "ACTIVE", "BREAKERS", "PODS", "READY", "AGE"]
    assert cols("ModelSource") == ["PROVIDER", "MODEL", "MODELS", "CREDENTIAL", "AGE"]


def test_primary_is_nullable_and_never_defaulted() -> None:
    spec = gen.all_crds()["assistantbindings.switchyard.dev.yaml"]["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"]["properties"]["spec"]
    primary = spec["properties"]["primary"]
    assert primary["nullable"] is True
    # A default would turn "never set" into "set", and break the boundCredential rule.
    assert "default" not in primary and "default" not in spec["properties"]["boundCredential"]


def test_preserve_unknown_fields_only_where_the_model_is_free_form() -> None:
    found: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("x-kubernetes-preserve-unknown-fields"):
            found.append(path)
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{path}.{key}")

    for name, doc in gen.all_crds().items():
        walk(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"], name)
    # boundCredential is `TierRef | str`: a union of types has no structural form.
    assert found == ["assistantbindings.switchyard.dev.yaml.spec.boundCredential"]
