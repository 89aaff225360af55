"""Faults: what can go wrong with an upstream, and when it goes wrong.

A `Fault` is data: a kind, its options, and a schedule. Queued faults (`times=N`) fail
the next N matching requests and are consumed in the order they were added; persistent
faults stay until cleared and fail every matching request, every Nth one
(`every=N`, counting all the mount's matching requests), or a seeded-random share
(`rate=0.3, seed=7`), so a demo can show a fallback happening deterministically.
A queued fault wins over a persistent one. A fault
matches generation requests by default (`endpoint="generate"`), so a catalogue refresh
never eats a fault meant for a chat request; `model=` narrows it to one model, and
`key_index=` to requests that present that one of the mount's API keys (a mount may
accept several: `Mount(api_key=[...])`).

Kinds and their options (the option names are the same in Python, in the JSON control
API, and — with dashes — in the CLI spec):

    <status>     any HTTP status 400-599 ("429", "500", "503", "529", "401", "403", "404"...)
                 in the provider's error shape. Options: message; retry_after (seconds,
                 sent as `Retry-After: N`), retry_after_date (seconds, sent as an HTTP-date
                 `Retry-After`), retry_after_ms (sent as `retry-after-ms`), reset_after
                 (seconds, only the provider's native hint); each also sets the native
                 hint (OpenAI `x-ratelimit-reset-*`, Anthropic `anthropic-ratelimit-*-reset`,
                 Gemini `RetryInfo.retryDelay`); should_retry (bool, `x-should-retry`).
    hang         accept the request and never answer, until the client goes away, the
                 simulator closes, or max_seconds (default 60) pass — then the connection
                 is reset. after_chunks=N: stall a stream after N content chunks instead.
    empty        mode="envelope" (default): 200 with no content — an empty message, or a
                 stream of only the envelope events; mode="zero": 200 with an empty body /
                 a stream with zero events.
    reset        close the TCP connection with a RST: before the response head (default),
                 after_chunks=N content chunks of a stream, or after_bytes=N bytes of a
                 non-streaming body.
    malformed    a 200 whose JSON body is cut short; in a stream, a frame whose data is
                 not JSON after after_chunks=N (default 0) content chunks, then the end.
    slow         delay_ms before the response head, chunk_delay_ms (default 1000) between
                 stream chunks; a non-streaming answer waits delay_ms + chunk_delay_ms x
                 chunks, as long as its streamed twin.
    error-event  a well-formed in-stream error event after after_chunks=N (default 1)
                 content chunks, then the end (no clean finish). status= picks the error
                 (default 529 `overloaded_error` on Anthropic, 500 elsewhere); message=.
                 On a non-streaming request it is that status as an HTTP error.

Pure: no I/O here; `app.py` acts the faults out.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from .wire import ENDPOINTS

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultBook",
    "make_fault",
    "parse_fault_spec",
    "retry_headers",
]

#: The named fault kinds; any HTTP status from 400 to 599 is a kind too.
FAULT_KINDS = ("hang", "empty", "reset", "malformed", "slow", "error-event")

_STATUS_OPTIONS = frozenset({"message", "retry_after", "retry_after_date", "retry_after_ms", "reset_after", "should_retry"})
_OPTIONS: dict[str, frozenset[str]] = {
    "hang": frozenset({"max_seconds", "after_chunks"}),
    "empty": frozenset({"mode"}),
    "reset": frozenset({"after_chunks", "after_bytes"}),
    "malformed": frozenset({"after_chunks"}),
    "slow": frozenset({"delay_ms", "chunk_delay_ms"}),
    "error-event": frozenset({"after_chunks", "status", "message"}),
}
_NUMBERS = frozenset({
    "retry_after", "retry_after_date", "retry_after_ms", "reset_after", "max_seconds",
    "after_chunks", "after_bytes", "delay_ms", "chunk_delay_ms", "status",
})
_INTEGERS = frozenset({"after_chunks", "after_bytes", "status"})


@dataclass(eq=False)
class Fault:
    """One fault on one mount. `times` is None for a persistent fault. `hits` counts
    the requests it failed; `seen` the matching requests a persistent fault looked at."""

    kind: str
    times: int | None = 1
    every: int | None = None
    rate: float | None = None
    seed: int | None = None
    endpoint: str = "generate"
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    key_index: int | None = None  # only requests presenting this one of the mount's keys
    hits: int = 0
    seen: int = 0
    _rng: random.Random | None = field(default=None, repr=False)

    @property
    def persistent(self) -> bool:
        return self.times is None

    @property
    def status(self) -> int | None:
        """The HTTP status of a status fault, else None."""
        return int(self.kind) if self.kind.isdigit() else None

    def matches(self, endpoint: str, model: str, key_index: int | None = None) -> bool:
        return (
            (self.endpoint == "any" or self.endpoint == endpoint)
            and (self.model is None or self.model == model)
            and (self.key_index is None or self.key_index == key_index)
        )

    def fires(self) -> bool:
        """Advance a persistent fault's schedule by one matching request."""
        self.seen += 1
        if self.every:
            return self.seen % self.every == 0
        if self.rate is not None:
            if self._rng is None:
                self._rng = random.Random(self.seed)
            return self._rng.random() < self.rate
        return True

    def describe(self) -> str:
        opts = " ".join(f"{k.replace('_', '-')}={v}" for k, v in self.options.items())
        if self.persistent:
            when = f"every {self.every} requests" if self.every else (
                f"at rate {self.rate} (seed {self.seed})" if self.rate is not None else "on every request"
            )
        else:
            when = f"the next {self.times} request(s)"
        scope = "" if self.endpoint == "generate" else f" [{self.endpoint}]"
        scope += f" [model {self.model}]" if self.model else ""
        scope += f" [key {self.key_index}]" if self.key_index is not None else ""
        return f"{self.kind} {when}{scope}" + (f" ({opts})" if opts else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "persistent": self.persistent,
            "times": self.times,
            "every": self.every,
            "rate": self.rate,
            "seed": self.seed,
            "endpoint": self.endpoint,
            "model": self.model,
            "key_index": self.key_index,
            "options": dict(self.options),
            "hits": self.hits,
            "seen": self.seen,
        }


def _normalise_kind(kind: str | int) -> str:
    text = str(kind).strip().lower().replace("_", "-")
    if text.isdigit():
        if not 400 <= int(text) <= 599:
            raise ValueError(f"fault status must be 400-599, not {text}")
        return text
    if text not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}: use an HTTP status (400-599) or one of {', '.join(FAULT_KINDS)}")
    return text


def make_fault(
    kind: str | int,
    *,
    times: int | None = None,
    persistent: bool = False,
    every: int | None = None,
    rate: float | None = None,
    seed: int | None = None,
    endpoint: str = "generate",
    model: str | None = None,
    key_index: int | None = None,
    **options: Any,
) -> Fault:
    """Validate and build a fault. Queued (`times`, default 1) unless `persistent`,
    `every` or `rate` is given."""
    name = _normalise_kind(kind)
    allowed = _STATUS_OPTIONS if name.isdigit() else _OPTIONS[name]
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"fault {name!r} has no option(s) {', '.join(sorted(unknown))}; it takes {', '.join(sorted(allowed))}")
    for key, value in options.items():
        if key in _NUMBERS and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
            raise ValueError(f"fault option {key} must be a non-negative number, not {value!r}")
        if key in _INTEGERS and not isinstance(value, int):
            raise ValueError(f"fault option {key} must be an integer, not {value!r}")
    if name == "empty" and options.get("mode", "envelope") not in ("envelope", "zero"):
        raise ValueError("fault 'empty' option mode must be 'envelope' or 'zero'")
    if name == "error-event" and "status" in options and not 400 <= options["status"] <= 599:
        raise ValueError("fault 'error-event' option status must be 400-599")
    if endpoint != "any" and endpoint not in ENDPOINTS:
        raise ValueError(f"fault endpoint must be 'any' or one of {', '.join(ENDPOINTS)}, not {endpoint!r}")
    if every is not None and (not isinstance(every, int) or every < 1):
        raise ValueError("fault every must be a positive integer")
    if rate is not None and not 0 <= rate <= 1:
        raise ValueError("fault rate must be between 0 and 1")
    if key_index is not None and (not isinstance(key_index, int) or isinstance(key_index, bool) or key_index < 0):
        raise ValueError("fault key_index must be a non-negative integer")
    is_persistent = persistent or every is not None or rate is not None
    if is_persistent and times is not None:
        raise ValueError("a fault is either queued (times) or persistent (persistent, every, rate), not both")
    if not is_persistent:
        times = 1 if times is None else times
        if not isinstance(times, int) or times < 1:
            raise ValueError("fault times must be a positive integer")
    return Fault(
        kind=name,
        times=None if is_persistent else times,
        every=every,
        rate=rate,
        seed=seed,
        endpoint=endpoint,
        model=model,
        key_index=key_index,
        options=dict(options),
    )


class FaultBook:
    """The faults of one mount: a queue consumed in order, then the persistent ones."""

    __slots__ = ("queue", "persistent")

    def __init__(self) -> None:
        self.queue: list[Fault] = []
        self.persistent: list[Fault] = []

    def __bool__(self) -> bool:
        return bool(self.queue or self.persistent)

    def add(self, fault: Fault) -> None:
        (self.persistent if fault.persistent else self.queue).append(fault)

    def clear(self) -> None:
        self.queue.clear()
        self.persistent.clear()

    def all(self) -> list[Fault]:
        return self.queue + self.persistent

    def pick(self, endpoint: str, model: str, key_index: int | None = None) -> Fault | None:
        """The fault to act out for this request, if any (and account for it).

        Every persistent fault that matches counts the request, even when a queued
        fault takes it, so `every=3` means the mount's 3rd, 6th... matching request."""
        chosen = None
        for fault in self.persistent:
            if fault.matches(endpoint, model, key_index) and fault.fires() and chosen is None:
                chosen = fault
        for fault in self.queue:
            if fault.matches(endpoint, model, key_index):
                assert fault.times is not None
                fault.times -= 1
                if fault.times <= 0:
                    self.queue.remove(fault)
                chosen = fault
                break
        if chosen is not None:
            chosen.hits += 1
        return chosen


def retry_headers(options: dict[str, Any], now: float | None = None) -> tuple[dict[str, str], float | None]:
    """The standard retry headers a status fault asked for, and the delay (seconds) for
    the provider's native hint."""
    headers: dict[str, str] = {}
    reset: float | None = None
    if "retry_after" in options:
        reset = float(options["retry_after"])
        headers["retry-after"] = f"{options['retry_after']:g}"
    if "retry_after_date" in options:
        reset = float(options["retry_after_date"])
        headers["retry-after"] = formatdate((time.time() if now is None else now) + reset, usegmt=True)
    if "retry_after_ms" in options:
        reset = options["retry_after_ms"] / 1000
        headers["retry-after-ms"] = f"{options['retry_after_ms']:g}"
    if "reset_after" in options:
        reset = float(options["reset_after"])
    if "should_retry" in options:
        headers["x-should-retry"] = "true" if options["should_retry"] else "false"
    return headers, reset


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_fault_spec(spec: str, *, default_persistent: bool = True) -> tuple[str | None, Fault]:
    """Parse `[MOUNT=]KIND[:KEY=VALUE]...`, e.g. `openai=429:every=3:retry-after=5`.

    Keys use dashes or underscores. A spec without `times`, `every` or `rate` is
    persistent (fails every matching request) when `default_persistent`, else queued
    once. Returns (mount name or None, fault).
    """
    mount = None
    head, *rest = spec.strip().split(":")
    if "=" in head:
        mount, _, head = head.partition("=")
        mount = mount.strip() or None
    kwargs: dict[str, Any] = {}
    for item in rest:
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        kwargs[key] = _value(raw.strip()) if sep else True
    if key_error := [k for k in ("every", "seed", "times") if k in kwargs and not isinstance(kwargs[k], int)]:
        raise ValueError(f"fault spec {spec!r}: {', '.join(key_error)} must be an integer")
    if "message" in kwargs:
        kwargs["message"] = str(kwargs["message"])
    if "model" in kwargs:
        kwargs["model"] = str(kwargs["model"])
    if default_persistent and not {"times", "every", "rate", "persistent"} & set(kwargs):
        kwargs["persistent"] = True
    try:
        return mount, make_fault(head, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fault spec {spec!r}: {exc}") from None
