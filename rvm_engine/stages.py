"""Overlapping stages: a producer thread ahead of its consumer, and a consumer thread behind its producer.

Reading frames, running the network and writing plates each take their turn in a plain loop;
run as stages joined by small bounded queues, a clip goes about as fast as its slowest stage
while holding only a few frames in memory. Errors raised inside a stage's thread come out in
the caller's thread; stopping a stage lets the item in hand finish, so no file is cut short.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Callable, Generator, Iterable, Iterator, Optional


class Prefetch:
    """Runs an iterator on its own thread, at most ``depth`` items ahead of the consumer.

    Iterating re-raises the producer's exception; ``close`` stops and joins the thread.
    """

    def __init__(self, items: Iterable[Any], depth: int) -> None:
        self._queue: queue.Queue[tuple[bool, Any]] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="rvm-read", daemon=True)
        self._thread.start()

    def _run(self, items: Iterable[Any]) -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not self._offer((True, item)):
                    return
            self._offer((False, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._offer((False, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _offer(self, entry: tuple[bool, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            more, item = self._queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class WriteBehind:
    """Calls ``write(item)`` on its own thread for each ``put`` item, with at most ``depth`` waiting."""

    _DONE = object()

    def __init__(self, write: Callable[[Any], None], depth: int) -> None:
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="rvm-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._DONE or self._stop.is_set():
                return
            try:
                self._write(item)
            except BaseException as exc:  # raised in the caller's thread at its next put or finish
                self._error = exc
                return

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: Any) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Write everything queued, then stop; raises the first write error."""
        self.put(self._DONE)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop after the item being written (so that file is whole); drop the rest."""
        self._stop.set()
        try:
            self._queue.put_nowait(self._DONE)
        except queue.Full:
            pass  # the thread is busy and will see the stop flag after its current item
        self._thread.join()


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, depth: int,
                pool: Optional[Executor] = None) -> Generator[Any, None, None]:
    """``fn(item)`` for each item on a pool of ``workers`` threads, at most ``depth`` ahead, yielded in order.

    For stages that are slow per item but independent (reading plates and converting their
    colour): several run at once on a many-core machine. ``pool`` runs them on an executor the
    caller owns (the bridge's reader pool) instead of a new one. An exception surfaces at its
    item; closing the generator cancels what has not started and waits for what has.

    The one read-ahead loop of the project: the batch render, the video reader and the bridge's
    pre-roll all read through it.
    """
    pending: collections.deque[Future] = collections.deque()
    source = iter(items)
    own = pool is None
    executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rvm-stage") if own else pool
    assert executor is not None
    try:
        for item in source:
            pending.append(executor.submit(fn, item))
            if len(pending) >= max(1, depth):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        for future in pending:
            if not future.cancelled():
                future.exception()  # let what has started finish before its inputs go away
        if own:
            executor.shutdown(wait=True)


def pool_sizes(cores: Optional[int] = None) -> tuple[int, int]:
    """(readers, writers) for a machine with ``cores`` cores (default: this one's).

    Reading + colour in, and colour out + EXR compression, each cost more than the network on a
    GPU host (bench/bench_render.py): they get more threads where there are cores for them. One
    sizing for the in-process render and the bridge server.
    """
    cores = cores or os.cpu_count() or 2
    return max(2, min(4, cores // 4)), max(2, min(8, cores // 2))
