"""Turn a plan row into a training batch (no Ray here: the Ray pipeline and the local iterator both call this).

Batch contract (numpy here, torch tensors after iteration), B = P * K for "pk", 2N for "pairs":
    frames      uint8   [B, T, 3, H, W]  RGB, clip-consistently augmented; the worker normalises
                                         (`transforms.normalize_imagenet` / `transforms.to_yuv_standardized`)
    pid         int64   [B]              contiguous training labels (`records.relabel` of the train records)
    camid       int64   [B]
    index       int64   [B]              record index in the manifest
    epoch       int64   []               the plan's epoch (lets the consumer check it got the epoch it asked for)
    batch_index int64   []               the plan's global batch number
  only when the method's MethodSpec.inputs ask for them:
    attributes  int64   [B, num_columns] schema column order, -1 where missing
    flow        float16 [B, T, 2, H, W]  Lucas-Kanade (u, v), divided by flow.FLOW_BOUND, clipped to [-1, 1]
    pose_maps   float16 [B, T, 57, H // 8, W // 8]  OpenPose layout (pose_maps.py)
    keypoints   float32 [B, T, 18, 3]    in output-frame pixels, after the same crop / flip
  "pairs" batching: rows 0..N-1 are side A and N..2N-1 side B of N pairs, plus
    pair_same   float32 [N]              1 for a positive pair (same identity), 0 otherwise
  training batches whose inputs are only frames (and attributes): no `frames`; the worker's device augments them
  (`device_decode.finish_frames` in `inputs.normalize_inputs`: crop, flip, erasing and transposition, free on a GPU;
  in the decoding actors they cost a copy of every frame, 10 % of a JPEG-store batch, plus the flip and
  transposition, 21 %), and a JPEG store's frames decode straight into the batch
    frames_hwc     uint8 [B, T, rh, rw, 3]  each clip's frames resized to (resize_height, resize_width), NOT cropped
    frames_augment int64 [B, 12]            each clip's AugmentParams (transforms.AUGMENT_COLUMNS)
  `data.jpeg_decode=trainer` (JPEG store, training batches): no `frames`; the trainer decodes (device_decode.py)
    jpeg_bytes   uint8  [total bytes]    the B*T sampled frames' JPEG files, concatenated clip by clip, in time order
    jpeg_offsets int64  [B*T + 1]        frame i is jpeg_bytes[jpeg_offsets[i]:jpeg_offsets[i + 1]]
    jpeg_augment int64  [B, 12]          each clip's AugmentParams (transforms.AUGMENT_COLUMNS), drawn as for `frames`

Unreadable tracklets: a tracklet that fails to decode (corrupt file, decode time-out) is logged, remembered and
replaced by another readable tracklet of the SAME identity (or, if the identity has none, every slot of that
identity is moved to an unused identity), so a batch keeps its P x K shape and every rank keeps the same number of
steps. More than `data.max_errored_fraction` of the training tracklets unreadable is a ReidError.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reid.config.schema import DataConfig
from reid.data.decode import DecodeError, Decoder, VideoRequest, read_frames
from reid.data.flow import clip_flow, normalize_flow
from reid.data.plan import Batching, PlanRow, epoch_plan
from reid.data.pose_maps import render_pose_maps
from reid.data.records import Manifest, read_manifest, relabel
from reid.data.sampling import FrameSampler, build_sampler, loop_pad, test_sampler
from reid.data.transforms import (
    apply_augment,
    apply_erase,
    augment_keypoints,
    augment_row,
    resize_clip,
    sample_augment,
)
from reid.errors import ReidError
from reid.spec import CPU_FRAME_INPUTS

if TYPE_CHECKING:  # imported lazily: the decoding actors build numpy batches and never need torch
    import torch

log = logging.getLogger(__name__)
KNOWN_INPUTS = frozenset({"frames", "flow", "pose_maps", "keypoints", "attributes"})
POSE_STRIDE = 8


def check_jpeg_decode(data: DataConfig, inputs: Iterable[str], manifest: Manifest | None = None) -> None:
    """Refuse `data.jpeg_decode=trainer` where it cannot apply (a ReidError naming the cause): a method whose inputs
    are derived from frames decoded on the CPU, a torchvision without `decode_jpeg`, or (given the manifest)
    tracklets that are not in a JPEG store."""
    if data.jpeg_decode != "trainer":
        return
    cpu = sorted(CPU_FRAME_INPUTS & set(inputs))
    if cpu:
        raise ReidError(f"data.jpeg_decode=trainer: the method's inputs {cpu} are computed from frames decoded in "
                        f"the decoding actors; use data.jpeg_decode=actor")
    from reid.data.device_decode import jpeg_decoder

    jpeg_decoder()  # torchvision still has decode_jpeg (deprecated since 0.29): said when the fit starts
    if manifest is not None:
        loose = [r.tracklet_id for r in manifest.records if not r.shard]
        if loose:
            raise ReidError(f"data.jpeg_decode=trainer needs a JPEG-store manifest (`reid prepare --pack jpeg`); "
                            f"{len(loose)} of {len(manifest.records)} tracklets are not in one (first: {loose[0]}); "
                            f"use data.jpeg_decode=actor")


@dataclass
class ErrorLog:
    """Unreadable training tracklets: record index -> message. `fresh` holds those not yet reported upstream."""

    num_tracklets: int
    max_fraction: float
    bad: dict[int, str] = field(default_factory=dict)
    fresh: list[tuple[int, str]] = field(default_factory=list)

    def add(self, index: int, tracklet_id: str, message: str) -> None:
        if index in self.bad:
            return
        self.bad[index] = message
        self.fresh.append((index, message))
        log.warning("skipping unreadable tracklet %s (record %d): %s", tracklet_id, index, message)
        self.check(message)

    def merge(self, known: dict[int, str]) -> None:
        """Take in what other decoders found (record index -> message), then check the threshold."""
        for index, message in known.items():
            self.bad.setdefault(int(index), message)
        if known:
            self.check(known[max(known)])

    def check(self, latest: str) -> None:
        if len(self.bad) > self.max_fraction * self.num_tracklets:
            raise ReidError(f"{len(self.bad)} of {self.num_tracklets} training tracklets could not be decoded, more "
                            f"than data.max_errored_fraction={self.max_fraction:g}; latest: {latest}")


class _IdentityUnreadable(Exception):
    def __init__(self, pid: int) -> None:
        self.pid = pid


class BatchMaker:
    """Builds batches from plan rows for one manifest; holds the decoder and the unreadable-tracklet log.

    `train=True` samples frames with `data.train_sampler` and augments; `train=False` uses the same sampler with
    its randomness off and no augmentation (validation batches of the same shapes). With `train=True` and
    `data.jpeg_decode=trainer` the batches carry the sampled frames' JPEG bytes and augmentation parameters
    instead of `frames` (module docstring); `clip` and the evaluation clips always decode.
    """

    def __init__(self, manifest: Manifest, data: DataConfig, inputs: Iterable[str], train: bool = True, *,
                 decoder: Decoder | None = None, known_bad: dict[int, str] | None = None) -> None:
        self.manifest, self.data, self.train = manifest, data, train
        self.inputs = frozenset(inputs) | {"frames"}
        unknown = self.inputs - KNOWN_INPUTS
        if unknown:
            raise ReidError(f"unknown batch inputs {sorted(unknown)}; expected a subset of {sorted(KNOWN_INPUTS)}")
        records = manifest.records
        train_idx = [i for i, r in enumerate(records) if r.role == "train"]
        self.labels = relabel(records[i] for i in train_idx)
        self.by_pid: dict[int, list[int]] = defaultdict(list)
        for i in train_idx:
            self.by_pid[records[i].pid].append(i)
        if {"pose_maps", "keypoints"} & self.inputs:
            missing = [records[i].tracklet_id for i in train_idx if not records[i].keypoints]
            if missing:
                raise ReidError(f"the method needs keypoints but {len(missing)} training tracklets have none "
                                f"(first: {missing[0]}); prepare the dataset with keypoints")
        if "attributes" in self.inputs and not manifest.attributes.column_names:
            raise ReidError("the method needs attributes but the manifest has no attribute schema")
        self.columns = manifest.attributes.column_names
        self.sampler: FrameSampler = build_sampler(data.train_sampler, data, train=train)
        self.decoder = decoder if decoder is not None else Decoder(data.decode_timeout_s)
        a = data.augment  # JPEG store: libjpeg-turbo may decode at 1/2, 1/4 ... while it stays this large
        self.decoder.draft_size = (a.resize_height or data.height, a.resize_width or data.width)
        self.decoder.cache_bytes = int(data.frame_cache_gb * (1 << 30))
        self.errors = ErrorLog(len(train_idx), data.max_errored_fraction, dict(known_bad or {}))
        self.ship_bytes = train and data.jpeg_decode == "trainer"
        if self.ship_bytes:
            check_jpeg_decode(data, self.inputs, manifest)
        # training clips of equal length that only feed the model's frames: crop here, flip and transpose on the
        # worker's device (module docstring); flow, pose maps and keypoints need the final frames here
        self.hwc = (train and not self.ship_bytes and data.train_sampler != "all"
                    and self.inputs <= {"frames", "attributes"})

    @property
    def frames_key(self) -> str:
        """The batch key of the decoded frames: `frames_hwc` for a maker with `hwc`, else `frames`."""
        return "frames_hwc" if self.hwc else "frames"

    # -- one tracklet -------------------------------------------------------------------------------------------
    def clip(self, index: int, frame_idx: np.ndarray, rng: np.random.Generator, train: bool,
             frames: np.ndarray | None = None, out_frames: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Decode (unless `frames` [T, H0, W0, 3] are given), augment and derive the extras of one clip:
        frames uint8 [T, 3, H, W] (+ flow, pose_maps, keypoints as requested), or for a training clip of a maker
        with `hwc`: frames_hwc uint8 [T, rh, rw, 3] and frames_augment int64 [12] (module docstring). `out_frames`
        (of that shape): write the frames there (a slot of the batch buffer: decoded frames are copied at most once,
        into it, and a JPEG store's frames are decoded into it)."""
        rec = self.manifest.records[index]
        hwc = self.hwc and train
        if out_frames is not None and out_frames.shape[0] != len(frame_idx):
            out_frames = None
        if frames is None:  # a JPEG store's frames of the batch's size decode straight into its slot
            frames = read_frames(self.manifest, rec, frame_idx, self.decoder, tag=index,
                                 out=out_frames if hwc else None)
        if "frame_size" in rec.extra:  # packed videos pad odd sizes; crop back to the stored size
            h0, w0 = (int(v) for v in rec.extra["frame_size"].split("x"))
            frames = frames[:, :h0, :w0]
        params = sample_augment(rng, self.data, train)
        if hwc:  # uint8 [T, rh, rw, 3]: only resized, the rest of the augmentation left to the worker's device
            x = resize_clip(frames, params.resized)
            if out_frames is None:
                x = np.ascontiguousarray(x)
            elif x is not out_frames:
                out_frames[...] = x
                x = out_frames
            return {"frames_hwc": x, "frames_augment": augment_row(params)}
        x = apply_augment(frames, params, erase=False, chw=True, out=out_frames)  # uint8 [T, 3, H, W]
        out: dict[str, np.ndarray] = {}
        if "flow" in self.inputs:  # before erasing, so the erased box does not fake motion
            out["flow"] = normalize_flow(clip_flow(x, chw=True)).astype(np.float16)
        out["frames"] = apply_erase(x, params, chw=True)
        if {"pose_maps", "keypoints"} & self.inputs:
            kps_all = np.load(self.decoder.local_file(self.manifest.locate(rec.keypoints)), mmap_mode="r")
            kps = np.asarray(kps_all[np.clip(frame_idx, 0, len(kps_all) - 1)], dtype=np.float32)
            kps = augment_keypoints(kps, frames.shape[1:3], params)
            if "keypoints" in self.inputs:
                out["keypoints"] = kps
            if "pose_maps" in self.inputs:
                h, w = self.data.height, self.data.width
                out["pose_maps"] = render_pose_maps(kps, (h, w), (h // POSE_STRIDE, w // POSE_STRIDE)
                                                    ).astype(np.float16)
        return out

    def clip_bytes(self, index: int, frame_idx: np.ndarray, rng: np.random.Generator) -> dict[str, object]:
        """What `clip` would decode, undecoded: the JPEG bytes of frames `frame_idx` (list of T bytes) and the
        AugmentParams drawn from `rng` exactly as `clip` draws them (int64 [12], transforms.AUGMENT_COLUMNS)."""
        rec = self.manifest.records[index]
        blobs = self.decoder.jpeg_blobs(self.manifest, rec, frame_idx)
        return {"jpeg": blobs, "jpeg_augment": augment_row(sample_augment(rng, self.data, self.train))}

    def _prefetch(self, row: PlanRow, indices: list[int]) -> dict[int, np.ndarray | DecodeError]:
        """First-choice video frames of every slot in one pipelined decoder call: slot -> frames or error."""
        slots, requests = [], []
        failed: dict[int, np.ndarray | DecodeError] = {}
        for slot, idx in enumerate(indices):
            rec = self.manifest.records[idx]
            if rec.video and idx not in self.errors.bad:
                frame_idx = self.sampler(rec.num_frames, np.random.default_rng([row.seed, slot, 0]))
                try:  # a video in a bucket is fetched into the decoder's cache first
                    video = self.decoder.local_file(self.manifest.locate(rec.video))
                except DecodeError as exc:
                    failed[slot] = exc
                    continue
                slots.append(slot)
                requests.append(VideoRequest(video, rec.frame_start, rec.num_frames, frame_idx, tag=idx))
        return {**dict(zip(slots, self.decoder.videos(requests), strict=True)), **failed}

    def _slot(self, row: PlanRow, slot: int, indices: list[int], prefetched: dict[int, np.ndarray | DecodeError],
              out_frames: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Load slot `slot`, replacing an unreadable tracklet by another of the same identity (indices updated)."""
        pid = self.manifest.records[indices[slot]].pid
        tried: set[int] = set()
        attempt = 0
        while True:
            idx = indices[slot]
            if idx not in self.errors.bad:
                rng = np.random.default_rng([row.seed, slot, attempt])
                rec = self.manifest.records[idx]
                frame_idx = self.sampler(rec.num_frames, rng)
                frames = prefetched.pop(slot, None) if attempt == 0 else None
                try:
                    if isinstance(frames, DecodeError):
                        raise frames
                    if self.ship_bytes:
                        return self.clip_bytes(idx, frame_idx, rng)
                    return self.clip(idx, frame_idx, rng, self.train, frames, out_frames)
                except DecodeError as exc:
                    self.errors.add(idx, rec.tracklet_id, str(exc))
            tried.add(idx)
            left = [i for i in self.by_pid[pid] if i not in self.errors.bad and i not in tried]
            if not left:
                raise _IdentityUnreadable(pid)
            attempt += 1
            indices[slot] = left[int(np.random.default_rng([row.seed, slot, attempt, 1]).integers(len(left)))]

    def _move_identity(self, row: PlanRow, pid: int, indices: list[int], swaps: int) -> list[int]:
        """Give every slot of identity `pid` a tracklet of an identity not in the batch; returns the slots moved."""
        used = {self.manifest.records[i].pid for i in indices}
        spare = [p for p in self.by_pid if p not in used and any(i not in self.errors.bad for i in self.by_pid[p])]
        if not spare:
            raise ReidError(f"identity {pid} has no readable tracklet and no other identity can replace it")
        rng = np.random.default_rng([row.seed, 0x5357, swaps])
        new = spare[int(rng.integers(len(spare)))]
        pool = [i for i in self.by_pid[new] if i not in self.errors.bad]
        slots = [s for s, i in enumerate(indices) if self.manifest.records[i].pid == pid]
        pick = rng.choice(len(pool), size=len(slots), replace=len(pool) < len(slots))
        for s, j in zip(slots, pick, strict=True):
            indices[s] = pool[int(j)]
        return slots

    # -- one batch ----------------------------------------------------------------------------------------------
    def frames_shape(self, clips: int) -> tuple[int, ...] | None:
        """The uint8 `frames_key` array of a batch of `clips` clips: [B, T, 3, H, W], or [B, T, rh, rw, 3] for
        `frames_hwc`; None when its clips may differ in length (sampler 'all') or it carries JPEG bytes."""
        d = self.data
        if d.train_sampler == "all" or self.ship_bytes:
            return None
        if self.hwc:
            return (clips, d.seq_len, d.augment.resize_height or d.height, d.augment.resize_width or d.width, 3)
        return (clips, d.seq_len, 3, d.height, d.width)

    def __call__(self, row: PlanRow, frames_out: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The batch of plan row `row`. `frames_out`: decode its frames into this uint8 array of `frames_shape`
        (a row of a larger array) instead of a new one."""
        indices = list(row.indices)
        clips: list[dict[str, np.ndarray] | None] = [None] * len(indices)
        shape = self.frames_shape(len(indices))
        if frames_out is not None and (frames_out.shape != shape or frames_out.dtype != np.uint8):
            raise ReidError(f"frames_out has shape {frames_out.shape} {frames_out.dtype}, expected {shape} uint8")
        buffer = frames_out if frames_out is not None else None if shape is None else np.empty(shape, np.uint8)
        prefetched = self._prefetch(row, indices)
        pending = list(range(len(indices)))
        swaps = 0
        while pending:
            slot = pending.pop(0)
            try:
                clips[slot] = self._slot(row, slot, indices, prefetched if indices[slot] == row.indices[slot] else {},
                                         None if buffer is None else buffer[slot])
            except _IdentityUnreadable as exc:
                moved = self._move_identity(row, exc.pid, indices, swaps)
                swaps += 1
                pending = sorted(set(pending) | set(moved))
        return self._collate(row, indices, clips, buffer)

    def _collate(self, row: PlanRow, indices: list[int], clips: list,
                 buffer: np.ndarray | None = None) -> dict[str, np.ndarray]:
        recs = [self.manifest.records[i] for i in indices]
        if self.ship_bytes:
            out = _collate_bytes(clips)
        else:
            out = self._collate_frames(clips, buffer)
        out["pid"] = np.array([self.labels[r.pid] for r in recs], dtype=np.int64)
        out["camid"] = np.array([r.camid for r in recs], dtype=np.int64)
        out["index"] = np.array(indices, dtype=np.int64)
        out["epoch"] = np.array(row.epoch, dtype=np.int64)
        out["batch_index"] = np.array(row.batch, dtype=np.int64)
        if "attributes" in self.inputs:
            out["attributes"] = np.array([[(r.attributes or {}).get(c, -1) for c in self.columns] for r in recs],
                                         dtype=np.int64)
        if row.pair_same is not None:
            n = len(row.pair_same)
            out["pair_same"] = (out["pid"][:n] == out["pid"][n:]).astype(np.float32)  # true after any swap
        return out

    def _collate_frames(self, clips: list, buffer: np.ndarray | None) -> dict[str, np.ndarray]:
        key = self.frames_key
        lengths = {c[key].shape[0] for c in clips}
        if len(lengths) > 1:  # sampler 'all': loop-pad every clip to the longest
            t = max(lengths)
            clips = [{k: v[loop_pad(np.arange(v.shape[0]), t)] for k, v in c.items()} for c in clips]
        if buffer is not None and all(np.may_share_memory(c[key], buffer) for c in clips):  # each in its slot
            out = {key: buffer, **{k: np.stack([c[k] for c in clips]) for k in clips[0] if k != key}}
        else:
            out = {k: np.stack([c[k] for c in clips]) for k in clips[0]}
        return out

    def close(self) -> None:
        self.decoder.close()


def _collate_bytes(clips: list[dict]) -> dict[str, np.ndarray]:
    """Clips of (T JPEG files, augmentation row) -> jpeg_bytes / jpeg_offsets / jpeg_augment (module docstring);
    clips of different lengths (sampler 'all') loop-padded to the longest, as `frames` are."""
    t = max(len(c["jpeg"]) for c in clips)
    blobs = [c["jpeg"][int(i)] for c in clips for i in loop_pad(np.arange(len(c["jpeg"])), t)]
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    flat = np.empty(int(offsets[-1]), dtype=np.uint8)  # one copy of the bytes, into a writable array
    for b, start, stop in zip(blobs, offsets[:-1], offsets[1:], strict=True):
        flat[start:stop] = np.frombuffer(b, dtype=np.uint8)
    return {"jpeg_bytes": flat, "jpeg_offsets": offsets, "jpeg_augment": np.stack([c["jpeg_augment"] for c in clips])}


def make_batch(plan_row: PlanRow, manifest: Manifest, data: DataConfig, spec_inputs: Iterable[str],
               train: bool, *, maker: BatchMaker | None = None) -> dict[str, np.ndarray]:
    """One batch dict (contract in the module docstring) for `plan_row` (whose `seed` drives all its randomness).
    Pass a `maker` to reuse its decoder."""
    if maker is None:
        maker = BatchMaker(manifest, data, spec_inputs, train)
        try:
            return maker(plan_row)
        finally:
            maker.close()
    return maker(plan_row)


def eval_clip_indices(data: DataConfig, num_frames: int) -> np.ndarray:
    """The frame indices (into the tracklet) of its evaluation clips with `data.test_sampler`: int [C, L], each
    clip loop-padded to the longest; deterministic."""
    chunks = test_sampler(data).clips(num_frames, np.random.default_rng(0))
    length = max(len(c) for c in chunks)
    return np.stack([loop_pad(c, length) for c in chunks])


def make_test_clips(maker: BatchMaker, index: int) -> dict[str, np.ndarray]:
    """All evaluation clips of one tracklet with `data.test_sampler`: frames uint8 [C, L, 3, H, W] (+ extras),
    clip c, step l showing frame `eval_clip_indices(...)[c, l]`.

    The clips' frames are decoded in one call; deterministic (no augmentation).
    """
    rec = maker.manifest.records[index]
    idx = eval_clip_indices(maker.data, rec.num_frames)
    one = maker.clip(index, idx.ravel(), np.random.default_rng(0), train=False)
    out = {k: v.reshape(idx.shape + v.shape[1:]) for k, v in one.items()}
    if "flow" in out:  # flow must not run across chunk boundaries
        out["flow"] = np.stack([normalize_flow(clip_flow(f, chw=True)) for f in out["frames"]]).astype(np.float16)
    return out


def batch_frames(batch: Mapping[str, Any]) -> np.ndarray:
    """The uint8 [B, T, 3, H, W] frames of a batch of decoded frames in either form (module docstring): `frames`,
    or `frames_hwc` + `frames_augment` finished on the CPU as the worker's device does (`device_decode.finish_frames`)."""
    if "frames_hwc" not in batch:
        return np.asarray(batch["frames"])
    import torch

    from reid.data.device_decode import finish_frames

    hwc, aug = (torch.as_tensor(np.asarray(batch[k])) for k in ("frames_hwc", "frames_augment"))
    return finish_frames(hwc, aug).numpy()


def to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


def iter_local_batches(manifest: Manifest | str | Path, data: DataConfig, seed: int, inputs: Iterable[str],
                       batching: Batching, epoch: int, rank: int = 0, world_size: int = 1, *, train: bool = True,
                       maker: BatchMaker | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """In-process batches of rank `rank` for `epoch` (tests, Ray Train local mode): same rows and contents as
    the Ray pipeline gives that epoch for the same `data` section and `seed`, as torch tensors on the CPU."""
    m = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    own = maker is None
    maker = maker or BatchMaker(m, data, inputs, train)
    try:
        for row in epoch_plan(m.records, data, seed, batching, epoch, rank=rank, world_size=world_size):
            yield to_torch(maker(row))
    finally:
        if own:
            maker.close()
