#!/usr/bin/env python3
"""Install pinned releases of the real coding CLIs for the `clients` test tier.

Usage::

    python hack/coding_clients.py install [NAME ...]   # install (or find) them; prints each binary
    python hack/coding_clients.py path NAME            # the binary of an installed client (exit 1 if absent)
    python hack/coding_clients.py env                  # pins and where they are cached (no side effects)

NAME is one of ``claude-code``, ``codex``, ``gemini-cli`` (default: all). Each is an npm
package installed with the machine's ``npm`` (its configured registry, its cache) into
``~/.cache/switchyard/clients/<name>-<version>/`` (or ``$SWITCHYARD_CACHE/clients/...``),
outside the repository. Nothing of them is committed.

* Idempotent: a finished install has a ``.installed`` stamp naming the package and
  version; it is reused as is. A pin change installs into a new folder.
* Locked: one ``flock`` per client and version (``<name>-<version>.lock`` beside the
  folder), so two test runs never install the same client twice or see a half-made one;
  the install goes to a temporary folder that is renamed into place when complete.
* Lifecycle scripts are not run (``--ignore-scripts``), except the one a client needs to
  work, named in its pin (Claude Code's ``install.cjs`` puts its native binary in place);
  Gemini CLI's optional native add-ons (keytar, node-pty) stay unbuilt: a headless run
  does not use them.

Standard library only (Python 3.11), importable by the tests::

    from coding_clients import CLIENTS, ensure_client, ClientsError
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------- pins


@dataclass(frozen=True)
class Client:
    name: str  # folder name and test id
    package: str  # npm package
    version: str
    bin: str  # the command it installs
    postinstall: tuple[str, ...] = ()  # `node FILE` run in the package folder after install


CLIENTS: dict[str, Client] = {
    c.name: c
    for c in (
        Client("claude-code", "@anthropic-ai/claude-code", "2.1.197", "claude", postinstall=("install.cjs",)),
        Client("codex", "@openai/codex", "0.169.0", "codex"),
        Client("gemini-cli", "@google/gemini-cli", "0.61.0", "gemini"),
    )
}

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NO_NPM = 3  # no node or npm on PATH
EXIT_NO_REGISTRY = 4  # the npm registry does not answer (or does not have the pinned version)
EXIT_INSTALL_FAILED = 5
EXIT_LOCK_TIMEOUT = 6

INSTALL_TIMEOUT_S = 15 * 60
LOCK_TIMEOUT_S = 20 * 60
PROBE_TIMEOUT_S = 60


class ClientsError(RuntimeError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def cache_root() -> Path:
    return Path(os.environ.get("SWITCHYARD_CACHE") or Path.home() / ".cache" / "switchyard")


def client_dir(c: Client) -> Path:
    return cache_root() / "clients" / f"{c.name}-{c.version}"


def bin_path(c: Client) -> Path:
    return client_dir(c) / "node_modules" / ".bin" / c.bin


def installed(c: Client) -> Path | None:
    """The client's binary if a complete install of the pinned version is cached."""
    d = client_dir(c)
    try:
        stamp = json.loads((d / ".installed").read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("package") != c.package or stamp.get("version") != c.version:
        return None
    b = bin_path(c)
    return b if b.exists() else None


def npm_env() -> dict[str, str]:
    """npm without its update check, funding and audit chatter."""
    env = dict(os.environ)
    env.update(
        npm_config_update_notifier="false",
        npm_config_fund="false",
        npm_config_audit="false",
        npm_config_loglevel="warn",
        NO_UPDATE_NOTIFIER="1",
        DISABLE_AUTOUPDATER="1",
    )
    return env


def _run(cmd: list[str], *, cwd: Path | None = None, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run in its own process group; on timeout the whole group is killed."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=npm_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        raise ClientsError(f"{' '.join(cmd)} timed out after {timeout:.0f}s\n{err[-2000:]}", EXIT_INSTALL_FAILED) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = path.read_text().strip() or "?"
                    raise ClientsError(f"gave up waiting {timeout:.0f}s for {path} (held by pid {holder})", EXIT_LOCK_TIMEOUT) from None
                time.sleep(1.0)  # polling a lock under a deadline, not synchronisation by delay
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


NODE_MAJOR_MIN = 20  # Gemini CLI's engines.node (Claude Code and Codex need less)


def _require_npm() -> str:
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        raise ClientsError(f"node and npm are needed to install the coding CLIs (Node.js >= {NODE_MAJOR_MIN})", EXIT_NO_NPM)
    version = _run([node, "--version"], timeout=30).stdout.strip()  # "v20.20.2"
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < NODE_MAJOR_MIN:
        raise ClientsError(f"Node.js {version or '?'} is too old for the coding CLIs (need >= {NODE_MAJOR_MIN})", EXIT_NO_NPM)
    return npm


def ensure_client(c: Client, *, log=print) -> Path:
    """The binary of the pinned client, installed first if it is not cached."""
    if (b := installed(c)) is not None:
        return b
    npm = _require_npm()
    with _file_lock(client_dir(c).with_name(client_dir(c).name + ".lock"), LOCK_TIMEOUT_S):
        if (b := installed(c)) is not None:  # another process finished it while we waited
            return b
        spec = f"{c.package}@{c.version}"
        probe = _run([npm, "view", spec, "version"], timeout=PROBE_TIMEOUT_S)
        if probe.returncode != 0 or probe.stdout.strip() != c.version:
            raise ClientsError(f"npm cannot see {spec} in its registry:\n{probe.stderr[-2000:]}", EXIT_NO_REGISTRY)
        final = client_dir(c)
        tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
        try:
            t0 = time.monotonic()
            (tmp / "package.json").write_text(json.dumps({"name": "switchyard-clients-" + c.name, "private": True}) + "\n")
            cp = _run([npm, "install", "--ignore-scripts", "--no-save", "--no-package-lock", spec], cwd=tmp, timeout=INSTALL_TIMEOUT_S)
            if cp.returncode != 0:
                raise ClientsError(f"npm install {spec} failed ({cp.returncode}):\n{cp.stderr[-3000:]}", EXIT_INSTALL_FAILED)
            pkg_dir = tmp / "node_modules" / c.package
            for script in c.postinstall:
                cp = _run([shutil.which("node") or "node", script], cwd=pkg_dir, timeout=INSTALL_TIMEOUT_S)
                if cp.returncode != 0:
                    raise ClientsError(f"{spec}: node {script} failed ({cp.returncode}):\n{cp.stderr[-3000:]}", EXIT_INSTALL_FAILED)
            if not (tmp / "node_modules" / ".bin" / c.bin).exists():
                raise ClientsError(f"{spec} installed no `{c.bin}` command", EXIT_INSTALL_FAILED)
            seconds = round(time.monotonic() - t0, 1)
            (tmp / ".installed").write_text(json.dumps({"package": c.package, "version": c.version, "seconds": seconds}) + "\n")
            if final.exists():  # a broken earlier attempt (no stamp): replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
            log(f"clients: installed {spec} in {seconds}s into {final}")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    b = installed(c)
    assert b is not None
    return b


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hack/coding_clients.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("install", help="install (or find) the pinned clients")
    i.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(CLIENTS)} (default: all)")
    pa = sub.add_parser("path", help="print an installed client's binary")
    pa.add_argument("name", choices=list(CLIENTS))
    sub.add_parser("env", help="pins and cache folders")
    args = p.parse_args(argv)
    if args.cmd == "env":
        for c in CLIENTS.values():
            b = installed(c)
            print(f"{c.name:<12} {c.package}@{c.version:<10} {b or 'not installed (' + str(client_dir(c)) + ')'}")
        return EXIT_OK
    if args.cmd == "path":
        b = installed(CLIENTS[args.name])
        if b is None:
            print(f"{args.name} is not installed: python hack/coding_clients.py install {args.name}", file=sys.stderr)
            return 1
        print(b)
        return EXIT_OK
    names = args.names or list(CLIENTS)
    if unknown := [n for n in names if n not in CLIENTS]:
        print(f"unknown client(s): {', '.join(unknown)} (known: {', '.join(CLIENTS)})", file=sys.stderr)
        return EXIT_USAGE
    try:
        for n in names:
            print(ensure_client(CLIENTS[n], log=lambda m: print(m, file=sys.stderr)))
    except ClientsError as e:
        print(f"clients: {e}", file=sys.stderr)
        return e.code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
