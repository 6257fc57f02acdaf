"""Make the next batches in a background thread while the caller trains on the current one.

An in-process run (`ray.num_workers=0`: the CPU ablation recipes, tests, debugging) otherwise decodes each batch in
the training thread, between steps. The decoders (decord, libjpeg-turbo) and torch's kernels release the GIL, so
one producer thread overlaps the decode of batch i+1 with the step on batch i. Order and contents are unchanged:
one thread consumes the source iterator in order, and a batch's contents depend only on its plan row.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    """The source's exception, carried through the queue (an item may itself be an exception object)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(source: Iterator[T], depth: int = 2, name: str = "reid-prefetch") -> Iterator[T]:
    """Yield what `source` yields, in order, made ahead in a daemon thread (up to `depth` items waiting, and one in
    the making; `depth` 0: no thread). An exception of the source is raised here, at the item where it happened.
    Closing the returned generator early (a `break`, an error in the caller) stops the thread and closes `source` in
    it."""
    if depth < 1:
        yield from source
        return
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failed(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)
