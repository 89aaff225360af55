"""Every Prometheus metric the sidecar exports, in one place.

Label values are bounded by configuration (binding names, tier numbers, source names,
feature names, fixed outcome/reason words): never a prompt, a model name sent by a
client, a header value or a key. The Grafana dashboard and the alert rules in the Helm
chart use exactly these names (a test checks them against ``/metrics``).

Each sidecar has its own ``CollectorRegistry`` so tests can run several in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from switchyard.sidecar.contract.report import TIER_STATES

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
)


M = TypeVar("M", Counter, Gauge, Histogram)


class Labelled(Generic[M]):
    """A labelled metric whose children are remembered by label values.

    prometheus_client's ``labels()`` takes a lock and ``str()``s every value on each
    call (~8 us); a request asks for five to eight children, so the request path gets
    them from this dict instead (~0.2 us). The dict is as bounded as the label values
    (by configuration, see above). ``remove`` and ``clear`` go through here, so it
    never hands out a child the metric has dropped.
    """

    __slots__ = ("metric", "_children")

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child

    def remove(self, *values: str) -> None:
        self._children.pop(values, None)
        self.metric.remove(*values)

    def clear(self) -> None:
        self._children.clear()
        self.metric.clear()


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Labelled(Counter(
            "switchyard_requests",
            "Requests answered, by the tier that served them (tier -1: none did), outcome, ingress protocol and caller.",
            ["binding", "tier", "source", "outcome", "ingress", "caller"],
            registry=r,
        ))
        self.attempts = Labelled(Counter(
            "switchyard_upstream_attempts",
            "Upstream attempts by tier and result (ok or a fallbackOn reason).",
            ["binding", "tier", "source", "result"],
            registry=r,
        ))
        self.fallbacks = Labelled(Counter(
            "switchyard_fallbacks",
            "Times a request passed over a tier, by the tier passed over, the failure class and the reason.",
            ["binding", "from_tier", "class", "reason"],
            registry=r,
        ))
        self.probes = Labelled(Counter(
            "switchyard_probes",
            "Prompt-free recovery checks of open tiers, by outcome (passed, or the failure class).",
            ["binding", "tier", "source", "outcome"],
            registry=r,
        ))
        self.breaker_transitions = Labelled(Counter(
            "switchyard_breaker_transitions",
            "Breaker state changes, by the state entered.",
            ["binding", "tier", "source", "to_state"],
            registry=r,
        ))
        self.active_tier = Labelled(Gauge(
            "switchyard_active_tier",
            "The tier that served the binding's last successful request (0 = primary).",
            ["binding"],
            registry=r,
        ))
        self.upstream_latency = Labelled(Histogram(
            "switchyard_upstream_latency_seconds",
            "Duration of each upstream attempt, to the end of the answer.",
            ["binding", "tier", "source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        ))
        self.ttft = Labelled(Histogram(
            "switchyard_time_to_first_token_seconds",
            "From receiving the request to the first content sent to the client.",
            ["binding", "tier", "source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        ))
        self.tokens = Labelled(Counter(
            "switchyard_tokens",
            "Tokens reported by upstreams, by kind (input, output, cached_input, reasoning).",
            ["binding", "tier", "source", "kind"],
            registry=r,
        ))
        self.degraded = Labelled(Counter(
            "switchyard_degraded_fields",
            "Request features a tier could not honour, by the action taken.",
            ["binding", "tier", "field", "action"],
            registry=r,
        ))
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

    def watch_breakers(self, read: Callable[[], Iterable[tuple[str, str, str, str]]]) -> None:
        """Export ``switchyard_breaker_state`` computed at scrape time from ``read()``,
        which yields (binding, tier, source, state) for every tier: a state that ends by
        itself (a Retry-After running out) is never reported stale."""
        self.registry.register(_BreakerStates(read))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


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
