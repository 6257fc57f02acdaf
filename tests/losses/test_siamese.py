import math

import pytest
import torch

from reid.errors import ReidError
from reid.losses.siamese import (
    SiameseLossParams,
    SiameseObjective,
    distance_hinge,
    margin_hinge_sq_distance,
    split_pairs,
    squared_hinge,
)


def _pairs(n: int = 6, d: int = 5):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    b[0] = a[0]  # a same-id pair at distance 0
    b[3] = a[3] + 0.01  # a close different-id pair (inside the margin)
    same = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])[:n]
    return a, b, same


def test_astpn_eq6_matches_formula():
    a, b, same = _pairs()
    m = 3.0
    expected = 0.0
    for i in range(len(same)):
        d2 = sum((a[i, k].item() - b[i, k].item()) ** 2 for k in range(a.shape[1]))
        expected += d2 if same[i] == 1 else max(0.0, m - d2)
    assert math.isclose(margin_hinge_sq_distance(a, b, same, m).item(), expected / len(same), rel_tol=1e-5)


def test_fcnta_squared_hinge_matches_formula():
    a, b, same = _pairs()
    m = 2.0
    expected = 0.0
    for i in range(len(same)):
        d = math.sqrt(sum((a[i, k].item() - b[i, k].item()) ** 2 for k in range(a.shape[1])))
        expected += d ** 2 if same[i] == 1 else max(0.0, m - d) ** 2
    assert math.isclose(squared_hinge(a, b, same, m).item(), expected / len(same), rel_tol=1e-5)


def test_hinges_have_finite_gradients_at_zero_distance():
    a, b, same = _pairs()
    for fn in (squared_hinge, margin_hinge_sq_distance, distance_hinge):
        x = a.clone().requires_grad_(True)
        fn(x, b, same).backward()
        assert torch.isfinite(x.grad).all()
        assert torch.equal(x.grad[0], torch.zeros(a.shape[1]))  # identical same-id pair: no pull


def test_far_negative_pairs_cost_nothing():
    a = torch.zeros(2, 3)
    b = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.5, 0.0]])  # d = 3 and 2.5, d^2 = 9 and 6.25
    same = torch.zeros(2)
    assert squared_hinge(a, b, same, 2.0).item() == 0.0
    assert margin_hinge_sq_distance(a, b, same, 3.0).item() == 0.0


def test_objective_terms_and_weights():
    a, b, same = _pairs(4)
    logits = torch.randn(8, 5)
    pid = torch.tensor([0, 1, 2, 3, 0, 4, 2, 1])
    obj = SiameseObjective(SiameseLossParams(hinge="sq_distance", margin=3.0, weight_hinge=0.5, weight_id=2.0))
    out = obj({"embedding": torch.cat([a, b]), "logits": logits}, {"pid": pid, "pair_same": same})
    assert set(out) == {"loss", "hinge", "id_a", "id_b"}
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(out["id_a"], ce(logits[:4], pid[:4])) and torch.allclose(out["id_b"], ce(logits[4:], pid[4:]))
    assert torch.allclose(out["hinge"], margin_hinge_sq_distance(a, b, same, 3.0))
    assert torch.allclose(out["loss"], 0.5 * out["hinge"] + 2.0 * (out["id_a"] + out["id_b"]))


def test_malformed_pairs_batches_are_clear_errors():
    obj = SiameseObjective(SiameseLossParams())
    outputs = {"embedding": torch.randn(6, 3), "logits": torch.randn(6, 2)}
    with pytest.raises(ReidError, match="pair_same"):
        obj(outputs, {"pid": torch.zeros(6, dtype=torch.long)})
    with pytest.raises(ReidError, match="2N rows"):
        split_pairs(torch.randn(5, 3), torch.ones(2))


def test_official_code_distance_hinge_matches_formula():
    a, b, same = _pairs()
    m = 3.0
    expected = 0.0
    for i in range(len(same)):
        d = math.sqrt(sum((a[i, k].item() - b[i, k].item()) ** 2 for k in range(a.shape[1])))
        expected += d if same[i] == 1 else max(0.0, m - d)
    assert math.isclose(distance_hinge(a, b, same, m).item(), expected / len(same), rel_tol=1e-5)
