"""Small pure helpers shared by the protocol adapters."""

from __future__ import annotations

import base64
import os
import re
import struct
import time
from collections.abc import Mapping
from typing import Any

import orjson

from switchyard.sidecar.errors import clip

from .base import RequestError, UpstreamErrorInfo, UpstreamFormatError

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?,(.*)$", re.S)


# Sources of randomness and time for generated ids and timestamps; golden tests swap
# them for deterministic ones so fixtures compare exactly.
entropy = os.urandom
clock = time.time


def new_id(prefix: str) -> str:
    return prefix + base64.b32encode(entropy(15)).decode().lower()


def now() -> int:
    return int(clock())


def split_data_url(url: str) -> tuple[str | None, str | None]:
    """'data:image/png;base64,AAAA' -> ('image/png', 'AAAA'); (None, None) when not a
    base64 data URL."""
    m = _DATA_URL.match(url)
    if not m or not m.group(2) or "base64" not in m.group(2):
        return None, None
    return m.group(1) or "application/octet-stream", m.group(3)


def data_url(media_type: str | None, data: str) -> str:
    return f"data:{media_type or 'application/octet-stream'};base64,{data}"


def args_text(arguments: Any) -> str:
    """Tool-call arguments as JSON text, whatever form they came in."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments or "{}"
    return orjson.dumps(arguments).decode()


def args_object(arguments: str) -> dict[str, Any]:
    """Tool-call arguments as an object (Anthropic and Gemini want one). Invalid JSON from
    a model is kept under "_raw" rather than dropped."""
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


def expect(cond: bool, message: str, param: str | None = None) -> None:
    if not cond:
        raise RequestError(message, param)


def opt_number(body: dict[str, Any], key: str, *, integer: bool = False) -> Any:
    v = body.get(key)
    if v is None:
        return None
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok:
        raise RequestError(f"'{key}' must be a {'integer' if integer else 'number'}", key)
    return v


def clamp(v: float | None, lo: float, hi: float) -> float | None:
    if v is None:
        return None
    return min(hi, max(lo, v))


EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}


def effort_to_budget(effort: str | None) -> int | None:
    return EFFORT_BUDGET.get(effort or "")


def budget_to_effort(budget: int | None) -> str | None:
    if budget is None:
        return None
    if budget <= 1024:
        return "minimal" if budget < 1024 else "low"
    if budget <= 4096:
        return "low"
    if budget <= 16384:
        return "medium"
    return "high"


# ------------------------------------------------------------------------ embeddings

MAX_EMBED_DIMENSIONS = 65536  # far more than any model has; a bound on what is read


def vector_base64(vector: list[float]) -> str:
    """A vector as OpenAI's ``encoding_format: base64`` writes it: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def vector_in(value: Any, what: str) -> list[float]:
    """An upstream's vector (a list of numbers, or OpenAI's base64 float32 text) as
    floats. Raises UpstreamFormatError on any other shape."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise UpstreamFormatError(f"{what}: base64 vector that does not decode") from exc
        if len(raw) % 4 or not raw or len(raw) // 4 > MAX_EMBED_DIMENSIONS:
            raise UpstreamFormatError(f"{what}: base64 vector of {len(raw)} bytes is not float32s")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(value, list) or not value or len(value) > MAX_EMBED_DIMENSIONS:
        raise UpstreamFormatError(f"{what}: not a non-empty array of numbers")
    if not all(type(x) is float or type(x) is int for x in value):
        raise UpstreamFormatError(f"{what}: a vector element that is not a number")
    out = [float(x) for x in value]
    if max(out) > _FLOAT32_MAX or min(out) < -_FLOAT32_MAX:  # base64 answers are float32s
        raise UpstreamFormatError(f"{what}: a vector element out of float32 range")
    return out


_FLOAT32_MAX = 3.4028234663852886e38


def read_openai_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamErrorInfo:
    """OpenAI's error body, the same for Chat Completions and Responses (and most
    OpenAI-compatible servers): ``{"error": {"message", "type", "param", "code"}}``, or
    ``{"error": "text"}``. A refused key (``invalid_api_key``) is flagged ``auth``."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return UpstreamErrorInfo(clip(body.decode("utf-8", "replace")) or f"HTTP {status}")
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, str):
        return UpstreamErrorInfo(clip(err))
    if not isinstance(err, dict):
        return UpstreamErrorInfo(clip(body.decode("utf-8", "replace")))
    code = str(err.get("code") or "")
    kind = str(err.get("type") or code or "")
    return UpstreamErrorInfo(
        message=clip(str(err.get("message") or kind or f"HTTP {status}")),
        kind=kind or None,
        quota=code == "insufficient_quota" or kind == "insufficient_quota",
        model_not_found=code == "model_not_found",
        auth=code == "invalid_api_key",
    )
