"""One JSON object per log line, for the sidecar, the operator and standalone mode.

Records with fields carry them under ``extra={"switchyard": {...}}``; they are merged
into the line. Nothing here adds request bodies or headers: what a line holds is what
the caller put in it, and the pipeline never puts a secret or a prompt there.

The sidecar writes one line per request, so a line must be cheap (bench/README.md):
``setup`` turns off what ``logging`` would otherwise compute for every record and no
line shows (the caller's file and line, thread, process names), and the formatter
renders the timestamp's seconds once per second. The request line itself goes through
``RequestLog``, which writes it without a ``LogRecord`` while logging is set up as
``setup`` left it, and through ``logging`` otherwise.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from typing import Any

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


# The handler and formatter ``setup`` installed last (None before): ``RequestLog`` writes
# through them when they are the only way out of logging for its logger.
_installed: tuple[logging.StreamHandler, JsonLines] | None = None


class RequestLog:
    """One JSON line per request, for a logger (the sidecar's ``switchyard.request``).

    ``write`` makes the line ``logging`` would make for ``logger.info(msg,
    extra={"switchyard": fields})`` (same keys, order and rendering, by ``JsonLines``)
    for the same stream, without a ``LogRecord`` or the walk over handlers: ~half the
    cost of a line. Lines leave in batches, in order, in one write under the handler's
    lock with its flush, at most ``FLUSH_SECONDS`` after the first of them (or once
    ``FLUSH_BYTES`` are pending, or on ``flush``: a stop, the interpreter's exit). It does
    so only while the record would reach exactly the handler ``setup`` installed and
    nothing else (no other handler anywhere up the logger's chain, no filter on the
    logger or the handler, the handler's level and formatter as set up); in any other
    configuration (a handler a test or an embedding added, ...) it calls ``logging``,
    as before. Whether to write at all is the caller's check, as before:
    ``logger.isEnabledFor(logging.INFO)`` (``--log-level``, or the logger's own level).

    A write that fails is reported by the handler's ``handleError`` as ``logging``
    reports it (a traceback on stderr when ``logging.raiseExceptions``) and never
    raises to the request.
    """

    __slots__ = ("logger", "_pending", "_size", "_timer", "_timer_loop", "_to")

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._pending: list[str] = []  # lines written, not yet on the stream
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._to: logging.StreamHandler | None = None  # the handler the pending lines are for
        atexit.register(self.flush)

    def _direct(self) -> tuple[logging.StreamHandler, JsonLines] | None:
        installed = _installed
        if installed is None:
            return None
        handler, formatter = installed
        c: logging.Logger | None = self.logger
        if c.filters or handler.filters or handler.level > logging.INFO or handler.formatter is not formatter:  # type: ignore[union-attr]
            return None
        found = False
        while c is not None:
            for h in c.handlers:
                if found or h is not handler:
                    return None
                found = True
            c = c.parent if c.propagate else None
        return installed if found else None

    def write(self, msg: str, fields: dict[str, Any]) -> None:
        direct = self._direct()
        if direct is None or (self._to is not None and direct[0] is not self._to):
            self.flush()  # what is pending first: lines stay in order
        if direct is None:
            self.logger.info(msg, extra={"switchyard": fields})
            return
        handler, formatter = direct
        line = {"ts": formatter._ts(time.time()), "level": "info", "logger": self.logger.name, "msg": msg}
        line.update(fields)
        text = orjson.dumps(line, default=str).decode() + handler.terminator
        self._to = handler
        self._pending.append(text)
        self._size += len(text)
        if self._size >= FLUSH_BYTES:
            self.flush()
        else:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a script, a test): at once
                self.flush()
                return
            if self._timer is None:
                self._timer, self._timer_loop = loop.call_later(FLUSH_SECONDS, self.flush), loop
            elif self._timer_loop is not loop:  # armed on a loop that is gone (tests run many)
                self.flush()

    def flush(self) -> None:
        """Write the pending lines in one write and flush the stream. A write that fails is
        reported by the handler's ``handleError`` (as ``logging`` reports it: a traceback
        on stderr when ``logging.raiseExceptions``), never raised."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        handler, lines = self._to, self._pending
        if handler is None or not lines:
            return
        self._pending, self._size = [], 0
        handler.acquire()
        try:
            handler.stream.write("".join(lines))
            handler.flush()
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:
            record = self.logger.makeRecord(self.logger.name, logging.INFO, "(unknown file)", 0, "request", None, None)
            handler.handleError(record)
        finally:
            handler.release()


# Request lines leave in batches: at most FLUSH_SECONDS after they were written, or at
# FLUSH_BYTES pending (a write and a flush per request cost ~7% of a sidecar's CPU at
# saturation: bench/profile_hotpath.py). What a crash can lose is that much; a stop
# flushes (``Sidecar.stop``) and so does the interpreter's exit.
FLUSH_SECONDS = 0.05
FLUSH_BYTES = 64 * 1024


def setup(level: str = "info", stream=sys.stderr) -> None:
    # No line shows these; computing them costs ~5 us per record (findCaller walks the stack).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    global _installed
    handler = logging.StreamHandler(stream)
    formatter = JsonLines()
    handler.setFormatter(formatter)
    _installed = (handler, formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
