"""Each ModelSource's live model catalog and credential check: request, parse, verdict.

One GET to the provider's list-models endpoint does both jobs without sending a prompt:

    openai, openrouter, openai-compatible   GET {baseURL}/models            Authorization: Bearer
    anthropic                               GET {baseURL}/v1/models         x-api-key, anthropic-version
    gemini                                  GET {baseURL}/v1beta/models     x-goog-api-key

200 -> the catalog (ids, count, fetchedAt), CredentialValid=True; 401/403 -> CredentialValid
=False with the reason; anything else -> the catalog is not ready and the credential
verdict is unknown (the previous one is kept). Error bodies are reduced to the provider's
error code: some providers echo part of the key in their messages (promise 6).

Ids are normalised to what a binding names: Gemini's ``models/gemini-2.5-pro`` is
``gemini-2.5-pro``; Anthropic lists dated snapshots (``claude-sonnet-4-5-20250929``) and
also answers to their aliases, so ``claude-sonnet-4-5`` and ``claude-sonnet-4-5-latest``
are added for each dated id. ``fetch`` is the only I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from switchyard.compiler.network import LINK_LOCAL_NOT_ALLOWED
from switchyard.netguard.resolver import LinkLocalRefused

from .conditions import FALSE, TRUE, UNKNOWN
from .status import CredentialCheck

LINK_LOCAL_MESSAGE = (
    "the baseURL's name resolves to a link-local or cloud metadata address; "
    "set spec.network.allowLinkLocal: true if that is really a model server"
)

ANTHROPIC_VERSION = "2023-06-01"
MAX_PAGES = 20
_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_DATED = re.compile(r"^(?P<base>.+)-(?P<date>\d{8})$")


@dataclass(frozen=True)
class Page:
    """One parsed answer of a list-models endpoint."""

    ok: bool
    ids: tuple[str, ...] = ()
    next_query: dict[str, str] | None = None  # query for the next page, None when done
    status: int = 0
    code: str | None = None  # the provider's error code/type, never its message


def request_for(provider: str, base_url: str, credential: str | None, query: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """URL and headers of one list-models call (the credential goes in a header only)."""
    base = base_url.rstrip("/")
    headers = {"Accept": "application/json"}
    if provider == "anthropic":
        url, q = f"{base}/v1/models", {"limit": "1000"}
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if credential:
            headers["x-api-key"] = credential
    elif provider == "gemini":
        url, q = f"{base}/v1beta/models", {"pageSize": "1000"}
        if credential:
            headers["x-goog-api-key"] = credential
    else:
        url, q = f"{base}/models", {}
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
    q.update(query or {})
    return (f"{url}?{urlencode(q)}" if q else url), headers


def _error_code(body: Any) -> str | None:
    err = body.get("error") if isinstance(body, dict) else None
    candidates: list[Any] = []
    if isinstance(err, dict):
        candidates += [err.get("code"), err.get("type"), err.get("status")]
    elif isinstance(err, str):
        candidates.append(err)
    for c in candidates:
        if isinstance(c, str) and _CODE.match(c):
            return c
    return None


def parse_page(provider: str, status: int, raw: bytes) -> Page:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    if status != 200:
        return Page(ok=False, status=status, code=_error_code(body))
    if not isinstance(body, dict):
        return Page(ok=False, status=status, code="not-json")
    if provider == "gemini":
        items = body.get("models") or []
        ids = tuple(str(m.get("name", "")).removeprefix("models/") for m in items if isinstance(m, dict))
        token = body.get("nextPageToken")
        return Page(ok=True, ids=ids, next_query={"pageToken": token} if token else None, status=status)
    items = body.get("data")
    if not isinstance(items, list):
        return Page(ok=False, status=status, code="no-data-list")
    ids = tuple(str(m["id"]) for m in items if isinstance(m, dict) and m.get("id"))
    nxt = None
    if provider == "anthropic" and body.get("has_more") and body.get("last_id"):
        nxt = {"after_id": str(body["last_id"])}
    return Page(ok=True, ids=ids, next_query=nxt, status=status)


def normalise(provider: str, ids: list[str]) -> list[str]:
    out = list(dict.fromkeys(i for i in ids if i))
    if provider == "anthropic":
        extra = []
        for i in out:
            m = _DATED.match(i)
            if m:
                extra += [m["base"], f"{m['base']}-latest"]
        out = list(dict.fromkeys(out + extra))
    return out


@dataclass(frozen=True)
class Outcome:
    """The verdict of one catalog fetch."""

    ok: bool
    ids: tuple[str, ...] = ()
    count: int = 0  # models the upstream listed (before alias expansion)
    status: int = 0
    code: str | None = None
    error: str | None = None  # network-level failure, e.g. "timeout"

    def check(self, url: str, *, keyless: bool) -> CredentialCheck:
        where = f"GET {url.split('?')[0]}"
        if self.ok:
            cred = (TRUE, "NoCredentialNeeded", "the source needs no key") if keyless else (
                TRUE, "Accepted", f"{where} accepted the credential")
            return CredentialCheck(*cred, True, "Fetched", f"{self.count} models listed by {where}")
        detail = f" ({self.code})" if self.code else ""
        if self.status in (401, 403):
            reason = "Unauthorized" if self.status == 401 else "Forbidden"
            msg = f"{where} answered {self.status}{detail}: the credential was refused"
            return CredentialCheck(FALSE, reason, msg, False, reason, msg)
        if self.error == LINK_LOCAL_NOT_ALLOWED:  # refused when resolving: nothing was sent
            return not_checked(LINK_LOCAL_NOT_ALLOWED, f"{where} not sent: {LINK_LOCAL_MESSAGE}")
        if self.error:
            msg = f"{where} failed: {self.error}"
            return CredentialCheck(UNKNOWN, "CheckFailed", msg, False, "Unreachable", msg)
        reason = {404: "NoCatalogEndpoint", 429: "RateLimited"}.get(self.status, "UpstreamError")
        msg = f"{where} answered {self.status}{detail}"
        return CredentialCheck(UNKNOWN, "CheckFailed", msg, False, reason, msg)


def not_checked(reason: str, message: str) -> CredentialCheck:
    """No fetch possible: the credential itself is missing or not allowed here."""
    return CredentialCheck(FALSE, reason, message, False, "CredentialMissing", f"not fetched: {message}")


async def _read_all(content: aiohttp.StreamReader, most: int) -> bytes:
    """The whole body, at most ``most`` bytes (``StreamReader.read(n)`` returns only what
    has arrived so far: a catalog larger than one read was cut and failed to parse)."""
    parts: list[bytes] = []
    size = 0
    while size < most and (chunk := await content.read(most - size)):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


async def fetch(
    session: aiohttp.ClientSession, provider: str, base_url: str, credential: str | None, *, timeout_seconds: float
) -> tuple[str, Outcome]:
    """Fetch every page of the catalog. Returns (first URL, outcome)."""
    ids: list[str] = []
    query: dict[str, str] | None = None
    first_url = ""
    timeout = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=min(5.0, timeout_seconds))
    for _ in range(MAX_PAGES):
        url, headers = request_for(provider, base_url, credential, query)
        first_url = first_url or url
        try:
            async with session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as resp:
                raw = await _read_all(resp.content, 32 * 1024 * 1024)
                page = parse_page(provider, resp.status, raw)
        except TimeoutError:
            return first_url, Outcome(ok=False, error="timeout")
        except aiohttp.ClientError as e:
            refused = isinstance(getattr(e, "os_error", None), LinkLocalRefused)
            return first_url, Outcome(ok=False, error=LINK_LOCAL_NOT_ALLOWED if refused else type(e).__name__)
        if not page.ok:
            return first_url, Outcome(ok=False, status=page.status, code=page.code)
        ids += page.ids
        query = page.next_query
        if query is None:
            break
    return first_url, Outcome(ok=True, ids=tuple(normalise(provider, ids)), count=len(set(ids)), status=200)
