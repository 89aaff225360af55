"""A sidecar configured from files (``--config-dir``): the namespace's config Secret as the
kubelet mounts it, and the pod's labels from the downward API (``sidecar/files.py``).

The test plays the kubelet: it writes the volume the way its atomic writer does (a
timestamped directory, a ``..data`` symlink swapped in one rename, each key a symlink
through it), so the sidecar sees exactly what it sees in a pod."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from harness import KEYS, binding, load, sources
from switchyard.compiler import compile_config
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.sidecar.contract.config import CompiledConfig
from switchyard.sidecar.contract.delivery import BUNDLE_KEY, BundleEntry, ConfigBundle, Selector, assemble
from switchyard.sidecar.http import admin
from switchyard.simulator import Simulator

TOKEN = "admin-token-77aa"


def bundle_of(config: CompiledConfig, selectors: dict[str, dict[str, str]], generation: int | None = None) -> ConfigBundle:
    return ConfigBundle(namespace="default", bindings=[
        BundleEntry(selector=Selector(match_labels=selectors[b.name]), binding=b.model_copy(update={"generation": generation}))
        for b in config.bindings
    ]).with_version()


class Volume:
    """A Secret (or downward-API) volume as the kubelet's atomic writer lays it out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def write(self, files: dict[str, bytes]) -> None:
        self.n += 1
        ts = self.root / f"..2026_12_05_{self.n:04d}"
        ts.mkdir()
        for name, data in files.items():
            (ts / name).write_bytes(data)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(ts.name)
        os.replace(tmp, self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


def labels_text(labels: dict[str, str]) -> bytes:
    return "".join(f'{k}="{v}"\n' for k, v in sorted(labels.items())).encode()


async def chat(base: str, model: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        async with s.post(base + "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}) as r:
            return r.status, await r.json(content_type=None)


async def get(url: str, **kw: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s:
        async with s.request(kw.pop("method", "GET"), url, **kw) as r:
            return r.status, await r.text()


@pytest.fixture
def texts(sim: Simulator) -> str:
    return sources(sim) + "\n---\n" + binding("helper", "primary") + "\n---\n" + binding("other", "backup")


def compiled(texts: str) -> CompiledConfig:
    return compile_config(load(texts)).config


SELECT = {"helper": {"app": "chat"}, "other": {"app": "batch"}}


async def start(tmp: Path, **kw: Any) -> tuple[Sidecar, str, str]:
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=0.2,
                      config_dir=str(tmp / "config"), labels_file=str(tmp / "pod" / "labels"), watch_seconds=0.2, **kw)
    api, adm = await sidecar.start()
    return sidecar, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{adm}"


async def wait_for(what: str, probe: Any, timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while not await probe():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def test_a_sidecar_serves_the_mounted_secret_at_start_with_no_push_and_no_token(tmp_path: Path, texts: str, sim: Simulator) -> None:
    config = compiled(texts)
    Volume(tmp_path / "config").write({BUNDLE_KEY: bundle_of(config, SELECT).to_file()})
    Volume(tmp_path / "pod").write({"labels": labels_text({"app": "chat", "pod-template-hash": "x"})})
    sidecar, api, adm = await start(tmp_path)
    try:
        assert (await get(adm + "/readyz"))[0] == 200  # ready at once: nobody had to push
        status, body = await chat(api, "helper")
        assert status == 200, body
        assert (await chat(api, "other"))[0] >= 400  # not this pod's binding: another app's selector
        want = assemble(bundle_of(config, SELECT), {"app": "chat", "pod-template-hash": "x"})
        assert sidecar.runtime.snapshot.config.version == want.version
        code, text = await get(adm + "/admin/config", method="PUT", data=want.to_wire(),
                               headers={"Content-Type": "application/json"})
        assert code == 409 and "files" in text  # pushes are refused: the files are the truth
    finally:
        await sidecar.stop()


async def test_a_rotated_key_is_served_within_the_watch_interval_without_restart(tmp_path: Path, texts: str, sim: Simulator) -> None:
    vol = Volume(tmp_path / "config")
    vol.write({BUNDLE_KEY: bundle_of(compiled(texts), SELECT).to_file()})
    Volume(tmp_path / "pod").write({"labels": labels_text({"app": "chat"})})
    sidecar, api, adm = await start(tmp_path)
    try:
        assert (await chat(api, "helper"))[0] == 200
        rotated = "sk-primary-ROTATED-0c0c"
        sim.mount("primary").api_key = rotated
        vol.write({BUNDLE_KEY: bundle_of(compiled(texts.replace(f"primary: {KEYS['primary']}", f"primary: {rotated}")), SELECT).to_file()})

        async def served() -> bool:
            return (await chat(api, "helper"))[0] == 200

        took = await wait_for("the rotated key to be served", served)
        assert took < 2.0, took  # interval 0.2 s here; 1 s by default
        assert sim.requests("primary")[-1].headers["Authorization"] == f"Bearer {rotated}"
    finally:
        await sidecar.stop()


async def test_a_bad_file_keeps_the_previous_config_and_says_so_without_its_content(tmp_path: Path, texts: str, sim: Simulator) -> None:
    vol = Volume(tmp_path / "config")
    good = bundle_of(compiled(texts), SELECT).to_file()
    vol.write({BUNDLE_KEY: good})
    Volume(tmp_path / "pod").write({"labels": labels_text({"app": "chat"})})
    sidecar, api, adm = await start(tmp_path)
    try:
        before = sidecar.runtime.snapshot.config.version
        for bad in (good[: len(good) // 2], good.replace(b'"schema_version":1', b'"schema_version":99'),
                    good.replace(b'"auth":"bearer"', b'"auth":"' + KEYS["primary"].encode() + b'"')):
            vol.write({BUNDLE_KEY: bad})

            async def refused() -> bool:
                return sidecar.runtime.config_error is not None

            await wait_for("the bad file to be noticed", refused)
            assert sidecar.runtime.snapshot.config.version == before
            assert (await chat(api, "helper"))[0] == 200
            code, text = await get(adm + "/admin/status")  # open: no token needed, nothing secret
            assert code == 200 and '"config_error"' in text and '"config_source":"files"' in text.replace(" ", "")
            assert not any(k in text for k in KEYS.values())
            code, text = await get(adm + "/metrics")
            assert 'switchyard_config_updates_total{result="rejected"}' in text
            vol.write({BUNDLE_KEY: good})

            async def healed() -> bool:
                return sidecar.runtime.config_error is None

            await wait_for("the good file again", healed)
    finally:
        await sidecar.stop()


async def test_no_secret_yet_means_not_ready_until_it_appears_and_labels_decide_the_bindings(tmp_path: Path, texts: str, sim: Simulator) -> None:
    labels = Volume(tmp_path / "pod")
    labels.write({"labels": labels_text({"app": "batch"})})
    (tmp_path / "config").mkdir()  # optional volume, Secret absent: an empty directory
    sidecar, api, adm = await start(tmp_path)
    try:
        assert (await get(adm + "/readyz"))[0] == 503
        Volume(tmp_path / "config").write({BUNDLE_KEY: bundle_of(compiled(texts), SELECT).to_file()})

        async def ready() -> bool:
            return (await get(adm + "/readyz"))[0] == 200

        await wait_for("the Secret to be read", ready)
        assert [b.name for b in sidecar.runtime.snapshot.config.bindings] == ["other"]
        labels.write({"labels": labels_text({"app": "chat"})})  # relabelled: another binding selects it

        async def relabelled() -> bool:
            return [b.name for b in sidecar.runtime.snapshot.config.bindings] == ["helper"]

        await wait_for("the new labels to apply", relabelled)
    finally:
        await sidecar.stop()


async def test_a_new_generation_puts_disabled_tiers_back_in_service(tmp_path: Path, texts: str, sim: Simulator) -> None:
    from switchyard.sidecar.routing import breaker

    vol = Volume(tmp_path / "config")
    config = compiled(texts)
    vol.write({BUNDLE_KEY: bundle_of(config, SELECT, generation=1).to_file()})
    Volume(tmp_path / "pod").write({"labels": labels_text({"app": "chat"})})
    sidecar, api, adm = await start(tmp_path)
    try:
        rt = sidecar.runtime
        b = rt.snapshot.by_name["helper"]
        h = rt.health(b, b.tiers[0])
        breaker.disable(h, "auth refused", b.tiers[0].fingerprint(), time.time())
        vol.write({BUNDLE_KEY: bundle_of(config, SELECT, generation=1).to_file()})  # same generation: stays out
        await asyncio.sleep(0.5)
        assert rt.health(rt.snapshot.by_name["helper"], b.tiers[0]).state.value == "disabled"
        vol.write({BUNDLE_KEY: bundle_of(config, SELECT, generation=2).to_file()})

        async def back() -> bool:
            nb = rt.snapshot.by_name["helper"]
            return rt.health(nb, nb.tiers[0]).state.value == "closed"

        await wait_for("the reset through the config", back)
    finally:
        await sidecar.stop()


def _request(method: str, path: str, peer: str, headers: dict[str, str] | None = None) -> Any:
    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (peer, 40000) if name == "peername" else default

        def is_closing(self) -> bool:
            return False

    app = Sidecar(listen=Listen("127.0.0.1", 0, "0.0.0.0", 0), config_dir="/nonexistent")._admin
    return make_mocked_request(method, path, headers=headers or {"Host": "10.0.0.5:4001"}, app=app, transport=Transport())


@pytest.mark.parametrize(("method", "path", "peer", "allowed"), [
    ("GET", "/admin/status", "10.0.0.9", True),  # read-only, no secret: the operator reads it with no token
    ("POST", "/admin/bindings/helper/reset", "10.0.0.9", False),
    ("POST", "/admin/bindings/helper/test", "10.0.0.9", False),
    ("PUT", "/admin/config", "10.0.0.9", False),
    ("POST", "/admin/bindings/helper/reset", "127.0.0.1", True),  # the pod itself
    ("POST", "/admin/bindings/helper/test", "::1", True),
])
async def test_without_a_token_only_status_answers_off_loopback(method: str, path: str, peer: str, allowed: bool) -> None:
    async def handler(request: Any) -> Any:
        from aiohttp import web
        return web.Response(text="reached")

    resp = await admin.require_token(_request(method, path, peer), handler)
    assert (resp.status == 200) is allowed, (resp.status, resp.text)
    if not allowed:
        assert resp.status == 403
