"""Standalone mode: the sidecar on a laptop, configured from a folder of manifests.

Reads the same YAML a cluster would get (``kubectl apply -f``), validates it, compiles
it with the operator's compiler, and serves it. Credentials come from Secrets in the
folder or, standalone only, from environment variables (``credentialRef.env``).
``SIGHUP`` re-reads the folder; a folder that no longer validates is reported and the
previous config keeps serving.

The admin listener always takes a token here: unless one is given
(``SWITCHYARD_ADMIN_TOKEN`` or ``--admin-token-file``), one is generated once and kept in
a file only the user can read (``admin_token_path()``), whose path is printed at start.
A local process that can read the user's files can change the config anyway (the
manifests are theirs); anything else, a web page included, cannot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from switchyard.api.manifests import ManifestError, load_manifests
from switchyard.compiler import CompileResult, compile_config
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.sidecar.http.guard import Exposure
from switchyard.sidecar.tracing import TracingSettings

log = logging.getLogger("switchyard.standalone")


@dataclass
class Loaded:
    result: CompileResult | None
    errors: list[ManifestError]
    ignored: list[str]
    origins: dict[tuple[str, str, str], str]


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Loaded:
    resources, errors = load_manifests(path)
    if errors:
        return Loaded(None, errors, resources.ignored, resources.origins)
    result = compile_config(resources, standalone=True, environ=environ if environ is not None else os.environ)
    return Loaded(result, [], resources.ignored, resources.origins)


def report_lines(result: CompileResult) -> list[str]:
    """Human-readable chain report: one line per binding, one per tier."""
    lines = []
    for (_ns, name), rep in sorted(result.reports.items()):
        head = f"binding {name} (aliases: {', '.join(rep.aliases) or '-'})"
        if rep.unbound:
            lines.append(f"{head}: UNBOUND ({rep.unbound_reason}) - answers every request with a clear error")
            continue
        lines.append(f"{head}:")
        for t in rep.tiers:
            role = "primary" if t.index == 0 else f"fallback{t.index}"
            state = "ok" if t.resolvable else f"NOT RESOLVABLE: {t.reason}: {t.message}"
            if t.incompatible:
                how = "serves degraded (allowDegrading)" if t.degradable else "skipped"
                state += f"; INCOMPATIBLE: lacks {', '.join(t.incompatible)} ({how})"
            if t.resolvable and t.keys:
                usable = [k.index for k in t.keys if k.resolvable]
                state += f"; keys {', '.join(map(str, usable))} of {len(t.keys)}" + "".join(
                    f"; key {k.index} unusable: {k.reason}: {k.message}" for k in t.keys if not k.resolvable)
            lines.append(f"  tier{t.index} {role:<9} {t.source}/{t.model or '?'} [{t.protocol}] {state}")
        for c in rep.alias_conflicts:
            lines.append(f"  alias conflict: {c}")
        if rep.legacy_primary:
            lines.append("  note: primary taken from deprecated spec.boundCredential")
    return lines


def admin_token_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/switchyard/admin-token`` (default ``~/.local/state/...``)."""
    env = os.environ if environ is None else environ
    base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "switchyard" / "admin-token"


def local_admin_token(path: Path) -> str:
    """The token in ``path``, made (random, 0600, in a 0700 folder) if there is none.
    A file others could read is not trusted: a new token replaces it."""
    try:
        st = path.stat()
        if stat.S_IMODE(st.st_mode) & 0o077 == 0 and st.st_uid == os.getuid():
            token = path.read_text().strip()
            if token:
                return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token


async def serve(
    path: str, listen: Listen, *, admin_token: str | None, max_body_bytes: int, exposure: Exposure | None = None,
    token_path: Path | None = None, body_budget: int | None = None, tracing: TracingSettings | None = None,
) -> int:
    loaded = load(path)
    if loaded.errors:
        for e in loaded.errors:
            print(f"error: {e}", file=sys.stderr)
        return 2
    assert loaded.result is not None
    for line in report_lines(loaded.result):
        print(line, file=sys.stderr)
    token_note = ""
    if not admin_token:
        where = token_path or admin_token_path()
        admin_token = local_admin_token(where)
        token_note = f"; admin token in {where} (curl -H \"Authorization: Bearer $(cat {where})\" ...)"
    sidecar = Sidecar(listen=listen, admin_token=admin_token, exposure=exposure, body_budget=body_budget, tracing=tracing)
    sidecar.runtime.max_body_bytes = max_body_bytes
    sidecar.load(loaded.result.config)
    api_port, admin_port = await sidecar.start()
    print(
        f"switchyard: serving {len(loaded.result.config.bindings)} binding(s) on http://{listen.host}:{api_port} "
        f"(admin http://{listen.admin_host}:{admin_port}{token_note}); config {loaded.result.config.version}",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def reload() -> None:
        again = load(path)
        if again.errors or again.result is None:
            for e in again.errors:
                print(f"reload refused: {e}", file=sys.stderr)
            return
        changed = sidecar.runtime.install(again.result.config)
        print(f"switchyard: reloaded {path} ({'new config ' + again.result.config.version if changed else 'unchanged'})", file=sys.stderr)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    print("switchyard: draining", file=sys.stderr, flush=True)
    await sidecar.stop()
    return 0
