"""The deadline watchdog (sidecar/watchdog.py): asyncio.timeout_at's semantics, one timer."""

from __future__ import annotations

import asyncio

import pytest

from switchyard.sidecar.watchdog import Watchdog


async def test_a_wait_past_its_deadline_is_a_timeout_error() -> None:
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    w = dog.watch()
    t0 = loop.time()
    with pytest.raises(TimeoutError):
        with w.until(t0 + 0.05):
            await asyncio.Event().wait()
    assert loop.time() - t0 >= 0.049
    assert len(dog) == 0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_wait_that_ends_in_time_is_untouched_and_the_watch_is_reusable() -> None:
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    w = dog.watch()
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 7)
    with w.until(loop.time() + 5):
        assert await fut == 7
    assert not w.fired and len(dog) == 0
    with pytest.raises(TimeoutError):  # the same watch, a second wait
        with w.until(loop.time() + 0.01):
            await asyncio.sleep(5)


async def test_a_cancellation_that_is_not_the_watchdogs_passes_through() -> None:
    """The client went away: CancelledError, never a TimeoutError (no verdict on a tier)."""
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()

    async def wait() -> None:
        with dog.watch().until(loop.time() + 5):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.ensure_future(wait())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(dog) == 0


async def test_the_watchdog_and_the_client_cancelling_at_once_is_a_cancellation() -> None:
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    w = dog.watch()
    entered = asyncio.Event()

    async def wait() -> None:
        with w.until(loop.time() + 5):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.ensure_future(wait())
    await entered.wait()
    w.when = loop.time() - 1  # its deadline has passed: the timer's callback, run by hand
    dog._fire()
    task.cancel()  # and the client leaves in the same turn of the loop
    assert w.fired
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_many_waits_each_end_at_their_own_deadline_with_one_timer() -> None:
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ended: dict[int, float] = {}

    async def wait(i: int, seconds: float) -> None:
        try:
            with dog.watch().until(t0 + seconds):
                await asyncio.sleep(10)
        except TimeoutError:
            ended[i] = loop.time() - t0

    # registered latest first: each earlier deadline re-arms the one timer
    delays = [0.12, 0.09, 0.06, 0.03, 0.15]
    await asyncio.gather(*(wait(i, d) for i, d in enumerate(delays)))
    for i, d in enumerate(delays):
        assert d - 0.002 <= ended[i] < d + 0.5, (i, ended[i])
    assert len(dog) == 0


async def test_a_later_deadline_arms_no_timer_while_an_earlier_one_is_armed() -> None:
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    first, second = dog.watch(), dog.watch()
    calls = 0
    real_call_at = loop.call_at

    def counting_call_at(when, cb, *args):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return real_call_at(when, cb, *args)

    loop.call_at = counting_call_at  # type: ignore[method-assign]
    try:
        with first.until(loop.time() + 30):
            for _ in range(100):
                with second.until(loop.time() + 31):
                    await asyncio.sleep(0)
    finally:
        del loop.call_at  # type: ignore[method-assign]
    assert calls == 1


async def test_a_deadline_moved_between_waits_is_honoured() -> None:
    """A stream: the first-content deadline, then the whole answer's, on one watch."""
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    w = dog.watch()
    with w.until(loop.time() + 0.01):
        await asyncio.sleep(0)
    t0 = loop.time()
    with pytest.raises(TimeoutError):
        with w.until(t0 + 0.08):
            await asyncio.sleep(10)
    assert loop.time() - t0 >= 0.079
