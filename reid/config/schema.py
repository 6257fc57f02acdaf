"""Typed experiment configuration.

Every section is a strict pydantic model (unknown keys are errors). The method-specific sections `model` and `loss`
are plain dicts here and are validated against the parameter classes the method registers
(see `reid.registry.MethodSpec`) by `reid.config.loader.resolve_config`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Base for every config section: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AugmentConfig(Strict):
    """Clip-consistent augmentation: one crop / flip / erasing draw per tracklet, applied to all its frames."""

    flip: bool = True
    pad: int = Field(10, ge=0, description="zero padding before the random crop back to (height, width)")
    random_erasing: float = Field(0.0, ge=0.0, le=1.0, description="probability of random erasing per clip")
    resize_height: int | None = Field(None, description="resize before cropping (adfta: 288); None = height")
    resize_width: int | None = Field(None, description="resize before cropping (adfta: 144); None = width")
    test_crop: Literal["resize", "center"] = Field(
        "resize", description="test-time frames: 'resize' = plain resize to (height, width); 'center' = resize to "
        "(resize_height, resize_width) then the centre (height, width) crop, the training scale (adfta: center)"
    )


class DataConfig(Strict):
    dataset: Literal["synthetic", "mars", "ilidsvid", "prid2011", "duke", "generic"] = "synthetic"
    root: str = Field("data/synthetic-demo", description="prepared dataset directory (holds manifest.parquet)")
    manifest: str | None = Field(None, description="explicit manifest path; default <root>/manifest.parquet")
    attributes: Literal["annotated", "transferred"] = Field(
        "annotated", description="attribute labels: 'annotated' = the dataset's own attribute file (in the prepared "
        "manifest); 'transferred' = data.manifest is the manifest `reid transfer-attributes --out-manifest` writes "
        "(adfta, section 3.2)")
    synth_preset: Literal["tiny", "demo", "large", "quality", "misalign", "attributes", "pose"] = Field(
        "demo", description="preset used to generate the synthetic set when root does not exist yet (the last four "
        "are the phenomenon suites of reid.data.synth.presets)"
    )
    synth_strength: float = Field(0.0, ge=0, le=1, description="nuisance strength of a suite preset (0 = its "
                                  "matched control); other presets need 0")
    trial: int = Field(0, ge=0, le=9, description="split trial for iLIDS-VID / PRID-2011")
    val_identities: float = Field(
        0.1, ge=0, description="training identities held out as the validation query/gallery set that selects "
        "checkpoints and Tune trials: a fraction (< 1, at least 2 identities), a count (>= 1), or 0 = none "
        "(reid.data.validation); the test split is evaluated once, at the end of a run"
    )
    height: int = Field(256, ge=8)
    width: int = Field(128, ge=8)
    seq_len: int = Field(8, ge=1, description="T, frames per training clip")
    train_sampler: Literal["restricted", "consecutive", "evenly", "all"] = "restricted"
    test_sampler: Literal["restricted", "dense", "evenly", "consecutive", "all"] = "dense"
    test_chunk_len: int = Field(8, ge=1, description="L, frames per test chunk (dense)")
    test_chunk_overlap: int = Field(0, ge=0, description="O, overlap between consecutive test chunks (dense)")
    max_test_chunks: int | None = Field(None, ge=1, description="cap on chunks per tracklet at test time")
    ids_per_batch: int = Field(8, ge=1, description="P identities per batch")
    tracklets_per_id: int = Field(4, ge=1, description="K tracklets per identity")
    pairs_per_batch: int = Field(16, ge=1, description="siamese methods: pairs per batch (half positive)")
    pair_cameras: Literal["cross", "any"] = Field(
        "cross", description="siamese methods: 'cross' = every pair, negatives included, takes side A from one "
        "camera and side B from another (RCN / fcnta / astpn: camera 1 vs camera 2); 'any' = negatives from any "
        "cameras (positives are always cross-camera)"
    )
    batches_per_epoch: int | None = Field(None, ge=1, description="None: every identity once per epoch")
    decode_workers: int = Field(1, ge=1, description="Ray Data decoding actors")
    decode_cpus: float = Field(0.5, gt=0, description="CPUs reserved per decoding actor")
    decode_timeout_s: float | None = Field(
        60.0, gt=0, description="seconds before a video decode is abandoned and the tracklet counted unreadable; "
        "None decodes in-process without a watchdog"
    )
    jpeg_decode: Literal["actor", "trainer"] = Field(
        "actor", description="training batches from a JPEG store (`reid prepare --pack jpeg`): 'actor' = the Ray "
        "Data decoding actors decode (libjpeg-turbo) and augment on their CPUs; 'trainer' = the actors only read the "
        "JPEG bytes and draw the augmentation, the Train worker decodes them on its device (nvJPEG on a GPU: "
        "reid.data.device_decode) and applies the crop / flip / erasing there. Needs a JPEG-store manifest and a "
        "method without flow, pose_maps or keypoints inputs; evaluation always decodes on the CPU"
    )
    max_errored_fraction: float = Field(
        0.05, ge=0.0, le=1.0, description="share of unreadable tracklets tolerated before the run fails"
    )
    frame_cache_gb: float = Field(
        4.0, gt=0, description="dataset root in a bucket: GiB of fetched videos / keypoints each decoding process "
        "keeps on local disk (least recently used evicted; JPEG shards are read in place and need none)"
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @model_validator(mode="after")
    def _transferred_needs_manifest(self) -> DataConfig:
        if self.attributes == "transferred" and not self.manifest:
            raise ValueError("data.attributes=transferred needs data.manifest: the manifest that "
                             "`reid transfer-attributes ... --out-manifest PATH` writes")
        return self


class OptimConfig(Strict):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(3e-4, gt=0)
    momentum: float = Field(0.9, ge=0)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    lr_mult: dict[str, float] = Field(
        default_factory=dict,
        description="per-parameter-group learning-rate multipliers keyed by parameter-name prefix",
    )


class SchedulerConfig(Strict):
    name: Literal["none", "step", "multistep", "cosine"] = "multistep"
    step_size: int = Field(40, ge=1, description="step: decay every step_size epochs")
    milestones: list[int] = Field(default_factory=lambda: [100, 250, 350])
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: int = Field(0, ge=0)
    warmup_factor: float = Field(0.01, gt=0, le=1)


class TrainConfig(Strict):
    epochs: int = Field(10, ge=1)
    grad_clip: float | None = Field(None, gt=0)
    amp: bool = Field(True, description="bf16 autocast on GPU (ignored on CPU)")
    channels_last: bool = Field(True, description="NHWC convolutions on GPU (ignored on CPU): ResNet-50 bf16 steps "
                                "1.7x faster on an H200 (docs/gpu/README.md)")
    compile: bool = False
    checkpoint_every: int = Field(1, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_every: int = Field(1, ge=1, description="validate every N epochs (and at the end)")
    init_from: str | None = Field(None, description="run directory or checkpoint to initialise weights from")
    inject_fault: str | None = Field(
        None, description="testing aid: kind@epoch[:step][/rank] with kind raise|kill|nan|stall, or several of them "
                          "comma-separated (see reid.training.faults)"
    )


class RayConfig(Strict):
    address: str | None = Field(None, description="Ray address; None starts a local cluster")
    num_workers: int = Field(2, ge=0, description="Ray Train workers (0 = run in the driver, local mode)")
    use_gpu: bool = False
    cpus_per_worker: float = Field(0.5, gt=0)
    gpus_per_worker: float = Field(1.0, gt=0)
    memory_per_worker: float | None = Field(
        None, gt=0, description="GB of memory Ray reserves for each Train worker, and for each in-process trial of a "
        "sweep: Ray places no more of them on a node than its memory holds (Ray's memory monitor kills processes "
        "when a node runs out); None reserves none")
    storage_path: str = Field("runs", description="local folder or cloud URI for checkpoints")
    max_failures: int = Field(0, ge=-1)
    object_store_memory: int | None = Field(None, description="bytes; cap for local clusters")


class EvalConfig(Strict):
    protocol: str | None = Field(None, description="protocol name; None = the dataset's default")
    distance: Literal["euclidean", "cosine"] = "euclidean"
    normalize: bool = True
    flip: bool = False
    rerank: bool = False
    rerank_k1: int = Field(20, ge=1)
    rerank_k2: int = Field(6, ge=1)
    rerank_lambda: float = Field(0.3, ge=0, le=1)
    score_norm: bool = False
    pairwise: bool = Field(False, description="query-dependent pairwise scoring for models that support it")
    batch_size: int = Field(32, ge=1)
    max_rank: int = Field(20, ge=1)
    ap_mode: Literal["standard", "trapezoid"] = Field(
        "standard", description="non-interpolated AP (torchreid / fast-reid) or trapezoidal (official MARS code)"
    )
    tta: Literal["none", "astpn-official"] = Field(
        "none", description="test-time augmentation: 'none' = one view per tracklet; 'astpn-official' = ASTPN's "
        "official test.lua: 16 views (crop offset s = 1..8 on the diagonal x flip), first / last data.seq_len "
        "frames for query / gallery, per-view Euclidean distances summed (reid.evaluation.multiview)"
    )

    @model_validator(mode="after")
    def _tta_alone(self) -> EvalConfig:
        if self.tta != "none":
            clash = [k for k in ("flip", "rerank", "pairwise") if getattr(self, k)]
            if clash:
                raise ValueError(f"eval.tta={self.tta} has its own flipped views and sums per-view distances; it "
                                 f"cannot be combined with eval.{'/'.join(clash)}=true")
        return self


class ExperimentConfig(Strict):
    """One experiment: a method, a variant of it, and how to train and evaluate it."""

    name: str | None = Field(None, description="run name; default <method>-<variant>-<dataset>-s<seed>")
    method: str = "baseline"
    variant: str | None = Field(None, description="named variant of the method (a row of a paper table)")
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: dict[str, Any] = Field(default_factory=dict)
    loss: dict[str, Any] = Field(default_factory=dict)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    def run_name(self) -> str:
        """Deterministic run name (no timestamps), so that re-running resumes the same run."""
        if self.name:
            return self.name
        parts = [self.method, self.variant or "default", self.data.dataset, f"s{self.seed}"]
        return "-".join(parts)
