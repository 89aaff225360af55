"""The running sidecar's state, all in one place.

- ``Snapshot``: an immutable view of one compiled config with its alias index. A request
  takes the current snapshot once, at its start, and finishes on it even if a new
  config arrives meanwhile (a config swap never breaks a request in flight).
- ``Runtime``: the current snapshot, the breaker board, the last tier that served each
  binding, the metrics and the upstream pools. Owned by the aiohttp app.

- ``TierLease``: one admitted use of a tier. ``Runtime.admit`` asks the tier's breaker;
  the lease records the verdict (``succeeded`` / ``failed``) and, left without one (the
  client went away, the request was refused before sending), gives the admission back.
  Every breaker transition a request causes goes through a lease.

Breaker transitions are counted here (``note_transitions``); the breaker-state metric is
computed from the board at scrape time, so metric and admin status always agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from switchyard.sidecar.contract.config import CompiledBinding, CompiledConfig, CompiledKey, CompiledTier
from switchyard.sidecar.contract.health import HealthHint, HealthHints
from switchyard.sidecar.metrics import Metrics
from switchyard.sidecar.probe import Prober
from switchyard.sidecar.routing import breaker, classify
from switchyard.sidecar.routing.breaker import Admission, BreakerBoard, State, TierHealth
from switchyard.sidecar.routing.limits import LimitBoard
from switchyard.sidecar.upstream import Upstreams
from switchyard.sidecar.watchdog import Watchdog


@dataclass(frozen=True)
class Snapshot:
    config: CompiledConfig
    by_alias: dict[str, CompiledBinding]
    by_prefix: tuple[tuple[str, CompiledBinding], ...]  # "claude-*" aliases, longest first
    by_name: dict[str, CompiledBinding]
    by_caller: dict[str, CompiledBinding]  # caller -> the binding that routes it (first by name)

    @classmethod
    def build(cls, config: CompiledConfig) -> Snapshot:
        exact: dict[str, CompiledBinding] = {}
        prefixes: list[tuple[str, CompiledBinding]] = []
        by_name: dict[str, CompiledBinding] = {}
        for b in config.bindings:
            by_name.setdefault(b.name, b)
            by_name.setdefault(f"{b.namespace}/{b.name}", b)
            for alias in b.aliases:
                if alias.endswith("*"):
                    prefixes.append((alias[:-1], b))
                else:
                    exact.setdefault(alias, b)
        prefixes.sort(key=lambda p: -len(p[0]))
        by_caller: dict[str, CompiledBinding] = {}
        for b in sorted(config.bindings, key=lambda b: (b.namespace, b.name)):
            for caller in b.callers or ():
                by_caller.setdefault(caller, b)
        return cls(config, exact, tuple(prefixes), by_name, by_caller)

    def resolve(self, model: str) -> CompiledBinding | None:
        b = self.by_alias.get(model)
        if b is not None:
            return b
        for prefix, pb in self.by_prefix:
            if model.startswith(prefix):
                return pb
        return None

    def aliases(self) -> list[str]:
        return sorted({a for b in self.config.bindings for a in b.aliases})


@dataclass
class LastUsed:
    tier: int
    source: str
    model: str
    at: float  # wall clock


def binding_key(b: CompiledBinding) -> str:
    return f"{b.namespace}/{b.name}"


@dataclass
class StoredResponse:
    """One stored Responses-API answer: the turns it added to its conversation (the new
    input and the answer, neutral, so they replay on a tier of any protocol) and a link
    to the response it continued. Its conversation is the chain of parents."""

    binding: str  # binding_key: a response id continues only on the binding that made it
    parent: str | None
    turns: list[Any]  # neutral Messages
    answer: Any  # the neutral Response, for GET /v1/responses/{id}
    alias: str
    size: int
    at: float  # monotonic


class ResponseStore:
    """The sidecar's own Responses-API state (``previous_response_id``, ``store``): in
    memory, bounded by entries and bytes, each entry kept ``ttl_seconds`` after it was
    last used, oldest dropped first; lost on restart. Per pod: a conversation continues
    on the pod that served its previous turn (docs/protocols/openai-responses.md)."""

    def __init__(self, *, max_entries: int = 2000, max_bytes: int = 64 * 1024 * 1024, ttl_seconds: float = 3600.0) -> None:
        self.max_entries, self.max_bytes, self.ttl_seconds = max_entries, max_bytes, ttl_seconds
        self._entries: dict[str, StoredResponse] = {}  # insertion order = least recently used first
        self.bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, rid: str, entry: StoredResponse, now: float) -> None:
        if entry.size > self.max_bytes:
            self.evictions += 1
            return
        self.delete(rid)
        self._entries[rid] = entry
        self.bytes += entry.size
        self._trim(now)

    def get(self, rid: str, binding: str, now: float) -> StoredResponse | None:
        e = self._entries.get(rid)
        if e is None or e.binding != binding:
            return None
        if now - e.at > self.ttl_seconds:
            self.delete(rid)
            self.evictions += 1
            return None
        e.at = now
        self._entries[rid] = self._entries.pop(rid)  # most recently used last
        return e

    def conversation(self, rid: str, binding: str, now: float) -> list[Any] | None:
        """Every turn up to and including response ``rid``, oldest first; None when it,
        or any response it continues, is gone."""
        chain: list[StoredResponse] = []
        seen: set[str] = set()
        cur: str | None = rid
        while cur is not None:
            if cur in seen:
                return None
            seen.add(cur)
            e = self.get(cur, binding, now)
            if e is None:
                return None
            chain.append(e)
            cur = e.parent
        return [m for e in reversed(chain) for m in e.turns]

    def peek(self, rid: str) -> StoredResponse | None:
        """An entry by id alone, not refreshed (for GET / DELETE by id)."""
        return self._entries.get(rid)

    def delete(self, rid: str) -> bool:
        e = self._entries.pop(rid, None)
        if e is None:
            return False
        self.bytes -= e.size
        return True

    def _trim(self, now: float) -> None:
        while self._entries and (len(self._entries) > self.max_entries or self.bytes > self.max_bytes):
            oldest = next(iter(self._entries))
            self.delete(oldest)
            self.evictions += 1
        while self._entries:  # least recently used first: the expired ones are in front
            oldest = next(iter(self._entries))
            if now - self._entries[oldest].at <= self.ttl_seconds:
                break
            self.delete(oldest)
            self.evictions += 1


@dataclass
class BodyBudget:
    """Bytes of request bodies held at once. A body is parsed, then translated once per
    tier: a 30 MiB body peaked at ~180 MB of RSS, so a few large ones at once could get
    the pod OOM-killed (every stream in it lost). A request whose body does not fit now
    is answered a retryable 503; one larger than the whole budget, a 413."""

    limit: int = 256 * 1024 * 1024
    held: int = 0

    def take(self, n: int) -> bool:
        if self.held + n > self.limit:
            return False
        self.held += n
        return True

    def give(self, n: int) -> None:
        self.held = max(0, self.held - n)


@dataclass
class Runtime:
    metrics: Metrics = field(default_factory=Metrics)
    upstreams: Upstreams = field(default_factory=Upstreams)
    watchdog: Watchdog = field(default_factory=Watchdog)  # the upstream waits' deadlines, one timer
    breakers: BreakerBoard = field(default_factory=BreakerBoard)
    limits: LimitBoard = field(default_factory=LimitBoard)  # spec.limits: counters per binding and caller
    snapshot: Snapshot | None = None
    last_used: dict[str, LastUsed] = field(default_factory=dict)
    draining: bool = False
    max_body_bytes: int = 32 * 1024 * 1024
    bodies: BodyBudget = field(default_factory=BodyBudget)
    responses: ResponseStore = field(default_factory=ResponseStore)
    max_upstream_body_bytes: int = 64 * 1024 * 1024
    loaded_at: float | None = None
    # Where the config comes from: "push" (PUT /admin/config) or "files" (the mounted
    # config Secret, ``files.py``; the admin PUT is then refused), and why the last
    # file read was not installed (None: it was, or none yet). No secret in it.
    config_source: str = "push"
    config_error: str | None = None
    # The breakers' clock (monotonic seconds). Tests replace it to move time forward
    # without sleeping; nothing else reads it.
    clock: Callable[[], float] = time.monotonic
    in_flight: int = 0
    _idle: asyncio.Event | None = None
    # The handler tasks of the requests in flight, and whether the drain deadline has
    # passed: ``Sidecar.stop`` then cancels them, and the pipeline answers each with a
    # retryable error in its client's protocol (an error event for a started stream)
    # instead of cutting the connection.
    tasks: set[asyncio.Task[object]] = field(default_factory=set)
    drain_expired: bool = False
    body_read_seconds: float = 60.0  # a client sending its body slower than this gets a 408
    # The tracer (sidecar/tracing: ``start``) when tracing is on; None (the default) keeps
    # OpenTelemetry out of the process and the request path to one check.
    tracing: Any = None
    prober: Prober = field(init=False)
    # Shared health: the signed time of the last hint message accepted (an older one is refused).
    hints_at: float = 0.0

    def __post_init__(self) -> None:
        self.prober = Prober(self)
        self.metrics.watch_breakers(self.breaker_states)
        self.metrics.watch_keys(self.key_states)
        self.metrics.in_flight.set_function(lambda: self.in_flight)  # read at scrape time
        self.metrics.stored_responses.set_function(lambda: len(self.responses))
        self.metrics.stored_response_bytes.set_function(lambda: self.responses.bytes)
        self.metrics.stored_response_evictions.set_function(lambda: self.responses.evictions)

    def begin(self) -> None:
        self.in_flight += 1
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)

    def end(self) -> None:
        self.tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """A side request (token counting) that the drain waits for like an API request."""
        self.begin()
        try:
            yield
        finally:
            self.end()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight, at most ``timeout`` seconds."""
        if self.in_flight == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._idle = None

    def install(self, config: CompiledConfig) -> bool:
        """Swap in a new config. Returns False when it is the version already served.

        Breaker state is kept for tiers that did not change identity; a tier disabled
        for a permanent failure is enabled again if its config changed (new key, model,
        URL, headers, profile: its fingerprint)."""
        if self.snapshot is not None and self.snapshot.config.version == config.version:
            return False
        snap = Snapshot.build(config)
        keys = {(binding_key(b), t.key) for b in config.bindings for t in b.tiers}
        slots = {(binding_key(b), t.key, k.index) for b in config.bindings for t in b.tiers for k in t.keys or ()}
        self.breakers.retain(keys, slots)
        wall = time.time()
        before = {binding_key(b): b.generation for b in self.snapshot.config.bindings} if self.snapshot else {}
        for b in config.bindings:
            # The operator's reset request: the binding changed (its generation moved), so
            # the tiers disabled for a permanent failure get another chance.
            was = before.get(binding_key(b))
            changed = b.generation is not None and was is not None and was != b.generation
            for t in b.tiers:
                h = self.breakers.peek(binding_key(b), t.key)
                if h is not None and h.state is State.DISABLED and (changed or h.disabled_fingerprint != t.fingerprint()):
                    seen = h.transition_count
                    breaker.enable(h, "binding changed" if changed else "tier config changed", wall)
                    self.note_transitions(b, t, h, seen)
                for k in t.keys or ():  # a refused key comes back when its own value changes
                    kh = self.breakers.peek_key(binding_key(b), t.key, k.index)
                    if kh is not None and kh.state is State.DISABLED and (changed or kh.disabled_fingerprint != k.fingerprint()):
                        breaker.enable(kh, "binding changed" if changed else "key changed", wall)
        self.snapshot = snap
        self.loaded_at = wall
        live = {binding_key(b) for b in config.bindings}
        for name in list(self.last_used):
            if name not in live:
                del self.last_used[name]
        self.limits.install(config.bindings)
        m = self.metrics
        m.install(config.bindings)
        m.config_info.info({"version": config.version, "schema_version": str(config.schema_version)})
        m.config_loaded.set(1)
        m.config_last_update.set(self.loaded_at)
        return True

    def health(self, b: CompiledBinding, tier: CompiledTier) -> TierHealth:
        return self.breakers.get(binding_key(b), tier.key)

    def admit(self, b: CompiledBinding, tier: CompiledTier, key: CompiledKey | None = None) -> TierLease:
        """Ask the tier's breaker for one use of it (see ``TierLease``), sent with ``key``
        when the tier has several (``key_out`` said it may be used)."""
        h = self.health(b, tier)
        seen = h.transition_count
        admission = breaker.admit(h, b.breaker, self.clock(), time.time())
        self.note_transitions(b, tier, h, seen)
        if not admission.allowed and admission.probe_due:
            self.prober.kick(b, tier)
        return TierLease(self, b, tier, h, admission, key)

    # ------------------------------------------------------------- several keys

    def key_health(self, b: CompiledBinding, tier: CompiledTier, index: int) -> TierHealth:
        return self.breakers.key(binding_key(b), tier.key, index)

    def key_state(self, b: CompiledBinding, tier: CompiledTier, key: CompiledKey) -> tuple[str, str | None]:
        """(state, why) of one key now: ``usable``, ``unresolvable`` (its compile problem's
        reason), ``disabled`` (the upstream's answer), ``rate-limited`` (retry in Ns)."""
        if key.problem is not None:
            return "unresolvable", key.problem.split(":")[0]
        kh = self.breakers.peek_key(binding_key(b), tier.key, key.index)
        if kh is None:
            return "usable", None
        if kh.state is State.DISABLED:
            return "disabled", kh.disabled_reason
        now = self.clock()
        if now < kh.rate_limited_until:
            return "rate-limited", f"retry in {max(1, math.ceil(kh.rate_limited_until - now))}s"
        return "usable", None

    def key_out(self, b: CompiledBinding, tier: CompiledTier, key: CompiledKey) -> str | None:
        """Why ``key`` may not be sent now (trail text, e.g. ``rate-limited(retry in 7s)``), or None."""
        state, why = self.key_state(b, tier, key)
        if state == "usable":
            kh = self.breakers.peek_key(binding_key(b), tier.key, key.index)
            if kh is not None and kh.hint_disabled is not None:  # another pod saw it refused: checked first
                return f"suspected({kh.hint_disabled}; checking)"
            return None
        return f"{state}({why})"

    def settle_keys(self, b: CompiledBinding, tier: CompiledTier) -> None:
        """After a key's state changed: when no key of the tier is usable any more, the
        tier stands for them (the rest of the chain, status and Events see a tier out):
        rate-limited until its first key is back, or disabled when none will come back
        by itself."""
        if tier.keys is None:
            return
        states = [(self.key_state(b, tier, k)[0], k) for k in tier.keys]
        if any(state == "usable" for state, _k in states):
            return
        h = self.health(b, tier)
        waits = [self.breakers.key(binding_key(b), tier.key, k.index).rate_limited_until
                 for state, k in states if state == "rate-limited"]
        if waits:
            h.rate_limited_until = max(h.rate_limited_until, min(waits))
            return
        disabled = [self.breakers.key(binding_key(b), tier.key, k.index) for state, k in states if state == "disabled"]
        if disabled and h.state is not State.DISABLED:
            seen = h.transition_count
            reason = disabled[-1].disabled_reason or "disabled"
            breaker.disable(h, reason, tier.fingerprint(), time.time())
            self.note_transitions(b, tier, h, seen)

    # ------------------------------------------------------------- shared health

    def apply_hints(self, hints: HealthHints) -> dict[str, int]:
        """Install the operator's hints for this pod (docs/shared-health.md): the whole set,
        so a state an earlier hint made and this one does not repeat is dropped. Hints for
        a source, model or key this sidecar does not run are ignored. Counts by result."""
        counts = {"applied": 0, "clamped": 0, "known": 0, "ignored": 0, "dropped": 0}
        snap = self.snapshot
        tiers: dict[tuple[str, str], list[tuple[CompiledBinding, CompiledTier]]] = {}
        for b in snap.config.bindings if snap is not None else ():
            for t in b.tiers:
                if t.problem is None:
                    tiers.setdefault((t.source, t.model), []).append((b, t))
        now, wall = self.clock(), time.time()
        kept: set[int] = set()  # id() of the records a hint of this message stands on
        settle: list[tuple[CompiledBinding, CompiledTier]] = []
        for hint in hints.hints:
            result = "ignored"
            for b, t in tiers.get((hint.source, hint.model), ()):
                if t.keys is None:
                    if hint.key != 0:
                        continue
                    h, key = self.health(b, t), None
                elif hint.key < len(t.keys):
                    h, key = self.key_health(b, t, hint.key), t.keys[hint.key]
                else:
                    continue
                r = self._apply_hint(b, t, key, h, hint, now, wall)
                if r != "ignored":
                    kept.add(id(h))
                    if key is not None:
                        settle.append((b, t))
                result = r if result in ("ignored", "known") else result
            counts[result] += 1
            counts["applied"] += result == "clamped"  # applied, with its window cut to the cap
            self.metrics.health_hints.labels(hint.kind, result).inc()
        for b, t, h, is_key in self._records():
            if id(h) not in kept and breaker.drop_hints(h):
                counts["dropped"] += 1
                self.metrics.health_hints.labels("clear", "applied").inc()
                if is_key:
                    th = self.health(b, t)  # the tier stood for its keys: as its own evidence says, then as its keys say
                    th.rate_limited_until = max(th.own_rate_limited_until, th.hint_rate_limited_until)
                    settle.append((b, t))
        for b, t in settle:
            self.settle_keys(b, t)
        return counts

    def _apply_hint(self, b: CompiledBinding, t: CompiledTier, key: CompiledKey | None, h: TierHealth,
                    hint: HealthHint, now: float, wall: float) -> str:
        if hint.rate_limited_until is not None:
            until = now + (hint.rate_limited_until - wall)  # wall clock -> this sidecar's breaker clock
            if until <= now:
                return "ignored"  # over already
            changed, clamped = breaker.hint_rate_limit(h, b.breaker, now, until)
            if changed:
                h.last_failure, h.last_failure_class = f"shared: {hint.reason or '429'}", breaker.RATE_LIMITED
                h.last_failure_at = wall
            return "clamped" if clamped else "applied" if changed else "known"
        reason = hint.disabled or "disabled"
        if h.state is State.DISABLED:
            return "known"
        status = int(reason[:3]) if reason[:3].isdigit() else None
        failure = classify.Failure(classify.NOT_FOUND if status == 404 and key is None else classify.AUTH_ERROR, "", status)
        was = h.hint_disabled
        if breaker.hint_suspect(h, reason):
            if key is None:
                self.prober.confirm(b, t, failure)
            else:
                self.prober.confirm_key(b, t, key, failure)
        return "known" if was is not None else "applied"

    def _records(self) -> Iterator[tuple[CompiledBinding, CompiledTier, TierHealth, bool]]:
        """Every breaker record of the current config: (binding, tier, record, is a key's)."""
        snap = self.snapshot
        for b in snap.config.bindings if snap is not None else ():
            for t in b.tiers:
                h = self.breakers.peek(binding_key(b), t.key)
                if h is not None:
                    yield b, t, h, False
                for k in t.keys or ():
                    kh = self.breakers.peek_key(binding_key(b), t.key, k.index)
                    if kh is not None:
                        yield b, t, kh, True

    def probe_tier(self, b: CompiledBinding, tier: CompiledTier) -> CompiledTier:
        """The tier as a prompt-free check sends it: with its first usable key (a key that
        only waits out a 429 before one that was refused or never resolved)."""
        if tier.keys is None:
            return tier
        order = {"usable": 0, "rate-limited": 1}
        first = min(tier.keys, key=lambda k: (order.get(self.key_state(b, tier, k)[0], 2), k.index))
        return tier.with_key(first)

    def out_now(self, b: CompiledBinding, tier: CompiledTier) -> str | None:
        """Why the breaker keeps this tier out right now, read only: for side requests
        (token counts) that neither take a half-open trial nor count toward health."""
        h = self.breakers.peek(binding_key(b), tier.key)
        if h is None:
            return None
        now = self.clock()
        if h.state is State.DISABLED:
            return "disabled"
        if h.state is State.OPEN and now < h.open_until:
            return "breaker-open"
        if h.rate_limited_until > now:
            return "rate-limited"
        return None

    def note_transitions(self, b: CompiledBinding, tier: CompiledTier, h: TierHealth, seen: int) -> None:
        """Count transitions that happened since ``seen`` (h.transition_count before)."""
        new = h.transition_count - seen
        if new <= 0:
            return
        stats = self.metrics.tier(b, tier)
        for t in h.transitions[-min(new, len(h.transitions)) :]:
            stats.transition(t.to_state)

    def reset(self, b: CompiledBinding, tier: CompiledTier | None = None) -> list[int]:
        """Admin reset: tiers of ``b`` (or just ``tier``) back to closed. Returns their indices."""
        done = []
        for t in b.tiers if tier is None else [tier]:
            h = self.health(b, t)
            seen = h.transition_count
            breaker.enable(h, "reset by admin", time.time())
            self.note_transitions(b, t, h, seen)
            for k in t.keys or ():
                breaker.enable(self.key_health(b, t, k.index), "reset by admin", time.time())
            done.append(t.index)
        return done

    def breaker_states(self) -> list[tuple[str, str, str, str]]:
        """(binding, tier, source, state) of every tier now, for the metric."""
        snap = self.snapshot
        if snap is None:
            return []
        now = self.clock()
        out = []
        for b in snap.config.bindings:
            for t in b.tiers:
                h = self.breakers.peek(binding_key(b), t.key)
                state = breaker.effective_state(h, now) if h is not None else "closed"
                out.append((b.name, str(t.index), t.source, state))
        return out

    def key_states(self) -> list[tuple[str, str, str, str, str]]:
        """(binding, tier, source, key index, state) of every key of the tiers with
        several, for the metric."""
        snap = self.snapshot
        if snap is None:
            return []
        return [
            (b.name, str(t.index), t.source, str(k.index), self.key_state(b, t, k)[0])
            for b in snap.config.bindings for t in b.tiers for k in t.keys or ()
        ]


class TierLease:
    """One admitted use of a tier, from ``Runtime.admit``.

    ``allowed`` / ``admission`` say whether the breaker let the request through (and
    why not). An allowed lease is used as a context manager: inside it, ``succeeded()``
    or ``failed(failure)`` records the verdict once; leaving it without a verdict
    releases the admission (a half-open trial slot is given back), so no path can leak
    a trial or forget a transition."""

    __slots__ = ("rt", "binding", "tier", "health", "admission", "settled", "key")

    def __init__(
        self, rt: Runtime, binding: CompiledBinding, tier: CompiledTier, health: TierHealth, admission: Admission,
        key: CompiledKey | None = None,
    ) -> None:
        self.rt, self.binding, self.tier, self.health, self.admission = rt, binding, tier, health, admission
        self.key = key  # the key sent, for a tier with several (None: the tier's one key)
        self.settled = False

    def key_failure(self, failure: classify.Failure) -> bool:
        """Is this failure the key's rather than the tier's? A 429 (or quota) and a
        refused key (401/403), on a tier with several keys: the next key may serve."""
        return self.key is not None and (
            failure.cls == breaker.RATE_LIMITED or failure.reason == classify.AUTH_ERROR
        )

    @property
    def allowed(self) -> bool:
        return self.admission.allowed

    def __enter__(self) -> TierLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def succeeded(self) -> None:
        if self.settled:
            return
        self.settled = True
        seen = self.health.transition_count
        breaker.record_success(self.health, self.binding.breaker, self.admission, time.time())
        self.rt.note_transitions(self.binding, self.tier, self.health, seen)

    def failed(self, failure: classify.Failure) -> None:
        """A failure that is the tier's (``classify.TIER_FAULTS``) counts toward its
        breaker; any other (the request's fault, its deadline) is no verdict at all."""
        if self.settled:
            return
        if failure.reason not in classify.TIER_FAULTS:
            self.release()
            return
        self.settled = True
        rt, h = self.rt, self.health
        if self.key is not None and self.key_failure(failure):
            # The key's, not the tier's: the key waits (or is checked, then disabled); the
            # tier's breaker gets no verdict (a half-open trial slot is given back).
            breaker.release(h, self.admission)
            kh = rt.key_health(self.binding, self.tier, self.key.index)
            if failure.cls == breaker.PERMANENT:
                if breaker.record_suspect(kh, Admission(True), failure.cls, failure.trail_text(), time.time()):
                    rt.prober.confirm_key(self.binding, self.tier, self.key, failure)
                return
            kh.last_failure, kh.last_failure_class, kh.last_failure_at = failure.trail_text(), failure.cls, time.time()
            breaker.rate_limit(kh, self.binding.breaker, rt.clock(), failure.retry_after)
            rt.settle_keys(self.binding, self.tier)
            return
        if failure.cls == breaker.PERMANENT:  # evidence only, until a prompt-free check confirms it
            if breaker.record_suspect(h, self.admission, failure.cls, failure.trail_text(), time.time()):
                rt.prober.confirm(self.binding, self.tier, failure)
            return
        seen = h.transition_count
        breaker.record_failure(
            h, self.binding.breaker, self.admission, failure.cls, failure.trail_text(), rt.clock(), time.time(),
            failure.retry_after, self.tier.fingerprint() if failure.cls == breaker.PERMANENT else None,
        )  # fmt: skip
        rt.note_transitions(self.binding, self.tier, h, seen)

    def release(self) -> None:
        if not self.settled:
            self.settled = True
            breaker.release(self.health, self.admission)


RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
"""Where the aiohttp applications keep their ``Runtime``."""
