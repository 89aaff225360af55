"""The API listener's routes: which path speaks which protocol.

Handlers are thin: each names its ingress adapter and hands over to
``pipeline.handle``. Paths follow each provider's own API so an official SDK or CLI
pointed at the sidecar's root (or its /v1) works unchanged:

    POST /v1/chat/completions                         OpenAI Chat Completions
    POST /v1/responses                                OpenAI Responses      (adapter: openai_responses)
    POST /v1/messages                                 Anthropic Messages    (adapter: anthropic_messages)
    POST /v1/messages/count_tokens                    Anthropic token count
    POST /v1beta/models/{model}:generateContent       Gemini                (adapter: gemini)
    POST /v1beta/models/{model}:streamGenerateContent Gemini streaming
    GET  /v1/models, /v1beta/models                   the aliases of this gateway's bindings

A path that does not exist is answered in the protocol its prefix suggests.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from switchyard.sidecar import errors, pipeline
from switchyard.sidecar.errors import ErrorKind, GatewayError
from switchyard.sidecar.pipeline import RUNTIME
from switchyard.sidecar.translate import load_all
from switchyard.sidecar.translate.base import adapter_for

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("switchyard.sidecar")

# Extra routes registered by adapters that bring their own endpoints (Gemini's
# model-in-path URLs, Anthropic's count_tokens): (method, path, handler).
EXTRA_ROUTES: list[tuple[str, str, Handler]] = []


def protocol_for_path(path: str) -> str:
    if path.startswith("/v1beta"):
        return "gemini"
    if path.startswith("/v1/messages"):
        return "anthropic-messages"
    if path.startswith("/v1/responses"):
        return "openai-responses"
    return "openai-chat"


def error_response(path: str, err: GatewayError) -> web.Response:
    protocol = protocol_for_path(path)
    if protocol not in errors.ERROR_BODY:
        protocol = "openai-chat"
    return web.Response(body=errors.render_error(protocol, err), status=err.status, content_type="application/json")


@web.middleware
async def protocol_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and methods, answered in the protocol the path belongs to; and the
    last line of defence: an exception no handler answered becomes a protocol-shaped 500
    (logged with its traceback, never shown to the client) instead of aiohttp's text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_response(
            request.path, GatewayError(ErrorKind.NOT_FOUND, f"no route for {request.method} {request.path}", code="unknown_route")
        )
    except web.HTTPMethodNotAllowed:
        return error_response(
            request.path,
            GatewayError(ErrorKind.INVALID_REQUEST, f"method {request.method} not allowed on {request.path}", status=405),
        )
    except web.HTTPException:
        raise
    except Exception:
        if request.writer is not None and request.writer.output_size:
            raise  # an answer has started; aiohttp closes the connection
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            request.path,
            GatewayError(ErrorKind.INTERNAL, "the gateway failed on this request (logged); this is a bug", code="internal_error"),
        )


def ingress_handler(protocol: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await pipeline.handle(request, adapter_for(protocol))

    handler.__name__ = f"handle_{protocol.replace('-', '_')}"
    return handler


def _is_google_client(request: web.Request) -> bool:
    # google-genai defaults to /v1 (not /v1beta), where OpenAI's list lives too.
    return "x-goog-api-key" in request.headers or "x-goog-api-client" in request.headers


async def list_models(request: web.Request) -> web.Response:
    """The aliases clients can ask for, in OpenAI's, Anthropic's or Gemini's shape
    (chosen by the client's own headers)."""
    snap = request.app[RUNTIME].snapshot
    if _is_google_client(request):
        from switchyard.sidecar.translate import gemini

        q = request.query
        size = int(q["pageSize"]) if q.get("pageSize", "").isdigit() else None
        body = gemini.model_listing(snap, page_size=size, page_token=q.get("pageToken"))
        return web.Response(body=orjson.dumps(body), content_type="application/json")
    aliases = [a for a in snap.aliases() if not a.endswith("*")] if snap else []
    if "anthropic-version" in request.headers:
        data = [{"type": "model", "id": a, "display_name": a, "created_at": "1970-01-01T00:00:00Z"} for a in aliases]
        body = {"data": data, "has_more": False, "first_id": aliases[0] if aliases else None, "last_id": aliases[-1] if aliases else None}
    else:
        body = {"object": "list", "data": [{"id": a, "object": "model", "created": 0, "owned_by": "switchyard"} for a in aliases]}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    """One alias, in OpenAI's or (for Google clients) Gemini's shape; 404 otherwise."""
    snap = request.app[RUNTIME].snapshot
    name = request.match_info["model"].removeprefix("models/")
    binding = snap.resolve(name) if snap else None
    if binding is None:
        return error_response(
            request.path if not _is_google_client(request) else "/v1beta",
            GatewayError(ErrorKind.NOT_FOUND, f"model {name!r} is not an alias on this gateway", code="model_not_found"),
        )
    if _is_google_client(request):
        from switchyard.sidecar.translate import gemini

        return web.Response(body=orjson.dumps(gemini.model_info(name, binding)), content_type="application/json")
    body = {"id": name, "object": "model", "created": 0, "owned_by": "switchyard"}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def root(request: web.Request) -> web.Response:
    return web.Response(body=b'{"service":"switchyard"}', content_type="application/json")


def api_routes() -> list[web.RouteDef]:
    load_all()  # adapters register their own extra routes on import
    table = [
        web.post("/v1/chat/completions", ingress_handler("openai-chat")),
        web.post("/chat/completions", ingress_handler("openai-chat")),
        web.get("/v1/models", list_models),
        web.get("/v1/models/{model:.+}", get_model),
        web.get("/", root),
    ]
    for method, path, handler in EXTRA_ROUTES:
        table.append(web.route(method, path, handler))
    return table
