"""A SIGTERM that lands inside a `__del__` of a decoding actor prints nothing on the driver's console.

CI, 2026-12-07 (tests/training/test_interrupt.py): Ctrl-C of `reid train`, the raylet's SIGTERM reached a decoding
actor inside decord's `VideoReader.__del__`; Ray's handler raises SystemExit wherever the interpreter is, Python
reports an exception raised in `__del__` as "Exception ignored in ..." with its traceback, and Ray forwards that to
the driver. Here the actors are built in this process (the ledger faked, no Ray cluster) and an object whose
`__del__` exits as Ray's handler does is dropped afterwards.
"""

import sys

import pytest

from reid.batch_inference import _RayDecodeTestClips
from reid.bench.toydata import write_toy_dataset
from reid.config import build_config
from reid.config.schema import DataConfig
from reid.data import pipeline


class _Reader:
    def __del__(self) -> None:  # what Ray's SIGTERM handler does when the signal arrives here
        raise SystemExit(1)


class _Broken:
    def __del__(self) -> None:
        raise ValueError("a real bug in a __del__")


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("teardown") / "toy", ids=2, cams=2, num_frames=6, size=(32, 16))


def _decoding_actor(manifest_path, request):
    request.getfixturevalue("fake_ledger")
    data = DataConfig(seq_len=4, ids_per_batch=2, tracklets_per_id=2, decode_timeout_s=None)
    return pipeline._DecodeBatches(str(manifest_path), data.model_dump(), 3, ["frames"], "pk", 1, "ledger", None)


def _eval_decoder(manifest_path, request):
    cfg = build_config("baseline", overrides=[f"data.root={manifest_path.parent}"])
    return _RayDecodeTestClips(str(manifest_path), cfg.model_dump(), ["frames"])


@pytest.mark.parametrize("build", [_decoding_actor, _eval_decoder], ids=["train-decoder", "eval-decoder"])
def test_a_sigterm_inside_a_del_prints_no_traceback_in_a_decoding_actor(build, manifest_path, monkeypatch, capsys,
                                                                         request):
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)  # a fresh actor process's hook
    _Reader()
    assert "Traceback" in capsys.readouterr().err  # what the driver's console showed before
    build(manifest_path, request)
    _Reader()
    assert capsys.readouterr().err == ""
    _Broken()  # any other exception of a __del__ is still reported
    assert "ValueError: a real bug in a __del__" in capsys.readouterr().err
