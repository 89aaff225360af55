"""Hypothesis strategies shared by the fuzz tests (tests/unit/sidecar/translate/test_fuzz_*.py,
tests/integration/test_hostile_http.py).

Two sources of hostile input:

- ``json_values()``: arbitrary JSON (any shape, odd numbers, unicode, nesting);
- ``mutants(seeds)``: a real request or answer (the golden fixtures under tests/golden)
  with one to four random edits: a subtree replaced by arbitrary JSON, a key deleted or
  added, a value wrapped in a list or turned into a string. Mutating valid documents
  reaches the deep branches of a parser that random JSON never gets past the first
  ``expect`` to.

Budget: ``FUZZ_EXAMPLES`` (env ``SWITCHYARD_FUZZ_EXAMPLES``, default 100 per test) and
derandomised runs by default, so CI is deterministic and short; set
``SWITCHYARD_FUZZ_RANDOM=1`` and a large ``SWITCHYARD_FUZZ_EXAMPLES`` for a long,
randomised hunt (docs/reliability.md has the figures of one).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

GOLDEN = Path(__file__).resolve().parent / "golden"
FUZZ_EXAMPLES = int(os.environ.get("SWITCHYARD_FUZZ_EXAMPLES", "100"))
RANDOM = os.environ.get("SWITCHYARD_FUZZ_RANDOM") == "1"

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None if not RANDOM else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)

INGRESS = ("openai-chat", "anthropic-messages", "gemini", "openai-responses")
EGRESS = ("openai-chat", "anthropic-messages", "gemini", "openai-responses")

# Strings that have broken parsers before: empty, huge numbers as text, data URLs,
# surrogates-adjacent unicode, JSON-looking text, role and type names of each protocol.
_TRICKY = [
    "", " ", "user", "assistant", "system", "developer", "tool", "model", "function", "text", "image_url",
    "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking", "input_text", "input_image",
    "function_call", "function_call_output", "reasoning", "message", "auto", "none", "required", "any",
    "json_object", "json_schema", "high", "low", "minimal", "enabled", "disabled", "adaptive",
    "data:image/png;base64,iVBORw0KGgo=", "data:;base64,", "data:image/png;base64,%%%", "https://x/y.png",
    "gs://b/o", "application/pdf", "image/png", "audio/wav", "{}", "[]", "null", "1e309", "-0", "NaN",
    "\u0000", "\ud7ff\ue000", "é" * 3, "🙂", "a" * 300, "models/x", "tunedModels/y", "STOP", "MAX_TOKENS",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, 1, -1, 2, 3, 4096, 2**31, 2**63 - 1, 2**64 - 1, 1e20, -0.0, 0.5]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(_TRICKY),
)


def json_values(max_leaves: int = 25) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.text(max_size=12), st.sampled_from(KNOWN_KEYS))
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(keys, children, max_size=5),
        ),
        max_leaves=max_leaves,
    )


# Keys of the four protocols, so random objects hit real branches.
KNOWN_KEYS = sorted({
    "model", "messages", "role", "content", "text", "type", "stream", "tools", "tool_choice", "function", "name",
    "arguments", "parameters", "description", "tool_calls", "tool_call_id", "id", "image_url", "url", "detail",
    "response_format", "json_schema", "schema", "strict", "max_tokens", "max_completion_tokens", "stop", "n",
    "temperature", "top_p", "top_k", "seed", "logprobs", "top_logprobs", "reasoning_effort", "stream_options",
    "include_usage", "parallel_tool_calls", "system", "thinking", "budget_tokens", "source", "data", "media_type",
    "input_schema", "tool_use_id", "is_error", "signature", "stop_sequences", "metadata", "cache_control",
    "output_config", "effort", "contents", "parts", "inlineData", "inline_data", "mimeType", "fileData", "fileUri",
    "functionCall", "functionResponse", "response", "args", "systemInstruction", "system_instruction",
    "generationConfig", "generation_config", "thinkingConfig", "thinkingBudget", "includeThoughts",
    "responseMimeType", "responseSchema", "responseJsonSchema", "stopSequences", "maxOutputTokens",
    "candidateCount", "toolConfig", "functionCallingConfig", "mode", "allowedFunctionNames", "functionDeclarations",
    "thought", "thoughtSignature", "input", "instructions", "output", "call_id", "summary", "encrypted_content",
    "format", "reasoning", "max_output_tokens", "previous_response_id", "store", "choices", "delta", "index",
    "finish_reason", "usage", "prompt_tokens", "completion_tokens", "candidates", "finishReason", "usageMetadata",
    "promptTokenCount", "candidatesTokenCount", "error", "message", "status", "code", "content_block",
    "stop_reason", "input_tokens", "output_tokens", "item", "output_index", "refusal", "audio", "input_audio",
    "file", "file_data", "file_id", "filename", "image", "document", "citations", "redacted_thinking",
})


_JSON_SMALL = None  # built lazily: json_values() needs KNOWN_KEYS


def _small() -> st.SearchStrategy[Any]:
    global _JSON_SMALL
    if _JSON_SMALL is None:
        _JSON_SMALL = json_values(8)
    return _JSON_SMALL


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


@st.composite
def mutants(draw: st.DrawFn, seeds: list[Any], *, max_edits: int = 4) -> Any:
    """One seed document with 1..max_edits random edits."""
    doc = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, max_edits))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        target = _get(doc, path)
        op = draw(st.sampled_from(["replace", "replace", "scalar", "delete", "add", "wrap", "stringify", "empty"]))
        if op == "replace":
            doc = _set(doc, path, draw(_small()))
        elif op == "scalar":
            doc = _set(doc, path, draw(scalars))
        elif op == "delete" and path:
            parent = _get(doc, path[:-1])
            del parent[path[-1]]
        elif op == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(KNOWN_KEYS))] = draw(_small())
        elif op == "add" and isinstance(target, list):
            target.insert(draw(st.integers(0, len(target))), draw(_small()))
        elif op == "wrap":
            doc = _set(doc, path, [target])
        elif op == "stringify":
            doc = _set(doc, path, json.dumps(target))
        elif op == "empty":
            doc = _set(doc, path, type(target)() if isinstance(target, (dict, list, str)) else None)
    return doc


def golden_files(name: str, *, ingress: str | None = None, egress: str | None = None) -> list[Path]:
    out = []
    for case in sorted(GOLDEN.glob("*__*/*")):
        i, e = case.parent.name.split("__")
        if (ingress is None or i == ingress) and (egress is None or e == egress) and (case / name).exists():
            out.append(case / name)
    return out


def golden_json(name: str, **where: str) -> list[Any]:
    return [json.loads(p.read_text()) for p in golden_files(name, **where)]


MINIMAL_REQUESTS: dict[str, dict[str, Any]] = {
    "openai-chat": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    "anthropic-messages": {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
    "gemini": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    "openai-responses": {"model": "m", "input": "hi"},
}


def request_seeds(protocol: str) -> list[Any]:
    return [MINIMAL_REQUESTS[protocol], *golden_json("client_request.json", ingress=protocol)]
