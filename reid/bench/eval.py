"""CMC/mAP and re-ranking on a MARS-sized random problem vs the per-query loops of the test suite.

Times (median over --repeats) and peak memory of
  - CMC + mAP + mINP, vectorised (reid.evaluation.metrics) vs the per-query loop (tests/evaluation/naive.py), both
    on one CPU thread;
  - k-reciprocal re-ranking (reid.evaluation.rerank) on the full problem, and side by side with the dense
    implementation of the paper's equations (tests/evaluation/naive.py) on a smaller problem that the dense one can
    hold in memory.
Every measurement runs in its own subprocess, so its peak resident memory (ru_maxrss) is its own. The problem is
random but shaped like MARS: 625 identities over 6 cameras, a quarter of the gallery distractors (pid 0), queries
taken from the gallery (official protocol), features = identity centre + camera shift + noise, L2-normalised.
The naive implementations live in the source checkout (tests/ is not packaged).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from reid.errors import ReidError

NAIVE_PATH = Path(__file__).resolve().parents[2] / "tests" / "evaluation" / "naive.py"
DENSE_MAX_POINTS = 2400  # the dense re-ranking holds ~4 N x N float64 matrices: 2400 points ~ 0.2 GB


def load_naive() -> ModuleType:
    """Import tests/evaluation/naive.py from the source checkout (it is not part of the installed package)."""
    if not NAIVE_PATH.is_file():
        raise ReidError(f"the per-query reference implementations are in the source checkout at "
                        f"tests/evaluation/naive.py, not found at {NAIVE_PATH}; run `reid bench eval` from a "
                        f"checkout of the repository, or pass --skip-naive")
    name = "reid_tests_evaluation_naive"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, NAIVE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queries", type=int, default=1980, help="number of queries (MARS: 1980)")
    p.add_argument("--gallery", type=int, default=11310, help="gallery size (MARS official protocol: 11310)")
    p.add_argument("--dim", type=int, default=2048, help="feature dimension for re-ranking (ResNet-50: 2048)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (the median is shown)")
    p.add_argument("--skip-naive", action="store_true", help="do not run the per-query / dense baselines")
    p.add_argument("--skip-rerank", action="store_true", help="measure the metrics only")
    p.add_argument("--rerank-threads", type=int, default=0, help="torch threads for re-ranking (0 = default)")
    p.add_argument("--device", default="cpu", help="device for the vectorised code (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random MARS-shaped problems (default 0)")


def make_problem(nq: int, ng: int, dim: int, seed: int, ids: int = 625, cams: int = 6) -> dict[str, np.ndarray]:
    """A MARS-shaped random problem: queries are gallery items (official protocol), 1/4 distractors (pid 0)."""
    if nq < 1 or ng < nq or dim < 1:
        raise ReidError(f"need 1 <= queries <= gallery and dim >= 1, got {nq}, {ng}, {dim}")
    rng = np.random.default_rng(seed)
    g_pids = rng.integers(1, ids + 1, ng)
    g_pids[rng.random(ng) < 0.25] = 0
    g_cams = rng.integers(1, cams + 1, ng)
    real = np.nonzero(g_pids > 0)[0]
    q_index = np.sort(rng.choice(real, size=min(nq, real.size), replace=False))
    centres = rng.normal(size=(ids + 1, dim)).astype(np.float32)
    shift = 0.5 * rng.normal(size=(cams + 1, dim)).astype(np.float32)
    feats = centres[g_pids] + shift[g_cams] + 1.2 * rng.normal(size=(ng, dim)).astype(np.float32)
    distractor = g_pids == 0
    feats[distractor] = 1.5 * rng.normal(size=(int(distractor.sum()), dim)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return {"q_feats": feats[q_index], "g_feats": feats, "q_pids": g_pids[q_index], "g_pids": g_pids,
            "q_cams": g_cams[q_index], "g_cams": g_cams}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise ReidError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    """Reset the process's peak resident memory (VmHWM) so that imports do not count (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _worker(task: str, data_dir: str, repeats: int, threads: int, device: str) -> dict[str, object]:
    import torch

    from reid.evaluation.metrics import evaluate_ranking
    from reid.evaluation.rerank import rerank_features

    if threads > 0:
        torch.set_num_threads(threads)
    p = dict(np.load(Path(data_dir) / "problem.npz"))
    naive = load_naive() if "naive" in task or "dense" in task else None
    if task.startswith("metrics"):
        dist = np.load(Path(data_dir) / "dist.npy")
        args = (dist, p["q_pids"], p["g_pids"], p["q_cams"], p["g_cams"])
        if task == "metrics":
            def fn() -> object:
                return evaluate_ranking(*args, device=device).ap
        else:
            def fn() -> object:
                return naive.naive_rank(*args)["ap"]
    else:
        q, g = torch.from_numpy(p["q_feats"]), torch.from_numpy(p["g_feats"])
        if task == "rerank":
            def fn() -> object:
                return rerank_features(q, g, device=device)
        else:
            from reid.evaluation.distances import pairwise_distance

            def fn() -> object:
                return naive.dense_rerank(pairwise_distance(q, g, "sqeuclidean").numpy(),
                                          pairwise_distance(q, q, "sqeuclidean").numpy(),
                                          pairwise_distance(g, g, "sqeuclidean").numpy())
    base = _status_mb("VmRSS")
    reset = _reset_peak()
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    np.save(Path(data_dir) / f"out_{task}.npy", np.asarray(out))
    peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"time_s": statistics.median(times), "times": times, "cpu_s": statistics.median(cpu), "peak_mb": peak,
            "base_mb": base,
            "threads": torch.get_num_threads()}


def _measure(task: str, data_dir: Path, repeats: int, threads: int, device: str) -> dict[str, object]:
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(threads) if threads > 0 else
           os.environ.get("OMP_NUM_THREADS", "")}
    if not env["OMP_NUM_THREADS"]:
        env.pop("OMP_NUM_THREADS")
    cmd = [sys.executable, "-m", "reid.bench.eval", "_worker", task, str(data_dir), str(repeats), str(threads),
           device]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise ReidError(f"benchmark task '{task}' failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _save(data_dir: Path, prob: dict[str, np.ndarray], with_dist: bool) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    np.savez(data_dir / "problem.npz", **prob)
    if with_dist:
        import torch

        from reid.evaluation.distances import pairwise_distance

        dist = pairwise_distance(torch.from_numpy(prob["q_feats"]), torch.from_numpy(prob["g_feats"]))
        np.save(data_dir / "dist.npy", dist.numpy())


def _row(name: str, ours: dict | None, ref: dict | None) -> str:
    def cell(m: dict | None) -> str:
        return "n/a" if m is None else f"{m['time_s']:.2f} s ({m['cpu_s']:.2f})"

    def mem(m: dict | None) -> str:
        return "n/a" if m is None else f"{m['peak_mb']:6.0f} MB (+{m['peak_mb'] - m['base_mb']:.0f})"
    ratio = f"{ref['time_s'] / ours['time_s']:6.1f}x" if ours and ref else "   n/a"
    return f"{name:<34} {cell(ours):>18} {cell(ref):>18} {ratio:>7}   {mem(ours):<20} {mem(ref):<20}"


def run(args: argparse.Namespace) -> int:
    if not args.skip_naive:
        load_naive()  # fail early, with the message, when not run from a checkout
    if args.repeats < 1:
        raise ReidError("--repeats must be >= 1")
    nq, ng = args.queries, args.gallery
    print(f"reid bench eval: {nq} queries x {ng} gallery, feature dim {args.dim}, device {args.device}, "
          f"median of {args.repeats} repeat(s); wall-clock seconds (CPU seconds of the process: on a busy machine "
          f"the wall time grows, the CPU time much less); peak = max resident memory of the measuring process "
          f"(+ = above its inputs); ratio = naive / ours wall time")
    header = (f"{'measurement':<34} {'ours wall (cpu)':>18} {'naive wall (cpu)':>18} {'ratio':>7}   "
              f"{'ours peak':<20} {'naive peak':<20}")
    lines, checks = [header], []
    with tempfile.TemporaryDirectory(prefix="reid-bench-eval-") as tmp:
        full = Path(tmp) / "full"
        _save(full, make_problem(nq, ng, args.dim, args.seed), with_dist=True)
        ours = _measure("metrics", full, args.repeats, 1, args.device)
        ref = None if args.skip_naive else _measure("metrics_naive", full, args.repeats, 1, "cpu")
        lines.append(_row("CMC+mAP+mINP, 1 thread", ours, ref))
        if ref is not None:
            diff = np.nanmax(np.abs(np.load(full / "out_metrics.npy") - np.load(full / "out_metrics_naive.npy")))
            checks.append(f"per-query AP, ours vs naive: max |diff| = {diff:.2e}")
        checks.append(f"target CMC+mAP < 2 s on one core: {'met' if ours['time_s'] < 2 else 'NOT met'} "
                      f"({ours['time_s']:.2f} s wall, {ours['cpu_s']:.2f} s CPU)")
        if not args.skip_rerank:
            rr = _measure("rerank", full, args.repeats, args.rerank_threads, args.device)
            lines.append(_row(f"re-ranking {nq}x{ng}, {rr['threads']} thr", rr, None))
            ok = rr["time_s"] < 60 and rr["peak_mb"] < 4096
            checks.append(f"target re-ranking < 60 s and < 4 GB: {'met' if ok else 'NOT met'} "
                          f"({rr['time_s']:.1f} s wall, {rr['cpu_s']:.1f} s CPU on {rr['threads']} threads, "
                          f"peak {rr['peak_mb']:.0f} MB)")
            if not args.skip_naive:
                scale = min(1.0, DENSE_MAX_POINTS / (nq + ng))
                sq, sg = max(1, round(nq * scale)), max(2, round(ng * scale))
                small = Path(tmp) / "small"
                _save(small, make_problem(sq, sg, args.dim, args.seed + 1), with_dist=False)
                a = _measure("rerank", small, args.repeats, args.rerank_threads, args.device)
                b = _measure("rerank_dense", small, args.repeats, args.rerank_threads, "cpu")
                lines.append(_row(f"re-ranking {sq}x{sg}, {a['threads']} thr", a, b))
                diff = float(np.abs(np.load(small / "out_rerank.npy") - np.load(small / "out_rerank_dense.npy")).max())
                checks.append(f"re-ranking, ours vs dense on {sq}x{sg}: max |diff| = {diff:.2e}")
                if scale < 1.0:
                    checks.append(f"the dense re-ranking runs on a {sq}x{sg} problem only: on {nq}x{ng} it would "
                                  f"need ~4 x {nq + ng}^2 float64 = {4 * 8 * (nq + ng) ** 2 / 2**30:.1f} GB and "
                                  f"an O(Nq x Ng x N) Jaccard loop")
    print("\n".join(lines))
    print("\n".join(checks))
    return 0


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "_worker":
    print(json.dumps(_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])))
