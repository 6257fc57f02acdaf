"""Evaluate a checkpoint (or an untrained model) on the test split: the Python API behind `reid eval`, `reid report`,
`reid demo`, the test at the end of `reid train` and the ablation trials. Needs no trainer: the model comes from the
factory (reid.models.factory), features from this process or an injected extractor (Ray Data batch inference,
`reid.batch_inference.extract_features_ray`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid import storage
from reid.config.schema import ExperimentConfig
from reid.data.batching import BatchMaker
from reid.data.info import data_info
from reid.data.records import Manifest, read_manifest
from reid.data.source import manifest_path
from reid.errors import ReidError
from reid.evaluation.protocols import get_protocol
from reid.evaluation.run.discovery import local_checkpoint
from reid.evaluation.run.extract import extract_features, record_feature
from reid.evaluation.run.scoring import score_features
from reid.models.factory import BuiltMethod, build_method
from reid.spec import DataInfo

TEST_FILE = "test.json"

# (cfg, manifest path, model, manifest row indices, DataInfo the model was built for) -> {index: feature [D]}
FeatureExtractor = Callable[..., dict[int, torch.Tensor]]


@dataclass
class EvalOutcome:
    """Metrics of one evaluation plus what the report needs (distances, split, sampled model extras)."""

    metrics: dict[str, Any]
    distmat: Any = None
    split: Any = None
    records: list = field(default_factory=list)
    manifest: Any = None
    extras: dict[int, dict[str, Any]] = field(default_factory=dict)
    checkpoint: Path | str | None = None  # the local state file used, or its URI
    group_names: list[str] | None = None
    ranking: Any = None  # reid.evaluation.metrics.RankResult: per-query AP and first-match rank


def load_model(cfg: ExperimentConfig, checkpoint: Path | str | None, info: DataInfo) -> tuple[nn.Module, Path | str | None]:
    """The model of `cfg` in eval mode with weights from `checkpoint` (a checkpoint dir, state.pt, or run dir; local
    or URI), or a randomly initialised untrained one when `checkpoint` is None; and the checkpoint used."""
    built, used = build_for_eval(cfg, info, checkpoint)
    return built.model, used


def build_for_eval(cfg: ExperimentConfig, info: DataInfo, checkpoint: Path | str | None
                   ) -> tuple[BuiltMethod, Path | str | None]:
    """The method built for evaluation with the weights of `checkpoint` (see `load_model`; a download of a URI is
    removed once the weights are loaded), and the checkpoint used: its local state file, or its URI."""
    if checkpoint is None:
        return build_method(cfg, info), None
    with local_checkpoint(checkpoint) as (local, source):
        built = build_method(cfg, info, local)
    return built, (source if storage.is_uri(source) else built.checkpoint)


def split_indices(cfg: ExperimentConfig, m: Manifest) -> tuple[Any, list[int]]:
    """The protocol's split of `m` (cfg.eval.protocol) and the manifest rows it embeds (queries and gallery)."""
    split = get_protocol(cfg.eval.protocol, dataset=m.dataset or cfg.data.dataset).split(m.records)
    return split, sorted(set(split.query.tolist()) | set(split.gallery.tolist()))


def evaluate(cfg: ExperimentConfig, checkpoint: Path | str | None, *, manifest: Path | str | None = None,
             extract: FeatureExtractor | None = None, sample_queries: int = 0, progress: bool = True) -> EvalOutcome:
    """Evaluate a checkpoint (or an untrained model) on the test split of `cfg.data` with `cfg.eval.protocol`.

    extract: None extracts features in this process; `reid.batch_inference.extract_features_ray` runs Ray Data
    batch inference. `sample_queries` > 0 keeps per-query extras (thumbnails, temporal weights, spatial maps) of
    that many queries and their top gallery matches for the report.
    """
    manifest_file = manifest if manifest else manifest_path(cfg.data)  # a local path or a URI
    m = read_manifest(manifest_file)
    info = data_info(m, cfg.data)
    built, used = build_for_eval(cfg, info, checkpoint)
    spec, model = built.spec, built.model
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    split, indices = split_indices(cfg, m)
    pairwise = cfg.eval.pairwise and hasattr(model, "pair_distance")
    if extract is not None:
        if pairwise:
            raise ReidError("eval.pairwise=true evaluates query-gallery pairs in this process: use --backend local "
                            "(or eval.pairwise=false for single-pass features with Ray Data)")
        if cfg.eval.tta != "none":
            raise ReidError(f"eval.tta={cfg.eval.tta} embeds 16 views per tracklet in this process: use --backend "
                            f"local (or eval.tta=none for single-view features with Ray Data)")
        features = extract(cfg, manifest_file, model, indices, info=info)
    else:
        maker = BatchMaker(m, cfg.data, spec.inputs - {"attributes"}, train=False)
        feats = extract_features(model, maker, indices, cfg, spec, device, progress=progress, states=pairwise)
        features = dict(zip(indices, feats, strict=True))
    scored = score_features(model, features, m.records, split, cfg.eval, device, pairwise=pairwise)
    extras: dict[int, dict[str, Any]] = {}
    if sample_queries:
        maker = BatchMaker(m, cfg.data, spec.inputs - {"attributes"}, train=False)
        order = scored.distmat.argsort(axis=1)[:sample_queries, :5]
        wanted = set(split.query[:sample_queries].tolist()) | {int(split.gallery[j]) for j in order.ravel()}
        with torch.no_grad():
            for i in sorted(wanted):
                extras[i] = record_feature(model, maker, i, cfg, spec, device, keep_extras=True)[1]
    return EvalOutcome(metrics=scored.metrics, distmat=scored.distmat, split=split, records=m.records,
                       manifest=m, extras=extras, checkpoint=used, ranking=scored.result,
                       group_names=list(getattr(model, "group_names", None) or []) or None)


def test_document(outcome: EvalOutcome, checkpoint: Path | str | None) -> dict[str, Any]:
    """What `test.json` holds: the checkpoint, the metrics and per query (in the split's order) its tracklet, pid,
    AP (None for a query without a valid match) and 1-based rank of the first match (0 = none)."""
    split, rank = outcome.split, outcome.ranking
    per_query = {"tracklet_id": [outcome.records[int(i)].tracklet_id for i in split.query],
                 "pid": [int(outcome.records[int(i)].pid) for i in split.query],
                 "ap": [None if a != a else float(a) for a in rank.ap.tolist()],
                 "first_match_rank": [int(r) for r in rank.first_match_rank.tolist()]}
    metrics = {k: v for k, v in outcome.metrics.items() if isinstance(v, int | float | str)}
    return {"checkpoint": str(checkpoint) if checkpoint else None, "metrics": metrics, "per_query": per_query}


def write_report(cfg: ExperimentConfig, outcome: EvalOutcome, path: Path, *, history: list[dict] | None = None,
                 baseline: EvalOutcome | None = None) -> Path:
    """Self-contained HTML report (CMC, ranked thumbnails, temporal weights, attention maps) of an evaluation."""
    from reid.evaluation.run.reporting import write_report as _write  # matplotlib: loaded only for a report

    return _write(cfg, outcome, Path(path), history=history, baseline=baseline)


def report_location(run_dir: Path | str, out: Path | str | None = None) -> str:
    """Where a run's report goes: `out`, else `<run>/report.html` (a path or a URI)."""
    return str(out) if out else storage.join(run_dir, "report.html")


def write_run_report(cfg: ExperimentConfig, outcome: EvalOutcome, run_dir: Path | str,
                     out: Path | str | None = None) -> str:
    """The report of a run's evaluation, with its training curves, at `out` (default `<run>/report.html`), a path
    or a URI: written locally, then uploaded for a URI. Returns where it went."""
    import tempfile

    from reid.evaluation.run.discovery import read_history

    history = read_history(run_dir) or None
    target = report_location(run_dir, out)
    if not storage.is_uri(target):
        return str(write_report(cfg, outcome, Path(target), history=history))
    with tempfile.TemporaryDirectory(prefix="reid-report-") as tmp:
        local = write_report(cfg, outcome, Path(tmp) / "report.html", history=history)
        return storage.write_bytes(target, local.read_bytes())
