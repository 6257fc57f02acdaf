"""Check an exported graph against the PyTorch graph it came from: max abs diff of the embeddings.

`reid export` runs this on every file it writes (onnxruntime for ONNX, `torch.jit.load` for TorchScript) and
records the diffs in the sidecar; a graph that disagrees is not written. A dynamic-T graph is also checked at
another T: a model that unrolls a loop over T when traced (astpn's recurrent layer) silently keeps the traced T,
and is then exported with T fixed instead (`export_run`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reid.config.schema import ExperimentConfig
from reid.registry import MethodSpec

# Relative to the largest |entry| of the PyTorch embedding: float32 reordering differences are ~1e-7 of it; a
# double input normalisation (fast-reid issue 177) moves embeddings by ~1e-2 of it or more (tests/deploy).
TOL = 1e-4


@dataclass
class Check:
    clips: int
    T: int
    max_abs_diff: float
    rel_diff: float  # max_abs_diff / max |PyTorch embedding|

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.rel_diff)) and self.rel_diff < TOL

    def as_dict(self) -> dict:
        return asdict(self)


def compare(got: np.ndarray, ref: np.ndarray, clips: int, t: int) -> Check:
    if got.shape != ref.shape:
        return Check(clips, t, float("inf"), float("inf"))
    diff = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
    return Check(clips, t, diff, diff / max(float(np.abs(ref).max()), 1e-12))


class Runner:
    """Runs an exported file: onnxruntime (CPU) for .onnx, torch.jit for TorchScript."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.fmt = fmt
        if fmt == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            opts.log_severity_level = 4  # a refused input is reported by the check, not logged as an error
            self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self.names = [i.name for i in self.sess.get_inputs()]
        else:
            with warnings.catch_warnings():  # torch 2.15 deprecates TorchScript: `reid export --help` says so, once
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.load. is deprecated", category=FutureWarning)
                self.module = torch.jit.load(str(path))

    def __call__(self, *inputs: torch.Tensor) -> np.ndarray:
        if self.fmt == "onnx":
            return self.sess.run(None, {n: x.numpy() for n, x in zip(self.names, inputs, strict=True)})[0]
        with torch.no_grad():
            return self.module(*inputs).numpy()


def check_graph(path: Path, fmt: str, graph: nn.Module, cfg: ExperimentConfig, spec: MethodSpec,
                shapes: list[tuple[int, int]]) -> list[Check]:
    """The exported file against `graph` (eager) on random inputs of each (clips, T) in `shapes`."""
    from reid.deploy.graph import dummy_inputs

    runner = Runner(path, fmt)
    out = []
    for clips, t in shapes:
        inputs = dummy_inputs(cfg, spec, clips=clips, length=t)
        with torch.no_grad():
            ref = graph(*inputs).numpy()
        try:
            got = runner(*inputs)
        except Exception:  # noqa: BLE001 - e.g. onnxruntime refusing a fixed axis: a failed check, not a crash
            got = np.full((0,), np.nan, dtype=np.float32)
        out.append(compare(got, ref, clips, t))
    return out
