"""The adapters' embeddings faces (pure): requests read, calls built, answers read and
rendered, for OpenAI-style and Gemini; Anthropic has none. And the compatibility rule
of pipeline/embed.py."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest

from switchyard.sidecar.contract.config import CompiledProfile, CompiledTier
from switchyard.sidecar.pipeline.embed import compatible
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import RequestError, UpstreamFormatError, adapter_for

OPENAI = adapter_for("openai-chat")
GEMINI = adapter_for("gemini")
ANTHROPIC = adapter_for("anthropic-messages")


def tier(protocol: str, model: str = "m", base_url: str = "https://up.example/v1", dims: int | None = None) -> CompiledTier:
    auth = {"gemini": "x-goog-api-key", "anthropic-messages": "x-api-key"}.get(protocol, "bearer")
    return CompiledTier.model_validate({
        "index": 0, "source": "s", "provider": "p", "protocol": protocol, "base_url": base_url, "model": model,
        "auth": auth, "credential": "k",
        "profile": CompiledProfile(name="p", protocol=protocol, features={"embeddingDimensions": dims}, on_unsupported={}),
    })  # fmt: skip


def body_of(call: Any) -> Any:
    return orjson.loads(call.body)


# ------------------------------------------------------------------ openai ingress


def test_openai_input_forms() -> None:
    one = OPENAI.embed_request({"model": "a", "input": "hi"}, None)
    assert one == n.EmbedRequest(inputs=("hi",), origin="openai-chat")
    many = OPENAI.embed_request({"model": "a", "input": ["x", "y"], "dimensions": 8, "encoding_format": "base64", "user": "u"}, None)
    assert (many.inputs, many.dimensions, many.encoding, many.extras) == (("x", "y"), 8, "base64", {"user": "u"})


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"input": [1, 2]}, "input"),
        ({"input": [[1], [2, 3]]}, "input"),
        ({"input": ""}, "input"),
        ({"input": ["a", ""]}, "input"),
        ({"input": []}, "input"),
        ({}, "input"),
        ({"input": ["a"] * 2049}, "input"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a", "dimensions": True}, "dimensions"),
    ],
)
def test_openai_refusals(value: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        OPENAI.embed_request({"model": "a", **value}, None)
    assert caught.value.param == param


def test_token_arrays_are_refused_clearly() -> None:
    with pytest.raises(RequestError, match="token arrays"):
        OPENAI.embed_request({"model": "a", "input": [[1, 2]]}, None)


def test_openai_render_float_and_base64() -> None:
    req = n.EmbedRequest(inputs=("a", "b"), encoding="base64")
    out = OPENAI.render_embeddings([[0.5, -1.0], [0.25, 2.0]], n.Usage(input_tokens=3), alias="emb", request=req)
    assert out["object"] == "list" and out["model"] == "emb" and out["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert [d["index"] for d in out["data"]] == [0, 1] and out["data"][0]["object"] == "embedding"
    assert struct.unpack("<2f", base64.b64decode(out["data"][1]["embedding"])) == (0.25, 2.0)
    flat = OPENAI.render_embeddings([[0.5]], None, alias="emb", request=n.EmbedRequest(inputs=("a",)))
    assert flat["data"][0]["embedding"] == [0.5] and flat["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


# ------------------------------------------------------------------- openai egress


def test_openai_call_asks_for_floats_and_keeps_own_fields_only_same_protocol() -> None:
    t = tier("openai-chat", "text-embedding-3-small")
    same = OPENAI.embed_request({"model": "a", "input": ["x"], "user": "u", "encoding_format": "base64", "dimensions": 4}, None)
    call = OPENAI.embed_call(t, same)
    assert call.url == "https://up.example/v1/embeddings" and call.headers["Authorization"] == "Bearer k"
    assert body_of(call) == {"user": "u", "model": "text-embedding-3-small", "input": ["x"], "encoding_format": "float", "dimensions": 4}
    foreign = n.EmbedRequest(inputs=("x",), extras={"taskType": "CLUSTERING"}, origin="gemini")
    assert body_of(OPENAI.embed_call(t, foreign)) == {"model": "text-embedding-3-small", "input": ["x"], "encoding_format": "float"}


def test_openai_read_orders_by_index_and_decodes_base64() -> None:
    b64 = base64.b64encode(struct.pack("<2f", 1.0, 2.0)).decode()
    raw = orjson.dumps({"data": [{"index": 1, "embedding": b64}, {"index": 0, "embedding": [3, 4.5]}], "usage": {"prompt_tokens": 9}})
    vectors, usage = OPENAI.read_embeddings(raw)
    assert vectors == [[3.0, 4.5], [1.0, 2.0]] and usage == n.Usage(input_tokens=9)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"{}",
        b'{"data": []}',
        b'{"data": [{"index": 0, "embedding": []}]}',
        b'{"data": [{"index": 0, "embedding": ["x"]}]}',
        b'{"data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [1]}]}',
        b'{"data": [{"index": 5, "embedding": [1]}]}',
        b'{"data": [{"index": 0, "embedding": "!!!"}]}',
    ],
)
def test_openai_read_refuses_wrong_shapes(raw: bytes) -> None:
    with pytest.raises(UpstreamFormatError):
        OPENAI.read_embeddings(raw)


# ------------------------------------------------------------------------- gemini


def test_gemini_single_and_batch_requests() -> None:
    one = GEMINI.embed_request({"content": {"parts": [{"text": "a"}, {"text": "b"}]}, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 8}, "m")
    assert one == n.EmbedRequest(inputs=("a\nb",), dimensions=8, extras={"taskType": "RETRIEVAL_QUERY"}, origin="gemini", single=True)
    batch = GEMINI.embed_request(
        {"requests": [{"model": "models/m", "content": {"parts": [{"text": t}]}, "task_type": "CLUSTERING"} for t in "xy"]}, "m"
    )
    assert batch.inputs == ("x", "y") and not batch.single and batch.extras == {"taskType": "CLUSTERING"}


@pytest.mark.parametrize(
    "body",
    [
        {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}},
        {"content": {"parts": []}},
        {"content": {"parts": [{"text": ""}]}},
        {"requests": []},
        {"requests": [{"content": {"parts": [{"text": "a"}]}, "taskType": "A"}, {"content": {"parts": [{"text": "b"}]}, "taskType": "B"}]},
        {"requests": [{"content": {"parts": [{"text": "a"}]}}] * 101},
        {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": -1},
    ],
)
def test_gemini_refusals(body: dict[str, Any]) -> None:
    with pytest.raises(RequestError):
        GEMINI.embed_request(body, "m")


def test_gemini_calls() -> None:
    t = tier("gemini", "gemini-embedding-001", base_url="https://g.example")
    one = GEMINI.embed_call(t, n.EmbedRequest(inputs=("a",), dimensions=4, extras={"taskType": "T"}, origin="gemini", single=True))
    assert one.url == "https://g.example/v1beta/models/gemini-embedding-001:embedContent" and one.headers["x-goog-api-key"] == "k"
    assert body_of(one) == {"taskType": "T", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4}
    many = GEMINI.embed_call(t, n.EmbedRequest(inputs=("a", "b"), extras={"user": "u"}, origin="openai-chat"))
    assert many.url.endswith(":batchEmbedContents")
    assert body_of(many) == {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": x}]}} for x in "ab"]}
    with pytest.raises(RequestError, match="at most 100"):
        GEMINI.embed_call(t, n.EmbedRequest(inputs=("a",) * 101))


def test_gemini_read_and_render() -> None:
    assert GEMINI.read_embeddings(b'{"embedding": {"values": [1, 2]}}') == ([[1.0, 2.0]], None)
    vectors, usage = GEMINI.read_embeddings(b'{"embeddings": [{"values": [1]}, {"values": [2]}], "usageMetadata": {"promptTokenCount": 4}}')
    assert vectors == [[1.0], [2.0]] and usage == n.Usage(input_tokens=4)
    for bad in (b"[]", b"{}", b'{"embeddings": [{"values": []}]}', b'{"embedding": {"values": "x"}}'):
        with pytest.raises(UpstreamFormatError):
            GEMINI.read_embeddings(bad)
    single = n.EmbedRequest(inputs=("a",), single=True)
    assert GEMINI.render_embeddings([[1.0]], None, alias="x", request=single) == {"embedding": {"values": [1.0]}}
    batch = n.EmbedRequest(inputs=("a", "b"))
    assert GEMINI.render_embeddings([[1.0], [2.0]], None, alias="x", request=batch) == {"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}


def test_anthropic_has_no_embeddings_endpoint() -> None:
    assert ANTHROPIC.embed_call(tier("anthropic-messages"), n.EmbedRequest(inputs=("a",))) is None
    assert ANTHROPIC.embed_request is None and ANTHROPIC.read_embeddings is None


def test_adapters_do_not_mutate_the_request() -> None:
    req = n.EmbedRequest(inputs=("a", "b"), dimensions=4, extras={"user": "u"}, origin="openai-chat")
    before = (req.inputs, dict(req.extras))
    OPENAI.embed_call(tier("openai-chat"), req)
    GEMINI.embed_call(tier("gemini"), req)
    assert (req.inputs, req.extras) == before


# ----------------------------------------------------------------- compatibility


@pytest.mark.parametrize(
    ("space", "declared", "dimensions", "ok"),
    [
        (1536, 1536, None, True),
        (1536, 3072, None, False),
        (1536, None, None, False),
        (None, None, None, False),
        (None, 1536, None, False),
        (1536, 1536, 256, True),
        (1536, 1536, 2000, False),
        (1536, True, None, False),
    ],
)
def test_compatible(space: int | None, declared: object, dimensions: int | None, ok: bool) -> None:
    assert compatible(space, declared, dimensions) is ok


def test_vectors_out_of_float32_range_are_a_wrong_shape() -> None:
    """Found by reading, not fuzzing: 1e300 would make the base64 rendering raise."""
    with pytest.raises(UpstreamFormatError, match="float32"):
        OPENAI.read_embeddings(b'{"data": [{"index": 0, "embedding": [0.1, 1e300]}]}')
    with pytest.raises(UpstreamFormatError):
        GEMINI.read_embeddings(b'{"embedding": {"values": [-1e39]}}')
