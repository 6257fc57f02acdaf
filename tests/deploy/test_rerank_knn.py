"""Re-ranking from an index's kNN equals the exact re-ranking when the kNN is exact and the row maxima are taken
over all points; it differs when the neighbour lists are wrong (the test can fail)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from reid.deploy import ann
from reid.deploy.ivf_knn import balanced_parts, ivf_lists, ivf_neighbours
from reid.deploy.rerank_knn import index_neighbours, rerank_with_index
from reid.errors import ReidError
from reid.evaluation.rerank import rerank_features


def _feats(n: int = 300, d: int = 32, ids: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((ids, d)).astype(np.float32)
    x = centres[np.arange(n) % ids] + 0.5 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_knn_and_full_sample_reproduce_rerank_features():
    x = _feats()
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    got = rerank_with_index(torch.from_numpy(x), 40, index, sample=len(x))
    want = rerank_features(torch.from_numpy(x[:40]), torch.from_numpy(x[40:]))
    assert np.abs(got - want).max() < 1e-4


def test_wrong_neighbour_lists_change_the_result():
    x = _feats()

    class Shuffled:  # a broken "index": the point itself, then other points than its neighbours
        ntotal = len(x)

        def search(self, q, k):
            d, i = flat.search(q, k)
            return d, np.concatenate([i[:, :1], (i[:, 1:] + 7) % len(x)], 1)

    flat = faiss.IndexFlatL2(x.shape[1])
    flat.add(x)
    good = rerank_with_index(torch.from_numpy(x), 40, flat, k1=5, sample=len(x))
    bad = rerank_with_index(torch.from_numpy(x), 40, Shuffled(), k1=5, sample=len(x))
    assert np.abs(good - bad).max() > 1e-2


def test_neighbour_lists_start_with_the_point_itself():
    x = _feats(50)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    nn = index_neighbours(index, x, 6)
    assert (nn[:, 0] == np.arange(50)).all() and (nn[:, 1:] != np.arange(50)[:, None]).all()


def test_flat_search_matches_brute_force_and_kinds_by_size():
    x = _feats(200)
    index = ann.new_index(x.shape[1], len(x), "euclidean")
    index.add(ann.prepare(x, "euclidean"))
    dist, ids = ann.search(index, x[:5], 3, "euclidean")
    brute = np.linalg.norm(x[:5, None] - x[None], axis=2)
    assert (ids == np.argsort(brute, 1)[:, :3]).all()
    assert np.allclose(dist, np.sort(brute, 1)[:, :3], atol=1e-3)
    assert [ann.choose_kind(n) for n in (10, 60_000, 10**6)] == ["flat", "hnsw", "ivfpq"]


def _ivf(x: np.ndarray, nlist: int = 8) -> faiss.IndexIVFFlat:
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(x.shape[1]), x.shape[1], nlist)
    index.cp.min_points_per_centroid = 1  # a tiny training set: no warning, same clustering
    index.train(x)
    index.add(x)
    return index


def _brute_knn(x: np.ndarray, k: int) -> np.ndarray:
    """Naive eq. 2: every point's k nearest by squared L2, itself first, ties by index."""
    d = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, -1.0)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def test_ivf_neighbours_probing_every_list_are_the_exact_lists():
    x = _feats()
    index = _ivf(x)
    assert (ivf_neighbours(index, torch.from_numpy(x), 21, nprobe=8) == _brute_knn(x, 21)).all()


def test_ivf_neighbours_with_few_lists_probed_are_approximate_but_start_with_the_point():
    x = _feats()
    nn = ivf_neighbours(_ivf(x), torch.from_numpy(x), 21, nprobe=1)
    truth = _brute_knn(x, 21)
    recall = (nn[:, :, None] == truth[:, None, :]).any(-1).mean()
    assert (nn[:, 0] == np.arange(len(x))).all() and 0.3 < recall < 1.0


def test_a_huge_list_is_cut_into_balanced_parts_that_keep_identities_and_probing_all_stays_exact():
    """The pathology profiled at 100,000 x 2048-d: a low-norm centroid (here the data's mean; the others far away)
    takes every point into one list. It is cut into parts of <= cap rows that keep most same-identity pairs
    together (chance: ~0.25), and probing every list still gives the exact lists."""
    x = _feats()
    quantizer = faiss.IndexFlatL2(x.shape[1])
    far = 10 * np.random.default_rng(1).standard_normal((7, x.shape[1])).astype(np.float32)
    quantizer.add(np.concatenate([x.mean(0, keepdims=True), far]))
    index = faiss.IndexIVFFlat(quantizer, x.shape[1], 8)
    index.add(x)
    _, lists = ivf_lists(index)
    assert max(len(x) for x in lists) == len(x)
    parts = balanced_parts(torch.from_numpy(x), lists, cap=75)
    assert max(len(p) for p in parts) <= 75 and (np.sort(np.concatenate(parts)) == np.arange(len(x))).all()
    part_of = np.empty(len(x), dtype=np.int64)
    for i, p in enumerate(parts):
        part_of[p] = i
    ident = np.arange(len(x)) % 30
    same = ident[:, None] == ident[None]
    np.fill_diagonal(same, False)
    assert (part_of[:, None] == part_of[None])[same].mean() > 0.6
    assert (ivf_neighbours(index, torch.from_numpy(x), 21, nprobe=8) == _brute_knn(x, 21)).all()


def test_ivf_index_probing_every_list_reproduces_rerank_features():
    x = _feats()
    got = rerank_with_index(torch.from_numpy(x), 40, _ivf(x), sample=len(x), nprobe=8)
    want = rerank_features(torch.from_numpy(x[:40]), torch.from_numpy(x[40:]))
    assert np.abs(got - want).max() < 1e-4


def test_ivf_neighbours_refuse_an_index_over_other_rows():
    x = _feats()
    with pytest.raises(ReidError, match="holds 300 vectors"):
        ivf_neighbours(_ivf(x), torch.from_numpy(x[:200]), 5)
    with pytest.raises(ReidError, match="not an IVF index"):
        ivf_neighbours(faiss.IndexFlatL2(32), torch.from_numpy(x), 5)
