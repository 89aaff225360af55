"""The ``switchyard`` command.

    switchyard run -f PATH        standalone gateway on a folder of manifests
    switchyard demo               the gateway on examples/demo, backed by simulated providers
    switchyard check -f PATH      validate and compile manifests; non-zero exit on problems
    switchyard simulate           provider emulators with fault knobs (see docs/simulate.md)
    switchyard sidecar            in-cluster sidecar: serves the namespace's mounted config Secret
                                  (--config-dir, --labels-file), or what is pushed (dev)
    switchyard operator           the Kubernetes operator (kopf)
    switchyard inject -f FILE     the sidecar written into opted-in pod templates (no webhook needed)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from switchyard import __version__


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.run(coro)
    return uvloop.run(coro)


def _admin_token(args: argparse.Namespace) -> str | None:
    if getattr(args, "admin_token_file", None):
        return Path(args.admin_token_file).read_text().strip() or None
    return os.environ.get("SWITCHYARD_ADMIN_TOKEN") or None


def _listen_args(p: argparse.ArgumentParser, *, admin_host: str = "127.0.0.1") -> None:
    p.add_argument("--host", default="127.0.0.1", help="API listener address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4000, help="API listener port (default 4000; 0 = any free port)")
    p.add_argument("--admin-host", default=admin_host, help=f"admin listener address (default {admin_host})")
    p.add_argument("--admin-port", type=int, default=4001, help="admin listener port (default 4001)")
    p.add_argument("--admin-token-file", help="file holding the admin bearer token (else $SWITCHYARD_ADMIN_TOKEN)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a Host name the listeners answer besides loopback names and IP addresses (repeatable)")
    p.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web origin (https://app.example) whose pages may call the API (repeatable; none by default)")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body accepted, in MiB (default 32)")
    p.add_argument("--max-inflight-body-mb", type=float, default=None,
                   help="request-body MiB held at once (default: an eighth of the memory limit, 256 without one)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--tracing", choices=["off", "on", "otlp", "console"], default=None,
                   help="OpenTelemetry traces (default: $SWITCHYARD_TRACING, else off); the standard OTEL_* variables "
                        "configure them (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, OTEL_SERVICE_NAME...: docs/tracing.md)")


def _tracing(args: argparse.Namespace):
    """The tracing settings (None: off), or exit with why they cannot be honoured."""
    from switchyard.sidecar.tracing import TracingConfigError, settings_from

    try:
        return settings_from(getattr(args, "tracing", None))
    except TracingConfigError as exc:
        raise SystemExit(f"switchyard: {exc}") from None


def _exposure(args: argparse.Namespace):
    from switchyard.sidecar.http.guard import Exposure

    return Exposure.of(hosts=args.allowed_host, origins=args.allowed_origin)


def _body_budget(args: argparse.Namespace) -> int | None:
    mb = getattr(args, "max_inflight_body_mb", None)
    return int(mb * 1024 * 1024) if mb else None


def _listen(args: argparse.Namespace):
    from switchyard.sidecar.app import Listen

    return Listen(args.host, args.port, args.admin_host, args.admin_port)


def cmd_run(args: argparse.Namespace) -> int:
    from switchyard import logs
    from switchyard.cli import standalone

    logs.setup(args.log_level)
    return _run_async(
        standalone.serve(
            args.file, _listen(args), admin_token=_admin_token(args), max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            body_budget=_body_budget(args),
            exposure=_exposure(args),
            tracing=_tracing(args),
        )
    )


def cmd_check(args: argparse.Namespace) -> int:
    from switchyard.cli import standalone

    loaded = standalone.load(args.file)
    for e in loaded.errors:
        print(f"error: {e}")
    if loaded.result is None:
        return 2
    for line in standalone.report_lines(loaded.result):
        print(line)
    # Deliberately unbound bindings are fine; an unresolvable or incompatible tier or a
    # taken alias is not.
    problems = []
    for (ns, name), r in sorted(loaded.result.reports.items()):
        file = loaded.origins.get(("AssistantBinding", ns, name), "?")
        for t in r.tiers:
            if not t.resolvable:
                problems.append(f"{file}: binding {name}: tier{t.index} ({t.source}): {t.reason}: {t.message}")
            for feature in t.incompatible:
                problems.append(f"{file}: binding {name}: tier{t.index} ({t.source}/{t.model}): incompatible: lacks {feature}")
        for c in r.alias_conflicts:
            problems.append(f"{file}: binding {name}: alias conflict: {c}")
        if r.unbound_reason == "PrimaryNotSet":
            problems.append(f"{file}: binding {name}: no primary (set spec.primary, or null to unbind on purpose)")
    if problems:
        print()
        for p in problems:
            print(f"problem: {p}")
    return 1 if problems else 0


def cmd_sidecar(args: argparse.Namespace) -> int:
    from switchyard import logs
    from switchyard.sidecar.app import Sidecar

    logs.setup(args.log_level)

    async def main() -> int:
        import signal

        sidecar = Sidecar(listen=_listen(args), admin_token=_admin_token(args), exposure=_exposure(args), body_budget=_body_budget(args),
                          config_dir=args.config_dir, labels_file=args.labels_file, watch_seconds=args.watch_seconds,
                          tracing=_tracing(args))
        sidecar.runtime.max_body_bytes = int(args.max_body_mb * 1024 * 1024)
        api, admin = await sidecar.start()
        source = f"config from {args.config_dir}" if args.config_dir else "waiting for a config push"
        print(f"switchyard sidecar: API on {args.host}:{api}, admin on {args.admin_host}:{admin}; {source}", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await sidecar.stop()
        return 0

    return _run_async(main())


def cmd_demo(args: argparse.Namespace) -> int:
    from switchyard import logs
    from switchyard.cli import demo

    logs.setup(args.log_level)
    return _run_async(demo.run(args))


def cmd_simulate(args: argparse.Namespace) -> int:
    from switchyard.simulator import cli as sim_cli

    return _run_async(sim_cli.run(args))


def cmd_inject(args: argparse.Namespace) -> int:
    from switchyard.cli import inject

    return inject.run(args.file, args.image, native=not args.no_native)


def cmd_operator(args: argparse.Namespace) -> int:
    from switchyard.operator import main as operator_main

    return operator_main.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchyard", description="Kubernetes-native LLM gateway.")
    parser.add_argument("--version", action="version", version=f"switchyard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="serve a folder of manifests (standalone mode)")
    p.add_argument("-f", "--file", required=True, help="a manifest file or a folder of them")
    _listen_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="the gateway on examples/demo with simulated providers (no API key needed)")
    p.add_argument("--port", type=int, default=4000)
    p.add_argument("--sim-port", type=int, default=4010, help="port of the simulated providers (the demo manifests use 4010)")
    p.add_argument("--admin-port", type=int, default=4001)
    p.add_argument("--no-tour", action="store_true", help="skip the short tour of requests at start")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("check", help="validate and compile manifests, print each chain")
    p.add_argument("-f", "--file", required=True)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("sidecar", help="in-cluster sidecar: serve the namespace's config Secret (mounted)")
    _listen_args(p, admin_host="0.0.0.0")
    p.add_argument("--config-dir", help="the mounted config Secret (switchyard-config); without it: wait for a push")
    p.add_argument("--labels-file", help="the downward-API file of the pod's labels (default /etc/switchyard/pod/labels)")
    p.add_argument("--watch-seconds", type=float, default=1.0, help="how often the files are checked (default 1)")
    p.set_defaults(func=cmd_sidecar)

    p = sub.add_parser("inject", help="write the sidecar into manifests (pods that opt in), no webhook needed")
    p.add_argument("-f", "--file", required=True, help="a manifest file, or - for standard input")
    p.add_argument("--image", help="the sidecar image (default: the operator's default)")
    p.add_argument("--no-native", action="store_true", help="a plain container (clusters older than 1.29)")
    p.set_defaults(func=cmd_inject)

    p = sub.add_parser("simulate", help="simulated OpenAI / Anthropic / Gemini upstreams with faults")
    try:
        from switchyard.simulator import cli as sim_cli

        sim_cli.add_arguments(p)
    except (ImportError, AttributeError):
        pass
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("operator", help="run the Kubernetes operator")
    p.add_argument("--namespace", action="append", help="watch only these namespaces (default: all)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_operator)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from switchyard.sidecar.app import AdminTokenRequired

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except AdminTokenRequired as exc:  # a refusal to start, said in one line
        print(f"switchyard: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
