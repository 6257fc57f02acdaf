"""Statistics of an ablation table (issue 17, item 3): per row a mean with a 95% confidence interval, and for every
pair of rows the paper orders a paired bootstrap over queries and seeds with a verdict.

Inputs are per-query scores of the test split: `values[s, q]` = the score (AP x 100, or 100 x [first match at rank
1] for R1) of query q in the run of seed s; every row of a table is evaluated on the same queries and seeds, so two
rows are paired query by query and seed by seed.

Bootstrap (two-stage, as for a design with seeds crossed with queries): one replicate draws S seeds with replacement
and Q queries with replacement and averages `values` over the drawn seeds x drawn queries; the same draws serve both
rows of a pair (paired). The 95% interval is the 2.5 / 97.5 percentiles of B replicates (percentile bootstrap,
Efron & Tibshirani 1993, ch. 13). With one seed only the queries are resampled.

Verdict of a paper ordering "row a > row b" on the difference d = mean(a) - mean(b): `holds` when the whole
interval of d is above 0, `reversed` when it is below 0, `tie` otherwise (the interval holds 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reid.errors import ReidError

DEFAULT_REPLICATES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds x queries and its percentile bootstrap interval (same unit as the values)."""

    mean: float
    lo: float
    hi: float

    def as_list(self) -> list[float]:
        return [self.lo, self.hi]


def bootstrap_indices(rng: np.random.Generator, replicates: int, seeds: int, queries: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(seed draws int [B, S], query draws int [B, Q]), each uniform with replacement."""
    return rng.integers(0, seeds, size=(replicates, seeds)), rng.integers(0, queries, size=(replicates, queries))


def resampled_means(values: np.ndarray, seed_idx: np.ndarray, query_idx: np.ndarray) -> np.ndarray:
    """[S, Q] values, draws [B, S] and [B, Q] -> [B]: the mean of values over each replicate's seeds x queries.

    Computed as mean_s'(mean_q'(values[s', q'])): the query means of every seed under every replicate's query draw
    first ([S, B], a gather of S x B x Q floats: 3 M for 3 seeds, 2000 replicates, 500 queries), then the mean over
    the replicate's drawn seeds (equal to the mean over the drawn seeds x queries: every seed has Q queries)."""
    # per seed, the mean over each replicate's drawn queries: [S, B]
    per_seed = values[:, query_idx].mean(axis=2)
    return np.take_along_axis(per_seed.T, seed_idx, axis=1).mean(axis=1)


def estimate(values: np.ndarray, *, replicates: int = DEFAULT_REPLICATES, seed: int = 0) -> Estimate:
    """Mean of [S, Q] `values` and its 95% percentile bootstrap interval over seeds and queries."""
    values = _check(values)
    si, qi = bootstrap_indices(np.random.default_rng(seed), replicates, *values.shape)
    return _interval(float(values.mean()), resampled_means(values, si, qi))


def paired_difference(a: np.ndarray, b: np.ndarray, *, replicates: int = DEFAULT_REPLICATES, seed: int = 0
                      ) -> Estimate:
    """mean(a) - mean(b) for two rows' [S, Q] values on the same seeds and queries, with its paired bootstrap
    interval (each replicate draws the seeds and queries once, for both rows)."""
    a, b = _check(a), _check(b)
    if a.shape != b.shape:
        raise ReidError(f"paired rows need the same seeds x queries, got {a.shape} and {b.shape}")
    return estimate(a - b, replicates=replicates, seed=seed)


def verdict(diff: Estimate) -> str:
    """'holds' (interval above 0), 'reversed' (below 0) or 'tie' for the difference 'paper's better - worse'."""
    if diff.lo > 0:
        return "holds"
    if diff.hi < 0:
        return "reversed"
    return "tie"


def _interval(mean: float, replicates: np.ndarray) -> Estimate:
    tail = 100 * (1 - LEVEL) / 2
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return Estimate(mean=mean, lo=float(lo), hi=float(hi))


def _check(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ReidError(f"expected per-query values [seeds, queries], got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ReidError("per-query values must be finite (leave out queries without a valid match first)")
    return values
