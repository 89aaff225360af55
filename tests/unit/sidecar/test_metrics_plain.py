"""The plain-number metrics (``metrics.TierStats``, ``Family``) export exactly what
prometheus_client's Counter, Gauge and Histogram exported for the same updates: the
same operations go to both, and the two expositions must be byte-identical."""

from __future__ import annotations

import random
from typing import Any
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from switchyard.sidecar.metrics import LATENCY_BUCKETS, Metrics


class Reference:
    """The families as the sidecar defined them before, in the same order."""

    def __init__(self, m: Metrics) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.metrics: dict[str, Any] = {}
        for f in (m.requests, m.attempts, m.fallbacks, m.probes, m.breaker_transitions, m.active_tier,
                  m.upstream_latency, m.ttft, m.tokens, m.degraded):
            kind = {"counter": Counter, "gauge": Gauge}.get(f.kind)
            if kind is not None:
                self.metrics[f.name] = kind(f.name, f.documentation, list(f.labelnames), registry=r)
            else:
                self.metrics[f.name] = Histogram(f.name, f.documentation, list(f.labelnames), buckets=LATENCY_BUCKETS, registry=r)

    def labels(self, name: str, *values: str) -> Any:
        return self.metrics[name].labels(*values)


def _families(text: bytes, names: set[str]) -> bytes:
    """The lines of ``text`` that belong to the request path's families."""
    keep = []
    for line in text.decode().splitlines():
        word = line.split(" ")[2] if line.startswith("#") else line.split("{")[0].split(" ")[0]
        if any(word == n or word.startswith(n + "_") for n in names):
            keep.append(line)
    return "\n".join(keep).encode()


def _config(*bindings: tuple[str, list[tuple[int, str]]]) -> list[SimpleNamespace]:
    return [SimpleNamespace(name=name, tiers=[SimpleNamespace(index=i, source=s) for i, s in tiers]) for name, tiers in bindings]


def test_random_updates_expose_the_same_text_as_prometheus_client() -> None:
    m = Metrics()
    ref = Reference(m)
    rnd = random.Random(7)
    old = _config(("a", [(0, "s1"), (1, "s2")]), ("b", [(0, "s2")]))
    # the next config keeps a's tier 0, moves tier 1 to another source and drops b
    new = _config(("a", [(0, "s1"), (1, "s3")]), ("c", [(0, "s1"), (1, "s1")]))
    m.install(old)
    # edges: each bound exactly, just above, zero, negative, large, infinite
    values = [*LATENCY_BUCKETS, *(b + 1e-9 for b in LATENCY_BUCKETS), 0.0, -0.5, 1e6, float("inf"), 1e-12]
    for step in range(3000):
        if step == 1500:
            m.install(new)
        config = old if step < 1500 or rnd.random() < 0.2 else new  # some requests still on the old config
        b = rnd.choice(config)
        t = rnd.choice(b.tiers)
        stats = m.tier(b, t)
        key = (b.name, str(t.index), t.source)
        op = rnd.randrange(10)
        word = rnd.choice(["ok", "429", "5xx", "timeout", "connect-error"])
        if op == 0:
            caller = rnd.choice(["unknown", "codex"])
            stats.request(word, "openai-chat", caller)
            ref.labels("switchyard_requests", *key, word, "openai-chat", caller).inc()
        elif op == 1:
            stats.attempt(word)
            ref.labels("switchyard_upstream_attempts", *key, word).inc()
        elif op == 2:
            stats.fallback("transient", word)
            ref.labels("switchyard_fallbacks", b.name, str(t.index), "transient", word).inc()
        elif op == 3:
            stats.probe(word)
            ref.labels("switchyard_probes", *key, word).inc()
        elif op == 4:
            stats.transition(word)
            ref.labels("switchyard_breaker_transitions", *key, word).inc()
        elif op == 5:
            m.set_active_tier(b.name, t.index)
            ref.labels("switchyard_active_tier", b.name).set(t.index)
        elif op == 6:
            v = rnd.choice(values) if rnd.random() < 0.3 else rnd.expovariate(20)
            stats.upstream_latency(v)
            ref.labels("switchyard_upstream_latency_seconds", *key).observe(v)
        elif op == 7:
            v = rnd.choice(values) if rnd.random() < 0.3 else rnd.expovariate(5)
            stats.ttft(v)
            ref.labels("switchyard_time_to_first_token_seconds", *key).observe(v)
        elif op == 8:
            n = rnd.choice([1, 7, 123456, 2**53 - 1])
            stats.tokens(word, n)
            ref.labels("switchyard_tokens", *key, word).inc(n)
        else:
            stats.degraded(word, "strip")
            ref.labels("switchyard_degraded_fields", b.name, str(t.index), word, "strip").inc()
    # the requests family, with tier -1 for requests no tier served
    for outcome, tier in (("success", "0"), ("all-tiers-failed", "-1"), ("success", "0"), ("rejected", "-1")):
        source = "s1" if tier == "0" else ""
        m.stats("a", tier, source).request(outcome, "gemini", "other")
        ref.labels("switchyard_requests", "a", tier, source, outcome, "gemini", "other").inc()
    names = set(ref.metrics)
    got, want = _families(generate_latest(m.registry), names), _families(generate_latest(ref.registry), names)
    assert got == want
    assert b"_created" not in got and got.count(b"# TYPE") == 10


def test_a_new_metrics_exports_the_families_with_no_series() -> None:
    m = Metrics()
    ref = Reference(m)
    names = set(ref.metrics)
    assert _families(generate_latest(m.registry), names) == _families(generate_latest(ref.registry), names)
    m.install(_config(("a", [(0, "s1")])))  # installing makes records, not series
    assert _families(generate_latest(m.registry), names) == _families(generate_latest(ref.registry), names)


def test_a_tier_object_two_bindings_share_is_counted_under_each_bindings_name() -> None:
    m = Metrics()
    shared = SimpleNamespace(index=0, source="s")
    one, two = SimpleNamespace(name="one", tiers=[shared]), SimpleNamespace(name="two", tiers=[shared])
    m.install([one, two])
    m.tier(one, shared).attempt("ok")
    m.tier(two, shared).attempt("ok")
    m.tier(two, shared).attempt("ok")
    assert m.registry.get_sample_value("switchyard_upstream_attempts_total", {"binding": "one", "tier": "0", "source": "s", "result": "ok"}) == 1
    assert m.registry.get_sample_value("switchyard_upstream_attempts_total", {"binding": "two", "tier": "0", "source": "s", "result": "ok"}) == 2


def test_the_cost_is_summed_in_integer_picos_and_exported_once_divided() -> None:
    """Ten answers of 0.1 USD: a float counter would export 0.9999999999999999."""
    m = Metrics()
    m.install(_config(("a", [(0, "s1")])))
    u = m.tier(*_first(m)).usage("codex", "gpt-x")
    for _ in range(10):
        u.cost("USD", 100_000_000_000)
        u.tokens(3, 2, 1, 0, 0)
    text = m.exposition().decode()
    assert 'switchyard_cost_total{binding="a",caller="codex",currency="USD",model="gpt-x",source="s1",tier="0"} 1.0' in text
    assert 'switchyard_usage_tokens_total{binding="a",caller="codex",kind="input",model="gpt-x",source="s1",tier="0"} 30.0' in text
    assert 'kind="cache_write"' not in text  # a kind never reported makes no series
    assert m.usage_totals() == {"a": ([30, 20, 10, 0, 0], {"USD": 10**12})}


def test_a_new_model_on_the_same_tier_gets_its_own_usage_series() -> None:
    m = Metrics()
    cfg = _config(("a", [(0, "s1")]))
    m.install(cfg)
    stats = m.tier(cfg[0], cfg[0].tiers[0])
    stats.usage("codex", "m1").tokens(1, 1, 0, 0, 0)
    stats.usage("codex", "m2").tokens(2, 2, 0, 0, 0)
    stats.usage("codex", "m1").cost("USD", 5)
    stats.usage("codex", "m1").cost("EUR", 7)
    reg = m.registry
    labels = {"binding": "a", "tier": "0", "source": "s1", "caller": "codex", "kind": "input"}
    assert reg.get_sample_value("switchyard_usage_tokens_total", {**labels, "model": "m1"}) == 1
    assert reg.get_sample_value("switchyard_usage_tokens_total", {**labels, "model": "m2"}) == 2
    assert m.usage_totals()["a"] == ([3, 3, 0, 0, 0], {"USD": 5, "EUR": 7})


def _first(m: Metrics) -> tuple[Any, Any]:
    (b, t, _stats), = m._by_tier.values()
    return b, t
