import math

import torch

from reid.losses.transfer import (
    gaussian_kernel,
    mmd_loss,
    positive_ratio,
    wbce_class_weights,
    weighted_bce_with_logits,
)


def naive_wbce(logits: torch.Tensor, y: torch.Tensor, w: list[float] | None, sigma: float) -> float:
    """Eq. 8 (eq. 7 when w is None), one sample and one attribute at a time, then averaged over the batch."""
    batch, num_attr = logits.shape
    total = 0.0
    for b in range(batch):
        s = 0.0
        for i in range(num_attr):
            p = 1 / (1 + math.exp(-float(logits[b, i])))
            pos = 1.0 if w is None else math.exp((1 - w[i]) / sigma ** 2)
            neg = 1.0 if w is None else math.exp(w[i] / sigma ** 2)
            s += pos * float(y[b, i]) * math.log(p) + neg * (1 - float(y[b, i])) * math.log(1 - p)
        total += -s / num_attr
    return total / batch


def naive_mmd(fs: torch.Tensor, ft: torch.Tensor, alpha: float) -> float:
    """Eqs. 5-6 with explicit double sums."""
    def k(a, b):
        return math.exp(-sum((float(x) - float(z)) ** 2 for x, z in zip(a, b, strict=True)) / (2 * alpha ** 2))
    ns, nt = len(fs), len(ft)
    ss = sum(k(fs[i], fs[j]) for i in range(ns) for j in range(ns)) / ns ** 2
    tt = sum(k(ft[i], ft[j]) for i in range(nt) for j in range(nt)) / nt ** 2
    st = sum(k(fs[i], ft[j]) for i in range(ns) for j in range(nt)) * 2 / (ns * nt)
    return ss + tt - st


def test_bce_and_wbce_match_equations_7_and_8():
    logits = torch.randn(5, 4) * 2
    y = (torch.rand(5, 4) > 0.6).float()
    w = positive_ratio(torch.tensor([[1, 0, 0, 1], [0, 0, 1, 1], [0, 0, 0, 1], [1, 0, 0, 1]]))
    assert torch.allclose(w, torch.tensor([0.5, 0.0, 0.25, 1.0]))
    for sigma in (1.0, 0.5):
        got = weighted_bce_with_logits(logits, y, w, sigma)
        assert math.isclose(float(got), naive_wbce(logits, y, w.tolist(), sigma), rel_tol=1e-5)
    got = weighted_bce_with_logits(logits, y)
    assert math.isclose(float(got), naive_wbce(logits, y, None, 1.0), rel_tol=1e-5)
    assert torch.isclose(got, torch.nn.functional.binary_cross_entropy_with_logits(logits, y))


def test_wbce_upweights_rare_positives():
    pos, neg = wbce_class_weights(torch.tensor([0.05, 0.9]), 1.0)
    assert pos[0] > neg[0] and pos[1] < neg[1]
    assert torch.allclose(pos, torch.exp(torch.tensor([0.95, 0.1]))) and torch.allclose(neg, torch.exp(torch.tensor([0.05, 0.9])))


def test_wbce_stays_finite_for_confident_mistakes():
    loss = weighted_bce_with_logits(torch.tensor([[200.0, -200.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([0.5, 0.5]))
    assert torch.isfinite(loss) and loss > 100


def test_mmd_matches_equations_5_and_6():
    fs, ft = torch.randn(4, 3) * 0.5, torch.randn(6, 3) * 0.5 + 0.3
    for alpha in (0.5, 1.3):
        assert math.isclose(float(mmd_loss(fs, ft, alpha)), naive_mmd(fs, ft, alpha), rel_tol=1e-5, abs_tol=1e-7)
    k = gaussian_kernel(fs, ft, 0.5)
    assert torch.isclose(k[1, 2], torch.exp(-((fs[1] - ft[2]) ** 2).sum() / 0.5))


def test_mmd_is_zero_for_identical_sets_and_has_gradients():
    f = torch.randn(5, 8)
    assert abs(float(mmd_loss(f, f.clone()))) < 1e-6
    fs = (torch.randn(8, 4) * 0.3).requires_grad_(True)
    loss = mmd_loss(fs, torch.randn(8, 4) * 0.3 + 1.0)
    loss.backward()
    assert loss > 0 and torch.isfinite(fs.grad).all() and fs.grad.abs().sum() > 0


def test_transfer_model_mmd_is_eqs_5_6_on_raw_features_by_default():
    """The transfer model's MMD term is eq. 5 with the kernel of eq. 6 on the attribute features F themselves (the
    paper); the old default L2-normalised F first, which this naive double sum would not match."""
    from torch import nn

    from reid.models.attribute_transfer import TransferSettings, transfer_terms

    class Net(nn.Module):   # the transfer net's interface: images -> (features F [N, 3], logits [N, 2])
        def __init__(self) -> None:
            super().__init__()
            self.feature = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
            self.predict = nn.Linear(3, 2)

        def forward(self, x):
            f = self.feature(x)
            return f, self.predict(f)

    torch.manual_seed(0)
    net = Net()
    src, tgt = torch.randn(4, 3, 2, 2) * 0.3, torch.randn(5, 3, 2, 2) * 0.3 + 0.2
    labels, ratio = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]]).float(), torch.tensor([0.5, 0.5])
    settings = TransferSettings(variant="wbce_mmd")
    assert settings.mmd_normalize is False
    with torch.no_grad():
        got = transfer_terms(net, src, labels, tgt, ratio, settings)["mmd"]
        feats = net(torch.cat([src, tgt]))[0]
    raw = naive_mmd(feats[:4], feats[4:], 0.5)
    normed = naive_mmd(*torch.nn.functional.normalize(feats, dim=1).split([4, 5]), 0.5)
    assert math.isclose(float(got), raw, rel_tol=1e-5, abs_tol=1e-7)
    assert not math.isclose(raw, normed, rel_tol=1e-2)
