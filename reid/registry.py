"""Method registry: a method is a model factory, its parameter classes, its objective, and its variants.

Inspired by timm's `register_model` / fast-reid's registry: registering a name twice is an error, and a miss names
the known methods. Each method file in `reid/models/` registers itself; `reid.models` imports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from reid.config.errors import ConfigError
from reid.data.attributes import AttributeSchema


class Params(BaseModel):
    """Base for method parameter classes (`model.*` and `loss.*`): strict, typed."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class NoParams(Params):
    pass


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data it is built for."""

    num_classes: int
    attributes: AttributeSchema = field(default_factory=AttributeSchema)
    seq_len: int = 8
    height: int = 256
    width: int = 128
    # the built model's embedding width (its `feature_dim`), filled in before the objective is built: objectives
    # with per-class centers size them with it
    feature_dim: int | None = None


Inputs = frozenset[str]  # subset of {"frames", "flow", "pose_maps", "keypoints", "attributes"}


@dataclass(frozen=True)
class MethodSpec:
    """Everything the training spine needs to run a method.

    Attributes:
        build_model: (model params, DataInfo) -> nn.Module whose forward(batch) returns a dict with at least
            `features` [B, D] (the test embedding) and, in training, the tensors its objective consumes.
        build_objective: (loss params, DataInfo) -> callable(outputs, batch) -> dict of loss terms incl. `loss`.
        inputs: batch keys the pipeline must produce (`frames` always).
        batching: "pk" (P identities x K tracklets) or "pairs" (siamese positive / negative pairs).
        input_norm: "imagenet" (RGB, ImageNet mean/std) or "yuv" (per-channel standardised YUV, RCN-style).
        variants: named rows of the paper's tables -> dotted overrides (`model.x`, `loss.y`, `data.z`).
        default_config: packaged YAML with the method's default recipe.
    """

    name: str
    build_model: Callable[[Any, DataInfo], Any]
    build_objective: Callable[[Any, DataInfo], Any]
    model_params: type[BaseModel] = NoParams
    loss_params: type[BaseModel] = NoParams
    inputs: Inputs = frozenset({"frames"})
    batching: Literal["pk", "pairs"] = "pk"
    input_norm: Literal["imagenet", "yuv"] = "imagenet"
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_config: str | None = None
    description: str = ""


_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    if spec.name in _METHODS:
        raise ValueError(f"method '{spec.name}' is registered twice")
    _METHODS[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    import reid.models  # noqa: F401  (registers every method)


def get_method(name: str) -> MethodSpec:
    _ensure_loaded()
    if name not in _METHODS:
        raise ConfigError(f"unknown method '{name}'; known methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def list_methods() -> list[str]:
    _ensure_loaded()
    return sorted(_METHODS)
