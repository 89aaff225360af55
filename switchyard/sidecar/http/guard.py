"""Who may talk to a listener from a web browser: nobody, unless configured.

Both listeners take requests without a user credential on loopback (the API is for the
app next to it; standalone, for the user's own tools), which a web page could abuse:
a cross-origin ``fetch`` with a ``text/plain`` body is sent without a CORS preflight,
and DNS rebinding points a name the page controls at 127.0.0.1. So, before any handler:

- **Host**: an IP literal, ``localhost``, or a name configured with ``--allowed-host``.
  A page that rebinds ``attacker.example`` to 127.0.0.1 still sends
  ``Host: attacker.example``: refused (421 Misdirected Request).
- **Origin**: when a browser says where a request comes from, it must be this listener's
  own origin or one configured with ``--allowed-origin`` (403). SDKs and CLIs send none.
- **Content-Type**: a request with a body must say ``application/json`` (or
  ``application/*+json``); the simple content types a page may send without a
  preflight (``text/plain``, form encodings, none at all) are refused (415).

Refusals on the API listener are answered in the caller's protocol (the path's);
on the admin listener as a plain JSON problem.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from switchyard.sidecar.errors import ErrorKind, GatewayError

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Exposure:
    """Names and browser origins a listener answers besides loopback and IP literals."""

    hosts: frozenset[str] = field(default_factory=frozenset)  # lower-case, without port
    origins: frozenset[str] = field(default_factory=frozenset)  # "https://app.example:8443"

    @classmethod
    def of(cls, hosts: list[str] | tuple[str, ...] = (), origins: list[str] | tuple[str, ...] = ()) -> Exposure:
        return cls(frozenset(h.strip().lower().rstrip(".") for h in hosts if h.strip()),
                   frozenset(o.strip().lower().rstrip("/") for o in origins if o.strip()))  # fmt: skip


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port; IPv6 brackets removed."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host_header: str | None, exposure: Exposure) -> bool:
    if not host_header:
        return True  # HTTP/1.0 without Host: not a browser
    return _host_ok(host_header, exposure.hosts)


@functools.lru_cache(maxsize=256)  # every request asks, with the same few Host values; bounded
def _host_ok(host_header: str, hosts: frozenset[str]) -> bool:
    name = host_name(host_header).rstrip(".")
    return _is_ip(name) or name == "localhost" or name in hosts


def origin_allowed(origin: str, host_header: str | None, scheme: str, exposure: Exposure) -> bool:
    o = origin.strip().lower().rstrip("/")
    if o in exposure.origins:
        return True
    if o == "null" or not host_header:
        return False
    parts = urlsplit(o)
    return f"{parts.scheme}://{parts.netloc}" == f"{scheme}://{host_header.strip().lower()}"


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def _has_body(request: web.Request) -> bool:
    return bool(request.content_length) or request.headers.get("Transfer-Encoding", "").lower() == "chunked"


def check(request: web.Request, exposure: Exposure) -> GatewayError | None:
    """Why this request may not be served, or None."""
    host = request.headers.get("Host")
    if not host_allowed(host, exposure):
        return GatewayError(
            ErrorKind.PERMISSION,
            f"Host {host_name(host or '')!r} is not a name this gateway answers to (loopback names and addresses, "
            "or --allowed-host)",
            status=421, code="host_not_allowed",
        )  # fmt: skip
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, host, request.scheme, exposure):
        return GatewayError(
            ErrorKind.PERMISSION,
            "requests from web pages are not served (a browser sent Origin); allow an origin with --allowed-origin",
            code="origin_not_allowed",
        )
    if request.method in _WRITES and _has_body(request) and not _is_json(request.headers.get("Content-Type", "")):
        return GatewayError(
            ErrorKind.INVALID_REQUEST,
            "a request body must be sent as Content-Type: application/json",
            status=415, code="unsupported_media_type",
        )  # fmt: skip
    return None


EXPOSURE: web.AppKey[Exposure] = web.AppKey("exposure", Exposure)
"""Where an application keeps its ``Exposure``; each listener calls ``check`` with it
before anything else (the API's route wrapper ``routes._served``, the admin listener's
middleware ``admin.require_token``)."""
