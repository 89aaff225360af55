"""A bare aiohttp pass-through: the practical floor of a Python proxy.

    python bench/passthrough.py --upstream http://127.0.0.1:PORT

Forwards every POST to the same path on the upstream over one pooled keep-alive
session, streams event streams chunk by chunk, and does nothing else: no parsing, no
routing, no metrics, no logging. uvloop, one process. Prints ``PORT <n>`` once listening.
"""

import argparse
import asyncio
import signal

import aiohttp
import uvloop
from aiohttp import web

SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


async def forward(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    async with request.app[SESSION].post(request.app["upstream"] + request.path_qs, data=body, headers=headers) as up:
        if up.content_type == "text/event-stream":
            out = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers["Content-Type"]})
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out
        return web.Response(body=await up.read(), status=up.status, content_type=up.content_type)


async def main(upstream: str) -> None:
    app = web.Application()
    app["upstream"] = upstream.rstrip("/")
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), timeout=aiohttp.ClientTimeout(total=None))
    app.router.add_post("/{path:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await app[SESSION].close()
    await runner.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--upstream", required=True, help="origin to forward to, e.g. http://127.0.0.1:4010")
    uvloop.run(main(p.parse_args().upstream))
