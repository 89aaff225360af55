"""The simulator's embeddings (OpenAI `/v1/embeddings`, Gemini `:embedContent` and
`:batchEmbedContents`): deterministic vectors of the mount's size, the providers'
shapes, their refusals, and faults scoped with `endpoint="embed"`."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from switchyard.simulator import Mount, Simulator
from switchyard.simulator.wire import embedding_vector


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(Mount("openai", embedding_dimensions={"big": 3072}), Mount("anthropic"), Mount("gemini", embedding_dimensions=64)) as s:
        yield s


async def post(url: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return r.status, await r.json(content_type=None)


async def test_openai_shape_sizes_and_base64(sim: Simulator) -> None:
    url = sim.base_url("openai") + "/embeddings"
    status, body = await post(url, {"model": "small", "input": ["a", "b"]})
    assert status == 200 and body["object"] == "list" and body["model"] == "small"
    assert [d["index"] for d in body["data"]] == [0, 1] and len(body["data"][0]["embedding"]) == 1536
    assert body["data"][1]["embedding"] == embedding_vector("small", "b", 1536)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    status, body = await post(url, {"model": "big", "input": "a", "encoding_format": "base64", "dimensions": 10})
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert len(raw) == 40 and struct.unpack("<10f", raw)[0] == pytest.approx(embedding_vector("big", "a", 3072, 10)[0], rel=1e-6)
    for bad in ({"model": "m"}, {"model": "m", "input": ""}, {"model": "m", "input": []}, {"model": "m", "input": "a", "encoding_format": "x"},
                {"model": "m", "input": "a", "dimensions": 1537}, {"model": "m", "input": ["a"] * 2049}):
        status, body = await post(url, bad)
        assert status == 400 and body["error"]["type"] == "invalid_request_error", bad


async def test_gemini_shapes_and_refusals(sim: Simulator) -> None:
    base = sim.base_url("gemini") + "/v1beta/models/e"
    status, body = await post(base + ":embedContent", {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8})
    assert status == 200 and body == {"embedding": {"values": embedding_vector("e", "a", 64, 8)}}
    reqs = [{"model": "models/e", "content": {"parts": [{"text": t}]}} for t in "ab"]
    status, body = await post(base + ":batchEmbedContents", {"requests": reqs})
    assert status == 200 and [len(e["values"]) for e in body["embeddings"]] == [64, 64]
    for method, bad in (
        ("embedContent", {"content": {"parts": []}}),
        ("batchEmbedContents", {"requests": []}),
        ("batchEmbedContents", {"requests": [reqs[0]] * 101}),
        ("batchEmbedContents", {"requests": [{**reqs[0], "model": "models/other"}]}),
        ("embedContent", {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 65}),
    ):
        status, body = await post(f"{base}:{method}", bad)
        assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT", bad


async def test_faults_scoped_to_embeddings(sim: Simulator) -> None:
    sim.fault("openai", 429, endpoint="embed")
    async with aiohttp.ClientSession() as s:
        async with s.post(sim.base_url("openai") + "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]}) as r:
            assert r.status == 200  # a generation does not eat it
    status, body = await post(sim.base_url("openai") + "/embeddings", {"model": "m", "input": "a"})
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    sim.fault("gemini", 503, endpoint="embed")
    status, body = await post(sim.base_url("gemini") + "/v1beta/models/e:embedContent", {"content": {"parts": [{"text": "a"}]}})
    assert status == 503 and body["error"]["status"] == "UNAVAILABLE"
    assert [r.endpoint for r in sim.requests("gemini")] == ["embed"]
