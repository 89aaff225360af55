"""Who is calling: a short, bounded name for the client behind a request.

Read from ``x-switchyard-caller`` when the client says it (any short token), else
recognised from the User-Agent of the clients people point at a gateway. The name is
used in the request log, the ``caller`` metric label, and by bindings that restrict or
route by caller (``AssistantBinding.spec.callers``). Unrecognised clients are
``unknown``; a caller name never carries anything but ``[a-z0-9._-]``. The metric label
is bounded too (``metric_label``): a name the header made up that no binding lists is
``other`` there, so a client cannot grow the series without limit; the log line keeps it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Container

# (substring of the lower-cased User-Agent, caller name), first match wins.
KNOWN = (
    ("claude-cli", "claude-code"),
    ("claude-code", "claude-code"),
    ("codex_cli_rs", "codex"),
    ("codex_exec", "codex"),
    ("codex-cli", "codex"),
    ("geminicli", "gemini-cli"),
    ("gemini-cli", "gemini-cli"),
    ("ai-sdk/", "vercel-ai-sdk"),
    ("google-genai-sdk", "google-genai"),
    ("anthropic/python", "anthropic-sdk"),
    ("anthropic/js", "anthropic-sdk"),
    ("openai/python", "openai-sdk"),
    ("openai/js", "openai-sdk"),
)
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
KNOWN_NAMES = frozenset(name for _, name in KNOWN) | {"unknown"}


@functools.lru_cache(maxsize=512)  # a handful of clients send the same few headers; bounded
def identify(header: str | None, user_agent: str | None) -> str:
    if header:
        name = header.strip().lower()
        return name if _TOKEN.match(name) else "unknown"
    ua = (user_agent or "").lower()
    for needle, name in KNOWN:
        if needle in ua:
            return name
    return "unknown"


def metric_label(caller: str, configured: Container[str]) -> str:
    """The ``caller`` metric label: a client recognised here or a caller some binding
    lists in ``callers``; any other self-declared name is ``other``."""
    return caller if caller in KNOWN_NAMES or caller in configured else "other"
