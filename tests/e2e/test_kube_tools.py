"""The harness's own pure parts (no binaries needed): go.mod rewriting and the test PKI
(hack/kube/gobuild.py, hack/kube/pki.py)."""

from __future__ import annotations

import os
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
