"""`reid transfer-attributes`: label a re-ID dataset's tracklets with attributes learned on a source attribute set
(adfta, Zhao et al. CVPR 2019, section 3.2)."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from reid import storage
from reid.data.attribute_sets import (
    SourceImages,
    SourceSet,
    TargetClips,
    cat_clips,
    first_item,
    read_source_set,
)
from reid.data.attributes import BINARY_KEY_COLUMNS, binary_groups_path, schema_from_binary_groups
from reid.data.records import Manifest, TrackletRecord, read_manifest, write_manifest
from reid.errors import ReidError
from reid.models.attribute_transfer import (
    VARIANTS,
    AttributeTransferNet,
    TransferSettings,
    merge_and_threshold,
    predict_tracklets,
    train_transfer,
)

DESCRIPTION = """Train the attribute-transfer model of adfta (section 3.2) on a labelled source attribute set and
unlabelled target re-ID frames, then label every target tracklet: per-frame scores averaged over all frames of its
identity (eq. 9; --merge tracklet averages each tracklet on its own) and thresholded at 0.5 (eq. 10). The MMD runs
on the raw attribute features as eqs. 5-6 write it (--mmd-features normalized: L2-normalised first).

Losses (table 2 of the paper, --variant): bce (eq. 7), bce_mmd, wbce (eq. 8), wbce_mmd (+ MMD, eqs. 5-6).

Writes OUT (CSV: person_id,camera_id,tracklets_id,<binary attributes>), OUT's groups JSON (x.groups.json), the mean
scores (x.scores.csv), a report (x.report.json: training history, source accuracy), and with --out-manifest a copy
of the target manifest whose attributes are the transferred ones (point `data.manifest` of an adfta config at it). On
the synthetic dataset the report also scores the transferred labels against the generator's ground truth (which the
paper could not measure).

  reid transfer-attributes --source data/synthetic-demo/source_domain --target data/synthetic-demo \\
      --out data/synthetic-demo/attributes-transferred.csv --out-manifest data/synth-transferred/manifest.parquet
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="source attribute set: images/, labels.csv, groups.json")
    p.add_argument("--target", required=True, help="target manifest (.parquet) or dataset directory holding one; a "
                   "path or URI")
    p.add_argument("--out", required=True, help="attribute CSV to write")
    p.add_argument("--out-manifest", help="also write the target manifest with the transferred attributes here (a "
                   "path or URI)")
    p.add_argument("--variant", choices=list(VARIANTS), default="wbce_mmd", help="loss (table 2 row)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the source images (default 10)")
    p.add_argument("--lr", type=float, default=0.01,
                   help="SGD learning rate, x0.1 after 70%% of the epochs (default 0.01)")
    p.add_argument("--batch-size", type=int, default=32, help="source images per step")
    p.add_argument("--target-batch", type=int, default=32, help="target frames per step (MMD variants)")
    p.add_argument("--target-frames", type=int, default=4, help="frames drawn from each target tracklet per step")
    p.add_argument("--predict-frames", type=int, default=8, help="frames per tracklet for eq. 9 (0 = all)")
    p.add_argument("--merge", choices=("identity", "tracklet"), default="identity",
                   help="eq. 9 over all frames of an identity (the paper; pid > 0, others alone) or over each "
                        "tracklet")
    p.add_argument("--mmd-features", choices=("raw", "normalized"), default="raw",
                   help="MMD of eqs. 5-6 on the raw attribute features (the paper) or on L2-normalised ones")
    p.add_argument("--label-roles", default="all", help="roles of the tracklets to label, comma-separated, or all")
    p.add_argument("--mmd-roles", default="train", help="roles whose frames feed the MMD term")
    p.add_argument("--height", type=int, default=256, help="input height in pixels (default 256)")
    p.add_argument("--width", type=int, default=128, help="input width in pixels (default 128)")
    p.add_argument("--depth", type=int, choices=(18, 34, 50), default=18, help="ResNet depth (default 18)")
    p.add_argument("--no-pretrained", action="store_true", help="random init instead of local ImageNet weights")
    p.add_argument("--weights", help="ImageNet weights file for the ResNet (default: torchvision cache)")
    p.add_argument("--threshold", type=float, default=0.5, help="th of eq. 10")
    p.add_argument("--wbce-sigma", type=float, default=1.0, help="sigma of eq. 8")
    p.add_argument("--mmd-alpha", type=float, default=0.5, help="alpha of eq. 6")
    p.add_argument("--mmd-weight", type=float, default=1.0, help="weight of the MMD term beside the attribute loss "
                                                                  "(default 1; MMD variants)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="source images held out for accuracy")
    p.add_argument("--workers", type=int, default=2, help="data-loader worker processes")
    p.add_argument("--decode-timeout", type=float, default=60.0,
                   help="seconds allowed per video decode (0: decode in-process without a bound)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initialisation, the held-out images and the batches (default 0)")


def _roles(text: str, manifest: Manifest) -> list:
    if text == "all":
        return list(manifest.records)
    roles = [r.strip() for r in text.split(",") if r.strip()]
    return manifest.by_role(*roles)


def _loader(ds, batch_size: int, shuffle: bool, drop_last: bool, workers: int, seed: int, collate=None) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=workers,
                      collate_fn=collate, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=workers > 0)


def truth_accuracy(records: list, names: tuple[str, ...], labels: np.ndarray,
                   truth_fn: Callable[[dict[str, int]], dict[str, int]]) -> dict:
    """Accuracy of transferred labels [N, L] against ground truth `truth_fn(record.attributes)` -> {name: 0/1}.

    Only records with attributes and a label (not -1) count. Balanced accuracy (mean of the true positive and true
    negative rates) and F1 show whether rare attributes are found; plain accuracy rewards predicting 0 everywhere.
    """
    known = [i for i, r in enumerate(records) if r.attributes is not None and (labels[i] >= 0).all()]
    truths = [truth_fn(records[i].attributes) for i in known]
    per_attr = {}
    for j, name in enumerate(names):
        if not known or name not in truths[0]:
            continue
        idx, truth = np.array(known), np.array([t[name] for t in truths])
        pred = labels[idx, j]
        tp, tn = int(((pred == 1) & (truth == 1)).sum()), int(((pred == 0) & (truth == 0)).sum())
        pos, neg = int(truth.sum()), int((1 - truth).sum())
        per_attr[name] = {
            "accuracy": (tp + tn) / len(truth),
            "balanced_accuracy": 0.5 * (tp / pos + tn / neg) if pos and neg else None,
            "f1": 2 * tp / (2 * tp + int((pred != truth).sum())) if pos else None,
            "positive_ratio": pos / len(truth), "predicted_positive_ratio": float(pred.mean()), "n": len(truth),
        }
    def mean(key: str) -> float | None:
        vals = [v[key] for v in per_attr.values() if v[key] is not None]
        return float(np.mean(vals)) if vals else None
    return {"mean_accuracy": mean("accuracy"), "mean_balanced_accuracy": mean("balanced_accuracy"),
            "mean_f1": mean("f1"), "majority_class_accuracy": float(np.mean(
                [max(v["positive_ratio"], 1 - v["positive_ratio"]) for v in per_attr.values()])) if per_attr else None,
            "attributes_evaluated": len(per_attr), "tracklets_evaluated": len(known),
            "per_attribute": per_attr}


def _write_csv(path: Path, records: list, names: tuple[str, ...], values: np.ndarray, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*BINARY_KEY_COLUMNS, *names])
        for r, row in zip(records, values, strict=True):
            w.writerow([r.pid, r.camid, r.tracklet_no, *(format(v, fmt) for v in row)])


def _inputs(args: argparse.Namespace) -> tuple[SourceSet, Manifest, list[TrackletRecord]]:
    """The source set, the target manifest and the tracklets to label, checked before any training."""
    if min(args.batch_size, args.target_batch, args.target_frames) < 1 or not 0 <= args.val_fraction < 1:
        raise ReidError("--batch-size, --target-batch, --target-frames must be >= 1 and --val-fraction in [0, 1)")
    storage.check_writable(storage.local_only(args.out, "--out", "transfer-attributes", writes=True),
                           "the attribute CSV")  # before any training
    if args.out_manifest:
        storage.check_writable(args.out_manifest, "the labelled manifest")
    source = read_source_set(storage.local_only(args.source, "--source", "transfer-attributes", writes=False))
    if any("," in n for n in source.names):
        raise ReidError("attribute names must not contain commas (they become CSV columns)")
    manifest = read_manifest(args.target)
    target = storage.absolute(storage.join(manifest.root, "manifest.parquet"))
    if args.out_manifest and storage.absolute(args.out_manifest) == target:
        raise ReidError("--out-manifest would overwrite the target manifest; write the labelled copy elsewhere")
    to_label = _roles(args.label_roles, manifest)
    if not to_label:
        raise ReidError(f"no target tracklet has a role in '{args.label_roles}' (roles: "
                        f"{sorted({r.role for r in manifest.records})})")
    keys = [(r.pid, r.camid, r.tracklet_no) for r in to_label]
    if len(set(keys)) != len(keys):
        raise ReidError("target tracklets share (pid, camid, tracklet_no) keys; the attribute CSV could not tell "
                        "them apart")
    return source, manifest, to_label


def _training_loaders(args: argparse.Namespace, settings: TransferSettings, source: SourceSet, manifest: Manifest,
                      train_rows: np.ndarray, val_rows: np.ndarray) -> tuple:
    """(source batches, target frame batches or None, source validation batches or None)."""
    if len(train_rows) < args.batch_size:
        raise ReidError(f"the source set has {len(train_rows)} training images, fewer than --batch-size "
                        f"{args.batch_size}")
    hw = (args.height, args.width)
    src = _loader(SourceImages(source, train_rows, *hw, train=True), args.batch_size, True, True, args.workers,
                  args.seed)
    val = _loader(SourceImages(source, val_rows, *hw, train=False), args.batch_size, False, False, 0,
                  args.seed) if len(val_rows) else None
    if not settings.uses_mmd:
        return src, None, val
    mmd_records = _roles(args.mmd_roles, manifest) or list(manifest.records)
    per_step = max(1, args.target_batch // args.target_frames)
    if len(mmd_records) < per_step:
        raise ReidError(f"only {len(mmd_records)} target tracklets for MMD, fewer than one batch of {per_step}")
    clips = TargetClips(manifest, mmd_records, args.target_frames, *hw, True, _timeout(args))
    return src, _loader(clips, per_step, True, True, args.workers, args.seed + 1, collate=cat_clips), val


def _timeout(args: argparse.Namespace) -> float | None:
    return args.decode_timeout if args.decode_timeout > 0 else None


def _write_outputs(args: argparse.Namespace, source: SourceSet, manifest: Manifest, to_label: list[TrackletRecord],
                   scores: np.ndarray, labels: np.ndarray, report: dict) -> None:
    out = Path(args.out)
    _write_csv(out, to_label, source.names, labels, "d")
    _write_csv(out.with_suffix(".scores.csv"), to_label, source.names, scores, ".4f")
    binary_groups_path(out).write_text(json.dumps(source.groups, indent=1))
    out.with_suffix(".report.json").write_text(json.dumps(report, indent=1))
    if args.out_manifest:
        by_id = {r.tracklet_id: dict(zip(source.names, row.tolist(), strict=True))
                 for r, row in zip(to_label, labels, strict=True)}
        records = [replace(r, attributes=by_id.get(r.tracklet_id)) for r in manifest.records]
        write_manifest(replace(manifest, records=records, attributes=schema_from_binary_groups(source.groups),
                               meta={**manifest.meta, "attributes_from": str(out)}), args.out_manifest)


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    settings = TransferSettings(
        variant=args.variant, depth=args.depth, pretrained=not args.no_pretrained, weights_path=args.weights,
        epochs=args.epochs, lr=args.lr, wbce_sigma=args.wbce_sigma, mmd_alpha=args.mmd_alpha,
        mmd_weight=args.mmd_weight, threshold=args.threshold, mmd_normalize=args.mmd_features == "normalized")
    source, manifest, to_label = _inputs(args)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    order = np.random.default_rng(args.seed).permutation(len(source.images))
    n_val = int(round(args.val_fraction * len(order)))
    train_rows, val_rows = order[n_val:], order[:n_val]
    src, tgt, val = _training_loaders(args, settings, source, manifest, train_rows, val_rows)

    net = AttributeTransferNet(len(source.names), settings)
    pos_ratio = torch.from_numpy(source.labels[train_rows].mean(0).astype(np.float32))
    history = train_transfer(net, src, tgt, pos_ratio, settings, device, val,
                             log=lambda line: print(line, flush=True))
    clips = _loader(TargetClips(manifest, to_label, args.predict_frames, args.height, args.width, False,
                                _timeout(args)), 1, False, False, args.workers, args.seed, collate=first_item)
    sums, counts = predict_tracklets(net, clips, device, len(to_label), len(source.names))
    groups = np.array([r.pid if r.pid > 0 else -1 for r in to_label]) if args.merge == "identity" else None
    scores, labels = merge_and_threshold(sums, counts, groups, settings.threshold)

    known = labels >= 0
    report = {"variant": args.variant, "settings": asdict(settings), "history": history,
              "source_val_accuracy": history[-1].get("val_acc"),
              "target": str(args.target), "tracklets_labelled": len(to_label), "merge": args.merge,
              "mmd_features": args.mmd_features,
              "positive_ratio_source": dict(zip(source.names, pos_ratio.tolist(), strict=True)),
              "positive_ratio_transferred": dict(zip(source.names, ((labels == 1).sum(0) / np.maximum(
                  known.sum(0), 1)).tolist(), strict=True)),
              "tracklets_undecodable": int((~known).all(1).sum())}
    if manifest.dataset == "synthetic":   # the generator knows every identity's attributes
        from reid.data.synth.source_domain import binary_attributes
        report["truth"] = truth_accuracy(to_label, source.names, labels, binary_attributes)
    _write_outputs(args, source, manifest, to_label, scores, labels, report)
    truth = report.get("truth") or {}
    print(f"wrote {args.out} ({len(to_label)} tracklets x {len(source.names)} attributes); "
          f"source val accuracy {report['source_val_accuracy']}; "
          f"target accuracy vs ground truth {truth.get('mean_accuracy')} "
          f"(balanced {truth.get('mean_balanced_accuracy')})")
    return 0
