"""The sidecar process: two aiohttp applications over one ``Runtime``, and their lifecycle.

- the **API** app speaks the client protocols (routes in ``http/routes.py``) and is bound to
  127.0.0.1 by default: in a pod the app reaches it over loopback, and nothing else can
  spend the credentials it holds;
- the **admin** app (``http/admin.py``) answers status, health and metrics, and takes
  config pushes unless the config comes from files (``files.py``: ``config_dir``, the
  mounted config Secret of a cluster; then the sidecar needs no push and no token).

``Sidecar.stop()`` drains: new API requests get a retryable 503 at once, requests and
streams in flight get up to ``drain_seconds`` to finish; those still running then are
cancelled and each is answered with a retryable error in its client's protocol (a
started stream ends with its protocol's error event, never cut without one); then the
listeners close. ``stop()`` returns within ``drain_seconds`` + ``DRAIN_GRACE_SECONDS``
+ a few seconds of closing.

``Limits`` bounds what a client may hold before any handler runs (docs/reliability.md):
request line, header size and count (aiohttp answers a 400 beyond them), and the time
to send a request head or to leave a kept-alive connection idle (slowloris).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from switchyard.sidecar import tracing as tracing_
from switchyard.sidecar.files import ConfigFiles
from switchyard.sidecar.http import admin
from switchyard.sidecar.http import guard, routes
from switchyard.sidecar.pipeline.exchange import request_log
from switchyard.sidecar.contract.config import CompiledConfig
from switchyard.sidecar.state import RUNTIME, Runtime

log = logging.getLogger("switchyard.sidecar")


class QuietParserErrors(logging.Filter):
    """aiohttp logs a request it could not parse (a bad header, a bad request line) at
    ERROR with a traceback that quotes the offending bytes: a header holding a client's
    credential would land in the log. One line without those bytes instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "refused a request aiohttp could not parse (HTTP %s, %s)", (exc.code, type(exc).__name__)
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.INFO, "INFO"
        return True


def quiet_parser_errors() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietParserErrors) for f in server_log.filters):
        server_log.addFilter(QuietParserErrors())


def memory_limit_bytes() -> int | None:
    """This process's memory limit from its cgroup (v2, then v1), or None when unlimited."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 says "no limit" with a huge number
            return int(text)
        return None
    return None


BODY_BUDGET_SHARE = 8  # a body costs several times its size while parsed and translated
DEFAULT_BODY_BUDGET = 256 * 1024 * 1024  # without a memory limit


def default_body_budget(memory_limit: int | None) -> int:
    """Bytes of request bodies in flight at once: an eighth of the memory limit (a 30 MiB
    body peaked at ~180 MB of RSS), at least 8 MiB; 256 MiB without a limit."""
    if memory_limit is None:
        return DEFAULT_BODY_BUDGET
    return max(8 * 1024 * 1024, memory_limit // BODY_BUDGET_SHARE)


class AdminTokenRequired(ValueError):
    """The admin listener is bound off loopback without a token (refused at start)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_api_app(rt: Runtime, exposure: guard.Exposure | None = None) -> web.Application:
    app = web.Application()  # no middleware: see routes.py
    app[guard.EXPOSURE] = exposure or guard.Exposure()
    app[RUNTIME] = rt
    app.add_routes(routes.api_routes())
    return app


def build_admin_app(rt: Runtime, token: str | None, exposure: guard.Exposure | None = None) -> web.Application:
    app = web.Application(middlewares=[admin.require_token])
    app[guard.EXPOSURE] = exposure or guard.Exposure()
    app[RUNTIME] = rt
    app[admin.ADMIN_TOKEN] = token
    app.add_routes(admin.routes())
    return app


DRAIN_GRACE_SECONDS = 2.0  # after the deadline: time for cancelled requests to send their error
CLOSE_SECONDS = 2.0  # then: time the listeners give what is left (count_tokens, admin calls)


@dataclass(frozen=True)
class Limits:
    """What one client connection may take, enforced by aiohttp before any handler runs."""

    max_line_size: int = 8190  # bytes of the request line (method, path, query)
    max_field_size: int = 8190  # bytes of one header line
    max_headers: int = 128  # header lines per request
    # Seconds a connection may stay idle between requests, and so also the longest a
    # client may take to send a request's head (aiohttp arms one timer for both): a
    # client dribbling its headers a byte at a time is cut after this.
    idle_seconds: float = 30.0
    # Seconds a client may take to send a whole request body (read_json; 408 after).
    body_seconds: float = 60.0

    def handler_args(self) -> dict[str, float | int]:
        return {
            "max_line_size": self.max_line_size,
            "max_field_size": self.max_field_size,
            "max_headers": self.max_headers,
            "keepalive_timeout": self.idle_seconds,
        }


@dataclass
class Listen:
    host: str = "127.0.0.1"
    port: int = 4000
    admin_host: str = "127.0.0.1"
    admin_port: int = 4001


class Sidecar:
    """Both listeners of one sidecar. Ports may be 0 (the OS picks; see ``ports``)."""

    def __init__(
        self,
        runtime: Runtime | None = None,
        *,
        listen: Listen | None = None,
        admin_token: str | None = None,
        drain_seconds: float = 20.0,
        limits: Limits | None = None,
        exposure: guard.Exposure | None = None,
        body_budget: int | None = None,
        config_dir: str | None = None,
        labels_file: str | None = None,
        watch_seconds: float = 1.0,
        tracing: tracing_.TracingSettings | None = None,
    ) -> None:
        self.runtime = runtime or Runtime()
        if tracing is not None:  # off (None): OpenTelemetry is never imported
            self.runtime.tracing = tracing_.start(tracing)
        self.runtime.bodies.limit = body_budget or default_body_budget(memory_limit_bytes())
        self.files = (
            ConfigFiles(self.runtime, config_dir, labels_file or "/etc/switchyard/pod/labels", interval_seconds=watch_seconds)
            if config_dir else None
        )
        admin_token = admin_token.strip() if admin_token else None  # a token file's trailing newline is not part of it
        self.listen = listen or Listen()
        self.drain_seconds = drain_seconds
        self.limits = limits or Limits()
        self.runtime.body_read_seconds = self.limits.body_seconds
        quiet_parser_errors()
        # With the config from files nothing needs the token: status is read-only and the
        # routes that act (test, reset) answer only loopback callers without one.
        if not admin_token and not is_loopback(self.listen.admin_host) and self.files is None:
            raise AdminTokenRequired(
                f"the admin listener on {self.listen.admin_host} needs a token: "
                "set SWITCHYARD_ADMIN_TOKEN or --admin-token-file, or bind it to 127.0.0.1"
            )
        if not is_loopback(self.listen.host):
            log.warning(
                "the API listener on %s takes no credential: whoever reaches it spends this gateway's keys",
                self.listen.host,
            )
        self._api = build_api_app(self.runtime, exposure)
        self._admin = build_admin_app(self.runtime, admin_token, exposure)
        self._runners: list[web.AppRunner] = []
        self._prober: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.ports: tuple[int, int] = (0, 0)

    def load(self, config: CompiledConfig) -> None:
        self.runtime.install(config)

    async def start(self) -> tuple[int, int]:
        if self.files is not None:
            self.files.load()  # before listening: a restart serves the last config at once
        ports = []
        for app, host, port in (
            (self._api, self.listen.host, self.listen.port),
            (self._admin, self.listen.admin_host, self.listen.admin_port),
        ):
            runner = web.AppRunner(
                app,
                handler_cancellation=True,  # a client that goes away cancels its upstream call
                access_log=None,
                shutdown_timeout=CLOSE_SECONDS,  # stop() drains first, with its own deadline
                **self.limits.handler_args(),
            )
            await runner.setup()
            site = web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
            self._runners.append(runner)
            sock = site._server.sockets[0]  # type: ignore[union-attr]
            ports.append(sock.getsockname()[1])
        self.ports = (ports[0], ports[1])
        self._prober = asyncio.get_running_loop().create_task(self.runtime.prober.loop())
        if self.files is not None:
            self._watcher = asyncio.get_running_loop().create_task(self.files.watch())
        return self.ports

    async def stop(self) -> None:
        """Drain and close: refuse new requests, let in-flight ones finish (bounded)."""
        rt = self.runtime
        rt.draining = True
        if not await rt.wait_idle(self.drain_seconds):
            # Past the deadline: each request still running answers a retryable error
            # (see pipeline.chain.handle and attempt._stream) instead of losing its connection.
            rt.drain_expired = True
            left = list(rt.tasks)
            log.warning("drain deadline passed with %d request(s) in flight; ending them with a retryable error", len(left))
            for task in left:
                task.cancel()
            await rt.wait_idle(DRAIN_GRACE_SECONDS)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)
        await rt.prober.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        request_log.flush()  # the last requests' lines (they leave in batches)
        await rt.upstreams.close()
        if rt.tracing is not None:  # export the spans still batched (the exporter's own timeout bounds it)
            await asyncio.to_thread(rt.tracing.shutdown)

