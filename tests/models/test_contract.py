"""The contract every registered method x variant keeps (timm's tests/test_models.py style): built from its config
by the model factory on a tiny DataInfo, a training forward gives an objective whose loss is finite, the backward
pass reaches every trainable parameter with a finite gradient, the eval forward embeds each clip as features [B, D],
and `forward_features` (what evaluation calls) gives exactly those features; the ID classifier is the module the
MethodSpec names and is sized by the identity count.

Method-specific behaviour (equations, shapes of the extra outputs) stays in tests/models/test_<method>.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reid.attribute_schema import AttributeSchema, schema_from_columns
from reid.config import build_config
from reid.models.factory import build_method
from reid.models.layers.module import ReidModule
from reid.registry import get_method, list_methods
from reid.skeleton import NUM_CHANNELS, NUM_JOINTS
from reid.spec import Batch, DataInfo, MethodSpec, ObjectiveLike, ReidModel

B, T, H, W = 4, 2, 32, 16  # tiny inputs keep the whole file fast on a CPU
NUM_CLASSES = 3
SCHEMA = schema_from_columns({"gender": 2, "age": 3, "hat": 2, "top color": 4, "motion": 5, "pose": 6})
CASES = [(m, v) for m in list_methods() for v in (None, *get_method(m).variants)]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread. Two threads on a busy 2-core machine spend their time waiting for each
    other (measured on this 2-core machine under load, 2026-12-02: 12 cases at 16x8 frames took 24.7 s of CPU
    with 2 threads, 1.5 s with 1; the whole file ran in 39 s at load 5)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_overrides(spec: MethodSpec) -> list[str]:
    """The smallest trunk and no downloaded weights, where the method has those parameters."""
    fields = spec.model_params.model_fields
    out = [f"data.seq_len={T}", f"data.height={H}", f"data.width={W}"]
    if "depth" in fields:
        out.append("model.depth=18")
    if "pretrained" in fields:
        out.append("model.pretrained=false")
    return out


def tiny_batch(spec: MethodSpec, info: DataInfo) -> Batch:
    """A normalised batch of B clips with exactly the inputs the method declares; pk: 2 identities x 2 clips,
    pairs: rows 0..1 side A, 2..3 side B, one positive and one negative pair."""
    g = torch.Generator().manual_seed(0)
    pid = torch.tensor([0, 1, 0, 2]) if spec.batching == "pairs" else torch.tensor([0, 0, 1, 1])
    batch: Batch = {"frames": torch.randn(B, T, 3, H, W, generator=g), "pid": pid, "camid": torch.tensor([0, 1, 0, 1])}
    if "flow" in spec.inputs:
        batch["flow"] = torch.rand(B, T, 2, H, W, generator=g) * 2 - 1
    if "pose_maps" in spec.inputs:
        batch["pose_maps"] = torch.rand(B, T, NUM_CHANNELS, H // 8, W // 8, generator=g)
    if "keypoints" in spec.inputs:
        batch["keypoints"] = torch.rand(B, T, NUM_JOINTS, 3, generator=g) * torch.tensor([W, H, 1.0])
    if "attributes" in spec.inputs:
        counts = torch.tensor([c.num_classes for c in info.attributes.columns])
        batch["attributes"] = (torch.rand(B, len(counts), generator=g) * counts).long()
    if spec.batching == "pairs":
        batch["pair_same"] = torch.tensor([1.0, 0.0])
    return batch


def check_contract(model: nn.Module, objective: nn.Module, batch: Batch) -> None:
    """The contract itself; raises AssertionError naming the broken part."""
    assert isinstance(model, ReidModel) and isinstance(objective, ObjectiveLike)
    model.train()
    outputs = model(batch)
    losses = objective(outputs, batch)
    assert "loss" in losses and losses["loss"].dim() == 0, "the objective returns a scalar `loss`"
    bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
    assert not bad, f"non-finite loss terms: {bad}"
    losses["loss"].backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable, "the model has trainable parameters"
    no_grad = [n for n, p in trainable if p.grad is None]
    assert not no_grad, f"the loss does not reach {len(no_grad)} parameters, e.g. {no_grad[:3]}"
    bad_grad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
    assert not bad_grad, f"non-finite gradients: {bad_grad[:3]}"
    model.eval()
    with torch.no_grad():
        feats = model(batch)["features"]
    assert feats.dim() == 2 and feats.shape[0] == B, f"features {tuple(feats.shape)}, expected [{B}, D]"
    assert torch.isfinite(feats).all()
    dim = getattr(model, "feature_dim", None)
    assert dim is None or feats.shape[1] == dim, f"features are {feats.shape[1]}-d, feature_dim says {dim}"
    with torch.no_grad():
        embedded = model.forward_features(batch)
    assert embedded.shape == feats.shape and torch.allclose(embedded, feats, atol=1e-5), \
        "forward_features differs from forward()['features']"


def check_classifier(model: nn.Module, spec: MethodSpec, num_classes: int) -> None:
    """`spec.classifier` names a module whose weight rows are the identity classes (what the factory lets differ)."""
    assert spec.classifier is not None, f"{spec.name} names no ID classifier"
    sized = {k: v.shape for k, v in model.state_dict().items() if spec.is_classifier(k) and v.dim() >= 1}
    assert sized, f"no tensor under '{spec.classifier}'"
    assert any(shape[0] == num_classes for shape in sized.values()), f"{spec.classifier}: {sized}"


def build(method: str, variant: str | None) -> tuple[nn.Module, nn.Module, Batch]:
    spec = get_method(method)
    overrides = tiny_overrides(spec) + ([f"variant={variant}"] if variant else [])
    cfg = build_config(method, [], overrides)
    info = DataInfo(num_classes=NUM_CLASSES, attributes=SCHEMA if "attributes" in spec.inputs else AttributeSchema(),
                    height=H, width=W)
    built = build_method(cfg, info, train=True)
    return built.model, built.objective, tiny_batch(spec, info)


@pytest.mark.parametrize("method, variant", CASES, ids=[f"{m}-{v or 'default'}" for m, v in CASES])
def test_method_contract(method, variant):
    model, objective, batch = build(method, variant)
    check_classifier(model, get_method(method), NUM_CLASSES)
    check_contract(model, objective, batch)


def test_every_method_is_covered():
    assert {m for m, _ in CASES} == set(list_methods()) and len(list_methods()) >= 6


class _Detached(ReidModule):
    """Broken on purpose: the classifier sees detached features, so no gradient reaches the trunk."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(3, 8)
        self.classifier = nn.Linear(8, 3)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        f = self.trunk(batch["frames"].mean(dim=(1, 3, 4)))
        return {"features": f, "logits": self.classifier(f.detach())}


class _FlatFeatures(_Detached):
    """Broken on purpose: the embedding keeps a time axis, [B, T, D] instead of [B, D]."""

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        f = self.trunk(batch["frames"].mean(dim=(3, 4)))
        return {"features": f, "logits": self.classifier(f.mean(1))}


class _OtherEmbedding(_Detached):
    """Broken on purpose: forward_features is not the embedding forward() gives (the gradient reaches everything)."""

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        f = self.trunk(batch["frames"].mean(dim=(1, 3, 4)))
        return {"features": f, "logits": self.classifier(f)}

    def forward_features(self, batch: Batch) -> torch.Tensor:
        return self.forward(batch)["features"] * 2


class _CE(nn.Module):
    own_lr = None

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        ce = nn.functional.cross_entropy(outputs["logits"], batch["pid"]) * self.scale
        return {"loss": ce, "ce": ce}


@pytest.mark.parametrize("model, objective, message", [
    (_Detached(), _CE(), "does not reach 2 parameters"),
    (_FlatFeatures(), _CE(), "expected [4, D]"),
    (_FlatFeatures(), _CE(float("nan")), "non-finite loss terms: ['loss', 'ce']"),
    (_OtherEmbedding(), _CE(), "forward_features differs"),
])
def test_contract_fails_on_a_broken_model(model, objective, message):
    batch: Batch = {"frames": torch.randn(B, T, 3, H, W), "pid": torch.tensor([0, 0, 1, 1])}
    with pytest.raises(AssertionError) as err:
        check_contract(model, objective, batch)
    assert message in str(err.value)
