"""Weighted regularised triplet (eq. 14 of ASA-Net) against a loop over anchors, positives and negatives."""

import math

import torch

from reid.losses.metric import pairwise_distance
from reid.losses.wrt import weighted_regularized_triplet


def _wrt_loop(x: torch.Tensor, y: torch.Tensor) -> float:
    d = pairwise_distance(x)
    total, count = 0.0, 0
    for i in range(len(y)):
        pos = [j for j in range(len(y)) if y[j] == y[i] and j != i]
        neg = [k for k in range(len(y)) if y[k] != y[i]]
        if not pos or not neg:
            continue
        zp = sum(math.exp(float(d[i, j])) for j in pos)
        zn = sum(math.exp(-float(d[i, k])) for k in neg)
        sp = sum(math.exp(float(d[i, j])) / zp * float(d[i, j]) for j in pos)
        sn = sum(math.exp(-float(d[i, k])) / zn * float(d[i, k]) for k in neg)
        total += math.log(1 + math.exp(sp - sn))
        count += 1
    return total / count


def test_wrt_matches_loop():
    torch.manual_seed(0)
    x = torch.randn(12, 5)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    assert math.isclose(float(weighted_regularized_triplet(x, y)), _wrt_loop(x, y), rel_tol=1e-5)


def test_wrt_skips_anchors_without_positive_and_has_gradients():
    torch.manual_seed(1)
    x = torch.randn(5, 4, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2])            # the last anchor has no positive
    loss = weighted_regularized_triplet(x, y)
    assert math.isclose(float(loss), _wrt_loop(x.detach(), y), rel_tol=1e-5)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_wrt_without_any_triplet_is_zero():
    x = torch.randn(3, 4, requires_grad=True)
    assert float(weighted_regularized_triplet(x, torch.tensor([0, 1, 2]))) == 0.0
