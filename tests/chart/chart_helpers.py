"""Shared helpers and fixtures of tests/chart (re-exported by conftest.py; imported by the
tests as `chart_helpers`, a name no other test folder uses).

Fixtures:

* ``helm``: the pinned helm binary (from the PyPI wheel hack/kube_tools.py fetches, the
  same one the real-API-server tier uses), or a skip with the reason.
* ``render(values=None, *sets, release="switchyard", namespace="switchyard-system")``:
  ``helm template`` of charts/switchyard, parsed into a list of manifests. The chart is
  namespaced by default and refuses to render without a namespace to watch, so a call
  that sets none of appNamespaces, operator.watchNamespaces, operator.clusterWide (and
  no values file) renders with ``appNamespaces={team-a}`` (``DEFAULT_NAMESPACES``).
* ``promtool`` / ``prometheus_bin``: Debian's prometheus package (promtool 2.42).

A missing helm skips its tests with the reason outside CI and fails them under CI
(``CI=true``) or ``SWITCHYARD_E2E=1`` (it comes from PyPI, which CI always reaches). A
missing promtool/prometheus skips, unless ``SWITCHYARD_REQUIRE_PROMTOOL=1`` (set by
.ci/run once it has installed Debian's package).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "switchyard"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "hack"))

import kube_tools  # noqa: E402

MUST_RUN = os.environ.get("CI") == "true" or os.environ.get("SWITCHYARD_E2E") == "1"


def unavailable(reason: str) -> None:
    if MUST_RUN:
        pytest.fail(f"{reason} (CI must run this check)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    clients = kube_tools.find_kube_clients()
    if clients is None:
        try:
            clients = kube_tools.ensure_kube_clients()
        except kube_tools.KubeToolsError as e:
            unavailable(f"helm is not available: {e} (fetch it with `python hack/kube_tools.py tools`)")
    home = tmp_path_factory.mktemp("helm-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env.update({"HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                "HELM_DATA_HOME": str(home / "data"), "KUBECONFIG": str(home / "no-kubeconfig")})

    def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run([str(clients.helm), *args], capture_output=True, text=True, env=env,
                            timeout=timeout, stdin=subprocess.DEVNULL)
        if check and cp.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
        return cp

    return run


Render = Callable[..., list[dict[str, Any]]]
SCOPE_VALUES = ("appNamespaces=", "operator.watchNamespaces=", "operator.clusterWide=")
DEFAULT_NAMESPACES = "appNamespaces={team-a}"


@pytest.fixture(scope="session")
def render(helm: Callable[..., subprocess.CompletedProcess[str]]) -> Render:
    def do(values: str | Path | None = None, *sets: str, release: str = "switchyard",
           namespace: str = "switchyard-system") -> list[dict[str, Any]]:
        args = ["template", release, str(CHART), "--namespace", namespace]
        if values is not None:
            args += ["-f", str(values)]
        elif not any(s.startswith(SCOPE_VALUES) for s in sets):
            args += ["--set", DEFAULT_NAMESPACES]
        for s in sets:
            args += ["--set", s]
        out = helm(*args).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    return do


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def _debian_tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        reason = f"{name} is not installed (Debian package `prometheus`: apt-get install prometheus)"
        if os.environ.get("SWITCHYARD_REQUIRE_PROMTOOL") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)  # .ci/run installs it where apt-get works, and then requires it
    return path  # type: ignore[return-value]


@pytest.fixture(scope="session")
def promtool() -> str:
    return _debian_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _debian_tool("prometheus")


# --------------------------------------------------------------------------- live sidecar, real Prometheus


@pytest.fixture(scope="session")
def live_sidecar() -> Any:
    """A real sidecar with scripted traffic behind it (see sidecar_traffic.py)."""
    from sidecar_traffic import LiveSidecar

    s = LiveSidecar()
    try:
        s.start()
    except BaseException:
        s.stop()
        raise
    yield s
    s.stop()


class PrometheusServer:
    """A real `prometheus` (Debian's 2.42) on 127.0.0.1, scraping the live sidecar every
    second with the labels a PodMonitor adds (namespace, pod), loading the alert rules."""

    def __init__(self, binary: str, workdir: Path, target: str, rules: Path) -> None:
        self.binary, self.workdir, self.target, self.rules = binary, workdir, target, rules
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60) -> None:
        import json
        import time
        import urllib.request

        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.rules)],
            "scrape_configs": [{
                "job_name": "switchyard-sidecars", "metrics_path": "/metrics",
                "static_configs": [{"targets": [self.target], "labels": {"namespace": "team-a", "pod": "app-0"}}],
            }],
        }))
        for attempt in range(3):
            port = kube_tools.free_port()
            self.url = f"http://127.0.0.1:{port}"
            log = open(self.workdir / f"prometheus-{attempt}.log", "wb")
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.workdir / f'data-{attempt}'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", "--storage.tsdb.retention.time=1h"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={"PATH": os.environ.get("PATH", "")})
            deadline = time.monotonic() + timeout
            delay = 0.05
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(delay)  # poll interval under a deadline
                delay = min(delay * 2, 0.5)
            if self.proc.poll() is None:
                break
            text = (self.workdir / f"prometheus-{attempt}.log").read_text(errors="replace")
            if "address already in use" not in text:
                raise AssertionError(f"prometheus exited:\n{text[-3000:]}")
        else:
            raise AssertionError("prometheus: no free port after 3 attempts")

        def samples() -> int:
            _, data = self.query("count_over_time(switchyard_config_loaded[1m])")
            return int(float(data[0]["value"][1])) if data else 0

        deadline = time.monotonic() + timeout
        delay = 0.1
        while samples() < 3:
            assert time.monotonic() < deadline, f"prometheus did not scrape {self.target} in {timeout}s: {self.targets()}"
            time.sleep(delay)  # poll interval under a deadline
            delay = min(delay * 2, 0.5)
        _ = json

    def api(self, path: str, **params: str) -> dict[str, Any]:
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read() or b"{}") | {"http_status": e.code}

    def query(self, expr: str) -> tuple[str, list[dict[str, Any]]]:
        """(status or error, result) of an instant query."""
        body = self.api("/api/v1/query", query=expr)
        if body.get("status") != "success":
            return f"{body.get('errorType')}: {body.get('error')}", []
        return "success", body["data"]["result"]

    def targets(self) -> Any:
        return self.api("/api/v1/targets").get("data")

    def stop(self) -> None:
        if self.proc is None:
            return
        import signal

        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None


@pytest.fixture(scope="session")
def prometheus(prometheus_bin: str, live_sidecar: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    target = live_sidecar.admin.removeprefix("http://")
    server = PrometheusServer(prometheus_bin, tmp_path_factory.mktemp("prometheus"), target,
                              CHART / "files" / "switchyard.rules.yaml")
    try:
        server.start()
        yield server
    finally:
        server.stop()
