"""Secrets and faults of the operator against a real API server (docs/reliability.md):

- with known key values (the sources' keys, a refused key, the sidecars' admin token),
  a broad scenario runs — catalogs checked with a good and a refused key, config pushed,
  traffic served, a tier failing and its breaker opening, a Secret rotated and deleted —
  then every status, spec, Event, the operator's log and the sidecar's admin answers are
  scanned for those values and their fragments;
- a deleted Secret turns the tiers that need it unresolvable, in status (SecretNotMarked,
  with the Secret's name) and in the sidecars (no stale key kept).

The operator runs as in test_operator_cluster.py (its own identity, operator/rbac.yaml).
Every wait is a poll with a deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import kube_tools
from test_operator_cluster import (
    ADMIN_TOKEN,
    KEY_ANTHROPIC,
    KEY_PRIMARY,
    KEY_ROTATED,
    Env,
    FakeUpstream,
    LoopThread,
    Operator,
    SidecarOnLoopback,
    apply,
    check_operator_alive,
    cond,
    get,
    install,
    poll,
)

WRONG_KEY = "sk-test-wrong-e2e-4c1d9b"


@pytest.fixture(scope="module")
def henv(kube: kube_tools.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    install(kube)
    lt = LoopThread()
    upstream = FakeUpstream(lt)
    url = upstream.start()
    # As in a cluster: the config reaches the sidecars through the namespace's Secret.
    op = Operator(kube, tmp_path_factory.mktemp("operator-hardening"), {"SWITCHYARD_CONFIG_DELIVERY": "secret"})
    op.start("op-hardening")
    e = Env(kube, upstream, url, op, lt)
    try:
        yield e
    finally:
        op.stop()
        upstream.stop()
        lt.close()


def test_no_secret_in_status_events_logs_or_admin_answers_and_a_deleted_secret_is_not_kept(
    henv: Env, kube_ns: str, tmp_path: Path
) -> None:
    kube, ns = henv.kube, kube_ns
    henv.scenario(ns)
    apply(kube, ns, f"""
apiVersion: v1
kind: Secret
metadata: {{name: wrong-key, labels: {{switchyard.dev/credential: "true"}}}}
stringData: {{api-key: {WRONG_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: anthropic-key, labels: {{switchyard.dev/credential: "true"}}}}
stringData: {{api-key: {KEY_ANTHROPIC}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: refused}}
spec:
  provider: openai
  baseURL: ${{UPSTREAM}}/v1
  credentialRef: {{name: wrong-key, key: api-key}}
  defaultModel: gpt-4o
""", UPSTREAM=henv.url)
    sc = SidecarOnLoopback.in_pod(kube, henv.lt, ns, "support-0", "support", tmp_path)
    try:
        poll("config delivered", lambda: sc.admin_status()["configured"])
        poll("refused credential reported", lambda: cond(get(kube, ns, "ms/refused"), "CredentialValid").get("reason") == "Unauthorized")

        # Traffic, then the primary failing until its breaker opens (events are posted).
        status, headers, _ = sc.chat("support")
        assert status == 200 and headers["x-switchyard-tier"] == "0"
        henv.upstream.fail_primary = True
        try:
            for _ in range(3):
                sc.chat("support")
            poll("BreakerOpened event", lambda: any(
                e["reason"] == "BreakerOpened" for e in json.loads(kube.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]))
        finally:
            henv.upstream.fail_primary = False

        # Rotation, then deletion of the primary's Secret.
        apply(kube, ns, f"apiVersion: v1\nkind: Secret\nmetadata: {{name: openai-key, labels: {{switchyard.dev/credential: \"true\"}}}}\nstringData: {{api-key: {KEY_ROTATED}}}\n")
        poll("rotated key delivered", lambda: KEY_ROTATED in henv.upstream.seen_keys)
        kube.kubectl("delete", "secret", "openai-key", "-n", ns)

        def tier0() -> dict | None:
            chain = get(kube, ns, "ab/support").get("status", {}).get("chain", [])
            return chain[0] if chain and chain[0].get("reason") == "SecretNotMarked" else None

        t = poll("tier 0 unresolvable in status", tier0)
        assert t["resolvable"] is False and t["message"].startswith("no Secret openai-key labelled switchyard.dev/credential=true")
        poll("tier 0 unresolvable in the sidecar",
             lambda: (b := sc.binding("support")) and not b["tiers"][0]["resolvable"] and b["tiers"][0]["problem"].startswith("SecretNotMarked"))
        poll("the source's credential reported missing",
             lambda: cond(get(kube, ns, "ms/openai-main"), "CredentialValid").get("reason") == "SecretNotMarked")
        status, headers, _ = sc.chat("support")  # served by the next tier; the stale key is not used
        assert status == 200 and headers["x-switchyard-tier"] == "1"
        assert "tier0=unresolvable(SecretNotMarked)" in headers["x-switchyard-fallback-reason"]

        # The scan.
        seen = [
            kube.kubectl("get", "ab,ms,cap", "-n", ns, "-o", "json").stdout,
            kube.kubectl("get", "events", "-n", ns, "-o", "json").stdout,
            kube.kubectl("describe", "ab,ms", "-n", ns).stdout,
            kube.kubectl("get", "pods", "-n", ns, "-o", "json").stdout,  # the config-version annotation is a hash
            henv.operator.logs(),
            json.dumps(sc.admin_status()),
        ]
        haystack = "\n".join(seen)
        for name, value in {"primary": KEY_PRIMARY, "rotated": KEY_ROTATED, "anthropic": KEY_ANTHROPIC,
                            "refused": WRONG_KEY, "admin token": ADMIN_TOKEN}.items():
            assert value not in haystack, f"the {name} secret leaked"
        for name, value in {"refused": WRONG_KEY, "admin token": ADMIN_TOKEN}.items():  # random tails: fragments too
            assert value[-8:] not in haystack, f"a fragment of the {name} secret leaked"
        check_operator_alive(henv)
    finally:
        sc.stop()
        kube.kubectl("delete", "pods", "--all", "-n", ns, "--wait=false", check=False)
