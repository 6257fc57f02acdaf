"""DDP's stride warning where only size-1 dimensions differ is dropped in Train workers; other warnings are not."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from reid.training.ddp_warnings import benign_stride_mismatch

_WARNING = ("Grad strides do not match bucket view strides. This may indicate grad was not created according to the "
            "gradient layout contract, or that the param's strides changed since DDP was constructed.  This is not "
            "an error, but may impair performance.\n"
            "grad.sizes() = [{gs}], strides() = [{gst}]\n"
            "bucket_view.sizes() = [{vs}], strides() = [{vst}] (Triggered internally at reducer.cpp:337.)")


def _warning(gs: str, gst: str, vs: str, vst: str) -> str:
    return _WARNING.format(gs=gs, gst=gst, vs=vs, vst=vst)


def test_strides_that_differ_only_where_the_size_is_1_are_benign():
    assert benign_stride_mismatch(_warning("1, 64, 1, 1", "64, 1, 64, 64", "1, 64, 1, 1", "64, 1, 1, 1"))
    assert benign_stride_mismatch(_warning("256, 128, 1, 1", "128, 1, 128, 128", "256, 128, 1, 1", "128, 1, 1, 1"))


def test_a_real_layout_difference_or_another_text_is_not():
    # a 3x3 kernel in channels-last against contiguous: a different layout, DDP copies it strided every step
    assert not benign_stride_mismatch(_warning("64, 3, 3, 3", "27, 1, 9, 3", "64, 3, 3, 3", "27, 9, 3, 1"))
    assert not benign_stride_mismatch(_warning("1, 64, 1, 1", "64, 1, 64, 64", "1, 64, 1, 2", "64, 1, 1, 1"))
    assert not benign_stride_mismatch("Grad strides do not match bucket view strides. (sizes not printed)")
    assert not benign_stride_mismatch("grad.sizes() = [1], strides() = [1]\nbucket_view.sizes() = [1], strides() = [1]")


_SCRIPT = textwrap.dedent("""
    import os, sys, warnings
    import torch, torch.distributed as dist
    from reid.training.ddp_warnings import drop_benign_stride_warnings

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
    dist.init_process_group("gloo", rank=0, world_size=1)
    if sys.argv[2] == "drop":
        drop_benign_stride_warnings()

    class Mask(torch.nn.Module):  # ASA-Net's ASRE: a bmm's output transposed into [N, C, H, W], then a 1x1 conv
        def __init__(self):
            super().__init__()
            self.mask, self.value = torch.nn.Conv2d(64, 1, 1), torch.nn.Linear(8, 64)

        def forward(self, x):
            return self.mask(self.value(x).transpose(1, 2).reshape(x.shape[0], 64, 4, 2))

    ddp = torch.nn.parallel.DistributedDataParallel(Mask())  # kept: its reducer's hooks run in backward
    ddp(torch.randn(3, 8, 8)).sum().backward()
    warnings.warn("another warning")
    sys.stderr.flush()
    os._exit(0)  # no teardown of gloo's threads: it aborted once at exit ("terminate called ...", 2026-12-08)
""")


@pytest.mark.timeout(120)
def test_in_a_ddp_process_the_benign_warning_is_dropped_and_others_still_print(tmp_path):
    from tests.ports import free_port

    script = tmp_path / "ddp.py"
    script.write_text(_SCRIPT)
    runs = {how: subprocess.run([sys.executable, str(script), str(free_port()), how], capture_output=True, text=True,
                                timeout=100) for how in ("keep", "drop")}
    for how, done in runs.items():
        assert done.returncode == 0, (how, done.stderr)
        assert "another warning" in done.stderr, (how, done.stderr)
    assert "Grad strides do not match bucket view strides" in runs["keep"].stderr  # the case arises ...
    assert "Grad strides" not in runs["drop"].stderr and "bucket_view" not in runs["drop"].stderr  # ... and is dropped
