import numpy as np
import pytest
import torch
from torch import nn

from reid.errors import ReidError
from reid.losses.transfer import mmd_loss, weighted_bce_with_logits
from reid.models.attribute_transfer import (
    VARIANTS,
    AttributeTransferNet,
    TransferSettings,
    merge_and_threshold,
    predict_tracklets,
    source_accuracy,
    train_transfer,
    transfer_terms,
)


class TinyNet(nn.Module):
    """Stand-in with the transfer net's interface: images -> (features [N, 8], logits [N, L])."""

    def __init__(self, num_attributes: int) -> None:
        super().__init__()
        self.feature = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.predict = nn.Linear(8, num_attributes)

    def forward(self, x):
        f = self.feature(x)
        return f, self.predict(f)


def test_settings_validation():
    assert TransferSettings(variant="bce").weighted is False and TransferSettings(variant="wbce_mmd").uses_mmd
    for bad in ({"variant": "mmd"}, {"epochs": 0}, {"threshold": 1.0}, {"mmd_alpha": 0.0}):
        with pytest.raises(ReidError):
            TransferSettings(**bad)


@pytest.fixture(scope="module")
def resnet_net():
    torch.manual_seed(0)
    return AttributeTransferNet(3, TransferSettings(pretrained=False, feature_dim=16))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_transfer_terms_per_variant(variant, resnet_net):
    settings = TransferSettings(variant=variant)
    net = resnet_net.train()
    net.zero_grad()
    src, tgt = torch.randn(4, 3, 32, 16), torch.randn(4, 3, 32, 16)
    labels = torch.tensor([[1, 0, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0]]).float()
    ratio = torch.tensor([0.5, 0.1, 0.3])
    terms = transfer_terms(net, src, labels, tgt, ratio, settings)
    terms["loss"].backward()
    weighted, with_mmd = VARIANTS[variant]
    assert ("mmd" in terms) == with_mmd and torch.isfinite(terms["loss"])
    net.eval()  # recompute with the batch statistics frozen to compare against the loss functions directly
    with torch.no_grad():
        terms = transfer_terms(net, src, labels, tgt, ratio, settings)
        feats, logits = net(torch.cat([src, tgt]))
    assert torch.isclose(terms["attr"], weighted_bce_with_logits(logits[:4], labels, ratio if weighted else None))
    if with_mmd:
        # eqs. 5-6 on the raw attribute features by default; L2-normalised ones only with mmd_normalize
        assert torch.isclose(terms["mmd"], mmd_loss(feats[:4], feats[4:], 0.5))
        assert torch.isclose(terms["loss"], terms["attr"] + terms["mmd"])
        with torch.no_grad():
            normed = transfer_terms(net, src, labels, tgt, ratio, TransferSettings(variant=variant,
                                                                                    mmd_normalize=True))
        f = nn.functional.normalize(feats, dim=1)
        assert torch.isclose(normed["mmd"], mmd_loss(f[:4], f[4:], 0.5))


def test_merge_and_threshold_eqs_9_10():
    rng = np.random.default_rng(0)
    frame_scores = [rng.random((n, 2)) for n in (3, 1, 4, 2)]
    sums = np.stack([s.sum(0) for s in frame_scores])
    counts = np.array([len(s) for s in frame_scores])
    scores, labels = merge_and_threshold(sums, counts, threshold=0.5)
    for i, s in enumerate(frame_scores):
        for a in range(2):
            mean = sum(s[t, a] for t in range(len(s))) / len(s)        # eq. 9
            assert scores[i, a] == pytest.approx(mean)
            assert labels[i, a] == (1 if mean >= 0.5 else 0)            # eq. 10
    # identity pooling: all frames of tracklets 0 and 2 (same person), tracklet 3 (pid < 0) alone
    scores, _ = merge_and_threshold(sums, counts, np.array([7, 8, 7, -1]))
    pooled = np.concatenate([frame_scores[0], frame_scores[2]]).mean(0)
    assert np.allclose(scores[0], pooled) and np.allclose(scores[2], pooled)
    assert np.allclose(scores[3], frame_scores[3].mean(0))
    _, labels = merge_and_threshold(sums, np.array([3, 0, 4, 2]))
    assert (labels[1] == -1).all() and (labels[0] >= 0).all()


def test_predict_tracklets_sums_frame_scores():
    net = TinyNet(2)
    clips = [(0, torch.randn(3, 3, 8, 4)), (2, torch.randn(5, 3, 8, 4)), (0, torch.randn(1, 3, 8, 4))]
    sums, counts = predict_tracklets(net, clips, torch.device("cpu"), 3, 2, batch_frames=2)
    with torch.no_grad():
        expect0 = torch.sigmoid(net(torch.cat([clips[0][1], clips[2][1]]))[1]).sum(0)
    assert counts.tolist() == [4, 0, 5] and np.allclose(sums[0], expect0.numpy(), atol=1e-6)
    assert (sums[1] == 0).all()


def test_training_loop_reduces_the_loss():
    torch.manual_seed(0)
    images = torch.randn(16, 3, 8, 4)
    labels = (images[:, 0].mean((1, 2)) > 0).float().unsqueeze(1).repeat(1, 2)
    labels[:, 1] = 1 - labels[:, 1]
    source = [(images[:8], labels[:8]), (images[8:], labels[8:])]
    target = [torch.randn(8, 3, 8, 4) + 0.5]
    settings = TransferSettings(variant="wbce_mmd", epochs=8, lr=0.1)
    net = TinyNet(2)
    history = train_transfer(net, source, target, labels.mean(0), settings, torch.device("cpu"), val_loader=source)
    assert history[-1]["loss"] < history[0]["loss"] and "mmd" in history[0]
    assert history[-1]["val_acc"] == pytest.approx(float(source_accuracy(net, source, torch.device("cpu")).mean()))
    with pytest.raises(ReidError, match="target"):
        train_transfer(TinyNet(2), source, None, labels.mean(0), settings, torch.device("cpu"))
