"""The contracts every layer shares: what a method is (`MethodSpec`), what it is built for (`DataInfo`), its typed
parameters (`Params`), what flows through it (`Batch`, `ModelOutputs`) and the shapes of a re-ID model and an
Objective (`ReidModel`, `ObjectiveLike`).

A leaf module: it imports nothing from reid except the attribute schema (itself a leaf) and nothing heavy at run
time (torch only for type checking), so the data layer, the models, the losses, the registry and the config loader
can all import it without importing each other (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, Required, TypedDict, runtime_checkable

from pydantic import BaseModel, ConfigDict

from reid.attribute_schema import AttributeSchema

if TYPE_CHECKING:  # torch is not imported at run time: the decoding actors never need it
    import torch
    from torch import nn

InputName = Literal["frames", "flow", "pose_maps", "keypoints", "attributes"]
Inputs = frozenset[str]  # a subset of InputName's values; `frames` always
# inputs the decoding actors compute from the frames they decode: a method that needs one cannot have its frames
# decoded on the trainer (`data.jpeg_decode=trainer`, reid.data.device_decode)
CPU_FRAME_INPUTS: frozenset[str] = frozenset({"flow", "pose_maps", "keypoints"})
BatchingKind = Literal["pk", "pairs"]  # P identities x K tracklets, or siamese positive / negative pairs
InputNorm = Literal["imagenet", "yuv"]  # RGB with ImageNet mean / std, or per-channel standardised YUV (RCN)


class Params(BaseModel):
    """Base for method parameter classes (`model.*` and `loss.*`): strict, typed."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class NoParams(Params):
    pass


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data it is built for.

    Attributes:
        num_classes: training identities (the ID classifier's width).
        attributes: the dataset's attribute schema (empty without attribute labels).
        height, width: the frame size H x W of `Batch.frames`.
        feature_dim: the built model's embedding width D (its `feature_dim`), filled in before the objective is
            built: objectives with per-class centers size them with it.
    """

    num_classes: int
    attributes: AttributeSchema = field(default_factory=AttributeSchema)
    height: int = 256
    width: int = 128
    feature_dim: int | None = None


class Batch(TypedDict, total=False):
    """A batch as the model and the objective see it (torch tensors on the device, after normalisation).

    B = P * K for "pk" batching, 2N for "pairs" (rows 0..N-1 are side A, N..2N-1 side B); T frames per clip.
    Only `frames` and `pid` are always present; the rest only when the method's `MethodSpec.inputs` ask for them
    (reid/data/batching.py holds the pipeline's side of this contract: dtypes before normalisation).
    """

    frames: Required[torch.Tensor]  # float [B, T, 3, H, W], normalised per MethodSpec.input_norm
    pid: Required[torch.Tensor]     # int64 [B] contiguous training labels
    camid: torch.Tensor             # int64 [B]
    index: torch.Tensor             # int64 [B] record index in the manifest
    attributes: torch.Tensor        # int64 [B, num_columns], schema column order, -1 = missing
    flow: torch.Tensor              # float [B, T, 2, H, W] optical flow (u, v) in [-1, 1]
    pose_maps: torch.Tensor         # float [B, T, 57, H // 8, W // 8] OpenPose layout (reid.skeleton)
    keypoints: torch.Tensor         # float [B, T, 18, 3] (x, y, confidence) in frame pixels
    pair_same: torch.Tensor         # float [N] 1 for a positive pair ("pairs" batching)


ModelOutputs = dict[str, "torch.Tensor"]  # at least `features` [B, D]; in training what the objective consumes


@runtime_checkable
class ReidModel(Protocol):
    """A re-ID model (an nn.Module), timm-like: `forward_features(batch)` -> the test embedding [B, D] without the
    training heads; `model(batch)` -> outputs with `features` [B, D] and what the objective consumes."""

    def __call__(self, batch: Batch) -> ModelOutputs: ...

    def forward_features(self, batch: Batch) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...


@runtime_checkable
class ObjectiveLike(Protocol):
    """A method's objective (`reid.losses.objective.Objective`): owns the loss weights.

    `objective(outputs, batch)` -> {"loss": weighted sum [], term: unweighted term [] ...}; `own_lr` set means its
    own parameters (e.g. centers) get their own optimiser with that learning rate.
    """

    own_lr: float | None

    def __call__(self, outputs: ModelOutputs, batch: Batch) -> dict[str, torch.Tensor]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


# `cfg.model` / `cfg.loss` as the config holds them (a mapping) or already validated; validated once, by MethodSpec
ParamsInput = Mapping[str, Any] | Params


@dataclass(frozen=True)
class MethodSpec:
    """Everything the training spine needs to run a method (registered with `reid.registration.register_method`).

    Attributes:
        model: (its `model_params` instance, DataInfo) -> a ReidModel: `forward_features(batch)` -> embeddings
            [B, D] and `forward(batch)` -> at least `features` [B, D] plus, in training, what its objective consumes.
        objective: (its `loss_params` instance, DataInfo) -> an ObjectiveLike returning every loss term and `loss`.
        model_params, loss_params: the typed parameter classes of `model.*` and `loss.*`.
        classifier: dotted name of the ID classifier module ("neck.classifier"); its tensors follow the training
            set's identity count, so a checkpoint of another dataset may differ there, and only there
            (reid.models.factory). None: the model has no ID classifier.
        inputs: batch keys the pipeline must produce (`frames` always).
        batching: "pk" (P identities x K tracklets) or "pairs" (siamese positive / negative pairs).
        input_norm: "imagenet" (RGB, ImageNet mean/std) or "yuv" (per-channel standardised YUV, RCN-style).
        variants: named rows of the paper's tables -> dotted overrides (`model.x`, `loss.y`, `data.z`).
        default_config: packaged YAML with the method's default recipe.
    """

    name: str
    model: Callable[[Any, DataInfo], ReidModel]
    objective: Callable[[Any, DataInfo], ObjectiveLike]
    model_params: type[Params] = NoParams
    loss_params: type[Params] = NoParams
    classifier: str | None = None
    inputs: Inputs = frozenset({"frames"})
    batching: BatchingKind = "pk"
    input_norm: InputNorm = "imagenet"
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_config: str | None = None
    description: str = ""

    def typed_model_params(self, params: ParamsInput) -> Params:
        """`cfg.model` as this method's typed parameters (validated here once; an instance passes through)."""
        return params if isinstance(params, self.model_params) else self.model_params.model_validate(params)

    def typed_loss_params(self, params: ParamsInput) -> Params:
        return params if isinstance(params, self.loss_params) else self.loss_params.model_validate(params)

    def build_model(self, params: ParamsInput, info: DataInfo) -> ReidModel:
        """The bare module (random or `pretrained` trunk weights); runs build it through reid.models.factory."""
        return self.model(self.typed_model_params(params), info)

    def build_objective(self, params: ParamsInput, info: DataInfo) -> ObjectiveLike:
        return self.objective(self.typed_loss_params(params), info)

    def is_classifier(self, tensor_name: str) -> bool:
        """Whether a state-dict key belongs to the ID classifier (`classifier` or below it)."""
        c = self.classifier
        return c is not None and (tensor_name == c or tensor_name.startswith(c + "."))
