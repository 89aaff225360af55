"""Handlers of the API listener. Thin: each names its ingress adapter and hands over to
``pipeline.chain.handle`` (generation), ``pipeline.count.count_tokens`` or
``pipeline.embed.embed``; the model
lists are answered here from the config snapshot, in the shape the client's own headers
ask for. Errors are answered in the protocol the path belongs to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from switchyard.sidecar.errors import ErrorKind, GatewayError
from switchyard.sidecar.pipeline.chain import handle
from switchyard.sidecar.pipeline.count import count_tokens
from switchyard.sidecar.pipeline.embed import embed
from switchyard.sidecar.pipeline.exchange import error_in
from switchyard.sidecar.state import RUNTIME
from switchyard.sidecar.translate.base import adapter_for

# Adapters are imported when a request first needs one (``adapter_for``): a sidecar whose
# clients speak one protocol never loads the others. Gemini's URL-shaped views and its
# model-list helpers come from its package the same way (``_gemini``).


def _gemini():  # type: ignore[no-untyped-def]
    from switchyard.sidecar.translate import gemini

    return gemini

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def protocol_for_path(path: str) -> str:
    """The protocol a path belongs to, for answering errors in the caller's own shape."""
    if path.startswith("/v1beta"):
        return "gemini"
    if path.startswith("/v1/messages"):
        return "anthropic-messages"
    if path.startswith("/v1/responses"):
        return "openai-responses"
    return "openai-chat"


def error_response(path: str, err: GatewayError) -> web.Response:
    return error_in(protocol_for_path(path), err)


# ------------------------------------------------------------------ generation


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await handle(request, adapter_for("openai-chat"))


async def responses(request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses``: the Responses API, served by any tier via the neutral form."""
    return await handle(request, adapter_for("openai-responses"))


async def stored_response(request: web.Request) -> web.StreamResponse:
    """``GET`` / ``DELETE /v1/responses/{id}``: a response this sidecar stored
    (``pipeline/conversation.py``), for the binding the request names (the
    ``x-switchyard-binding`` header, else any binding that stored it). Cancelling and
    listing input items are not served (no background responses; items are not kept in
    the client's shape): a 404 saying so, in OpenAI's shape."""
    rt = request.app[RUNTIME]
    rid = request.match_info.get("response_id", "")
    named = request.headers.get("x-switchyard-binding")
    entry = rt.responses.peek(rid)
    if entry is not None and named and not entry.binding.endswith("/" + named):
        entry = None
    if entry is None or request.path.endswith(("/cancel", "/input_items")):
        why = "is not stored on this gateway" if entry is None else "is stored, but this gateway serves only GET and DELETE of it"
        return error_response(request.path, GatewayError(
            ErrorKind.NOT_FOUND, f"response {rid!r} {why}", code="response_not_stored",
        ))  # fmt: skip
    if request.method == "DELETE":
        rt.responses.delete(rid)
        return _json({"id": rid, "object": "response", "deleted": True})
    body = adapter_for("openai-responses").render_response(entry.answer, alias=entry.alias)
    return _json({**body, "id": rid})


async def embeddings(request: web.Request) -> web.StreamResponse:
    """``POST /v1/embeddings``: served by the binding's tiers that have an embeddings endpoint."""
    return await embed(request, adapter_for("openai-chat"))


async def messages(request: web.Request) -> web.StreamResponse:
    return await handle(request, adapter_for("anthropic-messages"))


async def messages_count_tokens(request: web.Request) -> web.StreamResponse:
    return await count_tokens(request, adapter_for("anthropic-messages"))


async def gemini_model_method(request: web.Request) -> web.StreamResponse:
    """``POST /{v1beta,v1,v1alpha}/models/{model}:{generateContent,streamGenerateContent,countTokens,
    embedContent,batchEmbedContents}``."""
    gemini = _gemini()
    parsed = gemini.split_model_method(request.match_info["name"])
    if parsed is None:
        return error_in("gemini", GatewayError(
            ErrorKind.NOT_FOUND, f"no route for POST {request.path}: expected models/{{model}}:{{method}}", code="unknown_route"
        ))  # fmt: skip
    model, method = parsed
    if method == "generateContent":
        return await handle(request, gemini.ADAPTER, path_model=model, stream=False)
    if method == "streamGenerateContent":
        view = gemini.SSE_STREAM if request.query.get("alt") == "sse" else gemini.ARRAY_STREAM
        return await handle(request, view, path_model=model, stream=True)
    if method == "countTokens":
        return await count_tokens(request, gemini.ADAPTER, path_model=model)
    if method in ("embedContent", "batchEmbedContents"):
        return await embed(request, gemini.ADAPTER, path_model=model)
    return error_in("gemini", GatewayError(
        ErrorKind.NOT_FOUND,
        f"method {method!r} is not served by this gateway (generateContent, streamGenerateContent, countTokens, "
        "embedContent and batchEmbedContents are)",
        code="unknown_method",
    ))  # fmt: skip


# ---------------------------------------------------------------------- models


def _is_google_client(request: web.Request) -> bool:
    # google-genai defaults to /v1 (not /v1beta), where OpenAI's list lives too.
    return "x-goog-api-key" in request.headers or "x-goog-api-client" in request.headers


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _page_size(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the aliases clients can ask for, in OpenAI's, Anthropic's or
    Gemini's shape (chosen by the client's own headers)."""
    snap = request.app[RUNTIME].snapshot
    if _is_google_client(request):
        q = request.query
        return _json(_gemini().model_listing(snap, page_size=_page_size(q.get("pageSize")), page_token=q.get("pageToken")))
    aliases = [a for a in snap.aliases() if not a.endswith("*")] if snap else []
    if "anthropic-version" in request.headers:
        data = [{"type": "model", "id": a, "display_name": a, "created_at": "1970-01-01T00:00:00Z"} for a in aliases]
        return _json({"data": data, "has_more": False, "first_id": aliases[0] if aliases else None, "last_id": aliases[-1] if aliases else None})
    return _json({"object": "list", "data": [{"id": a, "object": "model", "created": 0, "owned_by": "switchyard"} for a in aliases]})


async def get_model(request: web.Request) -> web.Response:
    """``GET /v1/models/{model}``: one alias, in OpenAI's or (for Google clients) Gemini's
    shape; 404 otherwise."""
    snap = request.app[RUNTIME].snapshot
    name = request.match_info["model"].removeprefix("models/")
    binding = snap.resolve(name) if snap else None
    if binding is None:
        return error_response(
            request.path if not _is_google_client(request) else "/v1beta",
            GatewayError(ErrorKind.NOT_FOUND, f"model {name!r} is not an alias on this gateway", code="model_not_found"),
        )
    if _is_google_client(request):
        return _json(_gemini().model_info(name, binding))
    return _json({"id": name, "object": "model", "created": 0, "owned_by": "switchyard"})


async def gemini_list_models(request: web.Request) -> web.Response:
    """``GET /{v1beta,v1alpha}/models``, paged."""
    q = request.query
    size = _page_size(q.get("pageSize") or q.get("page_size"))
    return _json(_gemini().model_listing(request.app[RUNTIME].snapshot, page_size=size, page_token=q.get("pageToken") or q.get("page_token")))


async def gemini_get_model(request: web.Request) -> web.Response:
    name = request.match_info["name"].removeprefix("models/")
    snap = request.app[RUNTIME].snapshot
    binding = snap.resolve(name) if snap is not None and not name.endswith("*") else None
    if binding is None:
        return error_in("gemini", GatewayError(ErrorKind.NOT_FOUND, f"models/{name} is not an alias of any binding on this gateway", code="model_not_found"))
    return _json(_gemini().model_info(name, binding))


async def root(request: web.Request) -> web.Response:
    return web.Response(body=b'{"service":"switchyard"}', content_type="application/json")
