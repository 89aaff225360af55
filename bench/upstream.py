"""The benchmark's upstream: Switchyard's simulator with the mounts every path shares.

    python bench/upstream.py --stream-chunks 200 --stream-chunk-delay-ms 1

Prints ``PORT <n>`` once listening (the OS picks the port), then serves until SIGTERM.
Mounts (all on one loopback port, so every path in a run talks to the same process):

    /openai     OpenAI chat completions (the non-streaming answer every path measures)
    /anthropic  Anthropic messages (Switchyard's OpenAI-in/Anthropic-out path)
    /flaky      OpenAI wire format answering 429 to every request, with no Retry-After
                and no rate-limit headers (so the gateway tries it each time: the cost of
                one fallback hop, not of a skip)
    /stream     OpenAI wire format, ``--stream-chunks`` chunks ``--stream-chunk-delay-ms``
                apart (the streaming figures)

Nothing is recorded (``record_limit=0``) and no access log is written: the upstream
should cost as little as possible, since it shares core 0 with the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from switchyard.simulator import Mount, Simulator


async def main(args: argparse.Namespace) -> None:
    sim = Simulator(
        Mount("openai"),
        Mount("anthropic"),
        Mount("flaky", flavour="openai"),
        Mount("stream", flavour="openai", chunks=args.stream_chunks, chunk_delay_ms=args.stream_chunk_delay_ms),
        record_limit=0,
    )
    sim.fault("flaky", 429, persistent=True)
    await sim.start()
    print(f"PORT {sim.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stream-chunks", type=int, default=200)
    p.add_argument("--stream-chunk-delay-ms", type=float, default=1.0)
    ns = p.parse_args()
    import uvloop

    uvloop.run(main(ns))
