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
protocol its prefix suggests (``protocol_errors``), which is also the last line of
defence: an exception no handler answered becomes a protocol-shaped 500.
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
    return table


@web.middleware
async def protocol_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and methods, answered in the protocol the path belongs to; and the
    last line of defence: an exception no handler answered becomes a protocol-shaped 500
    (logged with its traceback, never shown to the client) instead of aiohttp's text.
    First of all, the browser guard (``guard.check``)."""
    refused = guard.check(request, request.app[guard.EXPOSURE])
    if refused is not None:
        return error_response(request.path, refused)
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
