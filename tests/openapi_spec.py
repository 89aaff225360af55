"""Validation against the official OpenAI OpenAPI spec (vendored in tests/specs/, MIT).

One helper for every test that checks a body against the spec: `assert_openapi(schema,
obj)` validates `obj` against `#/components/schemas/<schema>`; `schemas()` gives the raw
component schemas. The spec is OpenAPI 3.1 but still marks many fields with 3.0's
`nullable: true` (`finish_reason`, `logprobs`, `usage` in stream chunks), which a 3.1
validator ignores; they are rewritten the 3.1 way so the `null`s OpenAI really sends
validate.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS31Validator

SPEC_PATH = Path(__file__).resolve().parent / "specs" / "openai-openapi.json"


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("nullable", False) is True:
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        elif "type" not in node:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@functools.cache
def _components() -> dict[str, Any]:
    return _nullable(json.loads(SPEC_PATH.read_text())["components"])


def schemas() -> dict[str, Any]:
    return _components()["schemas"]


@functools.cache
def _validator(schema: str) -> OAS31Validator:
    return OAS31Validator({"$ref": f"#/components/schemas/{schema}", "components": _components()})


def assert_openapi(schema: str, obj: Any) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message[:300]}" for e in _validator(schema).iter_errors(obj)]
    assert not errors, f"not a valid {schema}:\n" + "\n".join(errors)
