"""Every Prometheus metric the operator exports, in one place, and the server for them.

Served on their own port (``SWITCHYARD_METRICS_PORT``: the chart sets 8081; unset or 0: not served):
kopf owns the health port's server. Label values are fixed words (kinds, outcomes,
reasons, webhook names): never an object's name, a namespace, a URL or a Secret's
content. docs/metrics.md lists them; the chart's dashboard has an Operator row and
``metrics.operatorPodMonitor`` scrapes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

disable_created_metrics()

log = logging.getLogger("switchyard.operator.metrics")

BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RECONCILE_KINDS = ("namespace", "catalog")
PUSH_OUTCOMES = ("applied", "failed")  # failed: refused, unreachable, or another version runs after it
WEBHOOKS = ("inject", "validate")
WEBHOOK_OUTCOMES = ("allowed", "warned", "fail-open")  # fail-open: the handler failed, the object was admitted as is


class _Live(Collector):
    """Gauges computed when scraped (queue depth, leadership)."""

    def __init__(self, queue_depth: Callable[[], int], leader: Callable[[], bool]) -> None:
        self.queue_depth, self.leader = queue_depth, leader

    def collect(self) -> list[Metric]:  # type: ignore[override]
        q = GaugeMetricFamily("switchyard_operator_queue_depth", "Keys waiting in the reconcile queue (namespaces and catalogs).")
        q.add_metric([], float(self.queue_depth()))
        lead = GaugeMetricFamily("switchyard_operator_leader", "1 when this replica holds the Lease and writes, 0 on a standby.")
        lead.add_metric([], 1.0 if self.leader() else 0.0)
        return [q, lead]


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconciles = Counter(
            "switchyard_operator_reconciles_total", "Reconciles done, by kind and result (ok, error).",
            ["kind", "result"], registry=r)
        self.reconcile_seconds = Histogram(
            "switchyard_operator_reconcile_duration_seconds", "Duration of each reconcile.", ["kind"], buckets=BUCKETS,
            registry=r)
        self.pushes = Counter(
            "switchyard_operator_config_pushes_total", "Config pushes to sidecars, by outcome.", ["outcome"], registry=r)
        self.health_hints = Counter(
            "switchyard_operator_health_hints_sent_total",
            "Shared-health hint sets sent to sidecars (PUT /admin/health), by outcome (sent, failed, no-token).",
            ["outcome"], registry=r)
        self.refusals = Counter(
            "switchyard_operator_credential_refusals_total",
            "ModelSource credential checks refused before anything was read or sent, by reason "
            "(SecretNotMarked, SecretReserved).", ["reason"], registry=r)
        self.webhook_requests = Counter(
            "switchyard_operator_webhook_requests_total", "Admission requests answered, by webhook and outcome.",
            ["webhook", "outcome"], registry=r)
        self.webhook_seconds = Histogram(
            "switchyard_operator_webhook_duration_seconds", "Time to answer an admission request.", ["webhook"],
            buckets=BUCKETS, registry=r)
        for kind in RECONCILE_KINDS:
            for result in ("ok", "error"):
                self.reconciles.labels(kind, result)
            self.reconcile_seconds.labels(kind)
        for outcome in PUSH_OUTCOMES:
            self.pushes.labels(outcome)
        for outcome in ("sent", "failed", "no-token"):
            self.health_hints.labels(outcome)
        for hook in WEBHOOKS:
            self.webhook_seconds.labels(hook)
            for outcome in WEBHOOK_OUTCOMES:
                self.webhook_requests.labels(hook, outcome)
        self._live: _Live | None = None

    def bind(self, queue_depth: Callable[[], int], leader: Callable[[], bool]) -> None:
        """Attach the live gauges (once the reconciler exists)."""
        if self._live is None:
            self._live = _Live(queue_depth, leader)
            self.registry.register(self._live)

    def reconciled(self, kind: str, seconds: float, ok: bool) -> None:
        self.reconciles.labels(kind, "ok" if ok else "error").inc()
        self.reconcile_seconds.labels(kind).observe(seconds)

    def admitted(self, webhook: str, started: float, outcome: str) -> None:
        self.webhook_requests.labels(webhook, outcome).inc()
        self.webhook_seconds.labels(webhook).observe(time.monotonic() - started)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = OperatorMetrics()
"""The process's metrics (one operator per process)."""


async def serve(host: str, port: int, metrics: OperatorMetrics = METRICS) -> tuple[web.AppRunner, int]:
    """``GET /metrics`` on host:port (port 0: any free port). Returns the runner and the port."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound: Any = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port  # type: ignore[union-attr]
    log.info("serving metrics on %s:%d/metrics", host, bound)
    return runner, int(bound)
