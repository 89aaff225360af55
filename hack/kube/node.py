"""The node tier's cluster: a real single-node Kubernetes on this machine.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (Debian's
1.6, runc, the bridge CNI plugin), kubelet, kube-proxy (iptables mode) and CoreDNS, all
host processes started here and stopped by recorded PID. The facts it follows (each
setting that must be exactly so on this machine kind) are in docs/testing-node.md.

Host changes, in order, and undone in reverse by :func:`node_down`:

1. guards: ``blackhole`` routes for the node, pod and Service ranges, and iptables rules
   dropping traffic to those ranges (and from the pod range) on every interface that
   carries a default route, in filter OUTPUT/FORWARD and mangle POSTROUTING;
2. a snapshot of iptables and of the sysctls the kubelet and kube-proxy touch;
3. the node address NODE_IP/32 on ``lo``;
4. the processes. The pod bridge, network namespaces, mounts and cgroups they create are
   removed after they are gone.

Teardown never removes an address or a rule while a process it started still runs: it
refuses (exit code 9) and leaves the guards in place. Everything is recorded in
``<dir>/state.json`` as it happens, so ``down`` works after a start that failed halfway.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from collections.abc import Sequence

from . import images
from .clients import KubeClients, ensure_kube_clients
import urllib.error

from .common import https_json, KubeToolsError, log, tail
from .gobuild import ensure_kube_binaries, ensure_node_binaries
from .pki import LocalCA, rsa_key_pair
from .procs import Proc, free_port, pid_alive, poll_until, terminate

EXIT_NODE_FAILED = images.EXIT_NODE_FAILED

NODE_NAME = "switchyard-node"
NODE_IP = "10.200.0.1"
NODE_RANGE = "10.200.0.0/16"
POD_CIDR = "10.244.0.0/24"
POD_RANGE = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SVC_IP = "10.96.0.1"
GUARDED = (NODE_RANGE, POD_RANGE, SERVICE_CIDR)
BRIDGE = "swy0"
CNI_NET = "switchyard"
APISERVER_PORT = 6443
GUARD_CHAIN = "SWITCHYARD-GUARD"
DEFAULT_DIR = Path("/var/tmp/switchyard-node")
SYSCTLS = (
    "vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes", "net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
)
CGROUP_V1 = Path("/sys/fs/cgroup")
# Started in this order, stopped in the reverse one.
PROCESS_ORDER = ("etcd", "kube-apiserver", "containerd", "kube-controller-manager", "kube-scheduler",
                 "kubelet", "kube-proxy", "coredns")


def _err(msg: str) -> KubeToolsError:
    return KubeToolsError(msg, EXIT_NODE_FAILED)


def _sh(argv: Sequence[str], *, check: bool = True, input: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=timeout,
                        stdin=None if input is not None else subprocess.DEVNULL)
    if check and cp.returncode != 0:
        raise _err(f"{' '.join(argv)} exited {cp.returncode}: {cp.stderr.strip()[-2000:]}")
    return cp


# --------------------------------------------------------------------------- preflight


def preflight() -> str | None:
    """Why the node tier cannot run on this machine (None when it can)."""
    if os.geteuid() != 0:
        return "the node tier needs root (containerd, kubelet, routes, iptables)"
    if not Path("/proc/sys/net/bridge").exists():
        return "br_netfilter is not loaded (/proc/sys/net/bridge missing)"
    if not (CGROUP_V1 / "memory").is_dir() and not (CGROUP_V1 / "cgroup.controllers").exists():
        return "no cgroup hierarchy under /sys/fs/cgroup"
    if not shutil.which("ip"):
        return "no `ip` command (iproute2)"
    return None


def default_interfaces() -> list[str]:
    """Interfaces that carry a default route: where the guards drop our ranges."""
    out = _sh(["ip", "-o", "route", "show", "default"]).stdout
    devs = sorted({m.group(1) for m in re.finditer(r"\bdev (\S+)", out)})
    out6 = _sh(["ip", "-6", "-o", "route", "show", "default"], check=False).stdout
    devs = sorted(set(devs) | {m.group(1) for m in re.finditer(r"\bdev (\S+)", out6)})
    return devs


# --------------------------------------------------------------------------- state


@dataclasses.dataclass
class NodeState:
    root: Path
    data: dict

    @classmethod
    def load(cls, root: Path) -> NodeState:
        p = root / "state.json"
        data = json.loads(p.read_text()) if p.exists() else {}
        data.setdefault("procs", {})
        data.setdefault("host", {})
        return cls(root, data)

    def save(self) -> None:
        tmp = self.root / ".state.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.root / "state.json")

    @property
    def host(self) -> dict:
        return self.data["host"]

    @property
    def procs(self) -> dict:
        return self.data["procs"]


def _our_pid(info: dict) -> bool:
    """Is the recorded process still alive and still the binary we started?"""
    pid = info.get("pid")
    if not pid or not pid_alive(pid):
        return False
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        start = int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return False
    return Path(exe.removesuffix(" (deleted)")).name == Path(info["argv0"]).name and start == info.get("start")


def _proc_start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19])


def _shim_pids(sock: str) -> list[int]:
    """containerd-shim processes of *our* containerd (its socket is in their command line)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and sock.encode() in argv:
            pids.append(int(d.name))
    return pids


def _pod_pids(st: NodeState) -> list[int]:
    """Processes in the kubelet's pod cgroups (they exist only while our node ran: the
    kubepods hierarchies that were there before it started are not looked at)."""
    before = set(st.host.get("cgroups_before", []))
    pids: set[int] = set()
    if "cgroups_before" not in st.host:
        return []
    for top in CGROUP_V1.glob("*/kubepods*"):
        if str(top) in before:
            continue
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(x) for x in procs.read_text().split())
    return sorted(pids)


def live_processes(st: NodeState) -> list[str]:
    live = [f"{name} (pid {info['pid']})" for name, info in st.procs.items() if _our_pid(info)]
    sock = st.data.get("containerd_sock")
    if sock:
        live += [f"containerd-shim (pid {p})" for p in _shim_pids(sock)]
    live += [f"pod process (pid {p})" for p in _pod_pids(st)]
    return live


# --------------------------------------------------------------------------- guards and host changes


def _iptables_rules(ifaces: Sequence[str]) -> list[list[str]]:
    rules = []
    for iface in ifaces:
        for cidr in GUARDED:
            rules.append(["-o", iface, "-d", cidr, "-j", "DROP"])
        rules.append(["-o", iface, "-s", POD_RANGE, "-j", "DROP"])
    return rules


def install_guards(st: NodeState) -> None:
    """Blackhole routes and drop rules, before anything else (idempotent)."""
    ifaces = default_interfaces()
    st.host["guard_ifaces"] = ifaces
    if "tables_before" not in st.host:  # iptables-nft tables that existed before we touched anything
        st.host["tables_before"] = sorted(set(re.findall(r"^\*(\w+)$", _sh(["iptables-save"]).stdout, re.M)))
        st.host["tables6_before"] = sorted(set(re.findall(r"^\*(\w+)$", _sh(["ip6tables-save"]).stdout, re.M)))
        st.save()
    st.host.setdefault("routes", [])
    for cidr in GUARDED:
        have = _sh(["ip", "route", "show", "type", "blackhole", cidr]).stdout.strip()
        if not have:
            _sh(["ip", "route", "add", "blackhole", cidr])
        if cidr not in st.host["routes"]:
            st.host["routes"].append(cidr)
            st.save()
    for table, hooks in (("filter", ("OUTPUT", "FORWARD")), ("mangle", ("POSTROUTING",))):
        if _sh(["iptables", "-t", table, "-n", "-L", GUARD_CHAIN], check=False).returncode != 0:
            _sh(["iptables", "-t", table, "-N", GUARD_CHAIN])
        st.host.setdefault("guard_tables", [])
        if table not in st.host["guard_tables"]:
            st.host["guard_tables"].append(table)
            st.save()
        _sh(["iptables", "-t", table, "-F", GUARD_CHAIN])
        for r in _iptables_rules(ifaces):
            _sh(["iptables", "-t", table, "-A", GUARD_CHAIN, *r])
        for hook in hooks:
            if _sh(["iptables", "-t", table, "-C", hook, "-j", GUARD_CHAIN], check=False).returncode != 0:
                _sh(["iptables", "-t", table, "-I", hook, "1", "-j", GUARD_CHAIN])
    log(f"guards in: blackhole {', '.join(GUARDED)}; drop on {', '.join(ifaces) or '(no default route)'}")


def guards_intact(st: NodeState) -> bool:
    for cidr in GUARDED:
        if not _sh(["ip", "route", "show", "type", "blackhole", cidr]).stdout.strip():
            return False
    for table, hooks in (("filter", ("OUTPUT", "FORWARD")), ("mangle", ("POSTROUTING",))):
        for hook in hooks:
            if _sh(["iptables", "-t", table, "-C", hook, "-j", GUARD_CHAIN], check=False).returncode != 0:
                return False
    return True


def remove_guards(st: NodeState) -> None:
    for table, hooks in (("filter", ("OUTPUT", "FORWARD")), ("mangle", ("POSTROUTING",))):
        if table not in st.host.get("guard_tables", []):
            continue
        for hook in hooks:
            while _sh(["iptables", "-t", table, "-D", hook, "-j", GUARD_CHAIN], check=False).returncode == 0:
                pass
        _sh(["iptables", "-t", table, "-F", GUARD_CHAIN], check=False)
        _sh(["iptables", "-t", table, "-X", GUARD_CHAIN], check=False)
    st.host["guard_tables"] = []
    st.save()
    for cidr in list(st.host.get("routes", [])):
        _sh(["ip", "route", "del", "blackhole", cidr], check=False)
        st.host["routes"].remove(cidr)
        st.save()
    _drop_new_empty_tables(st.host.get("tables_before"))
    _drop_new_empty_tables(st.host.get("tables6_before"), six=True)


def _drop_new_empty_tables(before: list[str] | None, six: bool = False) -> None:
    """iptables-nft cannot delete a table: tables that did not exist before and are empty
    again are deleted with nft (when it is installed)."""
    if before is None or not shutil.which("nft"):
        return
    saved = _sh(["ip6tables-save" if six else "iptables-save"]).stdout
    for table in set(re.findall(r"^\*(\w+)$", saved, re.M)) - set(before):
        body = saved.split(f"*{table}\n", 1)[1].split("COMMIT", 1)[0]
        if re.search(r"^-A ", body, re.M) or re.search(r"^:(?!(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) )", body, re.M):
            continue  # not empty: someone else's rules or chains
        _sh(["nft", "delete", "table", "ip6" if six else "ip", table], check=False)


def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def _write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        Path("/proc/sys/" + name.replace(".", "/")).write_text(value + "\n")


def snapshot_host(st: NodeState) -> None:
    if "iptables" not in st.host:
        st.host["iptables"] = _sh(["iptables-save"]).stdout
        st.host["ip6tables"] = _sh(["ip6tables-save"]).stdout
        st.host["sysctls"] = {k: v for k in SYSCTLS if (v := _read_sysctl(k)) is not None}
        st.host["netns_before"] = sorted(os.listdir("/var/run/netns")) if Path("/var/run/netns").is_dir() else []
        st.host["cgroups_before"] = sorted(str(p) for p in CGROUP_V1.glob("*/kubepods*"))
        st.host["bridge_existed"] = Path(f"/sys/class/net/{BRIDGE}").exists()
        st.save()


def add_node_address(st: NodeState) -> None:
    have = _sh(["ip", "-o", "addr", "show", "dev", "lo"]).stdout
    if f" {NODE_IP}/32 " not in have:
        _sh(["ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo"])
        st.host["lo_addr"] = True
        st.save()


# --------------------------------------------------------------------------- configuration


def _kubeconfig(server: str, ca_pem: bytes, user: str, cert: Path, key: Path) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "switchyard-node", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "switchyard-node", "context": {"cluster": "switchyard-node", "user": user}}],
        "current-context": "switchyard-node", "preferences": {},
    }, indent=2) + "\n"


IDENTITIES = {  # kubeconfig name: (CN, groups)
    "admin": ("switchyard-node-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    "kube-proxy": ("system:kube-proxy", ()),
    "kubelet": (f"system:node:{NODE_NAME}", ("system:nodes",)),
    "coredns": ("switchyard-node-coredns", ()),
}


def write_pki(root: Path) -> None:
    pki = root / "pki"
    if (pki / "done").exists():
        return
    shutil.rmtree(pki, ignore_errors=True)
    ca = LocalCA(pki, cn="switchyard-node-ca")
    ca.issue("kube-apiserver", ("127.0.0.1", NODE_IP, KUBERNETES_SVC_IP, "localhost", "kubernetes",
                                "kubernetes.default", "kubernetes.default.svc",
                                "kubernetes.default.svc.cluster.local"), basename="apiserver")
    ca.issue("kube-apiserver-kubelet-client", (), orgs=("system:masters",), basename="apiserver-kubelet-client")
    ca.issue(NODE_NAME, (NODE_IP, NODE_NAME), basename="kubelet-serving")
    rsa_key_pair(pki / "sa.key", pki / "sa.pub")
    server = f"https://{NODE_IP}:{APISERVER_PORT}"
    for ident, (cn, groups) in IDENTITIES.items():
        ca.issue(cn, (), orgs=groups, basename=f"client-{ident}")
        (root / f"{ident}.kubeconfig").write_text(
            _kubeconfig(server, ca.cert_pem, cn, pki / f"client-{ident}.crt", pki / f"client-{ident}.key"))
        (root / f"{ident}.kubeconfig").chmod(0o600)
    (pki / "done").write_text("ok\n")


def containerd_config(root: Path) -> str:
    c = root / "containerd"
    return f"""version = 2
root = "{c / 'root'}"
state = "{c / 'state'}"
oom_score = 0
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{c / 'containerd.sock'}"

[ttrpc]
  address = "{c / 'containerd.sock.ttrpc'}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{c / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE_IMAGE}"
  # this VM's root lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc create
  restrict_oom_score_adj = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{root / 'cni' / 'net.d'}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    # nothing is ever pulled: every registry points at a closed loopback port
    config_path = "{c / 'certs.d'}"
"""


def cni_config(root: Path) -> str:
    return json.dumps({
        "cniVersion": "0.4.0", "name": CNI_NET,
        "plugins": [{
            "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(root / "cni" / "ipam")},
        }],
    }, indent=2) + "\n"


def kubelet_config(root: Path, sync_frequency: str) -> str:
    pki = root / "pki"
    return json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": NODE_IP, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "authentication": {"x509": {"clientCAFile": str(pki / "ca.crt")}, "webhook": {"enabled": True},
                           "anonymous": {"enabled": False}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"), "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "cgroupDriver": "cgroupfs",  # containerd 1.6 cannot tell the kubelet its driver
        "failCgroupV1": False,  # this machine's hierarchies are cgroup v1
        "failSwapOn": False,
        "clusterDNS": [NODE_IP], "clusterDomain": "cluster.local",
        "resolvConf": str(root / "resolv.conf"),
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,  # nothing can be pulled back
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "syncFrequency": sync_frequency,
        "containerRuntimeEndpoint": f"unix://{root / 'containerd' / 'containerd.sock'}",
        "podLogsDir": str(root / "pod-logs"),
        "serializeImagePulls": False, "protectKernelDefaults": False,
        "maxPods": 30, "podPidsLimit": 4096,
        "shutdownGracePeriod": "0s",
    }, indent=2) + "\n"


def kube_proxy_config(root: Path, metrics_port: int, healthz_port: int) -> str:
    return json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(root / "kube-proxy.kubeconfig")},
        "mode": "iptables", "hostnameOverride": NODE_NAME, "clusterCIDR": POD_RANGE,
        "bindAddress": NODE_IP,
        "metricsBindAddress": f"127.0.0.1:{metrics_port}", "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "nodePortAddresses": [f"{NODE_IP}/32"],  # never a NodePort on the external interface
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        # 0 = leave the machine's conntrack sysctls alone
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }, indent=2) + "\n"


def corefile(root: Path, health_port: int, ready_port: int) -> str:
    return f"""cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {root / 'coredns.kubeconfig'}
        pods insecure
    }}
    cache 5
    loadbalance
}}
# Everything else: NXDOMAIN, no forwarding (no query ever leaves the machine).
.:53 {{
    bind {NODE_IP}
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


# --------------------------------------------------------------------------- the cluster object


@dataclasses.dataclass
class NodeCluster:
    root: Path
    clients: KubeClients | None = None

    @property
    def server(self) -> str:
        return f"https://{NODE_IP}:{APISERVER_PORT}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def containerd_sock(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["NO_PROXY"] = env["no_proxy"] = f"127.0.0.1,localhost,{NODE_IP},{POD_RANGE},{SERVICE_CIDR}"
        env["KUBECONFIG"] = str(self.admin_kubeconfig)
        env["KUBECACHEDIR"] = str(self.root / "kubecache")
        for k, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")):
            env[k] = str(self.root / "helm" / sub)
        return env

    def _client(self, exe: Path, args: Sequence[str], input: str | None, check: bool,
                timeout: float) -> subprocess.CompletedProcess[str]:
        argv = [str(exe), *args]
        try:
            cp = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env(), timeout=timeout,
                                stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{exe.name} {' '.join(args)} timed out after {timeout}s") from e
        if check and cp.returncode != 0:
            raise AssertionError(f"{exe.name} {' '.join(args)} exited {cp.returncode}\n"
                                 f"stdout: {cp.stdout.strip()}\nstderr: {cp.stderr.strip()}")
        return cp

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert self.clients, "started without kubectl/helm"
        return self._client(self.clients.kubectl, args, input, check, timeout)

    def helm(self, *args: str, input: str | None = None, check: bool = True,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
        assert self.clients, "started without kubectl/helm"
        return self._client(self.clients.helm, args, input, check, timeout)

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return _sh(["ctr", "--address", str(self.containerd_sock), "--namespace", "k8s.io", *args],
                   check=check, timeout=timeout)

    def import_image(self, archive: Path) -> None:
        """Import an OCI archive into the node's containerd (where the CRI finds images)."""
        self.ctr("images", "import", str(archive), timeout=600)

    def api(self, method: str, path: str, body: object = None, timeout: float = 30) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        pki = self.root / "pki"
        ctx.load_cert_chain(pki / "client-admin.crt", pki / "client-admin.key")
        return https_json(req, ctx, timeout)

    def log_tail(self, name: str, n: int = 50) -> str:
        return tail(self.root / "logs" / f"{name}.log", n)


# --------------------------------------------------------------------------- up

COREDNS_RULES = [
    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
]


def _bootstrap_rbac(cluster: NodeCluster) -> None:
    """What kubeadm would add: CoreDNS's read access (it runs as IDENTITIES['coredns'])."""
    user = IDENTITIES["coredns"][0]
    for path, body in (
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles",
         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
          "metadata": {"name": "switchyard-node:coredns"}, "rules": COREDNS_RULES}),
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
          "metadata": {"name": "switchyard-node:coredns"},
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "switchyard-node:coredns"},
          "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
    ):
        st, resp = cluster.api("POST", path, body)
        if st not in (201, 409):
            raise _err(f"POST {path}: {st} {resp}")



def _start(st: NodeState, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
    (st.root / "logs").mkdir(exist_ok=True)
    p = Proc(name, argv, st.root / "logs" / f"{name}.log", detach=True, env=env)
    st.procs[name] = {"pid": p.pid, "argv0": argv[0], "start": _proc_start_time(p.pid)}
    st.save()
    return p


def _https_ok(url: str, ca: Path, cert: Path | None = None, key: Path | None = None) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert and key:
        ctx.load_cert_chain(cert, key)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    with opener.open(url, timeout=3) as r:
        return r.status == 200


def _http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=3) as r:
        return r.status == 200


def _env_no_proxy() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = f"127.0.0.1,localhost,{NODE_IP},{POD_RANGE},{SERVICE_CIDR}"
    return env


def node_up(root: Path = DEFAULT_DIR, *, sync_frequency: str = "10s", timeout: float = 120,
            clients: KubeClients | None = None) -> NodeCluster:
    """Start the single-node cluster in ``root`` (guards first). The one-time parts
    (binaries, images, packages) must be ready: see :func:`ensure_node_prereqs`."""
    why = preflight()
    if why:
        raise _err(why)
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    st = NodeState.load(root)
    if live_processes(st):
        raise _err(f"a node cluster is already running from {root}: {', '.join(live_processes(st))} "
                   f"(stop it with `python hack/kube_tools.py node-down --dir {root}`)")
    if st.procs or st.host.get("routes") or st.host.get("lo_addr"):
        raise _err(f"{root} holds a cluster that was not torn down: run node-down first")
    # a fresh cluster every time: nothing of a kept directory (etcd data, containerd state)
    # is reused; and never a directory that is not a node cluster's
    entries = {c.name for c in root.iterdir()}
    if entries and not entries & {"state.json", "state.done.json"}:
        raise _err(f"{root} is not empty and holds no node cluster: choose another --dir")
    _unmount_all([root])
    for child in root.iterdir():
        if child.name != "state.json":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    kube_bins = ensure_kube_binaries(build=False)
    node_bins = ensure_node_binaries()
    t0 = time.monotonic()
    install_guards(st)
    snapshot_host(st)
    for d in ("logs", "cni/net.d", "cni/ipam", "containerd/certs.d", "kubelet", "pod-logs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    write_pki(root)
    pki = root / "pki"
    add_node_address(st)
    st.data["containerd_sock"] = str(root / "containerd" / "containerd.sock")
    st.save()
    try:
        # etcd
        etcd_port, etcd_peer = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = _start(st, "etcd", [
            str(kube_bins.etcd), "--name=switchyard-node", f"--data-dir={root / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=switchyard-node=http://127.0.0.1:{etcd_peer}", "--initial-cluster-state=new",
            "--unsafe-no-fsync", "--log-level=warn"], env=_env_no_proxy())
        poll_until("etcd /health", timeout, lambda: _http_ok(etcd_url + "/health"), alive=etcd.check_alive)
        # kube-apiserver
        api = _start(st, "kube-apiserver", [
            str(kube_bins.kube_apiserver), f"--etcd-servers={etcd_url}",
            f"--bind-address={NODE_IP}", f"--advertise-address={NODE_IP}", f"--secure-port={APISERVER_PORT}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # webhooks are called at their pod's address: the Service range is blackholed
            # for host processes (kube-proxy's DNAT comes after the route lookup there)
            "--enable-aggregator-routing=true",
            "--shutdown-delay-duration=0s", "--allow-privileged=true", "--profiling=false",
        ], env=_env_no_proxy())
        poll_until("kube-apiserver /readyz", timeout,
                   lambda: _https_ok(f"https://{NODE_IP}:{APISERVER_PORT}/readyz", pki / "ca.crt",
                                     pki / "client-admin.crt", pki / "client-admin.key"),
                   alive=api.check_alive, interval=0.2)
        cluster = NodeCluster(root, clients)
        _bootstrap_rbac(cluster)
        # containerd
        (root / "containerd" / "config.toml").write_text(containerd_config(root))
        for reg in ("docker.io", "registry.k8s.io", "localhost", "quay.io", "ghcr.io"):
            d = root / "containerd" / "certs.d" / reg
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts.toml").write_text('server = "http://127.0.0.1:9"\n')
        (root / "cni" / "net.d" / "10-switchyard.conflist").write_text(cni_config(root))
        ctrd = _start(st, "containerd", ["/usr/bin/containerd", "--config", str(root / "containerd" / "config.toml")],
                      env=_env_no_proxy())
        sock = root / "containerd" / "containerd.sock"
        poll_until("containerd socket", timeout,
                   lambda: sock.exists() and _sh(["ctr", "--address", str(sock), "version"], check=False).returncode == 0,
                   alive=ctrd.check_alive)
        cluster.import_image(images.ensure_pause_image())
        # controllers
        cm = _start(st, "kube-controller-manager", [
            str(node_bins["kube-controller-manager"]), f"--kubeconfig={root / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={root / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={root / 'controller-manager.kubeconfig'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", f"--cluster-cidr={POD_RANGE}",
            "--allocate-node-cidrs=false", "--profiling=false",
        ], env=_env_no_proxy())
        sched = _start(st, "kube-scheduler", [
            str(node_bins["kube-scheduler"]), f"--kubeconfig={root / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={root / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={root / 'scheduler.kubeconfig'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--profiling=false",
        ], env=_env_no_proxy())
        # kubelet
        (root / "resolv.conf").write_text(f"nameserver {NODE_IP}\n")
        (root / "kubelet-config.json").write_text(kubelet_config(root, sync_frequency))
        kubelet = _start(st, "kubelet", [
            str(node_bins["kubelet"]), f"--config={root / 'kubelet-config.json'}",
            f"--kubeconfig={root / 'kubelet.kubeconfig'}", f"--root-dir={root / 'kubelet'}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}", "--v=1",
        ], env=_env_no_proxy())
        # kube-proxy
        (root / "kube-proxy-config.json").write_text(kube_proxy_config(root, free_port(), free_port()))
        proxy = _start(st, "kube-proxy", [
            str(node_bins["kube-proxy"]), f"--config={root / 'kube-proxy-config.json'}"], env=_env_no_proxy())
        # CoreDNS (a host process on the node address; clusterDNS points there)
        health, ready = free_port(), free_port()
        (root / "Corefile").write_text(corefile(root, health, ready))
        dns = _start(st, "coredns", [str(node_bins["coredns"]), "-conf", str(root / "Corefile")],
                     env=_env_no_proxy())
        cluster.clients = clients

        def node_ready() -> bool:
            for p in (cm, sched, kubelet, proxy, dns):
                p.check_alive()
            stn, node = cluster.api("GET", f"/api/v1/nodes/{NODE_NAME}")
            if stn != 200:
                return False
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            if conds.get("Ready") != "True":
                return False
            sts, sa = cluster.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            return sts == 200 and _http_ok(f"http://127.0.0.1:{ready}/ready")

        poll_until("node Ready, default ServiceAccount, CoreDNS ready", timeout, node_ready, interval=0.3)
        log(f"node cluster up in {time.monotonic() - t0:.1f}s at {cluster.server}; files in {root}")
        (root / "cluster.env").write_text(f"export KUBECONFIG={cluster.admin_kubeconfig}\n")
        return cluster
    except BaseException as e:
        log(f"node-up failed ({type(e).__name__}: {e}); tearing down")
        with contextlib.suppress(Exception):
            for name in ("kubelet", "containerd", "kube-apiserver"):
                t = tail(root / "logs" / f"{name}.log", 15)
                if t:
                    log(f"--- {name} log tail ---\n{t}")
        node_down(root)
        raise


# --------------------------------------------------------------------------- down


def _mounts_under(prefixes: Sequence[Path]) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if any(mp == str(p) or mp.startswith(str(p) + "/") for p in prefixes):
                out.append(mp)
    return out


def _unmount_all(prefixes: Sequence[Path]) -> None:
    for _ in range(5):
        mps = _mounts_under(prefixes)
        if not mps:
            return
        for mp in sorted(mps, key=len, reverse=True):
            if _sh(["umount", mp], check=False).returncode != 0:
                _sh(["umount", "-l", mp], check=False)


def _delete_pods(st: NodeState, timeout: float = 60) -> None:
    """Ask the kubelet to stop every pod (so the CNI plugin tears their networks down)."""
    kubelet = st.procs.get("kubelet")
    api = st.procs.get("kube-apiserver")
    if not (kubelet and api and _our_pid(kubelet) and _our_pid(api)):
        return
    cluster = NodeCluster(st.root)
    with contextlib.suppress(Exception):
        cm = st.procs.get("kube-controller-manager")  # so nothing recreates them
        if cm and _our_pid(cm):
            terminate(cm["pid"], 10)
        stc, pods = cluster.api("GET", "/api/v1/pods")
        for p in pods.get("items", []) if stc == 200 else []:
            md = p["metadata"]
            cluster.api("DELETE", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}",
                        {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 1})

        def gone() -> bool:
            s, pods = cluster.api("GET", "/api/v1/pods")
            return s == 200 and not pods.get("items")

        poll_until("pods deleted", timeout, gone, interval=0.5)
    with contextlib.suppress(Exception):
        # the kubelet stops sandboxes (and their networks) shortly after their pods go
        poll_until("sandboxes stopped", 30, lambda: not _running_tasks(st), interval=0.5)


def _running_tasks(st: NodeState) -> list[str]:
    sock = st.data.get("containerd_sock")
    if not sock or not Path(sock).exists():
        return []
    cp = _sh(["ctr", "--address", sock, "-n", "k8s.io", "tasks", "ls", "-q"], check=False, timeout=30)
    return [t for t in cp.stdout.split() if t]


def _kill_containers(st: NodeState) -> None:
    sock = st.data.get("containerd_sock")
    if not sock or not Path(sock).exists():
        return
    ctr = ["ctr", "--address", sock, "-n", "k8s.io"]
    for t in _running_tasks(st):
        _sh([*ctr, "tasks", "kill", "-s", "SIGKILL", t], check=False, timeout=30)
    with contextlib.suppress(Exception):
        poll_until("tasks killed", 20, lambda: not [
            l for l in _sh([*ctr, "tasks", "ls"], check=False).stdout.splitlines()[1:] if "RUNNING" in l])
    for t in _sh([*ctr, "tasks", "ls", "-q"], check=False).stdout.split():
        _sh([*ctr, "tasks", "delete", "-f", t], check=False, timeout=30)
    for c in _sh([*ctr, "containers", "ls", "-q"], check=False).stdout.split():
        _sh([*ctr, "containers", "delete", c], check=False, timeout=30)


def node_down(root: Path = DEFAULT_DIR, *, keep_files: bool = False, grace: float = 15) -> None:
    """Stop everything ``node_up`` started in ``root`` and undo its host changes, in reverse."""
    root = root.resolve()
    if not (root / "state.json").exists():
        log(f"nothing to stop in {root}")
        return
    st = NodeState.load(root)
    t0 = time.monotonic()
    _delete_pods(st)
    for name in reversed(PROCESS_ORDER):
        info = st.procs.get(name)
        if not info:
            continue
        if name == "containerd":
            _kill_containers(st)
        if _our_pid(info):
            terminate(info["pid"], grace)
        elif info.get("pid") and pid_alive(info["pid"]):
            log(f"pid {info['pid']} is no longer our {name}: leaving it alone")
    sock = st.data.get("containerd_sock")
    for pid in _shim_pids(sock) if sock else []:
        terminate(pid, 5)
    for pid in _pod_pids(st):  # a container whose shim is gone keeps running: it is ours by its cgroup
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    with contextlib.suppress(KubeToolsError):
        poll_until("pod processes gone", 10, lambda: not _pod_pids(st))
    live = live_processes(st)
    if live:
        raise _err(f"still running after teardown: {', '.join(live)}; host changes and guards left in place "
                   f"(run node-down again)")
    st.data["procs"] = {}
    st.save()
    host = st.host
    # mounts (container rootfs, secret volumes, netns, shm), netns, bridge
    _unmount_all([root])
    for ns in sorted(set(os.listdir("/var/run/netns")) - set(host.get("netns_before", []))) \
            if Path("/var/run/netns").is_dir() else []:
        if ns.startswith("cni-"):
            _sh(["ip", "netns", "delete", ns], check=False)
    if not host.get("bridge_existed", True) and Path(f"/sys/class/net/{BRIDGE}").exists():
        _sh(["ip", "link", "delete", BRIDGE], check=False)
    for f in Path("/var/lib/cni/results").glob(f"{CNI_NET}-*") if Path("/var/lib/cni/results").is_dir() else []:
        f.unlink(missing_ok=True)
    # cgroups the kubelet made (leaves first)
    before = set(host.get("cgroups_before", []))
    for top in CGROUP_V1.glob("*/kubepods*"):
        if str(top) in before or not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
    # iptables (kube-proxy's and the kubelet's chains) and sysctls, back to the snapshot
    if "iptables" in host:
        _restore_iptables(host["iptables"])
        _restore_iptables(host.get("ip6tables", ""), six=True)
        for k, v in host.get("sysctls", {}).items():
            if _read_sysctl(k) != v:
                _write_sysctl(k, v)
        host.pop("iptables")
        st.save()
    # the node address, then the guards (last)
    if host.get("lo_addr"):
        _sh(["ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo"], check=False)
        host["lo_addr"] = False
        st.save()
    remove_guards(st)
    log(f"node cluster in {root} stopped and host restored in {time.monotonic() - t0:.1f}s")
    if not keep_files:
        _unmount_all([root])
        shutil.rmtree(root, ignore_errors=True)
    else:
        (root / "state.json").rename(root / "state.done.json")


def _restore_iptables(saved: str, six: bool = False) -> None:
    """Back to the snapshot: tables in it are restored whole; tables made since (the
    kubelet's and kube-proxy's, in both families) are flushed and their chains deleted."""
    cmd = "ip6tables" if six else "iptables"
    tables = set(re.findall(r"^\*(\w+)$", saved, re.M))
    now = _sh([f"{cmd}-save"]).stdout
    for t in set(re.findall(r"^\*(\w+)$", now, re.M)) - tables:
        if t in ("filter", "nat", "mangle", "raw", "security"):
            _sh([cmd, "-t", t, "-F"], check=False)
            _sh([cmd, "-t", t, "-X"], check=False)
    if saved.strip():
        _sh([f"{cmd}-restore"], input=saved)


# --------------------------------------------------------------------------- one-time parts


def ensure_node_prereqs(repo: Path | None = None) -> dict[str, object]:
    """Everything the node tier needs before ``node_up``, built or installed once and
    cached outside the repository; with ``repo``, also the project's image (rebuilt)."""
    why = preflight()
    if why:
        raise _err(why)
    timings: dict[str, object] = {}
    t = time.monotonic()
    images.ensure_packages()
    timings["packages_s"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    ensure_kube_binaries()
    timings["apiserver_s"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    ensure_node_binaries()
    timings["node_binaries_s"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    ensure_kube_clients()
    images.ensure_pause_image()
    images.ensure_base_image()
    timings["images_s"] = round(time.monotonic() - t, 1)
    return timings
