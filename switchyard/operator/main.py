"""kopf registrations (thin: each calls one function) and ``switchyard operator``'s entry point.

What the operator watches, and why:

- ModelSources, CapabilityProfiles, AssistantBindings: indexed by namespace; any event
  re-reconciles the namespace (a source event also refreshes its catalog).
- Secrets labelled ``switchyard.dev/credential: "true"`` only (a server-side label
  selector, credentials.py): indexed by name with their data; an event on a referenced
  one re-reconciles its namespace and re-checks the sources that use it. No other
  Secret is watched; the admin-token Secret is read by name (reconciler.py).
- Pods carrying the sidecar: indexed by namespace; an event (created, Running with an IP,
  sidecar restarted, deleted) re-reconciles the namespace, which pushes config again.
- A mutating webhook on Pod CREATE injects the sidecar, and a validating webhook on
  AssistantBinding CREATE/UPDATE checks the chain against the indexes and returns
  warnings (``kubectl apply`` prints them). The operator serves them (kopf's server,
  ``admission.GuardedWebhookServer``) but neither creates nor patches their
  configurations: the chart renders them, release-named, opt-in by pod label, with
  failurePolicy Ignore and a 5 s timeout, so ``helm uninstall`` removes them and two
  releases never take each other's. Both handlers refuse nothing: an error becomes an
  allowed, unmutated object, a log line and a metric.

Only ``@kopf.on.event`` and ``@kopf.index`` handlers are used: kopf then writes nothing to
the watched objects (no finalizers, no annotations), so the operator never touches a
user's object except through ``/status``.

Configuration comes from the command line (``--namespace``, ``--log-level``) and from
environment variables (``SWITCHYARD_*``, see ``settings_from_env``), which is how the Helm
chart configures a Deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import kopf

from switchyard.api.models import GROUP, VERSION

from . import metrics, webhook, world
from .admission import WEBHOOK_ERRORS, WEBHOOK_SKIPPED, GuardedWebhookServer, Readiness
from .credentials import CREDENTIAL_SELECTOR
from .kube import Kube
from .leader import LeaderElector
from .reconciler import Reconciler
from .selection import carries_sidecar
from .settings import (
    LeaderSettings,
    Settings,
    WebhookSettings,
)

log = logging.getLogger("switchyard.operator")


class Holder:
    """Shared through kopf's memo (shallow-copied per object): the one Reconciler."""

    config: Settings
    reconciler: Reconciler
    readiness: Readiness | None = None


def _reconciler(memo: Any) -> Reconciler:
    return memo.holder.reconciler


def _config(memo: Any) -> Settings:
    return memo.holder.config


# --------------------------------------------------------------------------- login, start, stop


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: its service account. Elsewhere: $KUBECONFIG (only that identity is used)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    cfg = _config(memo)

    async def relogin() -> kopf.ConnectionInfo:
        info = login(settings=settings)
        if info is None:
            raise kopf.PermanentError("no Kubernetes credentials: no service account and no kubeconfig")
        return info

    kube = Kube(relogin)
    if cfg.webhook.enabled and cfg.sidecar.native is None:
        try:
            version = await kube.request("GET", "/version")
        except Exception as e:  # a plain container works everywhere
            log.warning("could not read the API server's version (%s); injecting the sidecar as a plain container",
                        type(e).__name__)
            version = {}
        native = supports_native_sidecars(version or {})
        cfg = replace(cfg, sidecar=replace(cfg.sidecar, native=native))
        memo.holder.config = cfg
        log.info("sidecar injected as %s (API server %s.%s)", "a native sidecar" if native else "a plain container",
                 (version or {}).get("major", "?"), (version or {}).get("minor", "?"))
    w = world.World(
        sources_by_ns=kwargs["index_sources"],
        profiles_by_ns=kwargs["index_profiles"],
        bindings_by_ns=kwargs["index_bindings"],
        pods_by_ns=kwargs["index_pods"],
        secrets_by_key=kwargs["index_secrets"],
        admin_token_secret=cfg.sidecar.admin_token_secret,
    )
    rec = Reconciler(cfg, w, kube)
    if cfg.leader.enabled:
        rec.leader = LeaderElector(kube, cfg.leader, on_change=rec.on_leadership)
    memo.holder.reconciler = rec
    metrics.METRICS.bind(lambda: len(rec.queue), lambda: rec.is_leader)
    if cfg.metrics_port:
        memo.holder.metrics_server, _ = await metrics.serve(cfg.metrics_host, cfg.metrics_port)
    await rec.start()
    readiness = getattr(memo.holder, "readiness", None)
    if readiness is not None:
        await readiness.start()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    readiness = getattr(memo.holder, "readiness", None)
    if readiness is not None:
        await readiness.stop()
    await _reconciler(memo).stop()
    server = getattr(memo.holder, "metrics_server", None)
    if server is not None:
        await server.cleanup()


# --------------------------------------------------------------------------- indexes


@kopf.index(GROUP, VERSION, "modelsources")
def index_sources(namespace: str, body: kopf.Body, **_: Any) -> dict[str, world.Snap]:
    return {namespace: world.snapshot("ModelSource", body)}


@kopf.index(GROUP, VERSION, "capabilityprofiles")
def index_profiles(namespace: str, body: kopf.Body, **_: Any) -> dict[str, world.Snap]:
    return {namespace: world.snapshot("CapabilityProfile", body)}


@kopf.index(GROUP, VERSION, "assistantbindings")
def index_bindings(namespace: str, body: kopf.Body, **_: Any) -> dict[str, world.Snap]:
    return {namespace: world.snapshot("AssistantBinding", body)}


@kopf.index("v1", "secrets")
def index_secrets(namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[tuple[str, str], world.SecretSnap]:
    keep = name != _config(memo).sidecar.admin_token_secret  # reserved: never a credential
    return {(namespace, name): world.snapshot_secret(body, keep_data=keep)}


@kopf.index("v1", "pods", when=lambda body, **_: carries_sidecar(dict(body)))
def index_pods(namespace: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    cfg = _config(memo)
    info = world.snapshot_pod(body, default_port=cfg.sidecar.admin_port, allow_override=cfg.push.allow_admin_url_annotation)
    return {namespace: info} if info is not None else {}


# --------------------------------------------------------------------------- triggers


@kopf.on.event(GROUP, VERSION, "modelsources")
def on_source(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).source_changed(namespace, name)


@kopf.on.event(GROUP, VERSION, "capabilityprofiles")
def on_profile(namespace: str, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).namespace_changed(namespace)


@kopf.on.event(GROUP, VERSION, "assistantbindings")
def on_binding(namespace: str, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).namespace_changed(namespace)


@kopf.on.event("v1", "secrets")
def on_secret(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).secret_changed(namespace, name)


@kopf.on.event("v1", "pods", when=lambda body, **_: carries_sidecar(dict(body)))
def on_pod(namespace: str, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).namespace_changed(namespace)


# --------------------------------------------------------------------------- admission


def inject_sidecar(
    body: kopf.Body, patch: kopf.Patch, warnings: list[str], memo: kopf.Memo, namespace: str | None = None, **_: Any
) -> None:
    """Never refuses a pod: any failure admits it unmutated, with a log line and a metric.

    ``namespace`` is the AdmissionReview's (``admission.pin_namespace``). A pod in a
    namespace this operator does not watch is left alone: nothing would configure it."""
    started = time.monotonic()
    outcome = "allowed"
    try:
        cfg = _config(memo)
        ns = namespace or (body.get("metadata") or {}).get("namespace")
        pod = dict(body)
        if cfg.namespaces and ns not in cfg.namespaces and webhook.wants_injection(pod):
            WEBHOOK_SKIPPED.labels("namespace-not-watched").inc()
            warnings.append(f"switchyard: sidecar not injected: namespace {ns} is not watched by this operator")
            outcome = "warned"
            return
        spec, warns = webhook.spec_patch(pod, cfg.sidecar)
        for w in warns:
            WEBHOOK_SKIPPED.labels("host-network" if "hostNetwork" in w else "ports-in-use").inc()
            log.warning("pod in %s admitted without the sidecar: %s", ns, w.removeprefix("switchyard: "))
        warnings.extend(warns)
        if warns:
            outcome = "warned"
        if spec:
            patch.spec.update(spec)
    except Exception as e:  # kopf would answer allowed: false
        WEBHOOK_ERRORS.labels("inject-sidecar").inc()
        log.error("sidecar injection failed (%s); the pod is admitted without it", type(e).__name__)
        warnings.append(f"switchyard: sidecar not injected: internal error ({type(e).__name__})")
        outcome = "fail-open"
    finally:
        metrics.METRICS.admitted("inject", started, outcome)


async def validate_binding(
    *, body: kopf.Body | None = None, old: kopf.Body | None = None, warnings: list[str] | None = None,
    memo: kopf.Memo | None = None, **_: Any,
) -> None:
    """Warn about unresolvable and incompatible tiers; never refuse.

    kopf answers ``allowed: false`` when a handler raises, and failurePolicy Ignore covers
    only a webhook that cannot be reached, so nothing may escape from here. Async on
    purpose: kopf runs sync handlers in threads, and the check reads the indexes and the
    reconciler's memory, which only the event loop may touch."""
    started = time.monotonic()
    try:
        rec = getattr(getattr(memo, "holder", None), "reconciler", None)
        if rec is None or body is None or warnings is None:
            metrics.METRICS.admitted("validate", started, "fail-open")  # not started yet: nothing to check against
            return
        found = rec.check_binding(dict(body), dict(old) if old is not None else None)
        warnings.extend(found)
        metrics.METRICS.admitted("validate", started, "warned" if found else "allowed")
    except Exception:
        log.exception("the apply-time check of an AssistantBinding failed; admitted without warnings")
        metrics.METRICS.admitted("validate", started, "fail-open")


def register_webhook() -> None:
    """Registered only when the webhook is on (kopf refuses admission handlers without a server).

    ``persistent=True``: kopf removes non-persistent webhooks from the configuration when
    an operator process exits, and the replica that stays up does not put them back (it
    re-patches only when its own server's address changes). With two replicas behind one
    Service, a rolling update would silently switch injection off. A persistent webhook
    whose every replica is gone costs nothing worse than failurePolicy Ignore already
    allows: the API server admits the pod uninjected."""
    kopf.on.mutate("v1", "pods", id="inject-sidecar", operations=["CREATE"], ignore_failures=True, persistent=True)(
        inject_sidecar
    )
    kopf.on.validate(
        GROUP, VERSION, "assistantbindings", id="check-binding", operations=["CREATE", "UPDATE"],
        ignore_failures=True, persistent=True,
    )(validate_binding)


def webhook_server(w: WebhookSettings) -> kopf.WebhookServer:
    if not (w.cert_file and w.key_file):
        raise SystemExit(
            "switchyard operator: the injection webhook needs a serving certificate: set "
            "SWITCHYARD_WEBHOOK_CERT_FILE and SWITCHYARD_WEBHOOK_KEY_FILE (and _CA_FILE), "
            "or SWITCHYARD_WEBHOOK=off"
        )
    return GuardedWebhookServer(
        addr=w.listen_host, port=w.port, host=w.public_host, certfile=w.cert_file, pkeyfile=w.key_file, cafile=w.ca_file,
        file_check_interval=w.cert_check_seconds,
    )


def readiness(cfg: Settings, env: Mapping[str, str]) -> Readiness | None:
    """SWITCHYARD_READINESS_ENDPOINT=http://HOST:PORT: serve /readyz (and /metrics) there."""
    raw = env.get("SWITCHYARD_READINESS_ENDPOINT")
    if not raw:
        return None
    from urllib.parse import urlsplit

    u = urlsplit(raw)
    url = None
    if cfg.webhook.enabled:
        host = "127.0.0.1" if cfg.webhook.listen_host in ("0.0.0.0", "", "::") else cfg.webhook.listen_host
        url = f"https://{host}:{cfg.webhook.port}/inject-sidecar"
    return Readiness(host=u.hostname or "0.0.0.0", port=u.port or 8081, webhook_url=url, ca_file=cfg.webhook.ca_file)


# --------------------------------------------------------------------------- configuration


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    return float(raw) if raw else default


def _native(raw: str | None) -> bool | None:
    value = (raw or "auto").strip().lower()
    if value == "auto":
        return None
    return value in ("1", "true", "yes", "on")


NATIVE_SIDECAR_SINCE = (1, 29)  # SidecarContainers: beta and on by default from 1.29


def supports_native_sidecars(version: Mapping[str, Any]) -> bool:
    """From the API server's /version: "major": "1", "minor": "29+" (some add a "+")."""
    try:
        major = int(str(version.get("major", "")).rstrip("+"))
        minor = int(str(version.get("minor", "")).rstrip("+"))
    except ValueError:
        return False
    return (major, minor) >= NATIVE_SIDECAR_SINCE


def _tracing_env(raw: str | None) -> tuple[tuple[str, str], ...]:
    """``SWITCHYARD_SIDECAR_TRACING_ENV``: a JSON object of ``OTEL_*`` variables for the
    injected sidecars (the chart's sidecar.tracing.endpoint and .env)."""
    if not (raw or "").strip():
        return ()
    try:
        data = json.loads(raw or "")
    except ValueError as exc:
        raise SystemExit(f"switchyard operator: SWITCHYARD_SIDECAR_TRACING_ENV is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SystemExit("switchyard operator: SWITCHYARD_SIDECAR_TRACING_ENV must be a JSON object of OTEL_* variables")
    out = []
    for name, value in sorted(data.items()):
        if not (name.startswith("OTEL_") or name == "SWITCHYARD_TRACING_PROPAGATE_UPSTREAM") or not name.replace("_", "").isalnum():
            raise SystemExit(f"switchyard operator: SWITCHYARD_SIDECAR_TRACING_ENV: {name!r} is not an OTEL_* variable")
        if value is None or value == "":
            continue
        out.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
    return tuple(out)


def _delivery(raw: str | None) -> str:
    value = (raw or "secret").strip().lower()
    if value not in ("secret", "push"):
        raise SystemExit(f"switchyard operator: SWITCHYARD_CONFIG_DELIVERY must be 'secret' or 'push', not {raw!r}")
    return value


def _config_owner(raw: str | None) -> str:
    value = (raw or "").strip()
    kind, _, name = value.partition("/")
    if value and (kind not in ("RoleBinding", "ClusterRoleBinding") or not name or "/" in name):
        raise SystemExit("switchyard operator: SWITCHYARD_CONFIG_OWNER must be RoleBinding/NAME or "
                         f"ClusterRoleBinding/NAME, not {raw!r}")
    return value


def settings_from_env(env: Mapping[str, str], namespaces: tuple[str, ...] = ()) -> Settings:
    """Settings from ``SWITCHYARD_*`` variables (documented in docs/operator.md)."""
    base = Settings()
    sidecar = replace(
        base.sidecar,
        image=env.get("SWITCHYARD_SIDECAR_IMAGE", base.sidecar.image),
        admin_token_secret=env.get("SWITCHYARD_ADMIN_TOKEN_SECRET", base.sidecar.admin_token_secret),
        admin_token_key=env.get("SWITCHYARD_ADMIN_TOKEN_KEY", base.sidecar.admin_token_key),
        delivery=_delivery(env.get("SWITCHYARD_CONFIG_DELIVERY")),
        cpu_request=env.get("SWITCHYARD_SIDECAR_CPU_REQUEST", base.sidecar.cpu_request),
        cpu_limit=env.get("SWITCHYARD_SIDECAR_CPU_LIMIT", base.sidecar.cpu_limit),
        memory_request=env.get("SWITCHYARD_SIDECAR_MEMORY_REQUEST", base.sidecar.memory_request),
        memory_limit=env.get("SWITCHYARD_SIDECAR_MEMORY_LIMIT", base.sidecar.memory_limit),
        image_pull_secrets=tuple(n.strip() for n in env.get("SWITCHYARD_SIDECAR_IMAGE_PULL_SECRETS", "").split(",") if n.strip()),
        native=_native(env.get("SWITCHYARD_SIDECAR_NATIVE")),
        tracing=_bool(env, "SWITCHYARD_SIDECAR_TRACING", False),
        tracing_env=_tracing_env(env.get("SWITCHYARD_SIDECAR_TRACING_ENV")),
    )
    push = replace(
        base.push,
        health_interval_seconds=_float(env, "SWITCHYARD_HEALTH_INTERVAL_SECONDS", base.push.health_interval_seconds),
        request_timeout_seconds=_float(env, "SWITCHYARD_ADMIN_TIMEOUT_SECONDS", base.push.request_timeout_seconds),
        backoff_max_seconds=_float(env, "SWITCHYARD_PUSH_BACKOFF_MAX_SECONDS", base.push.backoff_max_seconds),
        allow_admin_url_annotation=_bool(env, "SWITCHYARD_ALLOW_ADMIN_URL_ANNOTATION", False),
        config_owner=_config_owner(env.get("SWITCHYARD_CONFIG_OWNER")),
        delivery=_delivery(env.get("SWITCHYARD_CONFIG_DELIVERY")),
    )
    catalog = replace(
        base.catalog,
        ttl_seconds=_float(env, "SWITCHYARD_CATALOG_TTL_SECONDS", base.catalog.ttl_seconds),
        retry_seconds=_float(env, "SWITCHYARD_CATALOG_RETRY_SECONDS", base.catalog.retry_seconds),
    )
    leader = LeaderSettings(
        enabled=_bool(env, "SWITCHYARD_LEADER_ELECTION", True),
        lease_name=env.get("SWITCHYARD_LEASE_NAME", "switchyard-operator"),
        lease_namespace=env.get("POD_NAMESPACE", "switchyard-system"),
        identity=env.get("POD_NAME") or LeaderSettings().identity,
        pod_uid=env.get("POD_UID") or None,
        lease_duration_seconds=_float(env, "SWITCHYARD_LEASE_DURATION_SECONDS", 15.0),
        renew_interval_seconds=_float(env, "SWITCHYARD_LEASE_RENEW_SECONDS", 5.0),
    )
    webhook_cfg = WebhookSettings(
        enabled=_bool(env, "SWITCHYARD_WEBHOOK", True),
        listen_host=env.get("SWITCHYARD_WEBHOOK_LISTEN", "0.0.0.0"),
        port=int(env.get("SWITCHYARD_WEBHOOK_PORT", "9443")),
        public_host=env.get("SWITCHYARD_WEBHOOK_HOST") or None,
        cert_file=env.get("SWITCHYARD_WEBHOOK_CERT_FILE") or None,
        key_file=env.get("SWITCHYARD_WEBHOOK_KEY_FILE") or None,
        ca_file=env.get("SWITCHYARD_WEBHOOK_CA_FILE") or None,
        cert_check_seconds=_float(env, "SWITCHYARD_WEBHOOK_CERT_CHECK_SECONDS", 10.0),
    )
    return replace(
        base,
        namespaces=namespaces,
        resync_seconds=_float(env, "SWITCHYARD_RESYNC_SECONDS", base.resync_seconds),
        metrics_host=env.get("SWITCHYARD_METRICS_LISTEN", base.metrics_host),
        metrics_port=int(env.get("SWITCHYARD_METRICS_PORT", str(base.metrics_port))),
        sidecar=sidecar,
        push=push,
        catalog=catalog,
        leader=leader,
        webhook=webhook_cfg,
    )


def kopf_settings(cfg: Settings, env: Mapping[str, str]) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # the operator posts its own, rate-limited Events
    settings.scanning.disabled = True  # CRDs are installed before the operator; no CRD/namespace watch
    settings.watching.server_timeout = 300
    # Only Secrets marked as Switchyard credentials are ever listed or watched (server side).
    settings.watching.label_selectors["v1", "secrets"] = CREDENTIAL_SELECTOR
    # Pods: a server-side label selector when the pods that carry the sidecar are labelled
    # (SWITCHYARD_POD_LABEL_SELECTOR, e.g. app.kubernetes.io/part-of=assistants); without
    # one every pod is streamed and those without the sidecar are dropped on arrival.
    if env.get("SWITCHYARD_POD_LABEL_SELECTOR"):
        settings.watching.label_selectors["v1", "pods"] = env["SWITCHYARD_POD_LABEL_SELECTOR"]
    settings.networking.request_timeout = 60
    if cfg.webhook.enabled:
        settings.admission.server = webhook_server(cfg.webhook)
        settings.admission.managed = None  # the chart owns the configurations (release-named)
        register_webhook()
    return settings


def run(args: argparse.Namespace) -> int:
    """``switchyard operator``: run until SIGINT/SIGTERM."""
    from switchyard import logs

    level = getattr(args, "log_level", "info")
    logs.setup(level)
    if level != "debug":  # kopf logs every handler call at info
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    env = os.environ
    namespaces = tuple(getattr(args, "namespace", None) or ())
    cfg = settings_from_env(env, namespaces)
    holder = Holder()
    holder.config = cfg
    holder.readiness = readiness(cfg, env)
    memo = kopf.Memo(holder=holder)
    liveness = env.get("SWITCHYARD_LIVENESS_ENDPOINT") or None
    log.info(
        "starting",
        extra={"switchyard": {
            "namespaces": list(namespaces) or "all", "webhook": cfg.webhook.enabled,
            "leader_election": cfg.leader.enabled, "identity": cfg.leader.identity,
        }},
    )
    coro = kopf.operator(
        settings=kopf_settings(cfg, env),
        standalone=True,  # no kopf peering: a Lease elects the writer (leader.py)
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        memo=memo,
    )
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover
        asyncio.run(coro)
    return 0
