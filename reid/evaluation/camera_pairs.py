"""Per camera-pair AP and rank-1, as the official MARS code reports them (`compute_AP_multiCam.m`,
`compute_r1_multiCam.m`, averaged per query camera by `draw_confusion_matrix`).

For a query from camera a and a gallery camera b, the positives are the gallery items of the query's identity seen
by camera b (the query itself excluded); the query's other positives (other cameras) and junk (pid -1) are ignored;
everything else is a negative. AP and R1 are computed on that ranked list. Cell (a, b) averages over the queries of
camera a that have at least one positive in camera b (NaN when none has); the official summary is the mean of the
off-diagonal cells.

Deliberate differences from the Matlab: the query itself is recognised by its record index rather than assumed to be
the top-ranked item, and junk is ignored in every cell (the Matlab counts junk as a negative in this breakdown only;
junk is already removed from the gallery by the MARS protocols, so this changes nothing there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reid.evaluation.metrics import (
    APMode,
    ArrayLike,
    as_tensor,
    block_rows_for,
    locate_specials,
    segment_stats,
)


@dataclass(frozen=True)
class CameraPairResult:
    """cameras [C]; ap, r1, counts: [C, C] indexed (query camera, gallery camera)."""

    cameras: np.ndarray
    ap: np.ndarray
    r1: np.ndarray
    counts: np.ndarray

    @property
    def offdiag_mAP(self) -> float:
        return float(np.nanmean(self.ap[~np.eye(len(self.cameras), dtype=bool)])) if len(self.cameras) > 1 else \
            float("nan")

    @property
    def offdiag_r1(self) -> float:
        return float(np.nanmean(self.r1[~np.eye(len(self.cameras), dtype=bool)])) if len(self.cameras) > 1 else \
            float("nan")


def camera_pair_breakdown(distmat: ArrayLike, q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike,
                          g_camids: ArrayLike, q_ids: ArrayLike, g_ids: ArrayLike, *,
                          ap_mode: APMode = "trapezoid", block_bytes: int = 256 << 20) -> CameraPairResult:
    """AP / R1 per (query camera, gallery camera).

    distmat [Nq, Ng]; q_ids [Nq] / g_ids [Ng] are record indices (`EvalSplit.query` / `.gallery`), used to exclude
    the query itself when it is in the gallery. `ap_mode` defaults to the official trapezoidal AP.
    """
    d = as_tensor(distmat, "distmat")
    if d.dtype in (torch.float16, torch.bfloat16):
        d = d.to(torch.float32)
    qp, gp = as_tensor(q_pids, "q_pids", torch.int64), as_tensor(g_pids, "g_pids", torch.int64)
    qc, gc = as_tensor(q_camids, "q_camids", torch.int64), as_tensor(g_camids, "g_camids", torch.int64)
    qi, gi = as_tensor(q_ids, "q_ids", torch.int64), as_tensor(g_ids, "g_ids", torch.int64)
    qp, gp, qc, gc, qi, gi = (t.to(d.device) for t in (qp, gp, qc, gc, qi, gi))
    cameras = torch.unique(torch.cat([qc, gc])).sort().values.cpu()
    c = len(cameras)
    cam_index = {int(v): k for k, v in enumerate(cameras.tolist())}
    ap_sum, r1_sum, count = np.zeros((c, c)), np.zeros((c, c)), np.zeros((c, c))
    nq, ng = d.shape
    step = block_rows_for(ng, block_bytes)
    for s in range(0, nq, step):
        e = min(nq, s + step)
        sp = locate_specials(d[s:e], qp[s:e], gp)
        gps = gp[sp.cols]
        same = gps == qp[s:e][sp.rows]
        junk_or_self = (gps == -1) | (gi[sp.cols] == qi[s:e][sp.rows])
        qrow_cam = np.array([cam_index[int(v)] for v in qc[s:e].tolist()])
        for b, cam in enumerate(cameras.tolist()):
            in_b = gc[sp.cols] == cam
            match = same & in_b & ~junk_or_self
            ignored = junk_or_self | (same & ~in_b)
            st = segment_stats(sp.rows, sp.pos, match, ignored, e - s)
            has = (st["n_good"] > 0).cpu().numpy()
            ap = st["ap" if ap_mode == "standard" else "ap_trapezoid"].cpu().numpy()
            r1 = (st["first"] == 1).cpu().numpy().astype(np.float64)
            np.add.at(ap_sum[:, b], qrow_cam[has], ap[has])
            np.add.at(r1_sum[:, b], qrow_cam[has], r1[has])
            np.add.at(count[:, b], qrow_cam[has], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return CameraPairResult(cameras=cameras.numpy(), ap=np.where(count > 0, ap_sum / count, np.nan),
                                r1=np.where(count > 0, r1_sum / count, np.nan), counts=count.astype(np.int64))
