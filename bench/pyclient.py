"""The bench's own HTTP clients: the streaming probe, and a load generator for machines
without ``wrk``.

    python bench/pyclient.py stream --url URL --body FILE --count N
    python bench/pyclient.py load   --url URL --body FILE --duration S (--rate R | --connections C)

Both print one ``BENCH {json}`` line, like ``wrk_post.lua``. Both speak HTTP/1.1 over
raw asyncio transports (uvloop when present): no HTTP library sits between the clock
and the socket, and a request costs the client a few tens of microseconds.

``stream`` sends ``count`` streaming requests one after another, each on a new
connection (``Connection: close``, so the end of the answer is the end of the
connection), and times the first content byte (the first ``"content":"<non-empty>``
of an SSE frame: the envelope frames that carry no text do not count, nor do response
headers, which a gateway may hold back until content arrives) and the last byte. It
also counts the socket reads that carried data: a proxy that buffered a stream would
deliver it in a few large reads.

``load`` keeps ``connections`` keep-alive connections busy (fixed concurrency), or sends
at ``rate`` requests per second on an absolute schedule over up to ``connections``
connections (fixed rate; a request's latency is measured from when it is written, as
wrk's is). Responses must carry Content-Length or chunked transfer encoding.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from urllib.parse import urlsplit

import orjson

CONTENT = re.compile(rb'"(?:content|text)"\s*:\s*"[^"]')
AUTH = "Bearer sk-bench-0123456789abcdef0123456789abcdef"


def _request(url: str, body: bytes, *, close: bool) -> tuple[str, int, bytes]:
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    head = (
        f"POST {u.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: {AUTH}\r\nContent-Length: {len(body)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return host, port, head.encode() + body


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# ------------------------------------------------------------------------ stream


class _StreamOnce(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[tuple[float, float, int, bytes]], t0: float) -> None:
        self.done, self.t0 = done, t0
        self.buf = bytearray()
        self.first: float | None = None
        self.reads = 0
        self.body_at = -1

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        self.buf += data
        if self.first is None:
            if self.body_at < 0:
                self.body_at = self.buf.find(b"\r\n\r\n")
            if self.body_at >= 0 and CONTENT.search(self.buf, self.body_at):
                self.first = time.perf_counter()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            end = time.perf_counter()
            first = self.first if self.first is not None else end
            self.done.set_result((first - self.t0, end - self.t0, self.reads, bytes(self.buf[:12])))


async def stream(url: str, body: bytes, count: int, timeout: float) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    host, port, raw = _request(url, body, close=True)
    ttfb: list[float] = []
    total: list[float] = []
    reads: list[int] = []
    bad = 0
    for _ in range(count):
        done: asyncio.Future[tuple[float, float, int, bytes]] = loop.create_future()
        t0 = time.perf_counter()
        transport, _p = await loop.create_connection(lambda: _StreamOnce(done, t0), host, port)  # noqa: B023 (called at once)
        transport.write(raw)
        first, end, n, head = await asyncio.wait_for(done, timeout)
        transport.close()
        if not head.startswith(b"HTTP/1.1 200"):
            bad += 1
            continue
        ttfb.append(first)
        total.append(end)
        reads.append(n)
    return {
        "streams": len(ttfb),
        "errors": bad,
        "ttfb_p50_us": round(_pct(ttfb, 50) * 1e6),
        "ttfb_mean_us": round(sum(ttfb) / len(ttfb) * 1e6) if ttfb else 0,
        "total_p50_us": round(_pct(total, 50) * 1e6),
        "reads_p50": _pct([float(r) for r in reads], 50),
    }


# -------------------------------------------------------------------------- load


class _Conn(asyncio.Protocol):
    def __init__(self, gen: _Load) -> None:
        self.gen = gen
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.sent = 0.0
        self.need = -1  # bytes of the whole response once the head is parsed; -2: chunked

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.gen.idle.append(self)
        self.gen.kick()

    def send(self) -> None:
        self.sent = time.perf_counter()
        self.need = -1
        assert self.transport is not None
        self.transport.write(self.gen.raw)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need == -1:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).lower()
                self.status = int(head[9:12])
                m = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
                if m:
                    self.need = end + 4 + int(m.group(1))
                elif b"transfer-encoding: chunked" in head:
                    self.need = -2
                    self.body_from = end + 4
                else:
                    raise RuntimeError("response without Content-Length or chunked encoding")
            if self.need == -2:
                end = self.buf.find(b"\r\n0\r\n\r\n", self.body_from - 2)
                if end < 0:
                    return
                size = end + 7
            else:
                if len(self.buf) < self.need:
                    return
                size = self.need
            del self.buf[:size]
            self.gen.finished(self, time.perf_counter() - self.sent)
            if not self.buf:
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)


class _Load:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.idle: list[_Conn] = []
        self.latencies: list[float] = []
        self.errors_status = 0
        self.errors_conn = 0
        self.backlog = 0
        self.running = True
        self.paced = False

    def kick(self) -> None:
        while self.running and self.idle and (self.backlog > 0 or not self.paced):
            if self.paced:
                self.backlog -= 1
            self.idle.pop().send()

    def finished(self, conn: _Conn, latency: float) -> None:
        if not self.running:
            return
        self.latencies.append(latency)
        if conn.status >= 400:
            self.errors_status += 1
        self.idle.append(conn)
        self.kick()

    def lost(self, conn: _Conn) -> None:
        if self.running:
            self.errors_conn += 1
        if conn in self.idle:
            self.idle.remove(conn)


async def load(url: str, body: bytes, duration: float, connections: int, rate: float | None) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    host, port, raw = _request(url, body, close=False)
    gen = _Load(raw)
    gen.paced = rate is not None
    for _ in range(connections):
        await loop.create_connection(lambda: _Conn(gen), host, port)
    t0 = time.perf_counter()
    stop_at = t0 + duration
    if rate is None:
        gen.kick()
        await asyncio.sleep(duration)
    else:
        interval, k = 1.0 / rate, 0
        while (slot := t0 + k * interval) < stop_at:
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            gen.backlog += 1
            gen.kick()
            k += 1
    gen.running = False
    elapsed = time.perf_counter() - t0
    lat = gen.latencies
    return {
        "requests": len(lat),
        "duration_us": round(elapsed * 1e6),
        "p50_us": round(_pct(lat, 50) * 1e6),
        "p90_us": round(_pct(lat, 90) * 1e6),
        "p99_us": round(_pct(lat, 99) * 1e6),
        "max_us": round(max(lat, default=0) * 1e6),
        "mean_us": round(sum(lat) / len(lat) * 1e6, 1) if lat else 0.0,
        "err_connect": gen.errors_conn,
        "err_read": 0,
        "err_write": 0,
        "err_status": gen.errors_status,
        "err_timeout": 0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stream")
    s.add_argument("--url", required=True)
    s.add_argument("--body", required=True)
    s.add_argument("--count", type=int, default=10)
    s.add_argument("--timeout", type=float, default=30.0)
    ld = sub.add_parser("load")
    ld.add_argument("--url", required=True)
    ld.add_argument("--body", required=True)
    ld.add_argument("--duration", type=float, default=5.0)
    ld.add_argument("--connections", type=int, default=16)
    ld.add_argument("--rate", type=float)
    a = p.parse_args(argv)
    with open(a.body, "rb") as f:
        body = f.read()
    if a.cmd == "stream":
        coro = stream(a.url, body, a.count, a.timeout)
    else:
        coro = load(a.url, body, a.duration, a.connections, a.rate)
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    sys.stdout.write("BENCH " + orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
