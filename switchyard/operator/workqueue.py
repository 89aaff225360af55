"""A coalescing, delaying work queue (the shape of client-go's workqueue), asyncio-only.

- ``add(key, delay)``: the key becomes due after ``delay`` seconds; adding a key that is
  already waiting keeps the earlier due time, so a burst of events is one reconcile.
- A key is never handed to two workers at once: added while being processed, it waits
  until ``done(key)`` and runs again then (nothing is lost, nothing runs twice at once).
- ``min_interval_seconds`` spaces two runs of the same key (a hot loop cannot spin).

The clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, min_interval_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval_seconds = min_interval_seconds
        self.clock = clock
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = 0
        self._processing: set[K] = set()
        self._dirty: dict[K, float] = {}  # re-added while processing: due time
        self._last_done: dict[K, float] = {}
        self._wake = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._due) + len(self._dirty)

    def add(self, key: K, delay: float = 0.0) -> None:
        if self._closed:
            return
        due = self.clock() + max(0.0, delay)
        last = self._last_done.get(key)
        if last is not None:
            due = max(due, last + self.min_interval_seconds)
        if key in self._processing:
            self._dirty[key] = min(due, self._dirty.get(key, due))
            return
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, key))
        self._wake.set()

    def due_in(self, key: K) -> float | None:
        """Seconds until ``key`` is due (None when not queued): for tests and status."""
        due = self._due.get(key, self._dirty.get(key))
        return None if due is None else max(0.0, due - self.clock())

    def _pop_due(self) -> K | None:
        now = self.clock()
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:  # superseded by an earlier add
                heapq.heappop(self._heap)
                continue
            if due > now:
                return None
            heapq.heappop(self._heap)
            del self._due[key]
            self._processing.add(key)
            return key
        return None

    def _next_due(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    async def get(self) -> K:
        """Wait for a due key and mark it in process. Raises CancelledError when closed."""
        while True:
            if self._closed:
                raise asyncio.CancelledError("work queue closed")
            key = self._pop_due()
            if key is not None:
                return key
            self._wake.clear()
            nxt = self._next_due()
            timeout = None if nxt is None else max(0.0, nxt - self.clock())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    def done(self, key: K) -> None:
        self._processing.discard(key)
        self._last_done[key] = self.clock()
        due = self._dirty.pop(key, None)
        if due is not None:
            self.add(key, max(0.0, due - self.clock()))

    def forget(self, key: K) -> None:
        """Drop a key entirely (its object is gone)."""
        self._due.pop(key, None)
        self._dirty.pop(key, None)
        self._last_done.pop(key, None)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
