"""`switchyard demo`: the gateway on examples/demo, backed by simulated providers.

Starts the simulator (OpenAI, Anthropic and Gemini wire formats on 127.0.0.1:4010,
the simulated OpenAI answering 429 on every third request), then the gateway on the
demo manifests, takes a short tour of requests that shows a fallback, a tier kept out
by Retry-After and an unbound binding, and keeps serving until Ctrl-C. Needs no API
key and nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from switchyard.cli import standalone
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.simulator import Simulator

DEMO_DIR = Path("examples/demo")


def _find_demo(path: str | None) -> Path | None:
    candidates = [Path(path)] if path else [DEMO_DIR, Path(__file__).resolve().parents[2] / DEMO_DIR]
    return next((p for p in candidates if p.is_dir()), None)


async def _tour(api: str) -> None:
    print("\nA short tour (plain HTTP, as any OpenAI client would send it):\n", flush=True)
    async with aiohttp.ClientSession() as s:
        for i in range(1, 5):
            body = {"model": "assistant", "messages": [{"role": "user", "content": f"hello #{i}"}]}
            async with s.post(f"{api}/v1/chat/completions", json=body) as r:
                data = await r.json()
                h = r.headers
                text = data["choices"][0]["message"]["content"] if r.status == 200 else data["error"]["message"]
                print(f"  request {i}: HTTP {r.status} served by tier {h.get('x-switchyard-tier')} "
                      f"({h.get('x-switchyard-source')}/{h.get('x-switchyard-model')})")
                if "x-switchyard-fallback-reason" in h:
                    print(f"             x-switchyard-fallback-reason: {h['x-switchyard-fallback-reason']}")
                print(f"             {text[:90]}")
        body = {"model": "retired", "messages": [{"role": "user", "content": "hi"}]}
        async with s.post(f"{api}/v1/chat/completions", json=body) as r:
            data = await r.json()
            print(f"  unbound binding 'retired': HTTP {r.status} {data['error']['message']}")


async def run(args: argparse.Namespace) -> int:
    folder = _find_demo(getattr(args, "file", None))
    if folder is None:
        print("switchyard demo: examples/demo not found; run it from the repository root", file=sys.stderr)
        return 2
    async with Simulator(port=args.sim_port) as sim:
        sim.fault("openai", "429", every=3, retry_after=2)
        loaded = standalone.load(folder)
        if loaded.result is None:
            for e in loaded.errors:
                print(f"error: {e}", file=sys.stderr)
            return 2
        token_file = standalone.admin_token_path()
        sidecar = Sidecar(listen=Listen("127.0.0.1", args.port, "127.0.0.1", args.admin_port),
                          admin_token=standalone.local_admin_token(token_file))
        sidecar.load(loaded.result.config)
        api_port, admin_port = await sidecar.start()
        api = f"http://127.0.0.1:{api_port}"
        print(f"Simulated providers on {sim.origin} (/openai answers 429 on every third request)")
        print(f"Switchyard on {api} (admin http://127.0.0.1:{admin_port}), bindings from {folder}:")
        for line in standalone.report_lines(loaded.result):
            print("  " + line)
        if not args.no_tour:
            await _tour(api)
        print(
            f"""
Try it yourself:
  curl -si {api}/v1/chat/completions -H 'content-type: application/json' \\
       -d '{{"model":"assistant","messages":[{{"role":"user","content":"hi"}}]}}' | grep -i x-switchyard
  curl -s http://127.0.0.1:{admin_port}/admin/status -H "Authorization: Bearer $(cat {token_file})" | python3 -m json.tool
  ANTHROPIC_BASE_URL={api} ANTHROPIC_API_KEY=unused claude -p hello   # Claude Code, if installed
Ctrl-C to stop.""",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await sidecar.stop()
    return 0
