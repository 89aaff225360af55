"""A binding's rate limits and daily token budget, in one sidecar: pure counters.

``AssistantBinding.spec.limits`` (compiled: ``contract/config.CompiledLimits``) says how
many requests and tokens a minute, and tokens a UTC day, a binding may take, for all its
traffic and optionally for each caller. This module keeps the counts and decides; the
pipeline (``pipeline/limits.py``) asks before any tier is tried and answers a refusal
with a 429 in the caller's protocol. Docs: docs/limits.md.

- **Windows.** Per minute: a sliding window over UTC minutes (the count of this minute
  plus the previous minute's, weighted by how much of it is still inside the last 60 s:
  two integers, O(1)). Per day: the UTC day's count. Windows are aligned to the wall
  clock so that the operator can add up the counts of a binding's pods (``report``).
- **Requests** are counted when admitted; **tokens** (input + output) when the answer's
  usage is known, at its end (``spend``): a token limit refuses the request *after* the
  one that crossed it.
- **Shares across pods.** Each sidecar enforces ``limit / pods`` (``pods``: how many
  pods serve the binding, from the config bundle; 1 when unknown), never below 1. The
  fleet then admits at most the limit in each UTC minute (or day), possibly less when
  traffic is uneven across pods: a pod's unused share is not lent.
- **Callers** are keyed by their metric label (``routing/caller.metric_label``): the
  known clients, the callers some binding lists, ``unknown`` and ``other``. So the
  number of counters per binding is bounded by the config, whatever clients send.

No lock: the sidecar is one asyncio thread. No clock of its own: ``now`` (wall seconds)
is passed in. Nothing is allocated per request once a caller's counters exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from switchyard.sidecar.contract.config import CompiledBinding, CompiledLimits, CompiledRateLimits
from switchyard.sidecar.contract.report import ReportedLimits, ReportedWindow

MINUTE = 60.0
DAY = 86400.0

REQUESTS_PER_MINUTE = "requestsPerMinute"
TOKENS_PER_MINUTE = "tokensPerMinute"
TOKENS_PER_DAY = "tokensPerDay"
LIMIT_NAMES = (REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE, TOKENS_PER_DAY)
# The ``limit`` label of switchyard_limited_requests_total: these six words only.
LIMIT_LABELS = (*LIMIT_NAMES, *(f"perCaller.{n}" for n in LIMIT_NAMES))

Caps = tuple[float | None, float | None, float | None]  # this pod's share of each limit
_NO_CAPS: Caps = (None, None, None)


class Minute:
    """Sliding window over UTC minutes: this minute's count ``cur`` and the previous
    minute's ``prev``; the estimate of the last 60 s is ``prev * (1 - elapsed/60) + cur``."""

    __slots__ = ("start", "cur", "prev")

    def __init__(self) -> None:
        self.start = 0.0
        self.cur = 0
        self.prev = 0

    def roll(self, now: float) -> None:
        start = now - now % MINUTE
        if start != self.start:
            self.prev = self.cur if start - self.start == MINUTE else 0
            self.cur = 0
            self.start = start

    def wait(self, now: float, cap: float) -> float:
        """0 when one more unit fits under ``cap`` now; else the seconds until it does."""
        self.roll(now)
        elapsed = now - self.start
        if self.prev * (1.0 - elapsed / MINUTE) + self.cur + 1 <= cap:
            return 0.0
        if self.cur + 1 <= cap:  # the previous minute's weight must fade first
            fade = 1.0 - (cap - 1 - self.cur) / self.prev
            return max(fade * MINUTE - elapsed, 0.001)
        # This minute is full: from the next one it is the weighted one, and must fade
        # until one more fits (cur * (1 - f) + 1 <= cap).
        fade = max(0.0, 1.0 - (cap - 1) / self.cur)
        return (MINUTE - elapsed) + fade * MINUTE

    def add(self, now: float, n: int) -> None:
        self.roll(now)
        self.cur += n


class Day:
    """The count of the current UTC day."""

    __slots__ = ("start", "used")

    def __init__(self) -> None:
        self.start = 0.0
        self.used = 0

    def roll(self, now: float) -> None:
        start = now - now % DAY
        if start != self.start:
            self.start = start
            self.used = 0

    def wait(self, now: float, cap: float) -> float:
        self.roll(now)
        return 0.0 if self.used + 1 <= cap else self.start + DAY - now

    def add(self, now: float, n: int) -> None:
        self.roll(now)
        self.used += n


class Meter:
    """The counters of one scope: the binding's whole traffic, or one caller's."""

    __slots__ = ("requests", "tokens", "day")

    def __init__(self) -> None:
        self.requests = Minute()
        self.tokens = Minute()
        self.day = Day()

    def over(self, now: float, caps: Caps) -> tuple[str, float] | None:
        """The limit that refuses one more request now, with the longest wait; None: admitted."""
        rpm, tpm, tpd = caps
        worst: tuple[str, float] | None = None
        if rpm is not None and (w := self.requests.wait(now, rpm)):
            worst = (REQUESTS_PER_MINUTE, w)
        if tpm is not None and (w := self.tokens.wait(now, tpm)) and (worst is None or w > worst[1]):
            worst = (TOKENS_PER_MINUTE, w)
        if tpd is not None and (w := self.day.wait(now, tpd)) and (worst is None or w > worst[1]):
            worst = (TOKENS_PER_DAY, w)
        return worst


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not admitted: which limit (``limit``, one of LIMIT_NAMES), for the
    binding or for its caller (``caller`` set), and for how long (seconds)."""

    limit: str
    wait: float
    fleet_limit: int  # the limit as the binding states it
    share: float  # this pod's share of it
    pods: int
    caller: str | None = None

    @property
    def label(self) -> str:
        """The metric label and header value: ``requestsPerMinute``, ``perCaller.tokensPerDay``..."""
        return f"perCaller.{self.limit}" if self.caller is not None else self.limit

    @property
    def budget(self) -> bool:
        """A daily budget spent (rather than a per-minute rate)."""
        return self.limit == TOKENS_PER_DAY


def _share(limit: int | None, pods: int) -> float | None:
    if limit is None:
        return None
    return max(limit / pods, 1.0)  # never below one: a pod that may admit nothing serves nothing


def _caps(limits: CompiledRateLimits | None, pods: int) -> Caps | None:
    if limits is None:
        return None
    caps = (_share(limits.requests_per_minute, pods), _share(limits.tokens_per_minute, pods),
            _share(limits.tokens_per_day, pods))
    return None if caps == _NO_CAPS else caps


def _stated(limits: CompiledRateLimits, name: str) -> int:
    return {REQUESTS_PER_MINUTE: limits.requests_per_minute, TOKENS_PER_MINUTE: limits.tokens_per_minute,
            TOKENS_PER_DAY: limits.tokens_per_day}[name] or 0


class BindingLimits:
    """One binding's limits and counters in this sidecar. The counters outlive config
    swaps (``LimitBoard.install`` keeps them by binding) and a change of ``pods``."""

    __slots__ = ("limits", "pods", "caps", "caller_caps", "total", "callers")

    def __init__(self, limits: CompiledLimits, pods: int = 1) -> None:
        self.total = Meter()
        self.callers: dict[str, Meter] = {}
        self.configure(limits, pods)

    def configure(self, limits: CompiledLimits, pods: int) -> None:
        self.limits = limits
        self.pods = max(1, pods)
        self.caps = _caps(limits, self.pods) or _NO_CAPS
        self.caller_caps = _caps(limits.per_caller, self.pods)

    def admit(self, caller: str, now: float) -> Refusal | None:
        """Admit one request of ``caller`` (a metric label) now and count it, or say why not."""
        over = self.total.over(now, self.caps)
        meter = None
        if self.caller_caps is not None:
            meter = self.callers.get(caller)
            if meter is None:
                meter = self.callers[caller] = Meter()
            mine = meter.over(now, self.caller_caps)
            if mine is not None and (over is None or mine[1] > over[1]):
                per = self.limits.per_caller
                assert per is not None
                return Refusal(mine[0], mine[1], _stated(per, mine[0]), self._cap(self.caller_caps, mine[0]), self.pods, caller)
        if over is not None:
            return Refusal(over[0], over[1], _stated(self.limits, over[0]), self._cap(self.caps, over[0]), self.pods)
        self.total.requests.add(now, 1)
        if meter is not None:
            meter.requests.add(now, 1)
        return None

    @staticmethod
    def _cap(caps: Caps, name: str) -> float:
        return caps[LIMIT_NAMES.index(name)] or 0.0

    def spend(self, caller: str, tokens: int, now: float) -> None:
        """Count the tokens of an answer that ended (input + output)."""
        if tokens <= 0:
            return
        t = self.total
        t.tokens.add(now, tokens)
        t.day.add(now, tokens)
        if self.caller_caps is not None:
            meter = self.callers.get(caller)
            if meter is None:
                meter = self.callers[caller] = Meter()
            meter.tokens.add(now, tokens)
            meter.day.add(now, tokens)

    def report(self, now: float) -> ReportedLimits:
        """What this pod used of each binding-wide limit in the current window (rolled to
        ``now``, so every pod reports the same window and the operator can add them up)."""
        lim, t = self.limits, self.total
        windows: dict[str, ReportedWindow] = {}
        for name, limit, cap in zip(
            LIMIT_NAMES, (lim.requests_per_minute, lim.tokens_per_minute, lim.tokens_per_day), self.caps, strict=True
        ):
            if limit is None or cap is None:
                continue
            if name == TOKENS_PER_DAY:
                t.day.roll(now)
                used, start, length = t.day.used, t.day.start, DAY
            else:
                w = t.requests if name == REQUESTS_PER_MINUTE else t.tokens
                w.roll(now)
                used, start, length = w.cur, w.start, MINUTE
            windows[name] = ReportedWindow(limit=limit, share=round(cap, 3), used=used, window_start=start,
                                           window_seconds=length)
        return ReportedLimits(pods=self.pods, windows=windows)


def binding_key(b: CompiledBinding) -> str:
    return f"{b.namespace}/{b.name}"


class LimitBoard:
    """Every limited binding's ``BindingLimits`` in this sidecar, and how many pods share
    each one's limits. Bindings without limits have no entry and cost nothing."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # wall seconds: windows are UTC minutes and days. Tests replace it.
        self._by_key: dict[str, BindingLimits] = {}
        self._by_id: dict[int, tuple[CompiledBinding, BindingLimits]] = {}
        self._pods: dict[str, int] = {}  # binding key -> pods sharing its limits (from the bundle)

    def install(self, bindings: Iterable[CompiledBinding]) -> None:
        """A new config: keep the counters of bindings that still have limits."""
        by_key: dict[str, BindingLimits] = {}
        by_id: dict[int, tuple[CompiledBinding, BindingLimits]] = {}
        for b in bindings:
            if b.limits is None:
                continue
            key = binding_key(b)
            bl = self._by_key.get(key)
            pods = self._pods.get(key, 1)
            if bl is None:
                bl = BindingLimits(b.limits, pods)
            elif bl.limits != b.limits or bl.pods != pods:
                bl.configure(b.limits, pods)
            by_key[key] = bl
            by_id[id(b)] = (b, bl)
        self._by_key, self._by_id = by_key, by_id

    def share(self, namespace: str, pods: Mapping[str, int]) -> None:
        """How many pods serve each binding of ``namespace`` (by name), as the operator
        counted them (the config bundle's ``pods``); a binding not named: 1."""
        self._pods = {k: v for k, v in self._pods.items() if not k.startswith(f"{namespace}/")}
        self._pods.update({f"{namespace}/{name}": max(1, int(n)) for name, n in pods.items()})
        for key, bl in self._by_key.items():
            n = self._pods.get(key, 1)
            if n != bl.pods:
                bl.configure(bl.limits, n)

    def get(self, b: CompiledBinding) -> BindingLimits:
        """The limits of ``b`` (which has ``limits``): one dict lookup for the installed
        config's binding objects; by name for a request still on a previous config."""
        e = self._by_id.get(id(b))
        if e is not None and e[0] is b:
            return e[1]
        assert b.limits is not None
        key = binding_key(b)
        bl = self._by_key.get(key)
        if bl is None:
            bl = self._by_key[key] = BindingLimits(b.limits, self._pods.get(key, 1))
        return bl

    def report(self, b: CompiledBinding) -> ReportedLimits | None:
        if b.limits is None:
            return None
        return self.get(b).report(self.clock())
