"""The admission webhooks' server side: a kopf server that cannot stall or refuse pods, and
the operator's readiness, which passes only once that server answers.

- ``GuardedWebhookServer``: kopf's HTTPS server (it restarts itself with the new
  certificate when the files change: cert-manager renewals are picked up within
  ``file_check_interval`` seconds) with two guards around kopf's request function:
  the object's namespace is taken from the AdmissionReview (``request.namespace``, the
  API server's word), never from the object in the body; and anything that escapes
  (a bug, an unexpected body) becomes an allowed, unmutated answer, a log line and
  ``switchyard_webhook_errors_total``. kopf's own "unknown resource" answers (before its
  registry is ready) are left as they are: an HTTP error the API server ignores
  (failurePolicy Ignore) and the readiness check below reports as not ready.
- The operator does not create or patch webhook configurations: the chart renders them
  (release-named, selectors, timeout, failurePolicy), so ``helm uninstall`` removes them.
- ``Readiness``: ``GET /readyz`` posts a harmless AdmissionReview (a pod that does not
  ask for the sidecar, dry run) to the operator's own webhook server over HTTPS and is
  200 only when it comes back allowed; ``GET /metrics`` exposes the webhook counters.
  A pod of the operator is then in the webhook Service only once it really answers,
  so the first pod after ``helm install --wait`` is not admitted without its sidecar.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kopf
from aiohttp import web
from kopf._core.engines.admission import WebhookError
from prometheus_client import Counter, generate_latest

from switchyard.operator.metrics import METRICS

log = logging.getLogger("switchyard.operator.webhook")

REGISTRY = METRICS.registry  # one exposition for the operator (metrics.py)
WEBHOOK_ERRORS = Counter(
    "switchyard_operator_webhook_errors",
    "Admission requests the operator could not handle, answered allowed and unmutated.",
    ["webhook"],
    registry=REGISTRY,
)
WEBHOOK_SKIPPED = Counter(
    "switchyard_operator_webhook_skipped",
    "Pods that asked for the sidecar and were admitted without it, by reason.",
    ["reason"],
    registry=REGISTRY,
)

READINESS_UID = "switchyard-readiness-probe"


def _allowed(request: Any, warning: str) -> dict[str, Any]:
    uid = ((request or {}).get("request") or {}).get("uid", "") if isinstance(request, dict) else ""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": True, "warnings": [warning]},
    }


def pin_namespace(request: Any) -> None:
    """Put the AdmissionReview's namespace into the object(s) it carries (in place)."""
    req = request.get("request") if isinstance(request, dict) else None
    if not isinstance(req, dict):
        return
    ns = req.get("namespace")
    if not ns:
        return
    for key in ("object", "oldObject"):
        obj = req.get(key)
        if isinstance(obj, dict):
            meta = obj.get("metadata")
            if not isinstance(meta, dict):
                meta = obj["metadata"] = {}
            meta["namespace"] = ns


def guard(fn: Any) -> Any:
    async def guarded(request: Any, **kwargs: Any) -> Any:
        try:
            pin_namespace(request)
            return await fn(request, **kwargs)
        except WebhookError:
            raise  # kopf not ready, or not a request for us: an HTTP error, ignored by the API server
        except Exception as e:  # never refuse or stall a pod for our own failure
            webhook = str(kwargs.get("webhook") or "unknown")
            WEBHOOK_ERRORS.labels(webhook).inc()
            log.error("admission request failed in webhook %s (%s); admitted unchanged", webhook, type(e).__name__)
            return _allowed(request, f"switchyard: not processed ({type(e).__name__}); admitted unchanged")

    return guarded


class GuardedWebhookServer(kopf.WebhookServer):
    async def __call__(self, fn: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        async for config in super().__call__(guard(fn)):
            yield config


def readiness_review() -> dict[str, Any]:
    ns = "switchyard-readiness"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": READINESS_UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": ns,
            "dryRun": True,
            "userInfo": {"username": "system:switchyard:readiness"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "readiness-probe", "namespace": ns},
                       "spec": {"containers": [{"name": "probe", "image": "none"}]}},
        },
    }


class Readiness:
    """``/readyz`` (the webhook answers) and ``/metrics`` on their own small listener."""

    def __init__(self, *, host: str, port: int, webhook_url: str | None, ca_file: str | None, timeout_seconds: float = 2.0) -> None:
        self.host, self.port = host, port
        self.webhook_url = webhook_url  # None: no webhook, ready once started
        self.ca_file = ca_file
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        ctx.check_hostname = False  # the certificate names the Service; we call ourselves on loopback
        if not self.ca_file:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def webhook_answers(self) -> tuple[bool, str]:
        if self.webhook_url is None:
            return True, "no webhook"
        assert self._session is not None
        try:
            async with self._session.post(self.webhook_url, json=readiness_review(), ssl=self._ssl(),
                                          timeout=self.timeout) as r:
                if r.status != 200:
                    return False, f"webhook answered HTTP {r.status}"
                body = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, ssl.SSLError, OSError) as e:
            return False, f"webhook unreachable ({type(e).__name__})"
        response = (body or {}).get("response") or {}
        if response.get("uid") == READINESS_UID and response.get("allowed") is True:
            return True, "ok"
        return False, "webhook answered without allowing the probe"

    async def readyz(self, request: web.Request) -> web.Response:
        ok, why = await self.webhook_answers()
        return web.Response(status=200 if ok else 503, text=why)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": "text/plain; version=0.0.4"})

    async def start(self) -> int:
        self._session = aiohttp.ClientSession(trust_env=False)
        app = web.Application()
        app.add_routes([web.get("/readyz", self.readyz), web.get("/metrics", self.metrics)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
