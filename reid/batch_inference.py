"""Feature extraction as Ray Data batch inference: the Ray driver of `reid eval --backend ray` and `reid index`.

tracklet rows -> decoding actors (`DecodeTestClips`: one row per (tracklet, chunk)) -> model actors (`EmbedChunks`,
GPU when the cluster has one; `eval.batch_size` chunks per call) -> chunk features collected on the driver ->
per-tracklet features by averaging the chunks. Every worker's output is gathered on the driver before any metric is
computed. A job module beside the library (Ray lives in the pipeline, training, tune and job layers; reid/evaluation has none): the actors'
work is the pure `reid.evaluation.run.chunks`, and `evaluate` takes this function as its feature extractor.
"""

from __future__ import annotations

import time
from pathlib import Path

import ray
import torch

from reid import node_paths, storage
from reid.config.schema import ExperimentConfig
from reid.data.info import data_info
from reid.data.records import read_manifest
from reid.evaluation.run.chunks import DecodeTestClips, EmbedChunks, tracklet_rows_to_features
from reid.ray_runtime import init_ray, quiet_teardown
from reid.registry import get_method
from reid.spec import DataInfo


def _absolute(manifest_path: Path | str) -> str:
    """The actors do not run in the driver's working directory: a local path made absolute, a URI as it is."""
    return str(manifest_path) if storage.is_uri(manifest_path) else str(Path(manifest_path).resolve())


class _RayDecodeTestClips(DecodeTestClips):
    """DecodeTestClips in a Ray actor: a SIGTERM (the command ending) inside a `__del__` prints no traceback."""

    def __init__(self, manifest_path: str, cfg: dict, inputs: list[str]) -> None:
        quiet_teardown()
        super().__init__(manifest_path, cfg, inputs)


class _RayEmbedChunks(EmbedChunks):
    """EmbedChunks whose weights arrive as an object reference (in a list, so Ray passes the reference through)."""

    def __init__(self, cfg: dict, state_ref: list, num_classes: int, attributes_json: str, states: bool) -> None:
        quiet_teardown()
        super().__init__(cfg, ray.get(state_ref[0]), num_classes, attributes_json, states)


def extract_features_ray(cfg: ExperimentConfig, manifest_path: Path | str, model: torch.nn.Module, indices: list[int],
                         *, states: bool = False, info: DataInfo | None = None) -> dict[int, torch.Tensor]:
    """Features (or, with `states`, per-frame states [C*L, D]) of the tracklets `indices`, keyed by index.

    `info` is the DataInfo `model` was built with (the run's: its training identities and attribute schema); the
    model actors rebuild the same architecture from it before loading `model`'s weights. Without it, it is derived
    from the manifest read here, which is only right when that manifest is the one the run trained on: a gallery
    of new footage has other (or no) training identities, and the classifier's shape would not match.
    """
    init_ray(cfg.ray)
    paths_seen = node_paths.start(node_paths.local_paths(cfg, manifest_path))  # answered while the weights go out
    spec = get_method(cfg.method)
    info = info if info is not None else data_info(read_manifest(manifest_path), cfg.data)
    state_ref = [ray.put({k: v.cpu() for k, v in model.state_dict().items()})]
    node_paths.finish(paths_seen, workers="its decoding actors")  # every node reads the frames (reid/node_paths.py)
    use_gpu = bool(ray.cluster_resources().get("GPU", 0)) and cfg.ray.use_gpu
    ds = ray.data.from_items([{"index": i} for i in indices], override_num_blocks=max(1, len(indices) // 8))
    ds = ds.map_batches(_RayDecodeTestClips, batch_size=4,
                        fn_constructor_kwargs={"manifest_path": _absolute(manifest_path),
                                               "cfg": cfg.model_dump(mode="json"),
                                               "inputs": sorted(spec.inputs - {"attributes"} | {"frames"})},
                        compute=ray.data.ActorPoolStrategy(size=cfg.data.decode_workers),
                        num_cpus=cfg.data.decode_cpus)
    ds = ds.map_batches(_RayEmbedChunks, batch_size=cfg.eval.batch_size,
                        fn_constructor_kwargs={"cfg": cfg.model_dump(mode="json"), "state_ref": state_ref,
                                               "num_classes": info.num_classes,
                                               "attributes_json": info.attributes.to_json(), "states": states},
                        compute=ray.data.ActorPoolStrategy(size=1),
                        num_gpus=1 if use_gpu else 0, num_cpus=0.5)
    t0 = time.perf_counter()
    rows = ds.take_all()
    seconds = time.perf_counter() - t0
    # frames per clip: the states' length, else the test sampler's clip length (dense: L, others: T)
    chunk_len = cfg.data.test_chunk_len if cfg.data.test_sampler == "dense" else cfg.data.seq_len
    n_frames = sum(r["feature"].shape[0] for r in rows) if states else len(rows) * chunk_len
    print(f"[reid] features of {len(indices)} tracklets ({len(rows)} clips, ~{n_frames} frames) in {seconds:.1f} s: "
          f"{n_frames / max(seconds, 1e-9):.0f} frames/s", flush=True)
    return tracklet_rows_to_features(rows, indices, states=states)
