"""Embeddings (issue 17) through the real sidecar and the simulator, with the official
SDKs: ``openai`` (``embeddings.create``, float and base64) and ``google-genai``
(``aio.models.embed_content``).

Served by an OpenAI tier and by a Gemini tier (both client protocols, so same-protocol
and cross-protocol); a 429 on the primary falls back to a tier whose profile declares
the same ``embeddingDimensions``, and never to one of another (or an undeclared) space:
the client gets the primary's error. An Anthropic tier has no embeddings endpoint: it is
passed over, and a binding of Anthropic tiers only is refused with a clear 400.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from harness import KEYS, Gateway, binding
from switchyard.simulator import Mount, Simulator
from switchyard.simulator.wire import embedding_vector


SMALL, LARGE, GEM = "text-embedding-3-small", "text-embedding-3-large", "gemini-embedding-001"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """The harness's four mounts, with embedding sizes per model (OpenAI-style: 1536,
    text-embedding-3-large 3072; Gemini: 3072)."""
    mounts = [
        Mount("primary", flavour="openai", api_key=KEYS["primary"], embedding_dimensions={LARGE: 3072}),
        Mount("backup", flavour="openai", api_key=KEYS["backup"], embedding_dimensions={LARGE: 3072}),
        Mount("claude", flavour="anthropic", api_key=KEYS["claude"]),
        Mount("gem", flavour="gemini", api_key=KEYS["gem"]),
    ]
    async with Simulator(*mounts, port=0, hang_max_seconds=15) as s:
        yield s


def profile(name: str, protocol: str, dims: int | None) -> str:
    features = f"{{embeddingDimensions: {dims}}}" if dims else "{}"
    return f"""apiVersion: switchyard.dev/v1alpha1
kind: CapabilityProfile
metadata: {{name: {name}}}
spec: {{protocol: {protocol}, features: {features}}}
---
"""


def source(name: str, mount: str, provider: str, model: str, prof: str | None, sim: Simulator, first_byte: int = 2) -> str:
    ref = f"capabilityProfileRef: {{name: {prof}}}" if prof else ""
    return f"""apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: {name}}}
spec:
  provider: {provider}
  baseURL: {sim.base_url(mount)}
  defaultModel: {model}
  credentialRef: {{name: keys, key: {mount}}}
  timeouts: {{connectSeconds: 2, firstByteSeconds: {first_byte}, totalSeconds: 10}}
  {ref}
---
"""


def resources(sim: Simulator) -> str:
    return (
        profile("openai-1536", "openai-chat", 1536)
        + profile("openai-3072", "openai-chat", 3072)
        + profile("gemini-3072", "gemini", 3072)
        + source("emb-primary", "primary", "openai-compatible", SMALL, "openai-1536", sim)
        + source("emb-backup", "backup", "openai-compatible", SMALL, "openai-1536", sim)
        + source("emb-backup-large", "backup", "openai-compatible", LARGE, "openai-3072", sim)
        + source("emb-backup-undeclared", "backup", "openai-compatible", SMALL, None, sim)
        + source("emb-gem", "gem", "gemini", GEM, "gemini-3072", sim)
        + source("emb-primary-large", "primary", "openai-compatible", LARGE, "openai-3072", sim)
        + source("emb-lying", "primary", "openai-compatible", LARGE, "openai-1536", sim)
        + source("emb-patient", "primary", "openai-compatible", SMALL, "openai-1536", sim, first_byte=8)
    )


async def start(gateway: Any, sim: Simulator, *bindings: str) -> Gateway:
    return await gateway(resources(sim) + "\n---\n".join(bindings))


def google(gw: Gateway) -> genai.Client:
    return genai.Client(api_key="client-key", http_options=genai_types.HttpOptions(base_url=gw.api, timeout=20_000))


def close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(abs(a - b) < 1e-6 for a, b in zip(got, want, strict=True))


async def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers or {}) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


# ------------------------------------------------------------------------- served


async def test_openai_sdk_served_by_an_openai_tier_float_and_base64(gateway: Any, sim: Simulator) -> None:
    gw = await start(gateway, sim, binding("emb", "emb-primary"))
    client = gw.openai()
    # The SDK asks for base64 when encoding_format is not given, and decodes it.
    raw = await client.embeddings.with_raw_response.create(model="emb", input=["hello", "world"])
    got = raw.parse()
    assert raw.headers["x-switchyard-tier"] == "0" and raw.headers["x-switchyard-source"] == "emb-primary"
    assert [d.index for d in got.data] == [0, 1] and got.model == "emb"
    assert close(got.data[1].embedding, embedding_vector(SMALL, "world", 1536))
    assert got.usage.prompt_tokens > 0
    floats = await client.embeddings.create(model="emb", input="hello", encoding_format="float", dimensions=256, user="u-1")
    assert close(floats.data[0].embedding, embedding_vector(SMALL, "hello", 1536, 256))
    sent = [r.body for r in sim.requests("primary")]
    assert all(b["encoding_format"] == "float" and b["model"] == SMALL for b in sent)  # the tier is always asked for floats
    assert sent[1]["dimensions"] == 256 and sent[1]["user"] == "u-1" and sent[1]["input"] == ["hello"]


async def test_openai_sdk_served_by_a_gemini_tier(gateway: Any, sim: Simulator) -> None:
    gw = await start(gateway, sim, binding("gemb", "emb-gem"))
    raw = await gw.openai().embeddings.with_raw_response.create(model="gemb", input=["a", "b", "c"], dimensions=768, user="u")
    got = raw.parse()
    assert [len(d.embedding) for d in got.data] == [768] * 3
    assert close(got.data[2].embedding, embedding_vector(GEM, "c", 3072, 768))
    assert raw.headers["x-switchyard-degraded"] == "unknownFields(user)=strip"  # nothing dropped silently
    [req] = sim.requests("gem")
    assert req.path.endswith(f"/models/{GEM}:batchEmbedContents")
    assert [r["outputDimensionality"] for r in req.body["requests"]] == [768] * 3
    assert all(r["model"] == f"models/{GEM}" and "user" not in r for r in req.body["requests"])
    one = await gw.openai().embeddings.create(model="gemb", input="solo", encoding_format="float")
    assert close(one.data[0].embedding, embedding_vector(GEM, "solo", 3072))
    assert sim.requests("gem")[-1].path.endswith(":embedContent")


async def test_google_genai_served_by_a_gemini_tier_keeps_task_type(gateway: Any, sim: Simulator) -> None:
    gw = await start(gateway, sim, binding("gemb", "emb-gem"))
    client = google(gw)
    got = await client.aio.models.embed_content(
        model="gemb", contents=["why is the sky blue", "rayleigh"],
        config=genai_types.EmbedContentConfig(task_type="RETRIEVAL_DOCUMENT", title="sky", output_dimensionality=128),
    )  # fmt: skip
    assert got.embeddings is not None and [len(e.values or []) for e in got.embeddings] == [128, 128]
    assert close(got.embeddings[1].values or [], embedding_vector(GEM, "rayleigh", 3072, 128))
    [req] = sim.requests("gem")
    assert [(r["taskType"], r["title"], r["model"]) for r in req.body["requests"]] == [("RETRIEVAL_DOCUMENT", "sky", f"models/{GEM}")] * 2
    # :embedContent, one vector in its own shape (raw HTTP: the SDK always batches)
    status, headers, body = await post(gw.api + "/v1beta/models/gemb:embedContent", {"content": {"parts": [{"text": "hi"}]}, "taskType": "RETRIEVAL_QUERY"})
    assert status == 200 and close(body["embedding"]["values"], embedding_vector(GEM, "hi", 3072))
    assert sim.requests("gem")[-1].body["taskType"] == "RETRIEVAL_QUERY" and headers["x-switchyard-tier"] == "0"


async def test_google_genai_served_by_an_openai_tier(gateway: Any, sim: Simulator) -> None:
    gw = await start(gateway, sim, binding("emb", "emb-primary"))
    got = await google(gw).aio.models.embed_content(
        model="emb", contents=["x", "y"], config=genai_types.EmbedContentConfig(output_dimensionality=64, task_type="CLUSTERING")
    )
    assert got.embeddings is not None and close(got.embeddings[0].values or [], embedding_vector(SMALL, "x", 1536, 64))
    [req] = sim.requests("primary")
    assert req.body == {"model": SMALL, "input": ["x", "y"], "encoding_format": "float", "dimensions": 64}


# ----------------------------------------------------------------------- fallback


async def test_429_falls_back_to_a_tier_of_the_same_space(gateway: Any, sim: Simulator, logs: Any) -> None:
    gw = await start(gateway, sim, binding("emb", "emb-primary", "emb-backup"))
    sim.fault("primary", 429, endpoint="embed", retry_after=7)
    raw = await gw.openai().embeddings.with_raw_response.create(model="emb", input="q")
    assert raw.headers["x-switchyard-tier"] == "1" and raw.headers["x-switchyard-source"] == "emb-backup"
    assert raw.headers["x-switchyard-fallback-reason"].startswith("tier0=429")
    assert close(raw.parse().data[0].embedding, embedding_vector(SMALL, "q", 1536))
    # the breaker lease: the primary's 429 is on its record (rate-limited now)
    status = await _admin(gw, "/admin/status")
    assert "rate-limited" in json.dumps(status)
    [line] = [r.switchyard for r in logs.records if getattr(r, "switchyard", {}).get("endpoint") == "embeddings"]
    assert line["outcome"] == "success" and line["tier"] == 1 and line["ingress"] == "openai-chat"
    metrics = await _admin_text(gw, "/metrics")
    assert 'switchyard_requests_total{binding="emb",caller="openai-sdk",ingress="openai-chat",outcome="success",source="emb-backup",tier="1"} 1.0' in metrics
    assert '"last_used": {"tier": 1' in json.dumps(await _admin(gw, "/admin/status"))  # the status tells it, as for generation


async def test_gemini_fallback_of_the_same_space_across_protocols(gateway: Any, sim: Simulator) -> None:
    gw = await start(gateway, sim, binding("emb", "emb-primary-large", "emb-gem"))
    sim.fault("primary", 503, endpoint="embed")
    raw = await gw.openai().embeddings.with_raw_response.create(model="emb", input="q", encoding_format="float")
    assert raw.headers["x-switchyard-tier"] == "1" and close(raw.parse().data[0].embedding, embedding_vector(GEM, "q", 3072))


@pytest.mark.parametrize("fallback", ["emb-backup-large", "emb-backup-undeclared"])
async def test_no_fallback_to_another_or_an_undeclared_space(gateway: Any, sim: Simulator, fallback: str) -> None:
    gw = await start(gateway, sim, binding("emb", "emb-primary", fallback))
    sim.fault("primary", 429, endpoint="embed", retry_after=7)
    with pytest.raises(openai.RateLimitError) as caught:
        await gw.openai().embeddings.create(model="emb", input="q")
    err = caught.value
    assert err.response.headers["x-switchyard-fallback-reason"] == (
        "tier0=429(retry in 7s), tier1=other-embedding-space("
        + ("3072!=1536)" if fallback.endswith("large") else "undeclared!=1536)")
    )
    assert err.response.headers["retry-after"] == "7"
    assert "failed the embeddings request" in str(err.message)
    assert sim.requests("backup") == []  # never asked: its vectors would be of another space
    # Gemini clients get the same, in Gemini's shape
    sim.fault("primary", 429, endpoint="embed")
    with pytest.raises(genai_errors.ClientError) as g:
        await google(gw).aio.models.embed_content(model="emb", contents=["q"])
    assert g.value.code == 429


async def test_request_dimensions_count_too(gateway: Any, sim: Simulator) -> None:
    """Same declared space, but the tier would be asked for more dimensions than the
    first's space has: not a fallback (the primary refuses first here anyway: the
    simulator's size check)."""
    gw = await start(gateway, sim, binding("emb", "emb-primary", "emb-backup"))
    with pytest.raises(openai.BadRequestError) as caught:
        await gw.openai().embeddings.create(model="emb", input="q", dimensions=2000)
    assert "dimensions" in str(caught.value.message)
    assert sim.requests("backup") == []  # a 400 is the request's fault: no fallback


async def test_a_tier_that_answers_vectors_of_another_size_is_not_served(gateway: Any, sim: Simulator) -> None:
    """A profile that says 1536 for a model that answers 3072: a failure, never served."""
    gw = await start(gateway, sim, binding("emb", "emb-lying"))
    with pytest.raises(openai.APIStatusError) as caught:
        await gw.openai().embeddings.create(model="emb", input="q")
    assert caught.value.status_code == 502 and "3072 dimensions where 1536" in str(caught.value.message)


async def test_a_hung_primary_times_out_to_a_tier_of_the_same_space(gateway: Any, sim: Simulator) -> None:
    gw = await start(gateway, sim, binding("emb", "emb-primary", "emb-backup"))
    sim.fault("primary", "hang", endpoint="embed", max_seconds=5)
    raw = await gw.openai().embeddings.with_raw_response.create(model="emb", input="q")
    assert raw.headers["x-switchyard-tier"] == "1" and raw.headers["x-switchyard-fallback-reason"] == "tier0=timeout(total)"


async def test_an_echoed_key_never_reaches_the_client(gateway: Any, sim: Simulator) -> None:
    gw = await start(gateway, sim, binding("emb", "emb-primary"))
    key = KEYS["primary"]
    sim.fault("primary", "401", endpoint="embed", message=f"invalid key {key}")
    with pytest.raises(openai.APIStatusError) as caught:
        await gw.openai().embeddings.create(model="emb", input="q")
    assert caught.value.status_code == 502  # our key refused is never the client's own 401
    assert key not in caught.value.response.text and key[:8] not in caught.value.response.text


async def test_the_drain_waits_for_an_embedding_in_flight(gateway: Any, sim: Simulator) -> None:
    from switchyard.sidecar.app import CLOSE_SECONDS

    gw = await start(gateway, sim, binding("emb", "emb-patient"))
    sim.fault("primary", "slow", endpoint="embed", delay_ms=(CLOSE_SECONDS + 1) * 1000, chunk_delay_ms=0)
    embedding = asyncio.create_task(post(gw.api + "/v1/embeddings", {"model": "emb", "input": "q"}))
    await sim.wait_for_requests("primary", 1)
    await gw.sidecar.stop()
    status, _, body = await embedding
    assert status == 200 and len(body["data"][0]["embedding"]) == 1536


# ---------------------------------------------------------------------- anthropic


async def test_anthropic_tiers_are_passed_over_and_an_anthropic_only_binding_is_refused(gateway: Any, sim: Simulator) -> None:
    gw = await start(gateway, sim, binding("claude-only", "claude"), binding("mixed", "claude", "emb-primary"))
    with pytest.raises(openai.BadRequestError) as caught:
        await gw.openai().embeddings.create(model="claude-only", input="q")
    assert "no embeddings endpoint" in str(caught.value.message) and caught.value.code == "embeddings_unsupported"
    with pytest.raises(genai_errors.ClientError) as g:
        await google(gw).aio.models.embed_content(model="claude-only", contents=["q"])
    assert g.value.code == 400 and "no embeddings endpoint" in str(g.value.message)
    assert sim.requests("claude") == []  # never sent a generation
    listed = {m.name: m.supported_actions async for m in await google(gw).aio.models.list(config={"http_options": {"api_version": "v1beta"}})}
    assert "embedContent" not in (listed["models/claude-only"] or []) and "batchEmbedContents" in (listed["models/mixed"] or [])
    raw = await gw.openai().embeddings.with_raw_response.create(model="mixed", input="q")
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=no-embeddings(anthropic-messages)"


# ------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "emb", "input": [1, 2, 3]}, "token arrays"),
        ({"model": "emb", "input": [[1, 2], [3]]}, "token arrays"),
        ({"model": "emb", "input": ""}, "empty string"),
        ({"model": "emb", "input": []}, "non-empty"),
        ({"model": "emb", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
async def test_refused_with_a_clear_400(gateway: Any, sim: Simulator, body: dict[str, Any], needle: str) -> None:
    gw = await start(gateway, sim, binding("emb", "emb-primary"))
    status, _, answer = await post(gw.api + "/v1/embeddings", body)
    assert status == 400 and needle in answer["error"]["message"]
    assert sim.requests("primary") == []


async def test_gemini_unknown_method_still_404(gateway: Any, sim: Simulator) -> None:
    gw = await start(gateway, sim, binding("emb", "emb-primary"))
    status, _, answer = await post(gw.api + "/v1beta/models/emb:predict", {})
    assert status == 404 and "embedContent" in answer["error"]["message"]


async def _admin(gw: Gateway, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(gw.admin + path) as r:
        return await r.json()


async def _admin_text(gw: Gateway, path: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(gw.admin + path) as r:
        return await r.text()
