"""Every Prometheus metric the sidecar exports, in one place.

Label values are bounded by configuration (binding names, tier numbers, source names,
feature names, fixed outcome/reason words): never a prompt, a model name sent by a
client, a header value or a key. The Grafana dashboard and the alert rules in the Helm
chart use exactly these names (a test checks them against ``/metrics``).

Each sidecar has its own ``CollectorRegistry`` so tests can run several in one process.

The families the request path updates (requests, attempts, fallbacks, latency, time to
first token, tokens, degraded fields, active tier; probes and breaker transitions too)
are plain numbers, not prometheus_client objects: a ``TierStats`` per (binding, tier,
source), created when a config is installed, holds references to its series' cells
(a one-element list for a counter, a ``Hist`` for a histogram), each made on its first
update, and the request path adds to them inline. No lock: only the event loop's
thread updates them (the whole sidecar is one asyncio thread: request handlers, the
prober, the config-file watcher) and reads them (``/metrics`` is a handler too).
``_Recorded`` turns them into the same exposition as prometheus_client's Counter,
Gauge and Histogram did at scrape time: same names, HELP, TYPE, labels, series order
(a series appears at its first update, zero-valued series never) and values (counters
as floats, histogram buckets cumulative, ``_count`` and ``_sum``, no ``_created``).
As before, a series stays once made, also when its binding leaves the config.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from switchyard.sidecar.contract.report import KEY_STATES, TIER_STATES

disable_created_metrics()  # `_created` series double the exposition and no query here uses them

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

BREAKER_STATES = TIER_STATES

FALLBACK_CLASSES = (
    "transient",  # 5xx, reset, connect error, timeout, empty answer
    "rate-limited",  # 429 / quota, or skipped while the upstream's wait runs
    "permanent",  # 401 / 403 / 404, or skipped while disabled
    "breaker",  # skipped: breaker open, probing or half-open trial in flight
    "capability",  # skipped: skip-tier for a request feature, or incompatible with `requires`
    "unresolvable",  # skipped: the tier's source, secret or model does not resolve
    "deadline",  # skipped or cut: the request's deadline left too little
)

OUTCOMES = (
    "success",  # answered with content
    "upstream-error",  # an upstream error passed to the client (not a fallback reason)
    "all-tiers-failed",  # every tier skipped or failed
    "broken-stream",  # failed after content started: error event sent
    "rejected",  # refused by the capability step or bad input
    "client-gone",  # the client disconnected first
    "limited",  # refused by the binding's own limits (spec.limits), no tier tried
)

PICOS = 10**12  # the cost is kept in integer picos (10**-12) of its currency
_BOUNDS = (*(float(b) for b in LATENCY_BUCKETS), float("inf"))
_LE = tuple(floatToGoString(b) for b in _BOUNDS)


class Hist:
    """One histogram series: observations per bucket (not cumulative) and their sum.
    ``TierStats`` counts a value as prometheus_client's ``Histogram.observe`` did, in
    the first bucket whose bound is >= it: ``bisect_left(_BOUNDS, value)``."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * len(_BOUNDS)
        self.sum = 0.0


class Family:
    """One exported family: its series by label values, in the order they were made."""

    __slots__ = ("name", "documentation", "labelnames", "kind", "series", "scale")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], kind: str, scale: int = 1) -> None:
        self.name, self.documentation, self.labelnames, self.kind = name, documentation, tuple(labelnames), kind
        self.series: dict[tuple[str, ...], Any] = {}
        # A counter kept in integer units of 1/scale (the cost: picos), exported divided:
        # the sum is exact, the one rounding is the float written at scrape time.
        self.scale = scale

    def cell(self, key: tuple[str, ...]) -> Any:
        """The series of these label values, made now if it is new: a counter's or a
        gauge's ``[value]``, a histogram's ``Hist``."""
        c = self.series.get(key)
        if c is None:
            c = self.series[key] = Hist() if self.kind == "histogram" else [0]
        return c

    def metric(self) -> Metric:
        if self.kind == "counter":
            family: Metric = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            scale = self.scale
            for key, c in self.series.items():
                family.add_metric(key, float(c[0]) if scale == 1 else c[0] / scale)
        elif self.kind == "gauge":
            family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for key, c in self.series.items():
                family.add_metric(key, float(c[0]))
        else:
            family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for key, h in self.series.items():
                acc, buckets = 0.0, []
                for le, n in zip(_LE, h.counts):
                    acc += n
                    buckets.append((le, acc))
                family.add_metric(key, buckets, h.sum)
        return family

    def empty(self) -> Metric:
        kind = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}[self.kind]
        return kind(self.name, self.documentation, labels=self.labelnames)


class TierStats:
    """The series of one (binding, tier, source), for the request path: each method adds
    to a cell it keeps, so a request builds no label tuple for a series it has seen."""

    __slots__ = ("_m", "key", "_requests", "_attempts", "_fallbacks", "_probes", "_transitions", "_tokens", "_degraded",
                 "_latency", "_ttft", "_usage")

    def __init__(self, m: Metrics, binding: str, tier: str, source: str) -> None:
        self._m = m
        self.key = (binding, tier, source)
        self._requests: dict[tuple[str, str, str], list[int]] = {}
        self._attempts: dict[str, list[int]] = {}
        self._fallbacks: dict[tuple[str, str], list[int]] = {}
        self._probes: dict[str, list[int]] = {}
        self._transitions: dict[str, list[int]] = {}
        self._tokens: dict[str, list[float]] = {}
        self._degraded: dict[tuple[str, str], list[int]] = {}
        self._latency: Hist | None = None
        self._ttft: Hist | None = None
        self._usage: dict[str, UsageStats] = {}  # by caller label (the model checked on the record)

    def request(self, outcome: str, ingress: str, caller: str) -> None:
        words = (outcome, ingress, caller)
        c = self._requests.get(words)
        if c is None:
            c = self._requests[words] = self._m.requests.cell((*self.key, *words))
        c[0] += 1

    def attempt(self, result: str) -> None:
        c = self._attempts.get(result)
        if c is None:
            c = self._attempts[result] = self._m.attempts.cell((*self.key, result))
        c[0] += 1

    def fallback(self, cls: str, reason: str) -> None:
        words = (cls, reason)
        c = self._fallbacks.get(words)
        if c is None:
            c = self._fallbacks[words] = self._m.fallbacks.cell((self.key[0], self.key[1], cls, reason))
        c[0] += 1

    def probe(self, outcome: str) -> None:
        c = self._probes.get(outcome)
        if c is None:
            c = self._probes[outcome] = self._m.probes.cell((*self.key, outcome))
        c[0] += 1

    def transition(self, to_state: str) -> None:
        c = self._transitions.get(to_state)
        if c is None:
            c = self._transitions[to_state] = self._m.breaker_transitions.cell((*self.key, to_state))
        c[0] += 1

    def tokens(self, kind: str, value: int) -> None:
        c = self._tokens.get(kind)
        if c is None:
            c = self._tokens[kind] = self._m.tokens.cell((*self.key, kind))
            c[0] = 0.0  # summed as floats, as prometheus_client's Counter did
        c[0] += value

    def usage(self, caller: str, model: str) -> UsageStats:
        """The usage series of this tier for ``caller`` (a metric label) and ``model`` (the
        tier's configured model): found by the caller alone while the model is the one
        last seen for it (a config may change the model of the same binding, tier, source)."""
        u = self._usage.get(caller)
        if u is None or u.model != model:
            u = self._usage[caller] = self._m.usage_stats(self.key, model, caller)
        return u

    def degraded(self, field: str, action: str) -> None:
        words = (field, action)
        c = self._degraded.get(words)
        if c is None:
            c = self._degraded[words] = self._m.degraded.cell((self.key[0], self.key[1], field, action))
        c[0] += 1

    def upstream_latency(self, seconds: float) -> None:
        h = self._latency
        if h is None:
            h = self._latency = self._m.upstream_latency.cell(self.key)
        h.counts[bisect_left(_BOUNDS, seconds)] += 1
        h.sum += seconds

    def ttft(self, seconds: float) -> None:
        h = self._ttft
        if h is None:
            h = self._ttft = self._m.ttft.cell(self.key)
        h.counts[bisect_left(_BOUNDS, seconds)] += 1
        h.sum += seconds


USAGE_KINDS = ("input", "output", "cached_input", "cache_write", "reasoning")
"""``switchyard_usage_tokens_total`` kinds: ``input`` is all input (cached reads and cache
writes included), ``output`` all output (reasoning included)."""


class UsageStats:
    """Token and cost series of one (binding, tier, source, model, caller), and their
    totals since the sidecar started (for the status report: ``Metrics.usage_totals``)."""

    __slots__ = ("_m", "key", "model", "_cells", "_cost", "_currency")

    def __init__(self, m: Metrics, key: tuple[str, ...], model: str) -> None:
        self._m = m
        self.key = key  # binding, tier, source, model, caller
        self.model = model
        self._cells: list[list[int] | None] = [None] * len(USAGE_KINDS)
        self._cost: list[int] | None = None
        self._currency = ""

    def tokens(self, input: int, output: int, cached_input: int, cache_write: int, reasoning: int) -> None:
        cells = self._cells
        for i, value in enumerate((input, output, cached_input, cache_write, reasoning)):
            if value:
                c = cells[i]
                if c is None:
                    c = cells[i] = self._m.usage_tokens.cell((*self.key, USAGE_KINDS[i]))
                c[0] += value

    def cost(self, currency: str, picos: int) -> None:
        """Add a cost in 10**-12 of ``currency`` (an int: the series' sum stays exact)."""
        c = self._cost
        if c is None or currency != self._currency:
            c = self._cost = self._m.cost.cell((*self.key, currency))
            self._currency = currency
        c[0] += picos


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Family(
            "switchyard_requests",
            "Requests answered, by the tier that served them (tier -1: none did), outcome, ingress protocol and caller.",
            ["binding", "tier", "source", "outcome", "ingress", "caller"],
            "counter",
        )
        self.attempts = Family(
            "switchyard_upstream_attempts",
            "Upstream attempts by tier and result (ok or a fallbackOn reason).",
            ["binding", "tier", "source", "result"],
            "counter",
        )
        self.fallbacks = Family(
            "switchyard_fallbacks",
            "Times a request passed over a tier, by the tier passed over, the failure class and the reason.",
            ["binding", "from_tier", "class", "reason"],
            "counter",
        )
        self.probes = Family(
            "switchyard_probes",
            "Prompt-free recovery checks of open tiers, by outcome (passed, or the failure class).",
            ["binding", "tier", "source", "outcome"],
            "counter",
        )
        self.breaker_transitions = Family(
            "switchyard_breaker_transitions",
            "Breaker state changes, by the state entered.",
            ["binding", "tier", "source", "to_state"],
            "counter",
        )
        self.active_tier = Family(
            "switchyard_active_tier",
            "The tier that served the binding's last successful request (0 = primary).",
            ["binding"],
            "gauge",
        )
        self.upstream_latency = Family(
            "switchyard_upstream_latency_seconds",
            "Duration of each upstream attempt, to the end of the answer.",
            ["binding", "tier", "source"],
            "histogram",
        )
        self.ttft = Family(
            "switchyard_time_to_first_token_seconds",
            "From receiving the request to the first content sent to the client.",
            ["binding", "tier", "source"],
            "histogram",
        )
        self.tokens = Family(
            "switchyard_tokens",
            "Tokens reported by upstreams, by kind (input, output, cached_input, cache_write, reasoning).",
            ["binding", "tier", "source", "kind"],
            "counter",
        )
        self.usage_tokens = Family(
            "switchyard_usage_tokens",
            "Tokens reported by upstreams, by the tier's configured model, the caller and the kind (input, output, "
            "cached_input, cache_write, reasoning).",
            ["binding", "tier", "source", "model", "caller", "kind"],
            "counter",
        )
        self.cost = Family(
            "switchyard_cost",
            "Cost of the answers, from the prices declared for the tier's model, in the currency named.",
            ["binding", "tier", "source", "model", "caller", "currency"],
            "counter",
            scale=PICOS,
        )
        self.degraded = Family(
            "switchyard_degraded_fields",
            "Request features a tier could not honour, by the action taken.",
            ["binding", "tier", "field", "action"],
            "counter",
        )
        r.register(_Recorded([self.requests, self.attempts, self.fallbacks, self.probes, self.breaker_transitions,
                              self.active_tier, self.upstream_latency, self.ttft, self.tokens, self.usage_tokens,
                              self.cost, self.degraded]))
        # spec.limits (pipeline/limits.py): requests refused before any tier, by the limit
        # (requestsPerMinute, tokensPerMinute, tokensPerDay, each also as perCaller.<name>).
        self.limited_requests = Family(
            "switchyard_limited_requests",
            "Requests refused with a 429 by the binding's own limits (spec.limits), before any tier, by the limit.",
            ["binding", "limit"],
            "counter",
        )
        r.register(_Recorded([self.limited_requests]))
        self._stats: dict[tuple[str, str, str], TierStats] = {}
        self._usage: dict[tuple[str, ...], UsageStats] = {}
        self._by_tier: dict[int, tuple[Any, Any, TierStats]] = {}
        self.config_info = Info(
            "switchyard_config", "The config the sidecar serves (version hash, schema).", registry=r
        )
        self.config_loaded = Gauge(
            "switchyard_config_loaded", "1 when the sidecar has a config to serve, 0 before.", registry=r
        )
        self.config_updates = Counter(
            "switchyard_config_updates",
            "Config pushes received, by result (applied, unchanged, rejected).",
            ["result"],
            registry=r,
        )
        self.health_hints = Counter(
            "switchyard_health_hints",
            "Shared-health hints received from the operator (PUT /admin/health), by kind (rate-limited, disabled, "
            "clear, message) and result (applied, clamped, known, ignored, rejected, stale).",
            ["kind", "result"],
            registry=r,
        )
        self.config_last_update = Gauge(
            "switchyard_config_last_update_timestamp_seconds",
            "Unix time of the last applied config.",
            registry=r,
        )
        self.in_flight = Gauge("switchyard_in_flight_requests", "Requests being served now.", registry=r)
        # The Responses API's conversation store (pipeline/conversation.py), read at scrape time.
        self.stored_responses = Gauge("switchyard_stored_responses", "Responses kept for previous_response_id.", registry=r)
        self.stored_response_bytes = Gauge(
            "switchyard_stored_response_bytes", "Approximate bytes held by the stored responses.", registry=r
        )
        self.stored_response_evictions = Gauge(
            "switchyard_stored_response_evictions", "Stored responses dropped (bounds, TTL) since the sidecar started.", registry=r
        )

    def stats(self, binding: str, tier: str, source: str) -> TierStats:
        """The series of these label values (``tier`` "-1" and ``source`` "" for requests
        no tier served)."""
        key = (binding, tier, source)
        st = self._stats.get(key)
        if st is None:
            st = self._stats[key] = TierStats(self, binding, tier, source)
        return st

    def usage_stats(self, key: tuple[str, str, str], model: str, caller: str) -> UsageStats:
        full = (*key, model, caller)
        u = self._usage.get(full)
        if u is None:
            u = self._usage[full] = UsageStats(self, full, model)
        return u

    def usage_totals(self) -> dict[str, tuple[list[int], dict[str, int]]]:
        """Per binding name, since the sidecar started (summed over tiers, models and
        callers): the tokens of each of ``USAGE_KINDS``, and the cost per currency in
        picos. For ``GET /admin/status``; not on the request path."""
        out: dict[str, tuple[list[int], dict[str, int]]] = {}
        index = {kind: i for i, kind in enumerate(USAGE_KINDS)}
        for key, c in self.usage_tokens.series.items():
            out.setdefault(key[0], ([0] * len(USAGE_KINDS), {}))[0][index[key[5]]] += c[0]
        for key, c in self.cost.series.items():
            cost = out.setdefault(key[0], ([0] * len(USAGE_KINDS), {}))[1]
            cost[key[5]] = cost.get(key[5], 0) + c[0]
        return out

    def install(self, bindings: Iterable[Any]) -> None:
        """Make the ``TierStats`` of a config's tiers before it serves, found by the
        tier objects themselves (``tier``). A tier object that two bindings share is
        left to the lookup by label values."""
        by_tier: dict[int, tuple[Any, Any, TierStats]] = {}
        shared = set()
        for b in bindings:
            for t in b.tiers:
                if id(t) in by_tier:
                    shared.add(id(t))
                by_tier[id(t)] = (b, t, self.stats(b.name, str(t.index), t.source))
        for k in shared:
            del by_tier[k]
        self._by_tier = by_tier

    def tier(self, binding: Any, tier: Any) -> TierStats:
        """The series of ``tier`` of ``binding`` (a ``CompiledBinding`` and one of its
        ``CompiledTier`` objects): from the installed config's tiers without building a key,
        else (a request still on the previous config) by label values."""
        e = self._by_tier.get(id(tier))
        if e is not None and e[1] is tier and e[0] is binding:
            return e[2]
        return self.stats(binding.name, str(tier.index), tier.source)

    def limited(self, binding: str, limit: str) -> None:
        self.limited_requests.cell((binding, limit))[0] += 1

    def set_active_tier(self, binding: str, index: int) -> None:
        self.active_tier.cell((binding,))[0] = index

    def watch_breakers(self, read: Callable[[], Iterable[tuple[str, str, str, str]]]) -> None:
        """Export ``switchyard_breaker_state`` computed at scrape time from ``read()``,
        which yields (binding, tier, source, state) for every tier: a state that ends by
        itself (a Retry-After running out) is never reported stale."""
        self.registry.register(_BreakerStates(read))

    def watch_keys(self, read: Callable[[], Iterable[tuple[str, str, str, str, str]]]) -> None:
        """Export ``switchyard_key_state`` at scrape time from ``read()``, which yields
        (binding, tier, source, key index, state) for each key of the tiers whose source
        has several keys (a key is labelled by its index, never by anything of its value)."""
        self.registry.register(_KeyStates(read))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Recorded(Collector):
    """The request path's families, read at scrape time."""

    def __init__(self, families: list[Family]) -> None:
        self._families = families

    def describe(self) -> list[Metric]:
        return [f.empty() for f in self._families]

    def collect(self) -> list[Metric]:
        return [f.metric() for f in self._families]


class _BreakerStates(Collector):
    def __init__(self, read: Callable[[], Iterable[tuple[str, str, str, str]]]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        return [self._family()]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "switchyard_breaker_state",
            "1 for the state each tier is in (closed, open, half-open, rate-limited, disabled), 0 for the others.",
            labels=["binding", "tier", "source", "state"],
        )

    def collect(self) -> list[Metric]:
        family = self._family()
        for binding, tier, source, current in self._read():
            for state in BREAKER_STATES:
                family.add_metric([binding, tier, source, state], 1.0 if state == current else 0.0)
        return [family]


class _KeyStates(Collector):
    def __init__(self, read: Callable[[], Iterable[tuple[str, str, str, str, str]]]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        return [self._family()]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "switchyard_key_state",
            "For each key (by index) of a source with several: 1 for its state (usable, rate-limited, "
            "disabled, unresolvable), 0 for the others.",
            labels=["binding", "tier", "source", "key", "state"],
        )

    def collect(self) -> list[Metric]:
        family = self._family()
        for binding, tier, source, key, current in self._read():
            for state in KEY_STATES:
                family.add_metric([binding, tier, source, key, state], 1.0 if state == current else 0.0)
        return [family]
