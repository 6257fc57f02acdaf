import numpy as np
import pytest
import torch

from reid.errors import ReidError
from reid.evaluation.score_norm import score_normalize


@pytest.mark.parametrize("mode", ["symmetric", "row", "column"])
def test_score_norm_matches_the_loop(naive, mode):
    d = np.random.default_rng(0).random((7, 11))
    out = score_normalize(d, mode)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), naive.naive_score_norm(d, mode), atol=1e-12)
    out32 = score_normalize(torch.tensor(d, dtype=torch.float32), mode)
    np.testing.assert_allclose(out32.numpy(), naive.naive_score_norm(d, mode), atol=1e-5)


def test_row_norm_keeps_each_query_ranking():
    d = np.random.default_rng(1).random((5, 9))
    assert np.array_equal(np.argsort(score_normalize(d, "row").numpy(), 1), np.argsort(d, 1))


def test_bad_mode():
    with pytest.raises(ReidError, match="symmetric"):
        score_normalize(np.ones((2, 2)), "both")
