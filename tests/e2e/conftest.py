"""The real API server tier: a session-wide etcd + kube-apiserver on loopback.

Fixtures:

* ``kube`` (session): a started ``kube_tools.Cluster``; see docs/testing.md. Skipped
  with a reason when the binaries are not built and SWITCHYARD_E2E is not 1; with
  SWITCHYARD_E2E=1 it builds them if needed and fails (never skips) if it cannot.
* ``kube_ns`` (function): a fresh namespace (with its ``default`` ServiceAccount) in
  that cluster, named after the test.

Every test collected under tests/e2e gets the ``e2e`` marker.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path
from collections.abc import Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "hack"))

import kube_tools  # noqa: E402

REQUIRED = os.environ.get("SWITCHYARD_E2E") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"SWITCHYARD_E2E=1 but the real API server tier cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube_tools.Cluster]:
    binaries = kube_tools.find_kube_binaries()
    if binaries is None and not REQUIRED:
        pytest.skip(
            f"real API server tier: kube-apiserver v{kube_tools.KUBE_VERSION} and etcd "
            f"v{kube_tools.ETCD_VERSION} are not built in {kube_tools.kube_dir()} "
            "(build them with `python hack/kube_tools.py build`, about 8 minutes with Go, "
            "or set SWITCHYARD_E2E=1 to build and run)"
        )
    try:
        binaries = kube_tools.ensure_kube_binaries()
        clients = kube_tools.ensure_kube_clients()
    except kube_tools.KubeToolsError as e:
        _unavailable(f"{e} (exit code {e.code})")
        raise  # not reached
    cluster = kube_tools.start_cluster(
        tmp_path_factory.mktemp("kube"), binaries=binaries, clients=clients
    )
    try:
        yield cluster
    finally:
        failed = getattr(cluster, "_saw_failure", False)
        if failed:
            sys.stderr.write("\n--- kube-apiserver log (tail) ---\n" + cluster.log_tail() + "\n")
        cluster.stop()


@pytest.fixture
def kube_ns(kube: kube_tools.Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace for one test (left behind: without a controller-manager a
    deleted namespace never finishes terminating, and the cluster is thrown away)."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base or 't'}-{secrets.token_hex(3)}"
    kube.ensure_namespace(name)
    return name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and "kube" in getattr(item, "funcargs", {}):
        item.funcargs["kube"]._saw_failure = True  # type: ignore[attr-defined]
