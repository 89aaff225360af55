"""The API listener's one route table: which path speaks which protocol.

Paths follow each provider's own API so an official SDK or CLI pointed at the sidecar's
root (or its /v1) works unchanged:

    POST /v1/chat/completions, /chat/completions        OpenAI Chat Completions
    POST /v1/responses, /responses                      OpenAI Responses
    GET|DELETE /v1/responses/{id}[...]                  (no stored responses: a clear 404)
    POST /v1/messages                                   Anthropic Messages
    POST /v1/embeddings, /embeddings                    OpenAI embeddings
    POST /v1/messages/count_tokens                      Anthropic token count
    POST /{v1beta,v1,v1alpha}/models/{model}:{method}   Gemini generateContent,
                                                        streamGenerateContent, countTokens,
                                                        embedContent, batchEmbedContents
    GET  /v1/models[/{model}]                           the aliases (OpenAI, Anthropic or
                                                        Gemini shape, by the client's headers)
    GET  /{v1beta,v1alpha}/models[/{model}]             the aliases, Gemini's shape

A path that does not exist, or a method a path does not take, is answered in the
protocol its prefix suggests by the last route, a catch-all (``unknown_route``). Every
handler is wrapped once, when the table is built (``_served``): the browser guard first,
and the last line of defence, an exception no handler answered becomes a protocol-shaped
500. No middleware: aiohttp builds a middleware chain for every request, a wrapper costs
one call.
"""

from __future__ import annotations

import logging

from aiohttp import web

from switchyard.sidecar.errors import ErrorKind, GatewayError
from switchyard.sidecar.http import api, guard
from switchyard.sidecar.http.api import Handler, error_response

log = logging.getLogger("switchyard.sidecar")


def api_routes() -> list[web.RouteDef]:
    table = [
        web.post("/v1/chat/completions", api.chat_completions),
        web.post("/chat/completions", api.chat_completions),
        web.post("/v1/responses", api.responses),
        web.post("/responses", api.responses),
        web.get("/v1/responses/{response_id}", api.stored_response),
        web.delete("/v1/responses/{response_id}", api.stored_response),
        web.post("/v1/responses/{response_id}/cancel", api.stored_response),
        web.get("/v1/responses/{response_id}/input_items", api.stored_response),
        web.post("/v1/embeddings", api.embeddings),
        web.post("/embeddings", api.embeddings),
        web.post("/v1/messages", api.messages),
        web.post("/v1/messages/count_tokens", api.messages_count_tokens),
        web.get("/v1/models", api.list_models),
        web.get("/v1/models/{model:.+}", api.get_model),
        web.get("/", api.root),
    ]
    for version in ("v1beta", "v1", "v1alpha"):
        table.append(web.post(f"/{version}/models/{{name:.+}}", api.gemini_model_method))
    for version in ("v1beta", "v1alpha"):
        table.append(web.get(f"/{version}/models", api.gemini_list_models))
        table.append(web.get(f"/{version}/models/{{name:.+}}", api.gemini_get_model))
    served = [web.route(r.method, r.path, _served(r.handler), **r.kwargs) for r in table]
    # Last: whatever the routes above do not take (aiohttp tries it after every route
    # whose path or method did not match).
    served.append(web.route("*", "/{unknown:.*}", _served(unknown_route)))
    return served


def _served(handler: Handler) -> Handler:
    """``handler`` behind the browser guard (``guard.check``), with the last line of
    defence: an exception it did not answer becomes a protocol-shaped 500 (logged with its
    traceback, never shown to the client) instead of aiohttp's text."""

    async def serve(request: web.Request) -> web.StreamResponse:
        refused = guard.check(request, request.app[guard.EXPOSURE])
        if refused is not None:
            return error_response(request.path, refused)
        try:
            return await handler(request)
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

    serve.__name__ = serve.__qualname__ = getattr(handler, "__name__", "handler")
    return serve


async def unknown_route(request: web.Request) -> web.StreamResponse:
    """A path no route takes (404), or a method its route does not take (405), in the
    protocol the path belongs to."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical != "/{unknown}":
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        return error_response(
            request.path,
            GatewayError(ErrorKind.INVALID_REQUEST, f"method {request.method} not allowed on {request.path}", status=405),
        )
    return error_response(
        request.path, GatewayError(ErrorKind.NOT_FOUND, f"no route for {request.method} {request.path}", code="unknown_route")
    )
