"""The data path starts before the model is built: `run_worker` asks its session for the data of the epoch it will
train first (0, or the checkpoint's after a resume) before building the model, and a Ray session's `HeadStart`
fetches the first batch in a thread, hands batches over in order and raises the fetch's error where the loop reads."""

from __future__ import annotations

import threading
import time

import pytest

from reid.data.records import read_manifest
from reid.training import worker as worker_module
from reid.training.ray_session import HeadStart
from reid.training.session import LocalSession


def _slow_batches(n: int, delay_s: float, fetched_in: list[str], first_ready: threading.Event):
    for i in range(n):
        fetched_in.append(threading.current_thread().name)
        time.sleep(delay_s)
        first_ready.set()
        yield {"i": i}


def test_head_start_fetches_the_first_batch_in_the_background_then_yields_all_in_order():
    threads: list[str] = []
    first_ready = threading.Event()
    head = HeadStart(_slow_batches(3, 0.2, threads, first_ready), epoch=4)
    assert first_ready.wait(30)  # the "model build" meanwhile: the first batch is fetched without the loop asking
    t0 = time.perf_counter()
    it = iter(head)
    first = next(it)
    waited = time.perf_counter() - t0
    assert first == {"i": 0} and waited < 0.1, waited
    assert [b["i"] for b in it] == [1, 2]
    assert head.epoch == 4
    assert threads[0] == "reid-first-batch-4" and set(threads[1:]) == {threading.current_thread().name}


def test_head_start_raises_the_fetch_error_in_the_reading_thread():
    def failing():
        raise RuntimeError("decoding pool could not start")
        yield  # pragma: no cover

    head = HeadStart(failing(), epoch=0)
    with pytest.raises(RuntimeError, match="decoding pool could not start"):
        list(head)


def test_head_start_of_an_empty_epoch_yields_nothing():
    assert list(HeadStart(iter([]), epoch=0)) == []


class _RecordingSession(LocalSession):
    """Records when the loop asks for data, and whether the model existed then."""

    def __init__(self, *args, events: list[tuple[str, int]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events = events

    def start_data(self, epoch: int) -> None:
        self.events.append(("start_data", epoch))


@pytest.mark.timeout(300)
def test_run_worker_starts_the_data_at_the_resume_epoch_before_building_the_model(tiny_data, tmp_path, tiny_config,
                                                                                 monkeypatch):
    from reid.data.batching import iter_local_batches
    from reid.registry import get_method

    events: list[tuple[str, int]] = []
    real_build = worker_module.build_method

    def build(*args, **kwargs):
        events.append(("build", -1))
        return real_build(*args, **kwargs)

    monkeypatch.setattr(worker_module, "build_method", build)
    cfg = tiny_config(tiny_data, tmp_path, "train.epochs=2", "train.eval_every=2", "data.val_identities=0")
    manifest = read_manifest(tiny_data / "manifest.parquet")
    spec = get_method(cfg.method)
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    def batches(epoch: int):
        return iter_local_batches(manifest, cfg.data, cfg.seed, spec.inputs, spec.batching, epoch, 0, 1)

    def session(epochs: int) -> _RecordingSession:
        c = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": epochs})})
        s = _RecordingSession(run_dir, batches, keep=5, events=events)
        worker_module.run_worker(c, manifest, s, run_name="head-start", run_dir=run_dir)
        return s

    session(1)
    assert events == [("start_data", 0), ("build", -1)]
    events.clear()
    session(2)  # resumes from epoch 1's checkpoint: the data starts at epoch 1 (0-based)
    assert events == [("start_data", 1), ("build", -1)]
    events.clear()
    session(2)  # nothing left to train: no data is started
    assert events == [("build", -1)]
