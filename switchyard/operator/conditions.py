"""Standard Kubernetes conditions, pure.

``lastTransitionTime`` changes only when a condition's status changes, so rewriting the
same condition (same status, maybe a new message) does not look like a transition, and a
status patch computed twice in a row is byte-for-byte the same (no write).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

MAX_MESSAGE = 2000


def rfc3339(ts: float) -> str:
    """Wall-clock seconds -> ``2026-01-02T03:04:05Z`` (seconds precision, as Kubernetes writes)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: float,
    generation: int | None,
    previous: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One condition, keeping the previous ``lastTransitionTime`` when the status did not change."""
    old = next((c for c in previous if c.get("type") == type_), None)
    changed = old is None or old.get("status") != status
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    out: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(now) if changed or not old.get("lastTransitionTime") else old["lastTransitionTime"],  # type: ignore[union-attr]
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def get(conditions: Iterable[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Iterable[dict[str, Any]], type_: str) -> bool:
    c = get(conditions, type_)
    return c is not None and c.get("status") == TRUE
