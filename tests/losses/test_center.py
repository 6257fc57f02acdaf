"""Center loss (eq. 15 of ASA-Net) against a loop, and the center bank used by the ASA-Net objective."""

import math

import pytest
import torch

from reid.errors import ReidError
from reid.losses.center import CenterLoss, center_loss


def _center_loop(f: torch.Tensor, y: torch.Tensor, c: torch.Tensor, squared: bool) -> float:
    total = 0.0
    for i in range(len(y)):
        d = math.sqrt(sum((float(f[i, k]) - float(c[y[i], k])) ** 2 for k in range(f.shape[1])))
        total += 0.5 * (d * d if squared else d)
    return total / len(y)


@pytest.mark.parametrize("squared", [False, True])
def test_center_loss_matches_loop(squared):
    torch.manual_seed(0)
    f, c = torch.randn(6, 4), torch.randn(3, 4)
    y = torch.tensor([0, 2, 2, 1, 0, 1])
    assert math.isclose(float(center_loss(f, y, c, squared)), _center_loop(f, y, c, squared), rel_tol=1e-5)


def test_feature_on_its_center_has_finite_gradient():
    c = torch.randn(2, 3)
    f = c[[0, 1]].clone().requires_grad_(True)
    center_loss(f, torch.tensor([0, 1]), c).backward()
    assert torch.isfinite(f.grad).all()


def test_bank_serves_narrower_features_and_routes_gradients():
    torch.manual_seed(0)
    bank = CenterLoss(num_classes=3, max_dim=8)
    f = torch.randn(4, 5, requires_grad=True)
    y = torch.tensor([0, 0, 2, 2])
    value = bank(f, y)
    assert math.isclose(float(value.detach()), _center_loop(f.detach(), y, bank.centers.detach()[:, :5], False),
                        rel_tol=1e-5)
    bank(f, y, detach_features=True).backward()
    assert f.grad is None and bank.centers.grad[:, 5:].abs().sum() == 0 and bank.centers.grad[:, :5].abs().sum() > 0
    bank.centers.grad = None
    bank(f, y, detach_centers=True).backward()
    assert bank.centers.grad is None and f.grad.abs().sum() > 0
    with pytest.raises(ReidError, match="center_max_dim"):
        bank(torch.randn(2, 9), torch.tensor([0, 1]))
