"""`switchyard simulate`: run the simulated providers from a shell.

The main `switchyard` CLI exposes this module as its `simulate` subcommand through
`add_arguments(parser)` and `run(args)`; `main(argv)` (also `python -m
switchyard.simulator`) runs it standalone. It serves until SIGINT/SIGTERM, prints the
URLs to point a ModelSource or an SDK at, and logs one line per request (method, path
without its query — Gemini keys can ride in it — status, time).

    switchyard simulate                                   # openai, anthropic, gemini on :4010
    switchyard simulate --port 0 --chunks 200 --chunk-delay-ms 5
    switchyard simulate --fault openai=429:every=3:retry-after=5
    switchyard simulate --mount primary=openai --mount backup=anthropic \\
        --fault primary=503:rate=0.5:seed=7 --api-key backup=env:SIM_KEY

Fault specs are `MOUNT=KIND[:KEY=VALUE]...` (see faults.py and docs/simulate.md);
from the command line a fault without `times=N` is persistent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .app import FLAVOURS, PROVIDERS, RECORD_KEY, SIM_STATE, Mount, build_app
from .faults import parse_fault_spec

__all__ = ["DEFAULT_PORT", "add_arguments", "build_mounts", "main", "run"]

#: The port `switchyard simulate` listens on unless told otherwise (0: the OS picks);
#: the demo manifests (examples/demo) point at it.
DEFAULT_PORT = 4010

_log = logging.getLogger("switchyard.simulate")


class _AccessLogger(AbstractAccessLogger):
    """One line per request, without the query string (it may hold a Gemini key), with
    what the simulator did: `ok`, `scripted`, `fault:<kind>`, `auth`... (a `reset`
    or a `hang` shows the status of a head that was never sent)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        record = request.get(RECORD_KEY)
        outcome = f" [{record.outcome}]" if record is not None else ""
        self.logger.info("%s %s -> %s%s (%.1f ms)", request.method, request.path, response.status, outcome, time * 1000)


_CHOICES = sorted({*PROVIDERS, *FLAVOURS})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `switchyard simulate`'s options to `parser`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument(
        "--flavour", "--flavor", dest="flavours", action="append", choices=_CHOICES, metavar="PROVIDER",
        help="mount this provider at /PROVIDER (repeatable; default: openai, anthropic, gemini); "
        "one of: " + ", ".join(_CHOICES) + " (openai-responses: the OpenAI Responses API)",
    )
    parser.add_argument(
        "--mount", dest="mounts", action="append", default=[], metavar="NAME=PROVIDER[@PREFIX]",
        help="mount PROVIDER's wire format as NAME at PREFIX (default /NAME; '@/' is the root), "
        "e.g. primary=openai, backup=anthropic@/b (repeatable)",
    )
    parser.add_argument(
        "--api-key", dest="api_keys", action="append", default=[], metavar="MOUNT=KEY|MOUNT=env:VAR",
        help="require this API key on MOUNT (env:VAR reads it from the environment, keeping it off the command line)",
    )
    parser.add_argument(
        "--models", dest="models", action="append", default=[], metavar="MOUNT=M1,M2",
        help="accept only these models on MOUNT (others get the provider's 404) and list them",
    )
    parser.add_argument(
        "--reasoning-field", dest="reasoning_fields", action="append", default=[], metavar="MOUNT=FIELD",
        help="OpenAI-style MOUNT sends thinking in FIELD (reasoning_content, reasoning)",
    )
    parser.add_argument("--chunks", type=int, default=4, help="stream chunks per answer (default: 4)")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay before each stream chunk (default: 0)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay before each response head (default: 0)")
    parser.add_argument(
        "--fault", dest="faults", action="append", default=[], metavar="MOUNT=KIND[:KEY=VALUE...]",
        help="inject a fault, e.g. openai=429:every=3:retry-after=5, anthropic=529:rate=0.3:seed=7, "
        "gemini=hang:max-seconds=30, openai=reset:after-chunks=2, openai=500:times=2 (repeatable)",
    )
    parser.add_argument("--hang-max-seconds", type=float, default=60.0, help="longest a hang lasts (default: 60)")
    parser.add_argument("--record-limit", type=int, default=1000, help="requests kept per mount for /_sim/ (default: 1000)")
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")


def _pairs(values: Sequence[str], what: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"{what} {value!r}: expected MOUNT=VALUE")
        out.append((name, rest))
    return out


def build_mounts(args: argparse.Namespace) -> list[Mount]:
    """The mounts that `args` ask for (raises ValueError with a readable message)."""
    specs: dict[str, dict[str, Any]] = {}
    for provider in args.flavours or ([] if args.mounts else ["openai", "anthropic", "gemini"]):
        specs[provider] = {"name": provider}
    for name, rest in _pairs(args.mounts, "--mount"):
        flavour, at, prefix = rest.partition("@")
        if flavour not in _CHOICES:
            raise ValueError(f"--mount {name}={rest}: {flavour!r} is not one of {', '.join(_CHOICES)}")
        specs[name] = {"name": name, "flavour": flavour, **({"prefix": "" if prefix == "/" else prefix} if at else {})}
    for name, key in _pairs(args.api_keys, "--api-key"):
        if name not in specs:
            raise ValueError(f"--api-key names {name!r}, which is not a mount")
        if key.startswith("env:"):
            value = os.environ.get(key[4:])
            if not value:
                raise ValueError(f"--api-key {name}=env:{key[4:]}: the environment variable is not set")
            key = value
        specs[name]["api_key"] = key
    for name, models in _pairs(args.models, "--models"):
        if name not in specs:
            raise ValueError(f"--models names {name!r}, which is not a mount")
        specs[name]["models"] = [m for m in models.split(",") if m]
    for name, field in _pairs(args.reasoning_fields, "--reasoning-field"):
        if name not in specs:
            raise ValueError(f"--reasoning-field names {name!r}, which is not a mount")
        specs[name]["reasoning_field"] = field
    return [Mount(**spec) for spec in specs.values()]


def _build(args: argparse.Namespace) -> web.Application:
    if args.chunks < 1:
        raise ValueError("--chunks must be at least 1")
    app = build_app(
        build_mounts(args), chunks=args.chunks, chunk_delay_ms=args.chunk_delay_ms, delay_ms=args.delay_ms,
        record_limit=args.record_limit, hang_max_seconds=args.hang_max_seconds,
    )
    state = app[SIM_STATE]
    for spec in args.faults:
        name, fault = parse_fault_spec(spec)
        if name is None:
            if len(state.mounts) != 1:
                raise ValueError(f"--fault {spec!r}: name the mount (MOUNT=KIND...): {', '.join(state.mounts)}")
            name = next(iter(state.mounts))
        if name not in state.mounts:
            raise ValueError(f"--fault {spec!r}: no mount named {name!r}; mounts: {', '.join(state.mounts)}")
        state.mounts[name].faults.add(fault)
    return app


async def run(args: argparse.Namespace, *, on_ready: Callable[[web.Application, str], None] | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or cancellation). Returns the exit code.
    `on_ready(app, origin)` is called once listening (tests use it to learn the port)."""
    try:
        app = _build(args)
    except ValueError as exc:
        print(f"switchyard simulate: {exc}", file=sys.stderr)
        return 2
    if not args.quiet and not _log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        _log.addHandler(handler)
        _log.setLevel(logging.INFO)
        _log.propagate = False
    access: dict[str, Any] = {"access_log": None} if args.quiet else {"access_log_class": _AccessLogger, "access_log": _log}
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, **access)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        try:
            await site.start()
        except OSError as exc:
            print(f"switchyard simulate: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        host, port = runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        origin = f"http://{host}:{port}"
        state = app[SIM_STATE]
        lines = [f"switchyard simulate: listening on {origin}"]
        width = max(len(n) for n in state.mounts)
        for ms in state.mounts.values():
            key = "  (API key required)" if ms.api_key else ""
            lines.append(f"  {ms.name:<{width}}  {ms.wire.flavour:<9}  base URL {origin}{ms.base_path}{key}")
            lines += [f"  {'':<{width}}  fault      {f.describe()}" for f in ms.faults.all()]
        lines.append(f"  control API {origin}/_sim/")
        print("\n".join(lines), flush=True)
        if on_ready is not None:
            on_ready(app, origin)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return 0
    finally:
        app[SIM_STATE].closing.set()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and serve (standalone entry point)."""
    parser = argparse.ArgumentParser(
        prog="switchyard simulate",
        description="Simulated OpenAI, Anthropic and Gemini upstreams with fault injection.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it installs
        return asyncio.run(run(args))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
