"""The ablation statistics (issue 17, item 3) against a naive implementation, and on constructed inputs whose answer
is known: a real effect holds, the swapped rows are reversed, identical rows tie."""

from __future__ import annotations

import numpy as np
import pytest

from reid.errors import ReidError
from tune.statistics import bootstrap_indices, estimate, paired_difference, resampled_means, verdict


def naive_replicate_means(values, seed_idx, query_idx):
    """Straight from the definition: per replicate, the mean of values over the drawn seeds x drawn queries."""
    out = []
    for si, qi in zip(seed_idx, query_idx, strict=True):
        cells = [values[s][q] for s in si for q in qi]
        out.append(sum(cells) / len(cells))
    return np.array(out)


@pytest.mark.timeout(60)
def test_resampled_means_match_the_naive_definition():
    rng = np.random.default_rng(3)
    values = rng.random((3, 17)) * 100
    si, qi = bootstrap_indices(np.random.default_rng(1), 50, 3, 17)
    assert si.shape == (50, 3) and qi.shape == (50, 17)
    assert np.allclose(resampled_means(values, si, qi), naive_replicate_means(values, si, qi))
    est = estimate(values, replicates=400, seed=2)
    assert est.mean == pytest.approx(values.mean())
    reps = naive_replicate_means(values, *bootstrap_indices(np.random.default_rng(2), 400, 3, 17))
    assert (est.lo, est.hi) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])))
    assert est.lo < est.mean < est.hi


def _rows(effect: float, seeds: int = 3, queries: int = 500, noise: float = 30.0):
    """Two rows on the same queries: a query's difficulty is shared (paired), plus independent per-run noise."""
    rng = np.random.default_rng(7)
    difficulty = rng.uniform(0, 100, size=queries)
    base = np.clip(difficulty + rng.normal(0, noise, size=(seeds, queries)), 0, 100)
    better = np.clip(difficulty + effect + rng.normal(0, noise, size=(seeds, queries)), 0, 100)
    return better, base


@pytest.mark.timeout(60)
def test_known_answers_real_effect_holds_swapped_reverses_identical_ties():
    better, base = _rows(effect=8.0)
    d = paired_difference(better, base)
    assert verdict(d) == "holds" and d.lo > 0 and d.mean == pytest.approx((better - base).mean())
    assert verdict(paired_difference(base, better)) == "reversed"
    same = paired_difference(base, base.copy())
    assert verdict(same) == "tie" and same.lo == same.hi == 0.0
    # no effect, only noise: the interval holds 0
    a, b = _rows(effect=0.0)
    assert verdict(paired_difference(a, b)) == "tie"


@pytest.mark.timeout(60)
def test_one_seed_resamples_queries_only_and_bad_input_is_a_clear_error():
    better, base = _rows(effect=8.0, seeds=1)
    assert verdict(paired_difference(better, base)) == "holds"
    with pytest.raises(ReidError, match="same seeds x queries"):
        paired_difference(better, base[:, :10])
    with pytest.raises(ReidError, match="finite"):
        estimate(np.array([[1.0, np.nan]]))
