"""Operator settings, grouped by topic; every duration carries its unit in its name.

Built from the ``switchyard operator`` command line (``main.settings_from_args``) or
directly in tests. Frozen: the running operator never changes them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

INJECT_ANNOTATION = "switchyard.dev/inject"
ADMIN_URL_ANNOTATION = "switchyard.dev/admin-url"
ADMIN_PORT_ANNOTATION = "switchyard.dev/admin-port"
SIDECAR_CONTAINER = "switchyard"
COMPONENT = "switchyard-operator"


@dataclass(frozen=True)
class SidecarSettings:
    """The sidecar the webhook injects and the operator talks to."""

    image: str = "ghcr.io/switchyard-dev/switchyard:0.1.0"
    api_port: int = 4000  # the app reaches the gateway on 127.0.0.1:4000
    admin_port: int = 4001  # the operator pushes config here (pod IP)
    admin_token_secret: str = "switchyard-admin-token"  # a Secret in each app namespace
    admin_token_key: str = "token"
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    memory_limit: str = "256Mi"
    cpu_limit: str = ""  # empty: none
    image_pull_secrets: tuple[str, ...] = ()
    # A native sidecar (init container, restartPolicy Always; Kubernetes 1.29+). None: decide
    # from the API server's version at start (main.startup).
    native: bool | None = None
    run_as_user: int = 65532
    delivery: str = "secret"  # "secret": mount the config Secret and labels; "push": wait for pushes (dev)
    # OpenTelemetry traces from the sidecar (docs/tracing.md): off by default; on, the
    # sidecar gets SWITCHYARD_TRACING=on and these OTEL_* variables (endpoint, sampler...).
    tracing: bool = False
    tracing_env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PushSettings:
    """Config delivery and health polling of the sidecars' admin API.

    ``delivery``: "secret" (default, the chart's): each namespace's compiled bindings go
    into its config Secret, which the sidecars mount; health is read from the open,
    read-only ``GET /admin/status`` with no token. "push": ``PUT /admin/config`` with the
    admin token over plain HTTP, for development and standalone set-ups only."""

    delivery: str = "secret"
    # Secret delivery: how soon a namespace whose sidecars do not run their planned config
    # yet is read again (the kubelet refreshes the volume within a second once nudged).
    stale_recheck_seconds: float = 1.0

    connect_timeout_seconds: float = 2.0
    request_timeout_seconds: float = 5.0
    concurrency: int = 16  # admin requests in flight at once, all namespaces together
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    health_interval_seconds: float = 10.0  # how often every namespace is re-read from its sidecars
    # "RoleBinding/NAME" or "ClusterRoleBinding/NAME" (the chart's): the binding that grants
    # the operator its rights in a namespace owns that namespace's config Secret, so the
    # garbage collector removes the Secret (it holds keys) with the release. Empty: no owner.
    config_owner: str = ""
    # Test/debug only: honour the switchyard.dev/admin-url pod annotation (a pod could
    # otherwise point the operator, and the credentials it pushes, anywhere it likes).
    allow_admin_url_annotation: bool = False


@dataclass(frozen=True)
class CatalogSettings:
    """The live model catalog and credential check of each ModelSource."""

    ttl_seconds: float = 300.0  # refetch after this long
    retry_seconds: float = 60.0  # after a failed fetch
    timeout_seconds: float = 10.0
    concurrency: int = 4
    max_ids_kept: int = 2000


@dataclass(frozen=True)
class LeaderSettings:
    """Lease-based leader election: with two replicas only the holder writes."""

    enabled: bool = True
    lease_name: str = "switchyard-operator"
    lease_namespace: str = field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "switchyard-system"))
    identity: str = field(default_factory=lambda: os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}")
    lease_duration_seconds: float = 15.0
    renew_interval_seconds: float = 5.0
    # This replica's pod UID (downward API): a Lease it creates names the pod as owner, so
    # the garbage collector removes a Lease a terminating replica created after helm
    # uninstall deleted the chart's.
    pod_uid: str | None = field(default_factory=lambda: os.environ.get("POD_UID") or None)


@dataclass(frozen=True)
class EventSettings:
    """Kubernetes Events on bindings: rate-limited so a flapping tier cannot storm."""

    min_interval_seconds: float = 60.0  # per (object, reason, tier)
    burst: int = 5  # per object ...
    refill_seconds: float = 30.0  # ... one more token every this long


@dataclass(frozen=True)
class WebhookSettings:
    """The admission webhooks' server (kopf's WebhookServer; the chart owns the configurations)."""

    enabled: bool = True
    listen_host: str = "0.0.0.0"
    port: int = 9443
    public_host: str | None = None  # the host in the URL the API server calls (a Service DNS name)
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None  # the CA that signed cert_file (the readiness check trusts it)
    cert_check_seconds: float = 10.0  # how often the certificate files are checked for a renewal


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    resync_seconds: float = 60.0  # level-based pass over every namespace, even with no event
    metrics_host: str = "0.0.0.0"  # the operator's own /metrics (metrics.py); the chart serves it on 8081
    metrics_port: int = 0  # 0: not served (SWITCHYARD_METRICS_PORT)
    reconcile_workers: int = 4
    min_reconcile_interval_seconds: float = 0.5  # coalesce bursts of events per namespace
    sidecar: SidecarSettings = field(default_factory=SidecarSettings)
    push: PushSettings = field(default_factory=PushSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    leader: LeaderSettings = field(default_factory=LeaderSettings)
    events: EventSettings = field(default_factory=EventSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
