"""The node tier: a real single-node Kubernetes cluster on this machine (docs/testing-node.md).

Fixtures:

* ``node`` (session): a started ``kube.node.NodeCluster`` with the project's image (built
  from the Dockerfile with buildah) imported into its containerd. Runs only with
  ``SWITCHYARD_NODE=1`` (it needs root and changes routes, iptables and sysctls for the
  run, restoring them at the end); then a missing tool or a failed build or start is a
  failure, never a skip. Without it the tier is skipped with the reason.

Every test collected under tests/node gets the ``node`` marker.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "hack"))

from kube import images, node as kn  # noqa: E402
from kube.clients import ensure_kube_clients  # noqa: E402
from kube.common import KubeToolsError  # noqa: E402

REQUIRED = os.environ.get("SWITCHYARD_NODE") == "1"
STATE_DIR = Path(os.environ.get("SWITCHYARD_NODE_DIR", "/var/tmp/switchyard-node-pytest"))
TIMINGS: dict[str, float] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="session")
def node() -> Iterator[kn.NodeCluster]:
    if not REQUIRED:
        pytest.skip("node tier: set SWITCHYARD_NODE=1 to run it (root; it builds the node binaries and images "
                    "once under ~/.cache/switchyard and changes routes, iptables and sysctls for the run, "
                    "restoring them afterwards; see docs/testing-node.md)")
    why = kn.preflight()
    if why:
        pytest.fail(f"SWITCHYARD_NODE=1 but the node tier cannot run here: {why}", pytrace=False)
    try:
        t0 = time.monotonic()
        kn.ensure_node_prereqs()
        clients = ensure_kube_clients()
        TIMINGS["prereqs_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        archive = images.build_app_image(REPO, images.images_dir() / "switchyard-dev.oci.tar")
        TIMINGS["image_s"] = time.monotonic() - t0
        if (STATE_DIR / "state.json").exists():
            kn.node_down(STATE_DIR)  # a run that died before its teardown: undo it first
        t0 = time.monotonic()
        cluster = kn.node_up(STATE_DIR, clients=clients)
        TIMINGS["up_s"] = time.monotonic() - t0
    except KubeToolsError as e:
        pytest.fail(f"SWITCHYARD_NODE=1 but the node tier cannot run: {e} (exit code {e.code})", pytrace=False)
        raise  # not reached
    try:
        t0 = time.monotonic()
        cluster.import_image(archive)
        TIMINGS["import_s"] = time.monotonic() - t0
        cluster.timings = TIMINGS  # type: ignore[attr-defined]  # tests add theirs
        yield cluster
    finally:
        if getattr(cluster, "_saw_failure", False):
            for name in ("kubelet", "kube-apiserver", "containerd"):
                sys.stderr.write(f"\n--- {name} log (tail) ---\n{cluster.log_tail(name, 30)}\n")
        t0 = time.monotonic()
        kn.node_down(STATE_DIR, keep_files=os.environ.get("SWITCHYARD_NODE_KEEP") == "1")
        TIMINGS["down_s"] = time.monotonic() - t0


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "node tier timings")
        for k, v in TIMINGS.items():
            terminalreporter.write_line(f"{k}: {v:.1f}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and "node" in getattr(item, "funcargs", {}):
        item.funcargs["node"]._saw_failure = True  # type: ignore[attr-defined]
