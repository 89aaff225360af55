"""The sidecar's config from files: the namespace's config Secret, mounted read-only.

In a cluster the operator writes every binding of a namespace into one Secret
(``contract/delivery.py``); the webhook mounts it (``--config-dir``, a volume with
``optional: true``: the pod starts even before the Secret exists) with a downward-API
file of the pod's own labels (``--labels-file``). ``ConfigFiles`` reads both at start,
keeps the bindings whose selector matches the labels (``delivery.assemble``, the same
function the operator plans with) and installs that config; then it checks the two
files every ``interval_seconds`` (one ``stat`` each: inode, mtime, size; the kubelet
swaps a symlink on update, so any change moves one of them) and reads them again only
when one moved. Installing is idempotent by version.

A file that cannot be read, parsed or validated never replaces a good config: the
previous one keeps serving, the reason is kept in ``Runtime.config_error`` (shown in
``GET /admin/status``) and ``switchyard_config_updates_total{result="rejected"}`` counts
it. Reasons name a place (file, field), never a value from the file: it holds keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import orjson
from pydantic import ValidationError

from switchyard.sidecar.contract.config import SCHEMA_VERSION
from switchyard.sidecar.contract.delivery import BUNDLE_KEY, ConfigBundle, assemble, parse_labels
from switchyard.sidecar.state import Runtime

log = logging.getLogger("switchyard.sidecar")

MAX_BUNDLE_BYTES = 16 * 1024 * 1024
Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)  # follows the kubelet's ..data symlink
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ConfigFiles:
    def __init__(self, rt: Runtime, config_dir: str | Path, labels_file: str | Path, *, interval_seconds: float = 1.0) -> None:
        self.rt = rt
        self.bundle_path = Path(config_dir) / BUNDLE_KEY
        self.labels_path = Path(labels_file)
        self.interval_seconds = max(0.05, interval_seconds)
        self._seen: tuple[Stamp, Stamp] | None = None
        rt.config_source = "files"

    def _refuse(self, why: str) -> None:
        if self.rt.config_error != why:
            log.warning("config files not installed: %s (%s)", why,
                        "serving the previous config" if self.rt.snapshot else "no config yet")
        self.rt.config_error = why
        self.rt.metrics.config_updates.labels("rejected").inc()

    def load(self) -> bool:
        """Read both files and install what they say; True when a new config was installed."""
        self._seen = (_stamp(self.bundle_path), _stamp(self.labels_path))
        try:
            labels = parse_labels(self.labels_path.read_text(encoding="utf-8", errors="replace"))
        except OSError as e:
            self._refuse(f"labels file {self.labels_path} unreadable ({type(e).__name__})")
            return False
        try:
            with open(self.bundle_path, "rb") as f:
                raw = f.read(MAX_BUNDLE_BYTES + 1)
        except FileNotFoundError:
            # The Secret does not exist (yet): not an error of the file, but say it.
            self.rt.config_error = f"{self.bundle_path} not found (the namespace's config Secret is not written yet)"
            return False
        except OSError as e:
            self._refuse(f"{self.bundle_path} unreadable ({type(e).__name__})")
            return False
        if len(raw) > MAX_BUNDLE_BYTES:
            self._refuse(f"{self.bundle_path} larger than {MAX_BUNDLE_BYTES} bytes")
            return False
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            self._refuse(f"{self.bundle_path} is not valid JSON ({e.msg})")
            return False
        if not isinstance(data, dict):
            self._refuse(f"{self.bundle_path} is not a JSON object")
            return False
        if data.get("schema_version") != SCHEMA_VERSION:
            self._refuse(f"{self.bundle_path}: schema_version is not one this sidecar understands ({SCHEMA_VERSION})")
            return False
        try:
            bundle = ConfigBundle.model_validate(data)
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            self._refuse(f"{self.bundle_path} is invalid at {where}: {first['msg']}")
            return False
        config = assemble(bundle, labels)
        self.rt.limits.share(bundle.namespace, bundle.pods)  # each pod's share of a limit; not in the config version
        applied = self.rt.install(config)
        self.rt.config_error = None
        self.rt.metrics.config_updates.labels("applied" if applied else "unchanged").inc()
        if applied:
            log.info("config %s installed from %s (%d binding(s) select this pod)",
                     config.version, self.bundle_path, len(config.bindings))
        return applied

    def changed(self) -> bool:
        return (_stamp(self.bundle_path), _stamp(self.labels_path)) != self._seen

    async def watch(self) -> None:
        """Check the files every interval; re-read only when one moved. Never returns."""
        while True:
            await asyncio.sleep(self.interval_seconds)
            if self.changed():
                try:
                    self.load()
                except Exception:  # never let the watcher die: the next change is read again
                    log.exception("reading the config files failed")
