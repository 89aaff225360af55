"""`switchyard simulate` (simulator/cli.py): options, fault specs, and a real process.

The README demo depends on a CLI-run simulator failing deterministically, so these
tests run `run(args)` in-process on an OS-chosen port and `python -m
switchyard.simulator` as a subprocess, drive them over HTTP, and stop them with
cancellation or SIGINT — every wait bounded by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from switchyard.simulator import cli
from switchyard.simulator.app import SIM_STATE

TIMEOUT = aiohttp.ClientTimeout(total=10)
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


def test_default_mounts_are_the_three_flavours() -> None:
    mounts = cli.build_mounts(parse())
    assert [(m.name, m.flavour, m.prefix) for m in mounts] == [
        ("openai", "openai", "/openai"), ("anthropic", "anthropic", "/anthropic"), ("gemini", "gemini", "/gemini"),
    ]


def test_flavours_mounts_keys_models(monkeypatch) -> None:
    monkeypatch.setenv("SIM_TEST_KEY", "from-env")
    mounts = cli.build_mounts(parse(
        "--flavour", "openrouter", "--mount", "primary=openai@/", "--mount", "backup=anthropic@/b",
        "--api-key", "primary=env:SIM_TEST_KEY", "--api-key", "backup=plain", "--models", "backup=claude-a,claude-b",
        "--reasoning-field", "openrouter=reasoning",
    ))
    by_name = {m.name: m for m in mounts}
    assert (by_name["openrouter"].flavour, by_name["openrouter"].prefix, by_name["openrouter"].reasoning_field) == ("openai", "/openrouter", "reasoning")
    assert (by_name["primary"].prefix, by_name["primary"].api_key) == ("", "from-env")
    assert (by_name["backup"].prefix, by_name["backup"].api_key, by_name["backup"].models) == ("/b", "plain", ["claude-a", "claude-b"])


@pytest.mark.parametrize("argv, message", [
    (("--mount", "x=cohere"), "not one of"),
    (("--api-key", "nobody=k"), "not a mount"),
    (("--api-key", "openai=env:SIM_TEST_UNSET_VARIABLE"), "not set"),
    (("--mount", "broken"), "MOUNT=VALUE"),
])
def test_bad_options_are_explained(argv, message) -> None:
    with pytest.raises(ValueError, match=message):
        cli.build_mounts(parse(*argv))


async def test_run_refuses_a_bad_fault_with_exit_code_2(capsys) -> None:
    assert await cli.run(parse("--port", "0", "--fault", "openai=teapot")) == 2
    assert "unknown fault kind" in capsys.readouterr().err
    assert await cli.run(parse("--port", "0", "--fault", "429")) == 2
    assert "name the mount" in capsys.readouterr().err


async def test_run_serves_with_cli_faults_until_cancelled(http, capsys) -> None:
    ready: asyncio.Future[tuple[web.Application, str]] = asyncio.get_running_loop().create_future()
    args = parse("--port", "0", "--quiet", "--chunks", "3",
                 "--fault", "openai=429:every=3:retry-after=5", "--fault", "anthropic=529:times=1")
    task = asyncio.create_task(cli.run(args, on_ready=lambda app, origin: ready.set_result((app, origin))))
    app, origin = await asyncio.wait_for(ready, 10)
    statuses = []
    for _ in range(6):
        async with http.post(origin + "/openai/v1/chat/completions", json=CHAT) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert response.headers["Retry-After"] == "5"
    assert statuses == [200, 200, 429, 200, 200, 429]
    anthropic = {"model": "c", "max_tokens": 8, "messages": CHAT["messages"]}
    headers = {"anthropic-version": "2023-06-01"}
    assert [(await http.post(origin + "/anthropic/v1/messages", json=anthropic, headers=headers)).status for _ in range(2)] == [529, 200]
    index = await (await http.get(origin + "/_sim/")).json()
    assert index["mounts"][0]["faults"][0]["hits"] == 2
    assert app[SIM_STATE].mounts["openai"].chunks == 3
    out = capsys.readouterr().out
    assert f"listening on {origin}" in out and f"base URL {origin}/openai/v1" in out
    assert "429 every 3 requests (retry-after=5)" in out and f"control API {origin}/_sim/" in out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_simulate_as_a_process_prints_its_url_and_stops_on_sigint(http) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchyard.simulator", "--port", "0", "--flavour", "gemini", "--fault", "gemini=503:every=2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert first.startswith("switchyard simulate: listening on http://127.0.0.1:")
        origin = first.rsplit(" ", 1)[1].strip()
        url = origin + "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
        body = {"contents": [{"parts": [{"text": "hi"}]}]}
        assert [(await http.post(url, json=body)).status for _ in range(4)] == [200, 503, 200, 503]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    assert b"POST /gemini/v1beta/models/gemini-2.5-flash:generateContent -> 503 [fault:503]" in stderr
    assert b"generateContent -> 200 [ok]" in stderr


def test_the_responses_flavour_is_mountable() -> None:
    mounts = cli.build_mounts(parse("--flavour", "openai-responses", "--mount", "codex=openai-responses@/c"))
    assert [(m.name, m.flavour, m.prefix) for m in mounts] == [
        ("openai-responses", "openai-responses", "/openai-responses"), ("codex", "openai-responses", "/c"),
    ]
