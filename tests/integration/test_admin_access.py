"""The admin listener's access rules: a token is required to bind it anywhere but
loopback (unless the config comes from files); with a token, every /admin/* route that
acts refuses a request without it (compared in constant time); the open routes
(/admin/status, /healthz, /readyz, /metrics) carry no secret."""

from __future__ import annotations

import hmac
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from harness import KEYS, binding, load, sources
from switchyard.compiler import compile_config
from switchyard.sidecar.http import admin
from switchyard.sidecar.app import AdminTokenRequired, Listen, Sidecar, is_loopback
from switchyard.simulator import Simulator

TOKEN = "admin-token-0b7c2e"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_token(host: str) -> None:
    assert is_loopback(host)
    Sidecar(listen=Listen("127.0.0.1", 0, host, 0))


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.0.0.7", "192.168.1.2", "pod.example", "LOCALHOST.", "::ffff:127.0.0.1"])
def test_anything_else_needs_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(AdminTokenRequired, match="needs a token"):
        Sidecar(listen=Listen("127.0.0.1", 0, host, 0))
    Sidecar(listen=Listen("127.0.0.1", 0, host, 0), admin_token=TOKEN)  # with one it starts


def test_the_cli_refuses_in_one_line_without_a_trace() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_ADMIN_TOKEN"}
    cp = subprocess.run([str(Path(sys.executable).with_name("switchyard")), "sidecar", "--port", "0", "--admin-port", "0"],
                        capture_output=True, text=True, timeout=30, env=env)
    assert cp.returncode == 2 and "needs a token" in cp.stderr and "Traceback" not in cp.stderr


async def test_off_loopback_every_admin_route_needs_the_token_and_open_routes_leak_nothing(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(admin.hmac, "compare_digest", spy)
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "0.0.0.0", 0), admin_token=TOKEN)
    sidecar.load(compile_config(load(sources(sim) + "\n---\n" + binding("helper", "primary"))).config)
    _, port = await sidecar.start()
    base = f"http://127.0.0.1:{port}"
    wire = sidecar.runtime.snapshot.config.to_wire()
    routes = [("PUT", "/admin/config", wire), ("POST", "/admin/bindings/helper/test", None),
              ("POST", "/admin/bindings/helper/reset", None), ("GET", "/admin/nothing-here", None)]
    try:
        async with aiohttp.ClientSession() as s:
            for bad in (None, "Bearer wrong", f"bearer {TOKEN}", f"Bearer  {TOKEN}", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"):
                headers = {"Authorization": bad} if bad is not None else {}
                headers["Content-Type"] = "application/json"
                for method, path, data in routes:
                    async with s.request(method, base + path, data=data, headers=headers) as r:
                        text = await r.text()
                        assert r.status == 401, (bad, method, path, r.status)
                        assert "primary" not in text and not any(k in text for k in KEYS.values())
            # /admin/status is read-only and holds no secret: it needs no token (the
            # operator reads health with nothing secret on the wire)
            async with s.get(base + "/admin/status") as r:
                text = await r.text()
                assert r.status == 200 and "primary" in text
                assert not any(k in text for k in KEYS.values()) and TOKEN not in text
            for path in ("/healthz", "/readyz", "/metrics"):
                async with s.get(base + path) as r:
                    text = await r.text()
                    assert r.status == 200
                    assert not any(k in text for k in KEYS.values()) and TOKEN not in text
                    assert sim.base_url("primary") not in text  # no config detail either
    finally:
        await sidecar.stop()
    assert compared, "the token was not compared with hmac.compare_digest"
