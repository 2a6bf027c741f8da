"""Blocking iterators consumed from asyncio: one bridge for every streaming model behind a server.

A model that streams tokens is a plain blocking generator (each step is a torch
or llama.cpp call). Run on the event loop it would stall every other call, so
it runs on a worker thread, and its items cross back to the loop through an
``asyncio.Queue`` fed with ``loop.call_soon_threadsafe`` (a queue is not thread
safe; the loop must do the put).

The two ways a stream can end early are handled both ways round:

- the producer fails: the exception is raised in the consumer, never lost in
  the thread;
- the consumer stops (``break``, ``aclose``, a cancelled task on barge-in or
  hang-up): the producer is told to stop and closes its iterator after the item
  it is working on, so a model does not keep generating a reply nobody hears
  and its locks are released. The consumer does not wait for that step to end:
  cancelling stays immediate.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Raised:
    """An exception from the producer, wrapped so an iterator that yields exception objects stays exact."""

    def __init__(self, error: BaseException):
        self.error = error


async def iterate_in_thread(make_iter: Callable[[], Iterable[T]], *, executor: Executor | None = None) -> AsyncIterator[T]:
    """Items of ``make_iter()``, produced on a worker thread (``executor``, default: the loop's).

    ``make_iter`` is called on the worker thread too, so building the iterator may block as well.
    """
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item) -> None:
        try:
            loop.call_soon_threadsafe(q.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def work() -> None:
        try:
            it = iter(make_iter())
            try:
                # checked before every step: a consumer gone before the first item costs no model call
                while not stop.is_set():
                    try:
                        item = next(it)
                    except StopIteration:
                        break
                    put(item)
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()  # the generator's own clean-up (its locks, its files) runs on this thread, now
        except Exception as e:  # noqa: BLE001 - handed to the consumer, never lost in the thread
            put(_Raised(e))
        finally:
            put(_END)

    fut = loop.run_in_executor(executor, work)
    try:
        while True:
            item = await q.get()
            if item is _END:
                break
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
    await fut
