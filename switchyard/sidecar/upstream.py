"""The only I/O to providers: pooled aiohttp sessions and one attempt's HTTP exchange.

One ``ClientSession`` (and so one keep-alive connection pool) per upstream origin, so a
hung provider cannot exhaust the connections another one needs. Sessions live as long
as the sidecar; config swaps reuse them.

An attempt has three limits, all as absolute loop-clock deadlines so a per-request
deadline can shorten them: connect (the connector's ``sock_connect``), first content
(set by the caller around ``open``/``read``), and total. Failures come out as the three
exception types below, which the classifier maps onto ``fallbackOn`` reasons:

    UpstreamError
     +-- UpstreamConnectError   (connection refused, DNS, TLS, connect timeout)
     +-- UpstreamTimeout        (first byte / total deadline passed)
     +-- UpstreamReset          (connection closed or payload broken mid-answer)

Each source has a pool of at most ``maxConnections`` requests in flight per sidecar
(``Upstreams.slot``). A request that finds it full waits a little (``POOL_WAIT_SECONDS``,
never past its own first-byte deadline) and then gets ``UpstreamBusy``: the gateway's own
limit, which is never held against the tier (the chain moves on; the breaker is not
touched). aiohttp's connector itself is unlimited: the slots are the limit.

``Upstreams.open`` sends a call and returns the response head (generation: the caller
reads the body or stream under its own deadlines); ``Upstreams.fetch`` sends a call and
returns a small whole answer (prompt-free checks, token counts).

Everything read from an upstream that can reach a client, a log line or a status as
text (error bodies, in-stream error events) goes through ``scrub`` first, before any
clipping: it removes the tier's key, and any 8-character or longer prefix of it, so an
upstream that echoes a key back cannot leak it (promise 6).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from switchyard.netguard.resolver import GuardedResolver, LinkLocalRefused
from switchyard.sidecar.contract.config import CompiledTier
from switchyard.sidecar.translate.base import UpstreamCall


POOL_WAIT_SECONDS = 2.0  # the longest a request waits for a free slot of a full pool


class UpstreamBusy(Exception):
    """The source's pool stayed full past the wait: the gateway's limit, not an upstream
    failure (deliberately not an ``UpstreamError``)."""


class UpstreamError(Exception):
    pass


class UpstreamConnectError(UpstreamError):
    """``str(exc)`` is one word for the trail: refused, dns, tls or connect."""


class UpstreamTimeout(UpstreamError):
    def __init__(self, phase: str) -> None:
        super().__init__(phase)
        self.phase = phase  # "connect" | "first-byte" | "total"


class UpstreamReset(UpstreamError):
    pass


class Upstreams:
    """Keep-alive pools, one per upstream origin (and link-local policy)."""

    def __init__(
        self, *, keepalive_seconds: float = 30.0,
        resolver: Callable[[], AbstractResolver] | None = None,
    ) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._origins: dict[str, str] = {}  # call URL -> its pool's key (URLs come from the config)
        self._keepalive = keepalive_seconds
        self._resolver = resolver  # DNS for each new pool (aiohttp's default when None)

    def session(self, url: str, *, allow_link_local: bool = False) -> aiohttp.ClientSession:
        origin = self._origins.get(url) if not allow_link_local else None
        if origin is None:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            if allow_link_local:  # its own pool: a guarded one must never reuse its connections
                origin += " allow-link-local"
            else:
                if len(self._origins) >= 4096:  # bounded by the config's URLs; a safety net
                    self._origins.clear()
                self._origins[url] = origin
        s = self._sessions.get(origin)
        if s is None or s.closed:
            inner = self._resolver() if self._resolver is not None else None
            connector = aiohttp.TCPConnector(
                limit=0,  # the per-source slots (``slot``) are the limit
                keepalive_timeout=self._keepalive,
                ttl_dns_cache=60,
                resolver=inner if allow_link_local else GuardedResolver(inner),
            )
            s = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )
            self._sessions[origin] = s
        return s

    def slot(self, tier: CompiledTier, *, until: float | None = None) -> Slot:
        """Hold one of the source's ``max_connections`` slots for a whole exchange (the
        call, its answer or stream): ``async with upstreams.slot(tier):``. Raises
        ``UpstreamBusy`` when none frees up within ``POOL_WAIT_SECONDS`` (or by ``until``,
        loop clock, if sooner)."""
        key = (tier.source, tier.base_url, tier.max_connections)
        sem = self._slots.get(key)
        if sem is None:
            sem = self._slots[key] = asyncio.Semaphore(tier.max_connections)
        return Slot(sem, tier.max_connections, until)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            await s.close()

    async def open(self, call: UpstreamCall, *, connect_seconds: float, allow_link_local: bool) -> aiohttp.ClientResponse:
        """Send the request and wait for the response head. The caller bounds the wait
        (first-byte deadline) with ``asyncio.timeout_at``; connect has its own limit.
        ``allow_link_local`` is the tier's (no default: every caller decides)."""
        session = self.session(call.url, allow_link_local=allow_link_local)
        try:
            return await session.request(
                call.method,
                call.url,
                data=call.body,
                headers=call.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_seconds, connect=connect_seconds),
                allow_redirects=False,
            )
        except aiohttp.ServerTimeoutError as exc:  # includes the connect timeout
            raise UpstreamTimeout("connect") from exc
        except aiohttp.ClientSSLError as exc:
            raise UpstreamConnectError("tls") from exc
        except aiohttp.ClientConnectorDNSError as exc:
            raise UpstreamConnectError("link-local" if isinstance(exc.os_error, LinkLocalRefused) else "dns") from exc
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            raise UpstreamConnectError("refused" if refused else "connect") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as exc:
            raise UpstreamReset(_describe(exc)) from exc
        except aiohttp.ClientResponseError as exc:
            raise UpstreamReset(_describe(exc)) from exc
        except aiohttp.InvalidURL as exc:
            raise UpstreamConnectError(f"invalid URL {exc}") from exc
        except (ValueError, TypeError, UnicodeError, aiohttp.ClientError) as exc:
            # A call that cannot even be written (a header value with a control character in
            # a hostile pushed config, say): the tier cannot be reached, the chain goes on.
            # The message names the exception's type only: a header value may be a secret.
            raise UpstreamConnectError(f"unsendable({type(exc).__name__})") from exc


class Slot:
    """``async with``: one slot of a source's pool, taken at once when one is free, else
    waited for (never past ``until``) or ``UpstreamBusy``. A class, not a generator-based
    context manager: this is on every request."""

    __slots__ = ("_sem", "_size", "_until")

    def __init__(self, sem: asyncio.Semaphore, size: int, until: float | None) -> None:
        self._sem, self._size, self._until = sem, size, until

    async def __aenter__(self) -> None:
        sem = self._sem
        if not sem.locked():
            await sem.acquire()  # free: taken at once, without suspending
            return
        limit = asyncio.get_running_loop().time() + POOL_WAIT_SECONDS
        try:
            async with asyncio.timeout_at(min(limit, self._until) if self._until is not None else limit):
                await sem.acquire()
        except TimeoutError:
            raise UpstreamBusy(f"{self._size} connections in use") from None

    async def __aexit__(self, *exc: object) -> None:
        self._sem.release()


@dataclass(frozen=True, slots=True)
class Fetched:
    """A small whole answer from ``Upstreams.fetch``."""

    status: int
    body: bytes
    headers: dict[str, str]


async def fetch(
    upstreams: Upstreams, call: UpstreamCall, *, connect_seconds: float, total_seconds: float, allow_link_local: bool,
    limit: int = 1 << 20,
) -> Fetched:
    """Send ``call`` and read its whole answer within ``total_seconds``. Raises
    ``UpstreamTimeout("total")`` past it, and the other ``UpstreamError``s as ``open``."""
    try:
        async with asyncio.timeout(total_seconds):
            resp = await upstreams.open(call, connect_seconds=connect_seconds, allow_link_local=allow_link_local)
            try:
                return Fetched(resp.status, await read_body(resp, limit), header_map(resp.headers))
            finally:
                resp.close()
    except TimeoutError:
        raise UpstreamTimeout("total") from None


SCRUB_MIN_PREFIX = 8  # an echoed prefix of a key this long is removed too
_REDACTED = b"***"


def scrub(data: bytes, secrets: Iterable[str]) -> bytes:
    """``data`` without any of ``secrets``, nor any prefix of one at least
    ``SCRUB_MIN_PREFIX`` bytes long (an upstream that echoes a truncated key)."""
    for secret in secrets:
        key = secret.encode()
        if not key:
            continue
        probe = key[: min(len(key), SCRUB_MIN_PREFIX)]
        i = data.find(probe)
        while i != -1:
            end = i + len(probe)
            while end - i < len(key) and end < len(data) and data[end] == key[end - i]:
                end += 1
            data = data[:i] + _REDACTED + data[end:]
            i = data.find(probe, i + len(_REDACTED))
    return data


def tier_secrets(tier: CompiledTier) -> tuple[str, ...]:
    """Every key of the tier (all of a source's credentialRefs, not only the one sent)."""
    return tier.secrets()


def error_text(raw: bytes, tier: CompiledTier) -> bytes:
    """An upstream's error bytes, safe to read, clip and show: the tier's keys removed."""
    secrets = tier_secrets(tier)
    return scrub(raw, secrets) if secrets else raw


def scrub_str(text: str, tier: CompiledTier) -> str:
    secrets = tier_secrets(tier)
    if not secrets:
        return text
    return scrub(text.encode(), secrets).decode("utf-8", "replace")


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body (the caller bounds the wait). Over ``limit`` bytes is a reset."""
    parts: list[bytes] = []
    size = 0
    try:
        while chunk := await resp.content.readany():
            size += len(chunk)
            if size > limit:
                raise UpstreamReset(f"upstream body larger than {limit} bytes")
            parts.append(chunk)
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise UpstreamReset(_describe(exc)) from exc
    except ConnectionResetError as exc:
        raise UpstreamReset("connection reset") from exc
    return b"".join(parts)


def buffered_body(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body when all of it has already arrived (a small answer usually comes
    with its head): no await and no timer to arm. None while some is still on the way."""
    content = resp.content
    if not content.is_eof() or content.exception() is not None:
        return None
    raw = content.read_nowait()
    if len(raw) > limit:
        raise UpstreamReset(f"upstream body larger than {limit} bytes")
    return raw


async def read_chunk(resp: aiohttp.ClientResponse) -> bytes:
    """The next piece of a streamed body; b"" at the end."""
    try:
        return await resp.content.readany()
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise UpstreamReset(_describe(exc)) from exc
    except ConnectionResetError as exc:
        raise UpstreamReset("connection reset") from exc


def _describe(exc: BaseException) -> str:
    # Never include request headers (credentials) in a description: only the class and
    # the OS-level reason.
    cause = getattr(exc, "os_error", None)
    text = str(cause or exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


def header_map(headers: Mapping[str, str] | Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
