"""The thread -> asyncio bridge: order, errors, and a producer that stops when the consumer does."""

import asyncio
import threading
import time

import pytest

from mads_text.common.aio import iterate_in_thread


class Producer:
    """A slow blocking generator that records how far it got and whether it was closed."""

    def __init__(self, n=1000, fail_at=None, step_s=0.005):
        self.n, self.fail_at, self.step_s = n, fail_at, step_s
        self.made = 0
        self.closed = threading.Event()
        self.thread = None

    def __call__(self):
        self.thread = threading.current_thread()
        try:
            for i in range(self.n):
                if i == self.fail_at:
                    raise ValueError(f"broke at {i}")
                time.sleep(self.step_s)
                self.made += 1
                yield i
        finally:
            self.closed.set()


def test_items_arrive_in_order_from_a_worker_thread():
    p = Producer(n=20, step_s=0)

    async def run():
        return [x async for x in iterate_in_thread(p)]

    assert asyncio.run(run()) == list(range(20))
    assert p.thread is not threading.main_thread() and p.closed.is_set()


def test_the_producers_exception_reaches_the_consumer_after_its_items():
    p = Producer(n=10, fail_at=3, step_s=0)
    got = []

    async def run():
        async for x in iterate_in_thread(p):
            got.append(x)

    with pytest.raises(ValueError, match="broke at 3"):
        asyncio.run(run())
    assert got == [0, 1, 2]


def test_exception_objects_yielded_as_items_are_items():
    async def run():
        return [x async for x in iterate_in_thread(lambda: [KeyError("k"), 1])]

    items = asyncio.run(run())
    assert isinstance(items[0], KeyError) and items[1] == 1


def test_a_consumer_that_stops_early_stops_the_producer():
    p = Producer()

    async def run():
        it = iterate_in_thread(p)
        async for x in it:
            if x == 2:
                break
        await it.aclose()

    asyncio.run(run())
    assert p.closed.wait(2.0), "the producer kept running after the consumer stopped"
    assert p.made < 10


def test_cancelling_the_consumer_stops_the_producer():
    p = Producer()

    async def consume():
        async for _ in iterate_in_thread(p):
            pass

    async def run():
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.perf_counter() - t0

    waited = asyncio.run(run())
    assert waited < 0.5  # cancelling does not wait for the producer
    assert p.closed.wait(2.0) and p.made < 200
