"""Failure classes on the binding, and chains checked at apply time, against a real API server.

The operator runs as in `test_operator_cluster.py` (its own identity, `operator/rbac.yaml`
only), this time with its webhooks on: the validating one checks AssistantBindings at
apply time and answers warnings, which the real `kubectl apply` prints on stderr. Real
sidecars on loopback talk to a stand-in upstream that refuses the primary's key (401) or
rate-limits it (429), so a tier really gets disabled or rate-limited in a sidecar, and
the operator reports it: `kubectl get ab` BREAKERS, `.status.chain[].breaker`, Events.
The sidecars take their config as in a cluster, from the namespace's config Secret (the
harness plays the kubelet: `kubelet_volume.py`), and the disabled tier comes back when
the binding changes through the config itself (the binding's generation).

Every wait is a poll with a deadline, never a sleep.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

import kube_tools
from test_operator_cluster import (
    ADMIN_TOKEN,
    KEY_PRIMARY,
    MANIFESTS,
    FakeUpstream,
    LoopThread,
    Operator,
    SidecarOnLoopback,
    apply,
    cond,
    get,
    install,
    poll,
    register_webhooks,
    wait_ready,
    table,
)

RELEASE = "e2e-fc"
CONFIG = f"{RELEASE}-switchyard"  # the chart's release-named webhook configurations


class Upstream(FakeUpstream):
    """The stand-in upstream, plus a 429 with Retry-After for the primary on demand."""

    def __init__(self, lt: LoopThread) -> None:
        super().__init__(lt)
        self.rate_limit_primary = False

    async def chat(self, request: web.Request) -> web.Response:
        if self.rate_limit_primary:
            body = await request.json()
            self.calls.append(f"primary:{body.get('model')}")
            return web.json_response({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=429,
                                     headers={"Retry-After": "120"})
        return await super().chat(request)


class Env:
    def __init__(self, kube: kube_tools.Cluster, upstream: Upstream, url: str, operator: Operator, lt: LoopThread) -> None:
        self.kube, self.upstream, self.url, self.operator, self.lt = kube, upstream, url, operator, lt
        self.root: Any = None  # where the harness keeps each pod's volumes

    def scenario(self, ns: str) -> None:
        for name in ("secrets", "profiles", "sources", "bindings"):
            apply(self.kube, ns, (MANIFESTS / "valid" / f"{name}.yaml").read_text(), UPSTREAM=self.url, ADMIN_TOKEN=ADMIN_TOKEN)


@pytest.fixture(scope="module")
def fenv(kube: kube_tools.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    t0 = time.monotonic()
    install(kube)
    lt = LoopThread()
    upstream = Upstream(lt)
    url = upstream.start()
    cert = kube.issue_serving_cert("switchyard-webhook-fc", hosts=("127.0.0.1",))
    port, ready_port = kube_tools.free_port(), kube_tools.free_port()
    op = Operator(kube, tmp_path_factory.mktemp("operator-fc"), {
        "SWITCHYARD_WEBHOOK": "on",
        "SWITCHYARD_WEBHOOK_LISTEN": "127.0.0.1",
        "SWITCHYARD_WEBHOOK_PORT": str(port),
        "SWITCHYARD_WEBHOOK_HOST": "127.0.0.1",
        "SWITCHYARD_WEBHOOK_CERT_FILE": str(cert.cert_file),
        "SWITCHYARD_WEBHOOK_KEY_FILE": str(cert.key_file),
        "SWITCHYARD_WEBHOOK_CA_FILE": str(cert.ca_file),
        "SWITCHYARD_READINESS_ENDPOINT": f"http://127.0.0.1:{ready_port}/readyz",
        # As in a cluster: the sidecars take their config from the namespace's Secret.
        "SWITCHYARD_CONFIG_DELIVERY": "secret",
    })
    op.start("op-fc")
    register_webhooks(kube, RELEASE, port, cert.ca_file)  # as the chart renders them
    wait_ready(f"http://127.0.0.1:{ready_port}/readyz")
    sys.stderr.write(f"\n[operator failure-classes e2e] setup {time.monotonic() - t0:.1f}s\n")
    e = Env(kube, upstream, url, op, lt)
    e.root = tmp_path_factory.mktemp("pods-fc")
    try:
        yield e
    finally:
        failed = getattr(kube, "_saw_failure", False)
        op.stop()
        if failed:
            sys.stderr.write("\n--- operator log (tail) ---\n" + "\n".join(op.logs().splitlines()[-80:]) + "\n")
        kube.kubectl("delete", "mutatingwebhookconfiguration,validatingwebhookconfiguration", CONFIG, "--ignore-not-found")
        upstream.stop()
        lt.close()


@pytest.fixture
def sidecars(fenv: Env, kube_ns: str) -> Iterator[list[SidecarOnLoopback]]:
    started: list[SidecarOnLoopback] = []
    yield started
    fenv.kube.kubectl("delete", "pods", "--all", "-n", kube_ns, "--wait=false", check=False)
    for s in started:
        with contextlib.suppress(Exception):
            s.stop()


def events(kube: kube_tools.Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    out = kube.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json").stdout
    return json.loads(out)["items"]


def by_reason(kube: kube_tools.Cluster, ns: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in events(kube, ns, name) if e["reason"] == reason]


def check_operator_alive(env: Env) -> None:
    assert env.operator.alive(), "the operator exited:\n" + env.operator.logs()[-4000:]
    text = env.operator.logs()
    assert "Traceback" not in text and "orbidden" not in text, text[-4000:]


def tier0_breaker(kube: kube_tools.Cluster, ns: str) -> dict[str, Any]:
    return get(kube, ns, "ab/support")["status"]["chain"][0].get("breaker") or {}


VISION_BOT = """
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {name: vision-bot}
spec:
  aliases: [vision-bot]
  primary: {sourceRef: {name: openai-main}, model: gpt-4o}
  fallbacks:
    - sourceRef: {name: local-llama}
    - sourceRef: {name: anthropic}
  requires: {vision: true}
"""
VISION_BOT_SOUND = """
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {name: vision-bot}
spec:
  aliases: [vision-bot]
  primary: {sourceRef: {name: openai-main}, model: gpt-4o}
  requires: {vision: true}
"""
WARN_INCOMPATIBLE = "Warning: switchyard: tier1 (local-llama/llama-3.1-8b) lacks vision (spec.requires): requests will skip this tier"
WARN_UNRESOLVABLE = ("Warning: switchyard: tier2 (anthropic/claude-sonnet-4-5) is unresolvable: SecretNotMarked: "
                     "no Secret anthropic-key labelled switchyard.dev/credential=true in namespace ")


def test_apply_prints_the_webhooks_warnings_and_chain_compatible_says_why(fenv: Env, kube_ns: str) -> None:
    kube, ns = fenv.kube, kube_ns
    fenv.scenario(ns)
    # The webhook answers from the operator's indexes: wait until they hold this namespace's sources.
    poll("the sources indexed", lambda: all(cond(get(kube, ns, f"ms/{n}"), "CatalogReady")
                                            for n in ("openai-main", "local-llama")))

    def warned() -> str | None:  # a server-side dry run until the API server calls the new webhook
        cp = kube.kubectl("apply", "--dry-run=server", "-n", ns, "-f", "-", input=VISION_BOT, check=False)
        return cp.stderr if "Warning: switchyard:" in cp.stderr else None

    poll("the validating webhook in effect", warned)
    cp = kube.kubectl("apply", "-n", ns, "-f", "-", input=VISION_BOT)
    assert cp.returncode == 0 and "assistantbinding.switchyard.dev/vision-bot created" in cp.stdout
    lines = [line for line in cp.stderr.splitlines() if line.startswith("Warning:")]
    assert len(lines) == 2 and lines[0] == WARN_INCOMPATIBLE and lines[1].startswith(WARN_UNRESOLVABLE + ns), lines

    obj = poll("ChainCompatible on vision-bot", lambda: (o := get(kube, ns, "ab/vision-bot")) and cond(o, "ChainCompatible") and o)
    c = cond(obj, "ChainCompatible")
    assert (c["status"], c["reason"]) == ("False", "Incompatible")
    assert c["message"] == "tier1 (local-llama/llama-3.1-8b): lacks vision; not checked (unresolvable): tier2"
    assert obj["status"]["chain"][1]["incompatible"] == ["vision"] and obj["status"]["chain"][1]["degradable"] is False
    assert table(kube, ns, "ab", "-o", "wide")["vision-bot"]["COMPATIBLE"] == "False"
    assert cond(obj, "Ready")["reason"] == "NoPodsSelected"  # Ready is not about requires

    # Every binding has the condition; without `requires` nothing is held against a tier.
    support = cond(get(kube, ns, "ab/support"), "ChainCompatible")
    assert (support["status"], support["reason"]) == ("True", "NoRequirements")
    # An update is checked too; a sound chain gets no warning.
    cp = kube.kubectl("apply", "-n", ns, "-f", "-", input=VISION_BOT_SOUND)
    assert "Warning" not in cp.stderr, cp.stderr
    poll("vision-bot compatible", lambda: cond(get(kube, ns, "ab/vision-bot"), "ChainCompatible")["status"] == "True")
    check_operator_alive(fenv)


def test_the_validating_webhook_is_fail_open_and_narrow(fenv: Env) -> None:
    hooks = json.loads(fenv.kube.kubectl("get", "validatingwebhookconfiguration", CONFIG, "-o", "json").stdout)["webhooks"]
    assert len(hooks) == 1
    hook = hooks[0]
    assert hook["failurePolicy"] == "Ignore"  # an operator outage or a bug never blocks an apply
    assert hook["sideEffects"] == "None"
    assert hook["rules"] == [{"apiGroups": ["switchyard.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                              "resources": ["assistantbindings"], "scope": "Namespaced"}]
    assert hook["timeoutSeconds"] <= 5


def test_a_disabled_tier_shows_in_breakers_status_and_one_event(
    fenv: Env, kube_ns: str, sidecars: list[SidecarOnLoopback]
) -> None:
    kube, ns, up = fenv.kube, kube_ns, fenv.upstream
    fenv.scenario(ns)
    first = SidecarOnLoopback.in_pod(kube, fenv.lt, ns, "support-0", "support", fenv.root)
    sidecars.append(first)
    poll("support Ready", lambda: (r := table(kube, ns, "ab")["support"])["READY"] == "True" and r["PODS"] == "1/1")

    up.keys.discard(KEY_PRIMARY)  # the upstream now refuses the primary's key: 401
    try:
        status, headers, _ = first.chat("support")
        assert status == 200 and headers["x-switchyard-tier"] == "1"
        assert headers["x-switchyard-fallback-reason"] == "tier0=401"
        row = poll("BREAKERS counts the disabled tier", lambda: (r := table(kube, ns, "ab")["support"])["BREAKERS"] == "1/3" and r)
        assert row["READY"] == "True" and row["ACTIVE"] == "tier1 local-llama/llama-3.1-8b"
        b = tier0_breaker(kube, ns)
        assert {k: b[k] for k in ("state", "disabledInPods", "reportingPods", "disabledReason", "lastFailure", "lastFailureClass")} == {
            "state": "disabled", "disabledInPods": 1, "reportingPods": 1, "disabledReason": "401",
            "lastFailure": "401", "lastFailureClass": "permanent"}

        (ev,) = poll("the TierDisabled event", lambda: by_reason(kube, ns, "support", "TierDisabled"))
        assert ev["type"] == "Warning" and ev["source"]["component"] == "switchyard-operator"
        assert ev["message"] == (
            "tier0 openai-main/gpt-4o: disabled in 1 of 1 pods: the upstream answered 401; no request goes to it until "
            "its ModelSource, Secret or this binding changes, or an admin resets it")

        # No user request reaches a disabled tier.
        sent = up.calls.count("primary:gpt-4o")
        for _ in range(3):
            assert first.chat("support")[1]["x-switchyard-fallback-reason"] == "tier0=disabled(401)"
        assert up.calls.count("primary:gpt-4o") == sent

        # A second pod: closed there, then disabled there too. Each step is a new health
        # poll seen in status, and the event stays the one it was.
        second = SidecarOnLoopback.in_pod(kube, fenv.lt, ns, "support-1", "support", fenv.root)
        sidecars.append(second)
        poll("two pods report tier0", lambda: (b := tier0_breaker(kube, ns)).get("reportingPods") == 2 and b["closedInPods"] == 1)
        assert table(kube, ns, "ab")["support"]["BREAKERS"] == "1/3"  # out of service in at least one pod
        assert second.chat("support")[1]["x-switchyard-tier"] == "1"
        poll("tier0 disabled in both pods", lambda: tier0_breaker(kube, ns).get("disabledInPods") == 2)
        ready = cond(get(kube, ns, "ab/support"), "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "Serving")  # tier1 serves in both
        assert len(by_reason(kube, ns, "support", "TierDisabled")) == 1
        assert not by_reason(kube, ns, "support", "BreakerOpened")  # a 401 is not a blip
        describe = kube.kubectl("describe", "ab", "support", "-n", ns).stdout
        assert "TierDisabled" in describe and "ChainCompatible" in describe
    finally:
        up.keys.add(KEY_PRIMARY)  # fixed upstream-side: the sidecars keep it disabled all the same

    assert tier0_breaker(kube, ns)["state"] == "disabled"
    # The binding changes (not the tier's own config): the operator resets the disabled tier in every pod.
    gen = get(kube, ns, "ab/support")["metadata"]["generation"]
    kube.kubectl("patch", "ab", "support", "-n", ns, "--type=merge", "-p", '{"spec": {"aliases": ["support", "helpdesk"]}}')
    assert get(kube, ns, "ab/support")["metadata"]["generation"] == gen + 1
    poll("tier0 back in service", lambda: (b := tier0_breaker(kube, ns)).get("state") == "closed" and b["closedInPods"] == 2)
    assert table(kube, ns, "ab")["support"]["BREAKERS"] == "0/3"
    for sc in (first, second):
        status, headers, _ = sc.chat("helpdesk")
        assert status == 200 and headers["x-switchyard-tier"] == "0"
    (ev,) = poll("the TierEnabled event", lambda: by_reason(kube, ns, "support", "TierEnabled"))
    assert ev["type"] == "Normal" and ev["message"] == "tier0 openai-main/gpt-4o: back in service, no longer disabled in any pod"
    assert len(by_reason(kube, ns, "support", "TierDisabled")) == 1
    # The reset travels in the config: the binding's generation moved, and each sidecar
    # re-enabled its disabled tier when it installed the new config (no admin call needed;
    # the operator's POST .../reset remains only for an older sidecar in push mode).
    check_operator_alive(fenv)


def test_a_rate_limited_tier_is_shown_but_not_counted_out(
    fenv: Env, kube_ns: str, sidecars: list[SidecarOnLoopback]
) -> None:
    kube, ns, up = fenv.kube, kube_ns, fenv.upstream
    fenv.scenario(ns)
    sc = SidecarOnLoopback.in_pod(kube, fenv.lt, ns, "support-0", "support", fenv.root)
    sidecars.append(sc)
    poll("support Ready", lambda: table(kube, ns, "ab")["support"]["READY"] == "True")
    up.rate_limit_primary = True
    try:
        status, headers, _ = sc.chat("support")
    finally:
        up.rate_limit_primary = False
    assert status == 200 and headers["x-switchyard-fallback-reason"] == "tier0=429(retry in 120s)"
    b = poll("tier0 rate-limited in status", lambda: (b := tier0_breaker(kube, ns)).get("state") == "rate-limited" and b)
    assert (b["rateLimitedInPods"], b["lastFailureClass"], b["lastFailure"]) == (1, "rate-limited", "429(retry in 120s)")
    assert "disabledReason" not in b
    assert table(kube, ns, "ab")["support"]["BREAKERS"] == "0/3"  # it comes back by itself
    check_operator_alive(fenv)


@pytest.fixture(autouse=True)
def _no_leftover_keys(fenv: Env) -> Iterator[None]:
    yield
    fenv.upstream.keys.add(KEY_PRIMARY)
    fenv.upstream.rate_limit_primary = False
