"""Shared tier health: the hints the operator sends a sidecar (``PUT /admin/health``).

A sidecar learns on its own that a key is rate-limited or refused; the operator reads
every pod's report (``report.py``) and tells the other pods that run a tier of the same
source and model (docs/shared-health.md). This module is the wire contract of that
message, shared by both sides, and its signature. Pure: pydantic, ``hmac`` and nothing
else, so the operator may import it.

The message is **level-based**: it is the whole set of hints for that pod now. A state
the sidecar holds from an earlier hint and that is not in the set is dropped (what the
sidecar learned itself is never dropped by a hint). An empty set is the clearing hint.

Keys are named by index only (``key``: the position in the source's ``credentialRefs``;
0 for a source with one key). No value, hash or anything read from a Secret is in it.

Signature: the operator never sends the admin token over the pod network (it is plain
HTTP). It signs ``<t>.<body>`` with HMAC-SHA256 keyed by the namespace's admin token and
sends ``X-Switchyard-Signature: t=<unix seconds>,v1=<hex>``. The sidecar holds the same
token (``SWITCHYARD_ADMIN_TOKEN``), refuses a signature older or newer than
``SIGNATURE_MAX_AGE_SECONDS`` and a message older than the last one it accepted.
Whoever sniffs a message learns which tiers wait, never the token; a replayed message
within its minute carries absolute times and changes nothing new.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

HINTS_VERSION = 1
HEALTH_PATH = "/admin/health"
SIGNATURE_HEADER = "X-Switchyard-Signature"
MAX_HINT_BYTES = 64 * 1024  # a namespace with 256 (source, model, key) states fits in a few KiB
MAX_HINTS = 256
MAX_KEY_INDEX = 7  # credentialRefs holds 1 to 8 keys
SIGNATURE_MAX_AGE_SECONDS = 60.0
REASON_PATTERN = r"^[A-Za-z0-9 ()_.:,/-]{1,64}$"  # "429(retry in 30s)", "401", "404(model not listed)"


class HealthHint(BaseModel):
    """What some pod saw of one (source, model, key): rate-limited until a wall time, or
    refused (``disabled``: the upstream's answer, e.g. ``401``). Exactly one of the two."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    source: str = Field(min_length=1, max_length=253)
    model: str = Field(min_length=1, max_length=256)
    key: int = Field(default=0, ge=0, le=MAX_KEY_INDEX)
    rate_limited_until: float | None = Field(default=None, ge=0, allow_inf_nan=False)  # wall clock, seconds
    disabled: str | None = Field(default=None, pattern=REASON_PATTERN)
    reason: str | None = Field(default=None, pattern=REASON_PATTERN)  # the 429 as the pod saw it

    @model_validator(mode="after")
    def _one_kind(self) -> HealthHint:
        if (self.rate_limited_until is None) == (self.disabled is None):
            raise ValueError("a hint is either rate_limited_until or disabled")
        return self

    @property
    def kind(self) -> str:
        return "rate-limited" if self.rate_limited_until is not None else "disabled"


class HealthHints(BaseModel):
    """The whole set of hints for one pod (empty: none, drop those sent before)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    hints_version: Literal[1] = HINTS_VERSION
    hints: list[HealthHint] = Field(default_factory=list, max_length=MAX_HINTS)

    def to_body(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def sign(token: str, at: int, body: bytes) -> str:
    """The ``X-Switchyard-Signature`` value for ``body`` sent at ``at`` (unix seconds)."""
    mac = hmac.new(token.encode(), f"{int(at)}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={int(at)},v1={mac}"


_SIG = re.compile(r"^t=(\d{1,12}),v1=([0-9a-f]{64})$")


class SignatureError(ValueError):
    pass


def verify(token: str, header: str, body: bytes, now: float) -> int:
    """The signed time (unix seconds) when ``header`` signs ``body`` with ``token`` and is
    fresh; else ``SignatureError`` (its text names no value)."""
    m = _SIG.match(header.strip())
    if m is None:
        raise SignatureError("malformed signature")
    at = int(m.group(1))
    want = sign(token, at, body).encode()
    if not hmac.compare_digest(want, header.strip().encode("utf-8", "surrogateescape")):
        raise SignatureError("bad signature")
    if abs(now - at) > SIGNATURE_MAX_AGE_SECONDS:
        raise SignatureError(f"signature older or newer than {SIGNATURE_MAX_AGE_SECONDS:g}s")
    return at
