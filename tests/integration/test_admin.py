"""The admin listener: config push, status, prompt-free test, token, health."""

from __future__ import annotations

import aiohttp
import pytest

from harness import KEYS, GatewayFactory, binding
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.simulator import Simulator


async def req(method: str, url: str, **kw) -> tuple[int, dict | str]:
    async with aiohttp.ClientSession() as s:
        if "data" in kw:  # what the operator sends (the listener refuses other body types)
            kw.setdefault("headers", {"Content-Type": "application/json"})
        async with s.request(method, url, **kw) as r:
            try:
                return r.status, await r.json(content_type=None)
            except ValueError:
                return r.status, await r.text()


async def test_status_shows_chain_and_breakers_but_no_credential(gateway: GatewayFactory) -> None:
    gw = await gateway(binding("helper", "primary", "backup", "nowhere"))
    status, body = await req("GET", gw.admin + "/admin/status")
    assert status == 200 and body["configured"] and body["version"]
    (b,) = body["bindings"]
    assert [t["source"] for t in b["tiers"]] == ["primary", "backup", "nowhere"]
    assert b["tiers"][2]["resolvable"] is False and b["tiers"][2]["problem"].startswith("SourceNotFound")
    assert all(t["breaker"]["state"] == "closed" for t in b["tiers"])
    text = str(body)
    assert not any(k in text for k in KEYS.values())


async def test_binding_test_checks_every_tier_without_sending_a_prompt(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "nowhere"))
    status, body = await req("POST", gw.admin + "/admin/bindings/helper/test")
    assert status == 200 and body["prompt_sent"] is False and body["ok"] is True
    assert [t["ok"] for t in body["tiers"]] == [True, False]
    assert body["tiers"][1]["checks"]["source_resolved"] is False
    assert sum(sim.count(m) for m in KEYS) == 0
    status, _ = await req("POST", gw.admin + "/admin/bindings/ghost/test")
    assert status == 404


async def test_config_push_is_atomic_idempotent_and_versioned(gateway: GatewayFactory) -> None:
    gw = await gateway(binding("helper", "primary"))
    config = gw.runtime.snapshot.config
    wire = config.to_wire()
    status, body = await req("PUT", gw.admin + "/admin/config", data=wire)
    assert (status, body["applied"]) == (200, False)
    renamed = config.model_copy(update={"bindings": [config.bindings[0].model_copy(update={"aliases": ["other"]})]}).with_version()
    status, body = await req("PUT", gw.admin + "/admin/config", data=renamed.to_wire())
    assert (status, body["applied"], body["version"]) == (200, True, renamed.version)
    assert gw.runtime.snapshot.resolve("other") is not None and gw.runtime.snapshot.resolve("helper") is None
    # credentials travel on the push and arrive intact
    assert gw.runtime.snapshot.config.bindings[0].tiers[0].credential.get_secret_value() == KEYS["primary"]


@pytest.mark.parametrize(
    ("data", "status"),
    [(b"{", 400), (b'{"schema_version": 99, "bindings": []}', 409), (b'{"schema_version": 1, "bindings": [{"name": 3}]}', 400)],
)
async def test_a_bad_push_is_refused_and_the_old_config_keeps_serving(gateway: GatewayFactory, data: bytes, status: int) -> None:
    gw = await gateway(binding("helper", "primary"))
    before = gw.runtime.snapshot.config.version
    got, body = await req("PUT", gw.admin + "/admin/config", data=data)
    assert got == status and "error" in body
    assert gw.runtime.snapshot.config.version == before


async def test_token_is_required_when_configured_and_health_stays_open() -> None:
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), admin_token="s3cret-admin")
    _, admin = await sidecar.start()
    base = f"http://127.0.0.1:{admin}"
    try:
        assert (await req("GET", base + "/admin/status"))[0] == 200  # read-only, nothing secret: open
        assert (await req("POST", base + "/admin/bindings/x/reset"))[0] == 401
        assert (await req("POST", base + "/admin/bindings/x/reset", headers={"Authorization": "Bearer wrong"}))[0] == 401
        assert (await req("POST", base + "/admin/bindings/x/reset", headers={"Authorization": "Bearer s3cret-admin"}))[0] == 503
        assert (await req("PUT", base + "/admin/config", data=b"{}"))[0] == 401
        assert (await req("GET", base + "/healthz"))[0] == 200
        assert (await req("GET", base + "/metrics"))[0] == 200
    finally:
        await sidecar.stop()


def test_an_admin_listener_off_loopback_needs_a_token() -> None:
    with pytest.raises(ValueError, match="needs a token"):
        Sidecar(listen=Listen("127.0.0.1", 0, "0.0.0.0", 0))
