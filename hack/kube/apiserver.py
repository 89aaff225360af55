"""The e2e tier's cluster: etcd + kube-apiserver on 127.0.0.1 (no controllers, no node)."""

from __future__ import annotations

import atexit
import base64
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from collections.abc import Sequence

from .clients import KubeClients
from .common import https_json, EXIT_BUILD_FAILED, EXIT_CLIENTS_FAILED, EXIT_CLUSTER_FAILED, KubeToolsError, log, tail, write_private
from .gobuild import KubeBinaries, find_kube_binaries
from .pki import LocalCA, ServingCert, rsa_key_pair
from .procs import PortInUse, Proc, child_env, free_port, poll_until, terminate

# --------------------------------------------------------------------------- the cluster

OPERATOR_NAMESPACE = "switchyard-system"
OPERATOR_SA = "switchyard-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"
ADMIN_USER = "switchyard-e2e-admin"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.96.0.0/16"
@dataclasses.dataclass
class Cluster:
    """A running etcd + kube-apiserver on 127.0.0.1 (see start_cluster)."""

    root: Path
    server: str
    ca_file: Path
    ca: LocalCA
    admin_token: str
    operator_token: str
    admin_kubeconfig: Path
    operator_kubeconfig: Path
    etcd_url: str
    binaries: KubeBinaries
    clients: KubeClients | None = None
    operator_user: str = OPERATOR_USER
    admin_user: str = ADMIN_USER
    keep: bool = False
    _procs: list[Proc] = dataclasses.field(default_factory=list, repr=False)
    _stopped: bool = dataclasses.field(default=False, repr=False)

    # -- identities -------------------------------------------------------------
    def kubeconfig(self, identity: str = "admin") -> Path:
        return {"admin": self.admin_kubeconfig, "operator": self.operator_kubeconfig}[identity]

    def token(self, identity: str = "admin") -> str:
        return {"admin": self.admin_token, "operator": self.operator_token}[identity]

    def env(self, identity: str = "admin") -> dict[str, str]:
        """Environment for a child process (kubectl, helm, the operator) as ``identity``."""
        env = child_env()
        env["KUBECONFIG"] = str(self.kubeconfig(identity))
        env["KUBECACHEDIR"] = str(self.root / "kubecache" / identity)
        for k, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")):
            env[k] = str(self.root / "helm" / sub)
        return env

    # -- clients ----------------------------------------------------------------
    @property
    def kubectl_bin(self) -> Path:
        if not self.clients:
            raise KubeToolsError("this cluster was started without kubectl/helm (clients=None)", EXIT_CLIENTS_FAILED)
        return self.clients.kubectl

    @property
    def helm_bin(self) -> Path:
        if not self.clients:
            raise KubeToolsError("this cluster was started without kubectl/helm (clients=None)", EXIT_CLIENTS_FAILED)
        return self.clients.helm

    def kubectl(self, *args: str, identity: str = "admin", input: str | bytes | None = None,
                check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl ARGS`` as ``identity`` ("admin" or "operator"); text output.

        With check=True a non-zero exit raises AssertionError showing stderr."""
        return self._run_client(self.kubectl_bin, args, identity, input, check, timeout)

    def helm(self, *args: str, identity: str = "admin", input: str | bytes | None = None,
             check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self._run_client(self.helm_bin, args, identity, input, check, timeout)

    def _run_client(self, exe: Path, args: Sequence[str], identity: str, input: str | bytes | None,
                    check: bool, timeout: float) -> subprocess.CompletedProcess[str]:
        if isinstance(input, bytes):
            input = input.decode()
        argv = [str(exe), *args]
        try:
            cp = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env(identity),
                                timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{exe.name} {' '.join(args)} (as {identity}) timed out after {timeout}s") from e
        if check and cp.returncode != 0:
            raise AssertionError(
                f"{exe.name} {' '.join(args)} (as {identity}) exited {cp.returncode}\n"
                f"stdout: {cp.stdout.strip()}\nstderr: {cp.stderr.strip()}")
        return cp

    # -- raw REST ----------------------------------------------------------------
    def api(self, method: str, path: str, body: object = None, *, identity: str = "admin",
            content_type: str = "application/json", timeout: float = 30) -> tuple[int, object]:
        """One request to the API server; returns (status, parsed JSON or text)."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token(identity)}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        return https_json(req, ctx, timeout)

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create namespace ``name`` (if missing) with its ``default`` ServiceAccount.

        There is no controller-manager: nothing creates a namespace's default
        ServiceAccount, and a Pod is refused without it. (Deleting a namespace leaves
        it Terminating for ever, for the same reason: use fresh names.)"""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        st, resp = self.api("POST", "/api/v1/namespaces", body)
        if st not in (201, 409):
            raise KubeToolsError(f"create namespace {name}: {st} {resp}", EXIT_CLUSTER_FAILED)
        self.ensure_service_account(name, "default")

    def ensure_service_account(self, namespace: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}

        def create() -> bool:
            st, resp = self.api("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body)
            if st in (201, 409):
                return True
            raise RuntimeError(f"{st} {resp}")  # e.g. 404 while the namespace is being created

        poll_until(f"ServiceAccount {namespace}/{name}", 30, create)

    def issue_serving_cert(self, name: str = "webhook", hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> ServingCert:
        """A TLS serving cert for ``hosts`` signed by this cluster's test CA: run an
        admission webhook on 127.0.0.1 with it and register it by
        ``clientConfig: {url: https://127.0.0.1:PORT/path, caBundle: cert.ca_bundle}``."""
        return self.ca.issue(name, hosts)

    def logtail(self, name: str = "kube-apiserver", n: int = 50) -> str:
        return tail(self.root / "logs" / f"{name}.log", n)

    # -- teardown ------------------------------------------------------------------
    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the API server then etcd, each with a bounded wait before SIGKILL,
        then remove the cluster's directory (unless keep=True / SWITCHYARD_E2E_KEEP=1)."""
        if self._stopped:
            return
        self._stopped = True
        for p in reversed(self._procs):
            p.stop(grace)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _LIVE.remove(self)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_LIVE: list[Cluster] = []


def _stop_all_at_exit() -> None:
    for c in list(_LIVE):
        with contextlib.suppress(Exception):
            c.stop(grace=5)


atexit.register(_stop_all_at_exit)


def _kubeconfig(server: str, ca_pem: bytes, user: str, token: str) -> str:
    # JSON is YAML: kubectl, helm and the Python clients all read it.
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "switchyard-e2e", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "switchyard-e2e", "context": {"cluster": "switchyard-e2e", "user": user}}],
        "current-context": "switchyard-e2e",
        "preferences": {},
    }, indent=2) + "\n"


def _start_etcd(etcd: Path, root: Path, detach: bool, timeout: float) -> tuple[Proc, str]:
    for attempt in range(5):
        client, peer = free_port(), free_port()
        url, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        data = root / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        proc = Proc("etcd", [
            str(etcd), "--name=switchyard-e2e", f"--data-dir={data}",
            f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
            f"--listen-peer-urls={purl}", f"--initial-advertise-peer-urls={purl}",
            f"--initial-cluster=switchyard-e2e={purl}", "--initial-cluster-state=new",
            "--unsafe-no-fsync", "--log-level=warn",
        ], root / "logs" / "etcd.log", detach=detach)

        def healthy() -> bool:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url + "/health", timeout=2) as r:  # noqa: B023
                return json.loads(r.read()).get("health") == "true"

        try:
            poll_until("etcd /health", timeout, healthy, alive=proc.check_alive)
            return proc, url
        except PortInUse:
            log(f"etcd: port {client}/{peer} was taken meanwhile, retrying ({attempt + 1})")
            proc.stop(5)
        except BaseException:
            proc.stop(5)
            raise
    raise KubeToolsError("etcd: could not get free ports after 5 attempts", EXIT_CLUSTER_FAILED)


def _start_apiserver(binaries: KubeBinaries, root: Path, etcd_url: str, pki: Path, detach: bool,
                     timeout: float, admin_token: str, extra_args: Sequence[str]) -> tuple[Proc, str]:
    for attempt in range(5):
        port = free_port()
        server = f"https://127.0.0.1:{port}"
        argv = [
            str(binaries.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            "--endpoint-reconciler-type=none",  # else it refuses a loopback advertise address
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--token-auth-file={root / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--shutdown-delay-duration=0s",  # else SIGTERM takes >13 s
            "--allow-privileged=true",
            "--profiling=false",
            *extra_args,
        ]
        proc = Proc("kube-apiserver", argv, root / "logs" / "kube-apiserver.log", detach=detach)
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))

        def ready() -> bool:
            req = urllib.request.Request(server + "/readyz", headers={"Authorization": f"Bearer {admin_token}"})  # noqa: B023
            with opener.open(req, timeout=3) as r:  # noqa: B023
                return r.status == 200 and r.read().strip() == b"ok"

        try:
            poll_until("kube-apiserver /readyz", timeout, ready, alive=proc.check_alive, interval=0.2)
            return proc, server
        except PortInUse:
            log(f"kube-apiserver: port {port} was taken meanwhile, retrying ({attempt + 1})")
            proc.stop(5)
        except BaseException:
            proc.stop(5)
            raise
    raise KubeToolsError("kube-apiserver: could not get a free port after 5 attempts", EXIT_CLUSTER_FAILED)


def start_cluster(
    workdir: str | Path | None = None,
    *,
    binaries: KubeBinaries | None = None,
    clients: KubeClients | None = None,
    ready_timeout: float = 90,
    extra_apiserver_args: Sequence[str] = (),
    keep: bool | None = None,
    detach: bool = False,
) -> Cluster:
    """Start etcd and kube-apiserver on 127.0.0.1 and return the running Cluster.

    Files go to a fresh directory inside ``workdir`` (or the system temp dir): PKI,
    static tokens, two kubeconfigs (admin in system:masters; the operator's service
    account identity, subject to RBAC) and the logs. Binaries default to the cached
    build (never built here: call ensure_kube_binaries() first). ``stop()`` tears it all
    down; a cluster still running when the interpreter exits is stopped then too.
    """
    binaries = binaries or find_kube_binaries()
    if binaries is None:
        raise KubeToolsError("kube-apiserver/etcd are not built: run `python hack/kube_tools.py build`",
                             EXIT_BUILD_FAILED)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="kube-", dir=workdir)).resolve()
    if keep is None:
        keep = os.environ.get("SWITCHYARD_E2E_KEEP") == "1"
    t0 = time.monotonic()
    procs: list[Proc] = []
    try:
        (root / "logs").mkdir()
        pki = root / "pki"
        ca = LocalCA(pki)
        ca.issue("apiserver", ("127.0.0.1", "localhost", "::1", "10.96.0.1", "kubernetes",
                               "kubernetes.default", "kubernetes.default.svc",
                               "kubernetes.default.svc.cluster.local"), basename="apiserver")
        rsa_key_pair(pki / "sa.key", pki / "sa.pub")
        admin_token, operator_token = secrets.token_hex(24), secrets.token_hex(24)
        write_private(root / "tokens.csv", (
            f'{admin_token},{ADMIN_USER},uid-admin,"system:masters"\n'
            f'{operator_token},{OPERATOR_USER},uid-{OPERATOR_SA},'
            f'"system:serviceaccounts,system:serviceaccounts:{OPERATOR_NAMESPACE}"\n').encode())
        t_pki = time.monotonic()
        etcd_proc, etcd_url = _start_etcd(binaries.etcd, root, detach, ready_timeout)
        procs.append(etcd_proc)
        api_proc, server = _start_apiserver(binaries, root, etcd_url, pki, detach, ready_timeout,
                                            admin_token, extra_apiserver_args)
        procs.append(api_proc)
        for ident, user, tok in (("admin", ADMIN_USER, admin_token), ("operator", OPERATOR_USER, operator_token)):
            (root / f"{ident}.kubeconfig").write_text(_kubeconfig(server, ca.cert_pem, user, tok))
            (root / f"{ident}.kubeconfig").chmod(0o600)
        cluster = Cluster(
            root=root, server=server, ca_file=pki / "ca.crt", ca=ca,
            admin_token=admin_token, operator_token=operator_token,
            admin_kubeconfig=root / "admin.kubeconfig", operator_kubeconfig=root / "operator.kubeconfig",
            etcd_url=etcd_url, binaries=binaries, clients=clients, keep=keep, _procs=procs,
        )
        _LIVE.append(cluster)
        # No controller-manager: the `default` namespace comes from the API server's own
        # bootstrap controller (shortly after /readyz), its ServiceAccount from nobody.
        cluster.ensure_service_account("default", "default")
        (root / "cluster.json").write_text(json.dumps({
            "server": server, "etcd": etcd_url, "pids": {p.name: p.pid for p in procs},
            "argv0": {p.name: p.argv[0] for p in procs},
            "admin_kubeconfig": str(cluster.admin_kubeconfig),
            "operator_kubeconfig": str(cluster.operator_kubeconfig),
        }, indent=2) + "\n")
        log(f"cluster up at {server} in {time.monotonic() - t0:.1f}s "
             f"(keys {t_pki - t0:.1f}s, servers {time.monotonic() - t_pki:.1f}s); files in {root}")
        return cluster
    except BaseException:
        for p in reversed(procs):
            p.stop(5)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        raise


def stop_detached(root: Path, grace: float = 15.0) -> None:
    """Stop a cluster started with ``up --detach`` (reads ROOT/cluster.json), remove ROOT."""
    info = json.loads((root / "cluster.json").read_text())
    for name in ("kube-apiserver", "etcd"):
        pid = info["pids"].get(name)
        if not pid:
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue  # already gone
        if Path(exe).name != Path(info["argv0"][name]).name:
            log(f"pid {pid} is now {exe}, not {name}: leaving it alone")
            continue
        terminate(pid, grace)
    shutil.rmtree(root, ignore_errors=True)

