"""Who is calling: a short, bounded name for the client behind a request.

Read from ``x-switchyard-caller`` when the client says it (any short token), else
recognised from the User-Agent of the clients people point at a gateway. The name is
used in the request log, the ``caller`` metric label, and by bindings that restrict or
route by caller (``AssistantBinding.spec.callers``). Unrecognised clients are
``unknown``; a caller name never carries anything but ``[a-z0-9._-]`` (bounded metric
label values).
"""

from __future__ import annotations

import re

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


def identify(header: str | None, user_agent: str | None) -> str:
    if header:
        name = header.strip().lower()
        return name if _TOKEN.match(name) else "unknown"
    ua = (user_agent or "").lower()
    for needle, name in KNOWN:
        if needle in ua:
            return name
    return "unknown"
