"""Where a ModelSource may send its credential: link-local / metadata addresses and plain
http are refused unless the source opts in (spec.network), in the compiler (status,
`switchyard check`) and before the operator's catalog fetch."""

from __future__ import annotations

import pytest
import yaml

from harness import load
from switchyard.compiler import compile_config
from switchyard.compiler.network import (
    INSECURE_HTTP_NOT_ALLOWED,
    LINK_LOCAL_NOT_ALLOWED,
    check_base_url,
    host_address,
)

METADATA_AND_LINK_LOCAL = [
    "http://169.254.169.254/latest/meta-data",
    "https://169.254.169.254/v1",
    "http://169.254.1.7:8000/v1",
    "http://[fe80::1]:8080/v1",
    "http://[fe80::1%25eth0]:8080/v1",
    "http://[fd00:ec2::254]/v1",
    "http://metadata.google.internal/computeMetadata/v1",
    "https://METADATA.GOOGLE.INTERNAL./v1",
    "http://2852039166/v1",  # 169.254.169.254 as one number
    "http://0xa9.0xfe.0xa9.0xfe/v1",
    "http://169.254.43518/v1",  # a.b.c with a 16-bit last part
    "http://[::ffff:169.254.169.254]/v1",
    "http://100.100.100.200/latest",  # Alibaba's metadata service
]

LOCAL_HTTP_OK = [
    "http://127.0.0.1:11434/v1",
    "http://127.9.9.9/v1",
    "http://localhost:8000/v1",
    "http://[::1]:8000/v1",
    "http://10.0.0.5:8000/v1",
    "http://172.20.1.1/v1",
    "http://192.168.1.20:1234/v1",
    "http://[fd12:3456::1]/v1",
    "http://ollama:11434/v1",  # a compose / short service name
    "http://vllm.models.svc:8000/v1",
    "http://vllm.models.svc.cluster.local:8000/v1",
    "http://llm.localhost/v1",
]

REMOTE_HTTP_REFUSED = [
    "http://api.openai.com/v1",
    "http://8.8.8.8/v1",
    "http://example.com:8080/v1",
    "http://0.0.0.0:8000/v1",  # "any address" is not a local runtime
    "http://llm.internal.example/v1",
]


@pytest.mark.parametrize("url", METADATA_AND_LINK_LOCAL)
def test_link_local_and_metadata_are_refused_whatever_the_scheme(url: str) -> None:
    refusal = check_base_url(url)
    assert refusal is not None and refusal.reason == LINK_LOCAL_NOT_ALLOWED, url
    assert "allowLinkLocal" in refusal.message
    # allowInsecureHTTP does not open link-local; allowLinkLocal does
    assert check_base_url(url, allow_insecure_http=True).reason == LINK_LOCAL_NOT_ALLOWED  # type: ignore[union-attr]
    assert check_base_url(url, allow_link_local=True, allow_insecure_http=True) is None


@pytest.mark.parametrize("url", LOCAL_HTTP_OK)
def test_plain_http_is_fine_for_local_runtimes(url: str) -> None:
    assert check_base_url(url) is None


@pytest.mark.parametrize("url", REMOTE_HTTP_REFUSED)
def test_plain_http_to_a_remote_host_needs_the_opt_in(url: str) -> None:
    refusal = check_base_url(url)
    assert refusal is not None and refusal.reason == INSECURE_HTTP_NOT_ALLOWED
    assert "allowInsecureHTTP" in refusal.message
    assert check_base_url(url, allow_insecure_http=True) is None
    assert check_base_url(url.replace("http://", "https://", 1)) is None


def test_numeric_hosts_are_read_as_the_resolver_would() -> None:
    assert str(host_address("2852039166")) == "169.254.169.254"
    assert str(host_address("0x7f.1")) == "127.0.0.1"
    assert host_address("api.openai.com") is None
    assert host_address("1.2.3.4.5") is None


def source(name: str, url: str, network: dict | None = None) -> str:
    doc = {
        "apiVersion": "switchyard.dev/v1alpha1",
        "kind": "ModelSource",
        "metadata": {"name": name},
        "spec": {"provider": "openai-compatible", "baseURL": url, "defaultModel": "m", **({"network": network} if network else {})},
    }
    return yaml.safe_dump(doc)


BINDING = """apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {name: helper}
spec:
  primary: {sourceRef: {name: imds}}
  fallbacks: [{sourceRef: {name: remote}}, {sourceRef: {name: opted}}, {sourceRef: {name: local}}]
"""


def test_the_compiler_makes_refused_tiers_unresolvable_with_a_reason() -> None:
    text = "---\n".join([
        source("imds", "http://169.254.169.254/v1"),
        source("remote", "http://models.example.com/v1"),
        source("opted", "http://models.example.com/v1", {"allowInsecureHTTP": True}),
        source("local", "http://127.0.0.1:11434/v1"),
        BINDING,
    ])
    result = compile_config(load(text))
    report = result.reports[("default", "helper")]
    assert [(t.resolvable, t.reason) for t in report.tiers] == [
        (False, LINK_LOCAL_NOT_ALLOWED), (False, INSECURE_HTTP_NOT_ALLOWED), (True, None), (True, None),
    ]
    tiers = result.config.bindings[0].tiers
    assert tiers[0].problem and tiers[0].problem.startswith(LINK_LOCAL_NOT_ALLOWED)
    assert tiers[0].credential is None  # nothing to send anywhere
    # `switchyard check` prints the reason
    from switchyard.cli.standalone import report_lines

    lines = "\n".join(report_lines(result))
    assert f"NOT RESOLVABLE: {LINK_LOCAL_NOT_ALLOWED}" in lines and f"NOT RESOLVABLE: {INSECURE_HTTP_NOT_ALLOWED}" in lines


def test_the_opt_in_fields_are_in_the_crd() -> None:
    from pathlib import Path

    crd = yaml.safe_load((Path(__file__).resolve().parents[3] / "crds" / "modelsources.switchyard.dev.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert set(spec["network"]["properties"]) == {"allowLinkLocal", "allowInsecureHTTP", "maxConnections"}


async def test_the_operator_never_fetches_a_catalog_from_a_refused_url() -> None:
    from switchyard.operator.reconciler import Reconciler
    from switchyard.operator.settings import Settings
    from switchyard.operator.world import World, snapshot

    class NoSession:
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"the operator tried to reach a refused URL ({name})")

    class Kube:
        def __init__(self) -> None:
            self.patches: list[dict] = []

        async def patch_status(self, plural: str, ns: str, name: str, patch: dict) -> dict:
            self.patches.append(patch)
            return {}

        async def get_secret(self, ns: str, name: str) -> dict:
            return {"metadata": {"resourceVersion": "1"}, "data": {"k": "c2stc2VjcmV0"}}

    body = {"metadata": {"name": "imds", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {"provider": "openai", "baseURL": "http://169.254.169.254/v1", "credentialRef": {"name": "s", "key": "k"}}}
    world = World(sources_by_ns={"ns": [snapshot("ModelSource", body)]})
    kube = Kube()
    rec = Reconciler(Settings(), world, kube)  # type: ignore[arg-type]
    rec.session = NoSession()  # type: ignore[assignment]
    await rec.refresh_catalog("ns", "imds")
    (patch,) = kube.patches
    cred = next(c for c in patch["conditions"] if c["type"] == "CredentialValid")
    assert (cred["status"], cred["reason"]) == ("False", LINK_LOCAL_NOT_ALLOWED)
