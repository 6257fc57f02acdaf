"""Deploy benchmarks on synthetic embeddings (docs/deploy.md): `python -m reid.deploy.bench ann|rerank ...`.

Synthetic gallery: identities with a random unit centre in D dims, `per_id` tracklets each, a tracklet = the
centre + Gaussian noise (sigma per dimension), L2-normalised: a same-identity pair is nearer than a random pair,
as with trained features. Rows are generated in chunks from per-chunk seeds, so a gallery larger than memory as
float32 is streamed twice (exact ground truth, then the index) and never held whole.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

CHUNK = 10_000


def chunk(c: int, dim: int, per_id: int = 10, sigma: float = 0.02, seed: int = 0) -> np.ndarray:
    """Rows c*CHUNK .. (c+1)*CHUNK - 1: float32 [CHUNK, dim], identity of row i = i // per_id."""
    rng = np.random.default_rng([seed, c])
    centres = rng.standard_normal((CHUNK // per_id, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, per_id, axis=0) + sigma * rng.standard_normal((CHUNK, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def queries(n: int, nq: int, dim: int, per_id: int = 10, sigma: float = 0.02, seed: int = 0) -> np.ndarray:
    """nq new tracklets of identities spread over the gallery (a fresh noise draw around their centres)."""
    rng = np.random.default_rng([seed, 999_999])
    out = []
    for c in rng.choice(n // CHUNK, size=nq, replace=True):
        centres = np.random.default_rng([seed, int(c)]).standard_normal((CHUNK // per_id, dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        x = centres[rng.integers(len(centres))] + sigma * rng.standard_normal(dim, dtype=np.float32)
        out.append(x / np.linalg.norm(x))
    return np.stack(out)


def say(msg: str) -> None:
    """Progress on stderr with the wall-clock time (a long run shows where it is)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_gib() -> float:
    """Peak resident memory of this process so far (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def exact_topk(n: int, q: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k row ids [Q, k] by squared L2, streaming the gallery chunk by chunk."""
    best_d = np.full((len(q), k), np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    for c in range(n // CHUNK):
        x = chunk(c, q.shape[1])
        d = (q * q).sum(1)[:, None] + (x * x).sum(1)[None] - 2 * q @ x.T
        d_all = np.concatenate([best_d, d], 1)
        i_all = np.concatenate([best_i, np.arange(c * CHUNK, (c + 1) * CHUNK)[None].repeat(len(q), 0)], 1)
        o = np.argsort(d_all, axis=1, kind="stable")[:, :k]
        best_d, best_i = np.take_along_axis(d_all, o, 1), np.take_along_axis(i_all, o, 1)
    return best_i


def bench_ann(n: int, dim: int, kind: str, nq: int = 200, k: int = 10, nprobe: int = 32) -> dict:
    import faiss

    from reid.deploy import ann

    n = n // CHUNK * CHUNK
    q = queries(n, nq, dim)
    t = time.perf_counter()
    truth = exact_topk(n, q, k)
    exact_s = time.perf_counter() - t
    say(f"exact top-{k} of {nq} queries over {n} streamed in {exact_s:.1f} s")
    t = time.perf_counter()
    sample = np.concatenate([chunk(c, dim) for c in range(min(n // CHUNK, 5))]) if kind == "ivfpq" else None
    index = ann.new_index(dim, n, "euclidean", kind, train_sample=sample, nprobe=nprobe)  # type: ignore[arg-type]
    say(f"{ann.kind_of(index)} trained in {time.perf_counter() - t:.1f} s")
    for c in range(n // CHUNK):
        index.add(chunk(c, dim))
    build_s = time.perf_counter() - t
    lat = []
    for row in q:
        t0 = time.perf_counter()
        index.search(row[None], k)
        lat.append(time.perf_counter() - t0)
    _, ids = index.search(q, k)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids.tolist(), truth.tolist(), strict=True)]))
    return {"bench": "ann", "n": n, "dim": dim, "kind": ann.kind_of(index), "nprobe": getattr(index, "nprobe", None),
            "build_s": round(build_s, 1), "p50_query_ms": round(1000 * float(np.median(lat)), 2),
            "p99_query_ms": round(1000 * float(np.percentile(lat, 99)), 2), "recall_at_10": round(recall, 4),
            "index_bytes": int(faiss.serialize_index(index).nbytes), "exact_stream_s": round(exact_s, 1),
            "peak_rss_gib": round(rss_gib(), 2), "queries": nq, "threads": faiss.omp_get_max_threads()}


def mean_ap(dist: np.ndarray, qid: np.ndarray, gid: np.ndarray) -> float:
    """Mean average precision of the rankings dist [Nq, Ng] (ascending) with identities qid [Nq], gid [Ng]."""
    match = gid[np.argsort(dist, axis=1, kind="stable")] == qid[:, None]
    hits = np.cumsum(match, axis=1)
    prec = hits / np.arange(1, match.shape[1] + 1)
    return float(np.mean((prec * match).sum(1) / np.maximum(match.sum(1), 1)))


def bench_rerank(n: int, nq: int, dim: int, kind: str = "ivfflat", compare: bool = False, *, nlist: int = 0,
                 nprobe: int = 8, sample: int = 256, train_per_list: int = 39) -> dict:
    """Re-ranking of nq queries against n - nq gallery rows from an index's kNN; with `compare`, also the exact
    re-ranking (reid.evaluation.rerank.rerank_features) and their top-10 agreement. The IVF-Flat index has `nlist`
    lists (0: 4 sqrt(n), as reid.deploy.ann sizes IVF-PQ), trained on `train_per_list` points per list."""
    import faiss
    import torch

    from reid.deploy.rerank_knn import rerank_with_index

    feats = np.concatenate([chunk(c, dim) for c in range(-(-n // CHUNK))])[:n]
    perm = np.random.default_rng(1).permutation(n)  # queries drawn from all identities, not the first chunk
    feats = np.ascontiguousarray(feats[perm])
    ids = perm // 10
    say(f"{n} x {dim} generated")
    t = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexFlatL2(dim)
    else:
        nlist = nlist or int(max(16, 4 * np.sqrt(n)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist)
        index.train(feats[np.random.default_rng(0).choice(n, min(n, train_per_list * nlist), replace=False)])
        index.nprobe = nprobe
    index.add(feats)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    load = os.getloadavg()[0]
    stats: dict = {}
    say(f"index built in {build_s:.1f} s")
    approx = rerank_with_index(torch.from_numpy(feats), nq, index, sample=sample, stats=stats, log=say)
    rerank_s = time.perf_counter() - t
    out = {"bench": "rerank", "n": n, "queries": nq, "gallery": n - nq, "dim": dim,
           "knn_index": "flat" if kind == "flat" else "ivfflat",
           "nlist": nlist if kind != "flat" else None, "nprobe": nprobe if kind != "flat" else None,
           "sample": sample, "index_build_s": round(build_s, 1), "rerank_s": round(rerank_s, 1),
           **{key: round(v, 4 if key.startswith("knn_recall") else 1) for key, v in stats.items()},
           "peak_rss_gib": round(rss_gib(), 2), "torch_threads": torch.get_num_threads(),
           "load_avg_1min": [round(load, 1), round(os.getloadavg()[0], 1)],
           "rank1_same_id": round(float(np.mean(ids[nq:][approx.argmin(1)] == ids[:nq])), 4)}
    if compare:
        from reid.evaluation.rerank import rerank_features

        t = time.perf_counter()
        exact = rerank_features(torch.from_numpy(feats[:nq]), torch.from_numpy(feats[nq:]))
        out["exact_rerank_s"] = round(time.perf_counter() - t, 1)
        top_a, top_e = np.argsort(approx, 1)[:, :10], np.argsort(exact, 1)[:, :10]
        out["top10_overlap"] = round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in
                                                    zip(top_a.tolist(), top_e.tolist(), strict=True)])), 4)
        out["rank1_agree"] = round(float(np.mean(top_a[:, 0] == top_e[:, 0])), 4)
        out["max_abs_diff"] = round(float(np.abs(approx - exact).max()), 4)
        out["mAP_approx"], out["mAP_exact"] = (round(mean_ap(x, ids[:nq], ids[nq:]), 4) for x in (approx, exact))
        out["peak_rss_gib"] = round(rss_gib(), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reid.deploy.bench")
    p.add_argument("what", choices=["ann", "rerank"])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--kind", default="ivfpq")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--compare", action="store_true")
    p.add_argument("--nlist", type=int, default=0, help="rerank: IVF lists (0: 4 sqrt(n))")
    p.add_argument("--nprobe", type=int, default=8)
    p.add_argument("--train-per-list", type=int, default=39, help="rerank: IVF training points per list")
    p.add_argument("--sample", type=int, default=256, help="rerank: points sampled for the row maxima")
    p.add_argument("--threads", type=int, default=0, help="torch and FAISS threads (0: their default)")
    p.add_argument("--out", help="append the JSON line to this file")
    a = p.parse_args(argv)
    if a.threads:
        import faiss
        import torch

        torch.set_num_threads(a.threads)
        faiss.omp_set_num_threads(a.threads)
    res = (bench_ann(a.n, a.dim, a.kind, a.queries) if a.what == "ann"
           else bench_rerank(a.n, a.queries, a.dim, a.kind, a.compare, nlist=a.nlist, nprobe=a.nprobe,
                             sample=a.sample, train_per_list=a.train_per_list))
    res["date"] = time.strftime("%Y-%m-%d")
    line = json.dumps(res)
    print(line)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
