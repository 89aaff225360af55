"""Connect-time link-local guard: a baseURL *name* that resolves to a link-local or cloud
metadata address is refused (the compiler judges names as written and does no lookups).
DNS is a fake resolver; the upstream is a real aiohttp server on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from switchyard.sidecar.translate.base import UpstreamCall
from switchyard.netguard.resolver import GuardedResolver, LinkLocalRefused
from switchyard.sidecar.upstream import UpstreamConnectError, Upstreams

ZONE = {
    "api.test": ["127.0.0.1"],
    "imds.test": ["169.254.169.254"],
    "mixed.test": ["127.0.0.1", "169.254.169.254"],  # a rebinding-style answer
    "v6.test": ["fe80::1"],
    "alibaba.test": ["100.100.100.200"],
}


class FakeDNS(AbstractResolver):
    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in ZONE:
            raise OSError(f"no such host {host}")
        return [
            ResolveResult(hostname=host, host=ip, port=port, family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                          proto=0, flags=socket.AI_NUMERICHOST)
            for ip in ZONE[host]
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async def models(_: web.Request) -> web.Response:
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


def call(host: str, port: int) -> UpstreamCall:
    return UpstreamCall("GET", f"http://{host}:{port}/v1/models", {}, None, False)


@pytest.mark.parametrize("host", ["imds.test", "mixed.test", "v6.test", "alibaba.test"])
async def test_a_name_resolving_to_a_metadata_address_is_refused(host: str, port: int) -> None:
    ups = Upstreams(resolver=FakeDNS)
    try:
        with pytest.raises(UpstreamConnectError, match="^link-local$") as info:
            await ups.open(call(host, port), connect_seconds=2, allow_link_local=False)
        assert isinstance(info.value.__cause__.os_error, LinkLocalRefused)  # type: ignore[union-attr]
        assert "spec.network.allowLinkLocal" in str(info.value.__cause__)
    finally:
        await ups.close()


async def test_other_names_connect_and_allow_link_local_lifts_the_guard(port: int) -> None:
    ups = Upstreams(resolver=FakeDNS)
    try:
        resp = await ups.open(call("api.test", port), connect_seconds=2, allow_link_local=False)
        assert resp.status == 200
        resp.close()
        # The source opted in: the same rebinding-style answer is used as resolved
        # (127.0.0.1 first), through a pool of its own.
        resp = await ups.open(call("mixed.test", port), connect_seconds=2, allow_link_local=True)
        assert resp.status == 200
        resp.close()
        with pytest.raises(UpstreamConnectError, match="^link-local$"):
            await ups.open(call("mixed.test", port), connect_seconds=2, allow_link_local=False)
    finally:
        await ups.close()


async def test_an_unknown_name_is_still_a_dns_error(port: int) -> None:
    ups = Upstreams(resolver=FakeDNS)
    try:
        with pytest.raises(UpstreamConnectError, match="^dns$"):
            await ups.open(call("nowhere.test", port), connect_seconds=2, allow_link_local=False)
    finally:
        await ups.close()


async def test_the_guard_checks_every_answer_not_only_the_first() -> None:
    dns = FakeDNS()
    guarded = GuardedResolver(dns)
    assert [a["host"] for a in await guarded.resolve("api.test", 443)] == ["127.0.0.1"]
    with pytest.raises(LinkLocalRefused, match="169.254.169.254"):
        await guarded.resolve("mixed.test", 443)
    assert dns.lookups == ["api.test", "mixed.test"]


def test_the_compiler_hands_the_opt_in_to_the_sidecar() -> None:
    from harness import load
    from switchyard.compiler import compile_config

    def source(name: str, network: str = "") -> str:
        return (f"apiVersion: switchyard.dev/v1alpha1\nkind: ModelSource\nmetadata: {{name: {name}}}\n"
                f"spec: {{provider: openai-compatible, baseURL: 'https://models.example.com/v1', defaultModel: m{network}}}\n")

    text = "---\n".join([
        source("plain"), source("opted", ", network: {allowLinkLocal: true}"),
        "apiVersion: switchyard.dev/v1alpha1\nkind: AssistantBinding\nmetadata: {name: helper}\n"
        "spec: {primary: {sourceRef: {name: plain}}, fallbacks: [{sourceRef: {name: opted}}]}\n",
    ])
    tiers = compile_config(load(text)).config.bindings[0].tiers
    assert [(t.source, t.allow_link_local) for t in tiers] == [("plain", False), ("opted", True)]


async def test_the_operator_catalog_fetch_is_guarded_too(port: int) -> None:
    """The operator's catalog GET carries the source's key: the same guard applies, and
    the source's status says why nothing was sent."""
    import aiohttp

    from switchyard.operator import catalog

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=GuardedResolver(FakeDNS()))) as session:
        url, outcome = await catalog.fetch(session, "openai-compatible", f"http://imds.test:{port}/v1", "sk-x", timeout_seconds=5)
        check = outcome.check(url, keyless=False)
        assert (check.credential, check.credential_reason) == ("False", "LinkLocalNotAllowed")
        assert "allowLinkLocal" in check.credential_message and not check.catalog_ready
        url, outcome = await catalog.fetch(session, "openai-compatible", f"http://api.test:{port}/v1", "sk-x", timeout_seconds=5)
        assert outcome.ok, outcome
