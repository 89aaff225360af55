"""The coalescing, delaying work queue: bursts become one run, a key never runs twice at once."""

from __future__ import annotations

import asyncio

import pytest

from switchyard.operator.workqueue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_bursts_coalesce() -> None:
    q: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        q.add("ns-a")
    q.add("ns-b")
    assert len(q) == 2
    assert {await q.get(), await q.get()} == {"ns-a", "ns-b"}


async def test_a_key_in_process_is_requeued_after_done_not_handed_out_twice() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("k")
    assert await q.get() == "k"
    q.add("k")  # an event while it runs
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.05)
    q.done("k")
    assert await asyncio.wait_for(q.get(), 1) == "k"


async def test_delays_keep_the_earliest_due_time() -> None:
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add("catalog", 300)
    q.add("catalog", 5)
    q.add("catalog", 60)
    assert q.due_in("catalog") == 5
    clock.now += 5
    assert await asyncio.wait_for(q.get(), 1) == "catalog"


async def test_min_interval_spaces_runs_of_one_key() -> None:
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(min_interval_seconds=2, clock=clock)
    q.add("k")
    assert await q.get() == "k"
    q.done("k")
    q.add("k")
    assert q.due_in("k") == 2
    q.add("other")
    assert await asyncio.wait_for(q.get(), 1) == "other"


async def test_close_wakes_waiters() -> None:
    q: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    q.add("ignored")
    assert len(q) == 0


async def test_forget() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("k", 10)
    q.forget("k")
    assert q.due_in("k") is None
