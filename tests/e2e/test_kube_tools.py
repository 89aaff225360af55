"""The harness's own pure parts (no binaries needed): go.mod rewriting and the test PKI
(hack/kube/gobuild.py, hack/kube/pki.py)."""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

import kube_tools
from kube import gobuild, pki

UPSTREAM_GOMOD = """\
// This is a generated file. Do not edit directly.
module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/foo/bar v1.2.3
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/some/fork => github.com/other/fork v1.0.1
)

replace k8s.io/kubectl => ./staging/src/k8s.io/kubectl
"""


def test_wrapper_gomod_maps_local_replaces_to_published_modules() -> None:
    t = gobuild.apiserver_targets()[0]
    text, n = gobuild.wrapper_gomod(t, UPSTREAM_GOMOD)
    assert n == 3
    assert "go 1.26.0" in text and "godebug default=go1.26" in text
    assert f"require k8s.io/kubernetes v{kube_tools.KUBE_VERSION}" in text
    staging = gobuild.staging_version(kube_tools.KUBE_VERSION)
    for mod in ("k8s.io/api", "k8s.io/client-go", "k8s.io/kubectl"):
        assert f"\t{mod} => {mod} {staging}\n" in text
    assert "\tgithub.com/some/fork => github.com/other/fork v1.0.1\n" in text
    assert "./staging" not in text


def test_staging_version() -> None:
    assert gobuild.staging_version("1.37.2") == "v0.37.2"


def test_ca_and_leaf_extensions(tmp_path: Path) -> None:
    ca = kube_tools.LocalCA(tmp_path)
    leaf = ca.issue("system:node:n1", ("10.200.0.1", "n1"), orgs=("system:nodes",))

    def text(p: Path) -> str:
        return subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(p)], capture_output=True,
                              text=True, timeout=30, check=True).stdout

    ca_text, leaf_text = text(ca.cert_file), text(leaf.cert_file)
    assert "CA:TRUE" in ca_text and "Certificate Sign, CRL Sign" in ca_text
    assert "CA:FALSE" in leaf_text and "Digital Signature, Key Encipherment" in leaf_text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in leaf_text
    assert "IP Address:10.200.0.1, DNS:n1" in leaf_text
    assert "O = system:nodes, CN = system:node:n1" in leaf_text
    assert oct(leaf.key_file.stat().st_mode & 0o777) == "0o600"


def test_ca_issues_a_cert_python_tls_verifies_for_127_0_0_1(tmp_path: Path) -> None:
    ca = kube_tools.LocalCA(tmp_path)
    cert = ca.issue("hook", ("127.0.0.1", "localhost"))
    cp = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(cert.ca_file), str(cert.cert_file)],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    sctx = cert.server_context()

    def serve() -> None:
        conn, _ = srv.accept()
        with sctx.wrap_socket(conn, server_side=True) as s:
            s.sendall(b"ok")

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    cctx = ssl.create_default_context(cafile=str(cert.ca_file))
    cctx.verify_flags |= ssl.VERIFY_X509_STRICT
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with cctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.recv(2) == b"ok"
    th.join(timeout=10)
    srv.close()


def test_rsa_key_pair_matches(tmp_path: Path) -> None:
    pki.rsa_key_pair(tmp_path / "sa.key", tmp_path / "sa.pub")
    derived = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "sa.key"), "-pubout"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    assert derived == (tmp_path / "sa.pub").read_text()
    assert "BEGIN PRIVATE KEY" in (tmp_path / "sa.key").read_text()


def test_free_port_is_bindable() -> None:
    port = kube_tools.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.mark.parametrize("env_value", [None, "/x/y"])
def test_cache_root_override(monkeypatch: pytest.MonkeyPatch, env_value: str | None) -> None:
    if env_value is None:
        monkeypatch.delenv("SWITCHYARD_CACHE", raising=False)
        assert kube_tools.cache_root() == Path.home() / ".cache" / "switchyard"
    else:
        monkeypatch.setenv("SWITCHYARD_CACHE", env_value)
        assert kube_tools.cache_root() == Path(env_value)
        assert kube_tools.kube_dir() == Path(env_value) / f"kube-{kube_tools.KUBE_VERSION}"
        assert kube_tools.go_dirs()["GOMODCACHE"] == Path(env_value) / "go" / "mod"


def test_missing_go_is_a_distinct_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gobuild.shutil, "which", lambda name: None)
    monkeypatch.setattr(gobuild, "GO_FALLBACK", "/nonexistent/go")
    with pytest.raises(kube_tools.KubeToolsError) as e:
        gobuild.go_exe()
    assert e.value.code == kube_tools.EXIT_NO_GO
    assert "Go" in str(e.value)


def test_unreachable_proxy_is_a_distinct_error(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        go = gobuild.go_exe()
    except kube_tools.KubeToolsError:
        pytest.skip("no Go toolchain here")
    port = kube_tools.free_port()  # nothing listens there
    monkeypatch.setenv("GOPROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(kube_tools.KubeToolsError) as e:
        gobuild.check_proxy(go, dict(os.environ))
    assert e.value.code == kube_tools.EXIT_NO_PROXY
    assert "unreachable" in str(e.value)


# --------------------------------------------------------------------------- the node tier's settings
# (hack/kube/node.py; the facts in docs/testing-node.md that must be exactly so)


def test_kubelet_settings_that_must_be_exactly_so(tmp_path: Path) -> None:
    import json

    from kube import node

    c = json.loads(node.kubelet_config(tmp_path, "10s"))
    assert c["failCgroupV1"] is False and c["cgroupDriver"] == "cgroupfs" and c["failSwapOn"] is False
    assert (c["imageGCHighThresholdPercent"], c["imageGCLowThresholdPercent"]) == (100, 99)
    assert c["clusterDNS"] == [node.NODE_IP] and c["address"] == node.NODE_IP and c["syncFrequency"] == "10s"
    assert c["authentication"]["anonymous"]["enabled"] is False and c["readOnlyPort"] == 0


def test_containerd_cni_and_dns_settings(tmp_path: Path) -> None:
    import json

    from kube import images, node

    toml = node.containerd_config(tmp_path)
    for needed in ("restrict_oom_score_adj = true", "SystemdCgroup = false", 'bin_dir = "/usr/lib/cni"',
                   f'sandbox_image = "{images.PAUSE_IMAGE}"', str(tmp_path / "containerd" / "containerd.sock")):
        assert needed in toml, needed
    cni = json.loads(node.cni_config(tmp_path))["plugins"][0]
    assert cni["type"] == "bridge" and cni["ipMasq"] is False
    assert cni["ipam"]["ranges"] == [[{"subnet": node.POD_CIDR}]]
    corefile = node.corefile(tmp_path, 1, 2)
    assert not re.search(r"^\s*forward\s", corefile, re.M) and "rcode NXDOMAIN" in corefile  # nothing leaves
    proxy = json.loads(node.kube_proxy_config(tmp_path, 1, 2))
    assert proxy["mode"] == "iptables" and proxy["nodePortAddresses"] == [f"{node.NODE_IP}/32"]


def test_guards_cover_every_range_on_every_external_interface() -> None:
    from kube import node

    rules = node._iptables_rules(["eth0", "eth1"])
    for iface in ("eth0", "eth1"):
        for cidr in (node.NODE_RANGE, node.POD_RANGE, node.SERVICE_CIDR):
            assert ["-o", iface, "-d", cidr, "-j", "DROP"] in rules
        assert ["-o", iface, "-s", node.POD_RANGE, "-j", "DROP"] in rules
    assert set(node.GUARDED) == {node.NODE_RANGE, node.POD_RANGE, node.SERVICE_CIDR}


def test_node_up_refuses_a_foreign_non_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kube import node

    (tmp_path / "precious.txt").write_text("not a cluster's")
    monkeypatch.setattr(node, "preflight", lambda: None)
    monkeypatch.setattr(node, "live_processes", lambda st: [])
    with pytest.raises(kube_tools.KubeToolsError, match="holds no node cluster"):
        node.node_up(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "not a cluster's"
