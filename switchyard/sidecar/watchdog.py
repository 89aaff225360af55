"""Deadlines for upstream waits without a timer per wait.

An attempt waits on its upstream several times (the response head, the body, every
chunk of a stream), each under a deadline. ``asyncio.timeout_at`` arms a loop timer on
entry and cancels it on exit: per wait, a timer handle, a context object and the
bookkeeping around them (~46k instructions per request by callgrind, and one per chunk
of a stream). Here a sidecar has one ``Watchdog``: a wait registers its deadline with
``watch.until(when)`` (a set insertion), and one loop timer, armed for the earliest
deadline registered, cancels the tasks whose deadline has passed when it fires. With a
steady flow of requests the timer is re-armed about once per deadline period, not once
per wait.

The semantics are ``asyncio.timeout_at``'s: the waiting task is cancelled at the
deadline and the ``with`` block turns that cancellation into ``TimeoutError``; a
cancellation that is not the watchdog's (the client went away, a drain) passes through
unchanged, also when both happen at once (``Task.cancelling()`` counts them).
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

# A loop timer may fire up to a clock tick early (uvloop counts in milliseconds): a
# deadline that close to now has passed.
RESOLUTION = 0.001


class Watch:
    """One task's deadline; reusable: each ``with watch.until(when):`` is one wait."""

    __slots__ = ("_dog", "_task", "_cancelling", "when", "fired")

    def __init__(self, dog: Watchdog) -> None:
        self._dog = dog
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self.when = math.inf
        self.fired = False

    def until(self, when: float) -> Watch:
        self.when = when
        return self

    def __enter__(self) -> Watch:
        task = self._task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Watch is used inside a task")
        self._cancelling = task.cancelling()
        self.fired = False
        self._dog._enter(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._dog._active.discard(self)
        if self.fired:
            assert self._task is not None
            # Our cancel is taken back; only when nobody else asked for one too is it ours
            # to turn into a timeout.
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _expire(self) -> None:
        self.fired = True
        self._dog._active.discard(self)
        if self._task is not None:
            self._task.cancel()


class Watchdog:
    """The deadlines of every wait in flight, and one timer for the earliest."""

    def __init__(self) -> None:
        self._active: set[Watch] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def watch(self) -> Watch:
        return Watch(self)

    def __len__(self) -> int:
        return len(self._active)

    def _enter(self, w: Watch) -> None:
        self._active.add(w)
        if w.when < self._armed_at:
            self._arm(w.when)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        self._handle = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        now = asyncio.get_running_loop().time() + RESOLUTION
        nxt = math.inf
        for w in list(self._active):
            if w.when <= now:
                w._expire()
            elif w.when < nxt:
                nxt = w.when
        if nxt < math.inf:
            self._arm(nxt)
