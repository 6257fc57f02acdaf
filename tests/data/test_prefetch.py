"""reid.data.prefetch: the same items in the same order, made ahead in a thread; errors and early exits handled."""

from __future__ import annotations

import threading

import pytest

from reid.data.prefetch import prefetch


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("test-prefetch")}


def test_the_same_items_in_the_same_order():
    assert list(prefetch(iter(range(100)), depth=3, name="test-prefetch-order")) == list(range(100))
    assert list(prefetch(iter([]), name="test-prefetch-empty")) == []
    assert list(prefetch(iter("abc"), depth=0)) == ["a", "b", "c"]  # depth 0: no thread
    assert not _threads()


def test_the_next_item_is_made_while_the_caller_holds_the_current_one():
    made = [threading.Event() for _ in range(3)]

    def source():
        for i in range(3):
            made[i].set()
            yield i

    it = prefetch(source(), depth=1, name="test-prefetch-ahead")
    assert next(it) == 0
    # without asking for item 1, the thread has made it already (a serial iterator would wait here forever)
    assert made[1].wait(timeout=10)
    assert list(it) == [1, 2]


def test_a_source_error_is_raised_at_its_item():
    def source():
        yield 1
        yield 2
        raise ValueError("corrupt shard")

    it = prefetch(source(), name="test-prefetch-error")
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(ValueError, match="corrupt shard"):
        next(it)
    assert not _threads()


def test_an_exception_object_is_an_item_like_any_other():
    err = KeyError("x")
    assert list(prefetch(iter([err]), name="test-prefetch-item")) == [err]


def test_leaving_early_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetch(source(), depth=2, name="test-prefetch-early")
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()
    assert closed.wait(timeout=10)
    assert not _threads()
