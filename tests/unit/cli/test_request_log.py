"""``logs.RequestLog``: the request line written directly is the line ``logging`` wrote,
and it writes directly only when logging is set up as ``logs.setup`` left it."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from switchyard import logs

FIELDS: list[dict[str, Any]] = [
    {"binding": "helper", "ingress": "openai-chat", "caller": "codex", "stream": False, "status": 200, "outcome": "success",
     "tier": 0, "source": "primary", "model": "m", "trail": [], "degraded": [], "duration_ms": 1.23, "ttft_ms": 0.5},
    {"binding": None, "caller": "é\u2028\"quoted\"\nnewline", "trail": ["tier0=429(retry in 5s)"], "status": 404,
     "error": "model 'x' is not an alias", "odd": object.__new__(type("Odd", (), {"__str__": lambda self: "odd!"}))},
    {"msg": "a field named msg", "ts": "overridden", "level": "x", "big": 2**53 + 1, "f": 0.1},
]


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    r = logging.getLogger()
    saved = (r.handlers[:], r.level)
    yield r
    r.handlers[:] = saved[0]
    r.setLevel(saved[1])


def _lines(buf: io.StringIO) -> list[str]:
    return [re.sub(r'^\{"ts":"[^"]+"', '{"ts":"<ts>"', line) if line.startswith('{"ts":"20') else line
            for line in buf.getvalue().split("\n")]  # not splitlines(): a line may hold U+2028


def test_a_direct_line_is_the_line_logging_wrote(root: logging.Logger) -> None:
    logger = logging.getLogger("switchyard.request")
    writer = logs.RequestLog(logger)
    direct, via_logging = io.StringIO(), io.StringIO()
    logs.setup("info", stream=direct)
    assert writer._direct() is not None
    for fields in FIELDS:
        writer.write("request", fields)
    logs.setup("info", stream=via_logging)
    for fields in FIELDS:
        logger.info("request", extra={"switchyard": fields})
    assert _lines(direct) == _lines(via_logging) and len(_lines(direct)) == 4  # the last one empty
    assert json.loads(direct.getvalue().split("\n")[1])["odd"] == "odd!"
    assert re.match(r'^\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","level":"info","logger":"switchyard.request","msg":"request",',
                    direct.getvalue())


def test_any_other_logging_configuration_goes_through_logging(root: logging.Logger) -> None:
    logger = logging.getLogger("switchyard.request")
    writer = logs.RequestLog(logger)
    logs.setup("info", stream=io.StringIO())
    handler = root.handlers[0]
    extra = logging.Handler()

    def changes() -> Iterator[None]:
        root.addHandler(extra)  # another handler on the root
        yield
        root.removeHandler(extra)
        logger.addHandler(extra)  # a handler on the logger itself
        yield
        logger.removeHandler(extra)
        logger.addFilter(lambda r: True)  # a filter on the logger
        yield
        logger.filters.clear()
        handler.addFilter(lambda r: True)  # a filter on the handler
        yield
        handler.filters.clear()
        handler.setLevel(logging.WARNING)  # the handler's level above INFO
        yield
        handler.setLevel(logging.NOTSET)
        handler.setFormatter(logging.Formatter())  # another format
        yield
        handler.setFormatter(logs._installed[1])  # type: ignore[index]
        root.handlers[:] = []  # nothing installed at all: logging's last resort decides
        yield
        root.handlers[:] = [handler]

    for _ in changes():
        assert writer._direct() is None
    assert writer._direct() is not None
    logger.propagate = False  # the record never reaches the root's handler
    try:
        assert writer._direct() is None
    finally:
        logger.propagate = True


def test_a_failing_stream_is_reported_as_logging_reports_it_and_never_raises(root: logging.Logger,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    class Broken(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError(5, "Input/output error")

    writer = logs.RequestLog(logging.getLogger("switchyard.request"))
    logs.setup("info", stream=Broken())
    writer.write("request", FIELDS[0])
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err and "Input/output error" in err and "Message: 'request'" in err
    assert logs._installed is not None and not logs._installed[0].lock._is_owned()  # type: ignore[attr-defined]


async def test_lines_leave_in_batches_in_order_within_the_flush_interval(root: logging.Logger) -> None:
    """On an event loop, request lines are written together (one write and one flush for
    many requests), at most FLUSH_SECONDS after the first of them, in order."""
    import asyncio

    writes: list[str] = []
    flushed = asyncio.Event()

    class Watched(io.StringIO):
        def write(self, s: str) -> int:
            writes.append(s)
            return super().write(s)

        def flush(self) -> None:
            flushed.set()

    writer = logs.RequestLog(logging.getLogger("switchyard.request"))
    buf = Watched()
    logs.setup("info", stream=buf)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(3):
        writer.write("request", {**FIELDS[0], "status": 200 + i})
    assert buf.getvalue() == "", "nothing is written per request"
    await asyncio.wait_for(flushed.wait(), timeout=5)
    assert loop.time() - t0 <= logs.FLUSH_SECONDS + 1.0
    assert len(writes) == 1
    assert [json.loads(line)["status"] for line in buf.getvalue().splitlines()] == [200, 201, 202]


def test_flush_writes_what_is_pending_and_a_full_batch_leaves_at_once(root: logging.Logger) -> None:
    import asyncio

    async def go() -> tuple[int, int, int]:
        writer = logs.RequestLog(logging.getLogger("switchyard.request"))
        buf = io.StringIO()
        logs.setup("info", stream=buf)
        writer.write("request", FIELDS[0])
        pending = buf.getvalue().count('"msg":"request"')
        writer.flush()  # what Sidecar.stop does
        flushed = buf.getvalue().count('"msg":"request"')
        writer.write("request", {**FIELDS[0], "error": "x" * logs.FLUSH_BYTES})  # a full batch: written at once
        return pending, flushed, buf.getvalue().count('"msg":"request"')

    assert asyncio.run(go()) == (0, 1, 2)
