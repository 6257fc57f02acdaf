"""torchvision's Keypoint R-CNN (`keypointrcnn_resnet50_fpn`, COCO-17 keypoints) as a COCO-18 keypoint estimator.

Weights are read from local files only, in this order: an explicit `weights` file; the torchvision cache,
`torch.hub.get_dir()/checkpoints/keypointrcnn_resnet50_fpn_coco-fc266e95.pth` (where `keypointrcnn_resnet50_fpn(
weights="COCO_V1")` saves them on a machine with internet access). With neither, `KeypointWeightsMissing` names
both places. `random_weights=True` builds the network untrained (tests check shapes and file formats with it).

COCO-17 -> COCO-18: the 17 joints are reordered, and the neck (absent from COCO-17) is the midpoint of the two
shoulders with the smaller of their confidences (zero when either shoulder is missing).
Confidence: torchvision's keypoint scores are heat-map logits, so a joint's confidence is their sigmoid
(monotone, in [0, 1] like OpenPose's heat-map peaks). The detection with the highest box score is the person; a
frame with no person detection gives zeros.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torchvision

from reid.data.decode import Decoder, read_frames
from reid.data.pose_maps import NUM_JOINTS
from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError
from reid.pose.base import KeypointSource, check_keypoints

log = logging.getLogger(__name__)
_WARNED: list[bool] = []  # the random-weights warning was given in this process

_WEIGHTS = torchvision.models.detection.KeypointRCNN_ResNet50_FPN_Weights.COCO_V1
COCO17_JOINTS = tuple(_WEIGHTS.meta["keypoint_names"])
# COCO-18 joint i comes from COCO-17 joint COCO17_OF_COCO18[i]; -1 = the neck, built from the shoulders
COCO17_OF_COCO18 = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
_L_SHOULDER, _R_SHOULDER = COCO17_JOINTS.index("left_shoulder"), COCO17_JOINTS.index("right_shoulder")


class KeypointWeightsMissing(ReidError):
    """No Keypoint R-CNN weights file where one was expected."""


def cached_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / _WEIGHTS.url.rsplit("/", 1)[-1]


def resolve_weights(weights: str | None) -> Path:
    """The weights file to load: the explicit one, else the torchvision cache; KeypointWeightsMissing otherwise."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise KeypointWeightsMissing(f"Keypoint R-CNN weights file '{weights}' does not exist (--weights)")
        return path
    path = cached_weights_path()
    if not path.is_file():
        raise KeypointWeightsMissing(
            f"no Keypoint R-CNN weights: expected the torchvision file {path.name} at {path}. Download it from "
            f"{_WEIGHTS.url} and put it there (or pass --weights FILE); tests can use --random-weights")
    return path


def coco17_to_coco18(kps17: np.ndarray) -> np.ndarray:
    """kps17 [..., 17, 3] (x, y, confidence; COCO order) -> [..., 18, 3] (COCO-18 / OpenPose order)."""
    kps17 = np.asarray(kps17, dtype=np.float32)
    idx = np.array([max(i, 0) for i in COCO17_OF_COCO18])
    out = kps17[..., idx, :].copy()
    ls, rs = kps17[..., _L_SHOULDER, :], kps17[..., _R_SHOULDER, :]
    conf = np.minimum(ls[..., 2], rs[..., 2])
    neck = np.concatenate([(ls[..., :2] + rs[..., :2]) / 2.0, conf[..., None]], axis=-1)
    out[..., 1, :] = np.where((conf > 0)[..., None], neck, 0.0)
    return out


def build_model(weights: str | None = None, random_weights: bool = False, min_size: int = 800,
                max_size: int = 1333, proposals: int = 1000) -> torch.nn.Module:
    """Keypoint R-CNN in eval mode. `min_size` / `max_size`: the resize torchvision applies before the network;
    `proposals`: region proposals kept per image before and after NMS (torchvision: 1000)."""
    if weights is not None and random_weights:
        raise ReidError("--weights and --random-weights exclude each other")
    model = torchvision.models.detection.keypointrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=2, num_keypoints=len(COCO17_JOINTS),
        min_size=min_size, max_size=max_size,
        # detections come sorted by score and there is one class: keeping one is exactly "the best person", and
        # spares the keypoint head (8 convs of 512 channels per detection) the other 99 boxes
        box_detections_per_img=1, rpn_pre_nms_top_n_test=proposals, rpn_post_nms_top_n_test=proposals)
    if random_weights:
        if not _WARNED:  # once per process: `reid bench pose` builds a model per size
            _WARNED.append(True)
            log.warning("Keypoint R-CNN with RANDOM weights: the keypoints are meaningless (format tests only)")
    else:
        path = resolve_weights(weights)
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ReidError(f"{path} is not a keypointrcnn_resnet50_fpn (COCO) state dict: "
                            f"{str(exc).splitlines()[0]}") from None
        log.info("loaded Keypoint R-CNN weights from %s", path)
    return model.eval()


def select_person(detection: dict[str, torch.Tensor]) -> np.ndarray:
    """One image's torchvision detections -> COCO-18 float32 [18, 3] of the highest-scoring person (or zeros)."""
    labels, scores = detection["labels"], detection["scores"]
    people = torch.nonzero(labels == 1).flatten()
    if people.numel() == 0:
        return np.zeros((NUM_JOINTS, 3), np.float32)
    best = people[scores[people].argmax()]
    xy = detection["keypoints"][best, :, :2].float()
    conf = torch.sigmoid(detection["keypoints_scores"][best].float())
    kps17 = torch.cat([xy, conf[:, None]], dim=1).cpu().numpy()
    return coco17_to_coco18(kps17)


class KeypointRCNNEstimator:
    """frames uint8 [N, H, W, 3] (RGB) -> COCO-18 keypoints float32 [N, 18, 3] in pixels of the frames."""

    def __init__(self, weights: str | None = None, random_weights: bool = False, batch_size: int = 16,
                 device: str = "auto", min_size: int = 800, max_size: int = 1333, proposals: int = 1000) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ReidError(f"--device {device}: no CUDA device is visible here (torch.cuda.is_available() is "
                            "False); use --device auto or cpu, or give each Ray actor a GPU (--gpus-per-worker 1)")
        self.model = build_model(weights, random_weights, min_size, max_size, proposals).to(self.device)
        self.batch_size = max(1, batch_size)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = np.zeros((len(frames), NUM_JOINTS, 3), np.float32)
        for start in range(0, len(frames), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(frames[start:start + self.batch_size]))
            images = list(chunk.to(self.device).permute(0, 3, 1, 2).float().div_(255.0))
            for i, det in enumerate(self.model(images)):
                out[start + i] = select_person(det)
        return out


class KeypointRCNNSource(KeypointSource):
    """Estimates a tracklet's keypoints on the fly (in this process); `reid pose` does the same at scale on Ray."""

    name = "keypoint-rcnn"

    def __init__(self, manifest: Manifest, estimator: KeypointRCNNEstimator, decoder: Decoder | None = None) -> None:
        super().__init__(manifest)
        self.estimator = estimator
        self.decoder = decoder or Decoder()

    def load(self, record: TrackletRecord) -> np.ndarray:
        frames = read_frames(self.manifest, record, np.arange(record.num_frames), self.decoder)
        return check_keypoints(self.estimator(frames), record.num_frames, f"tracklet {record.tracklet_id}")
