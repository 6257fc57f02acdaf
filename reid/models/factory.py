"""The one model factory: a method's model (and, for training, its objective) from a config, a `DataInfo` and
optionally a checkpoint. Training (`reid.training.worker`), evaluation (`reid.evaluation.run`), Ray Data batch
inference (`reid.evaluation.chunks`) and `reid bench gpu` all build through `build_method`, so they agree on the
rules: parameters validated once into the method's typed classes, a fixed seed, ImageNet weights only for training,
and one checkpoint rule (every tensor must fit, except the ID classifier that `MethodSpec.classifier` names).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid.config.schema import ExperimentConfig
from reid.errors import ReidError
from reid.models.state_file import STATE_FILE, init_weights_from, load_state
from reid.registry import get_method
from reid.spec import DataInfo, MethodSpec, ObjectiveLike

log = logging.getLogger(__name__)

Checkpoint = Path | str | Mapping[str, torch.Tensor]  # a checkpoint directory, its state.pt, or a model state dict


@dataclass
class BuiltMethod:
    spec: MethodSpec
    model: nn.Module                     # a ReidModel: forward_features(batch) -> [B, D]
    objective: ObjectiveLike | None      # only when built for training
    checkpoint: Path | None = None       # the checkpoint file / directory the weights came from


def build_method(cfg: ExperimentConfig, info: DataInfo, checkpoint: Checkpoint | None = None, *,
                 train: bool = False, device: torch.device | str | None = None) -> BuiltMethod:
    """The model of `cfg.method` built for `info`, seeded with `cfg.seed` (equal initial weights on every rank).

    train=True: the model as configured (ImageNet trunk weights when `model.pretrained`), `train.init_from`
    applied (tensors of another shape skipped), and the objective, built with the model's `feature_dim`.
    train=False (evaluation, inference): no objective, eval mode, and never downloaded trunk weights: they come from
    `checkpoint` (a local checkpoint directory, a state.pt, or a model state dict), or, without one, the model is
    the untrained baseline with random weights.
    """
    spec = get_method(cfg.method)
    params = spec.typed_model_params(cfg.model)
    if not train and "pretrained" in type(params).model_fields:
        params = params.model_copy(update={"pretrained": False})
    if not train and info.num_classes < 1:
        # a manifest without training identities (a test-only one, cross-dataset testing): the ID classifier, which
        # testing never uses, gets one class rather than zero (torch warns on every zero-element Linear)
        info = replace(info, num_classes=1)
    torch.manual_seed(cfg.seed)
    model = spec.build_model(params, info)
    objective = None
    used = None
    if train:
        if checkpoint is not None:
            raise ReidError("build_method(train=True) resumes through the training session, not a checkpoint")
        objective = spec.build_objective(cfg.loss, replace(info, feature_dim=getattr(model, "feature_dim", None)))
        if cfg.train.init_from:
            skipped = init_weights_from(model, cfg.train.init_from)
            log.info("initialised weights from %s (skipped %d mismatched tensors)", cfg.train.init_from, len(skipped))
    elif checkpoint is not None:
        if isinstance(checkpoint, Mapping):
            load_weights(model, checkpoint, spec, "the given state")
        else:
            used = checkpoint_file(checkpoint)
            load_weights(model, load_state(used)["model"], spec, str(used))
    if device is not None:
        model.to(device)
    if not train:
        model.eval()
    return BuiltMethod(spec=spec, model=model, objective=objective, checkpoint=used)


def checkpoint_file(checkpoint: Path | str) -> Path:
    """A local checkpoint directory (holding state.pt) or state file, checked to exist."""
    path = Path(checkpoint)
    if not (path.is_file() or (path / STATE_FILE).is_file()):
        raise ReidError(f"checkpoint {path} does not exist (expected {STATE_FILE} in a checkpoint directory)")
    return path


def load_weights(model: nn.Module, state: Mapping[str, Any], spec: MethodSpec, source: str) -> list[str]:
    """Load a checkpoint's model tensors for testing; returns the classifier tensors left out.

    Every tensor the model has must be in it; tensors of another shape are only accepted in the ID classifier
    (`spec.classifier`), whose size follows the training set's identity count and which testing never uses: that
    is how a model trained on one dataset is tested on another (cross-dataset, e.g. iLIDS-VID -> PRID-2011).
    """
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        first = missing[0] if missing else extra[0]
        raise ReidError(f"checkpoint {source} does not fit the model of this config ({len(missing)} tensor(s) "
                        f"missing, {len(extra)} unknown; first: {first}); was it trained with another method, variant "
                        "or model.* setting? Compare with the run's config.yaml")
    differ = [k for k in own if own[k].shape != state[k].shape]
    wrong = [k for k in differ if not spec.is_classifier(k)]
    if wrong:
        raise ReidError(f"checkpoint {source} does not fit the model of this config: {wrong[0]} has shape "
                        f"{tuple(state[wrong[0]].shape)} there and {tuple(own[wrong[0]].shape)} here "
                        f"({len(wrong)} such tensor(s)); check model.* settings against the run's config.yaml")
    model.load_state_dict({k: v for k, v in state.items() if k not in differ}, strict=not differ)
    if differ:
        print(f"[reid] the ID classifier of {source} is not loaded ({', '.join(differ)}): its identity count differs "
              "from this dataset's, and testing does not use it", flush=True)
    return differ
