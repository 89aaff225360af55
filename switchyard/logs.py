"""One JSON object per log line, for the sidecar, the operator and standalone mode.

Request records carry their fields under ``extra={"switchyard": {...}}``; they are
merged into the line. Nothing here adds request bodies or headers: what a line holds is
what the caller put in it, and the pipeline never puts a secret or a prompt there.

The sidecar writes one line per request, so a line must be cheap (bench/README.md):
``setup`` turns off what ``logging`` would otherwise compute for every record and no
line shows (the caller's file and line, thread, process names), and the formatter
renders the timestamp's seconds once per second.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson


class JsonLines(logging.Formatter):
    _second = -1
    _stamp = ""

    def _ts(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self._ts(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.msg if not record.args and isinstance(record.msg, str) else record.getMessage(),
        }
        extra = getattr(record, "switchyard", None)
        if isinstance(extra, dict):
            line.update(extra)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def setup(level: str = "info", stream=sys.stderr) -> None:
    # No line shows these; computing them costs ~5 us per record (findCaller walks the stack).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
