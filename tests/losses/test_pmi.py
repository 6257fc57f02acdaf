"""PMI triplet loss (ASA-Net eqs. 11-13): mining inside each identity by ID-irrelevant attribute distance."""

import math

import torch
import torch.nn.functional as F

from reid.losses.pmi import pmi_triplet_loss, pmi_triplets


def _pmi_loop(final: torch.Tensor, attr: torch.Tensor, y: torch.Tensor) -> tuple[float, list, list]:
    aps, ans, total, n = [], [], 0.0, 0
    for a in range(len(y)):
        same = [i for i in range(len(y)) if y[i] == y[a] and i != a]
        if not same:
            aps.append(a), ans.append(a)
            continue
        dist = {i: float(torch.linalg.norm(attr[i] - attr[a])) for i in same}
        ap, an = min(same, key=dist.get), max(same, key=dist.get)                     # eq. 11
        cos = lambda u, v: float(u @ v) / (float(torch.linalg.norm(u)) * float(torch.linalg.norm(v)))  # noqa: E731
        d_neg, d_pos = 1 - cos(final[a], final[an]), 1 - cos(final[a], final[ap])      # eq. 13
        total += max(d_neg - d_pos, 0.0)                                               # eq. 12
        n += 1
        aps.append(ap), ans.append(an)
    return total / n, aps, ans


def test_hand_built_batch_picks_closest_and_farthest_pose_within_identity():
    # identity 0: samples 0, 1, 2 with pose features 0.0, 0.1, 5.0; identity 1: samples 3, 4, 5 at 0, 3, 1.
    # Sample 6 (identity 0's pose twin of sample 0 ... but identity 2) must never be mined for identity 0.
    attr = torch.tensor([[0.0], [0.1], [5.0], [0.0], [3.0], [1.0], [0.0]])
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    ap, an, valid = pmi_triplets(attr, y)
    assert ap.tolist()[:6] == [1, 0, 1, 5, 5, 3]
    assert an.tolist()[:6] == [2, 2, 0, 4, 3, 4]
    assert valid.tolist() == [True] * 6 + [False]


def test_loss_value_on_hand_example():
    # anchor 0 of identity 0: AP (same pose) = sample 1, AN (other pose) = sample 2
    attr = torch.tensor([[0.0], [0.1], [5.0]])
    y = torch.tensor([0, 0, 0])
    final = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    # anchor 0: d(0,AN=2) = 1, d(0,AP=1) = 1 - 1/sqrt2 -> 1/sqrt2
    # anchor 1: AP = 0, AN = 2: d(1,2) = d(1,0) -> 0;  anchor 2: AP = 1, AN = 0: d(2,0) - d(2,1) = 1/sqrt2
    expected = (1 / math.sqrt(2) + 0 + 1 / math.sqrt(2)) / 3
    assert math.isclose(float(pmi_triplet_loss(final, attr, y)), expected, rel_tol=1e-6)


def test_matches_loop_on_random_pk_batch_and_only_final_features_get_gradients():
    torch.manual_seed(0)
    y = torch.arange(4).repeat_interleave(4)
    final = torch.randn(16, 8, requires_grad=True)
    attr = torch.randn(16, 5, requires_grad=True)
    expected, aps, ans = _pmi_loop(final.detach(), attr.detach(), y)
    ap, an, _ = pmi_triplets(attr, y)
    assert ap.tolist() == aps and an.tolist() == ans
    loss = pmi_triplet_loss(final, attr, y)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    loss.backward()
    assert final.grad is not None and attr.grad is None


def test_two_samples_per_identity_gives_zero_and_no_pairs_gives_zero():
    final = F.normalize(torch.randn(4, 3), dim=1)
    assert float(pmi_triplet_loss(final, torch.randn(4, 2), torch.tensor([0, 0, 1, 1]))) == 0.0   # AP == AN
    assert float(pmi_triplet_loss(final, torch.randn(4, 2), torch.tensor([0, 1, 2, 3]))) == 0.0
