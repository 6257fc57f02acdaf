import torch

from reid.losses.metric import batch_hard_triplet, pairwise_distance
from reid.losses.softmax import cross_entropy_label_smooth
from reid.registry import DataInfo, get_method


def test_label_smoothed_ce_matches_formula():
    logits = torch.randn(5, 7)
    labels = torch.tensor([0, 3, 6, 2, 2])
    eps = 0.1
    expected = 0.0
    for b in range(5):
        logp = torch.log_softmax(logits[b], 0)
        for i in range(7):
            q = (1 - eps) * (i == labels[b]) + eps / 7
            expected -= q * logp[i]
    assert torch.allclose(cross_entropy_label_smooth(logits, labels, eps), expected / 5, atol=1e-6)


def test_batch_hard_triplet_matches_loop():
    x = torch.randn(8, 4)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    d = pairwise_distance(x)
    total = 0.0
    for a in range(8):
        ap = max(float(d[a, p]) for p in range(8) if y[p] == y[a])
        an = min(float(d[a, n]) for n in range(8) if y[n] != y[a])
        total += max(0.0, 0.3 + ap - an)
    assert torch.allclose(batch_hard_triplet(x, y, 0.3), torch.tensor(total / 8), atol=1e-5)


@torch.no_grad()
def test_baseline_outputs_and_loss_terms():
    """Build / forward / finite loss / backward / [B, D] are tests/models/test_contract.py's; these are the baseline's."""
    spec = get_method("baseline")
    info = DataInfo(num_classes=3, height=64, width=32)
    model = spec.build_model({"depth": 18, "pretrained": False}, info)
    objective = spec.build_objective({}, info)
    batch = {"frames": torch.randn(4, 3, 3, 64, 32), "pid": torch.tensor([0, 0, 2, 2])}
    out = model(batch)
    assert out["features"].shape == (4, 512) and out["logits"].shape == (4, 3)
    assert set(objective(out, batch)) == {"loss", "ce", "triplet"}
