"""Queries: a directory of frames, a video file, or a manifest row -> a one-record manifest -> embedding [D].

Directories and videos become a one-record `Manifest` in memory, so a query goes through exactly the project's
test-time path (`reid.evaluation.run.extract.record_feature`: `make_test_clips` decoding, resize, clips, the model,
mean over clips, optional flip) that embedded the gallery. Checked first, with one-line errors: an empty or
unreadable directory, frames of mixed sizes, an unreadable video, a missing manifest row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from reid.data.records import Manifest, TrackletRecord
from reid.data.video_libs import decord as load_decord
from reid.deploy.runs import LoadedRun
from reid.errors import ReidError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def frames_manifest(directory: Path) -> Manifest:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ReidError(f"query directory {directory} holds no image frames ({', '.join(sorted(IMAGE_SUFFIXES))})")
    sizes = {}
    for f in files:
        try:
            with Image.open(f) as im:
                sizes.setdefault(im.size, f)
        except (OSError, UnidentifiedImageError) as exc:
            raise ReidError(f"cannot read query frame {f}: {exc}") from None
    if len(sizes) > 1:
        (a, fa), (b, fb) = list(sizes.items())[:2]
        raise ReidError(f"query frames have mixed sizes ({a[0]}x{a[1]} in {fa.name}, {b[0]}x{b[1]} in {fb.name}): "
                        "a tracklet's frames must be crops of one size")
    rec = TrackletRecord(tracklet_id=directory.name, pid=-1, camid=-1, dataset="query", role="query",
                         num_frames=len(files), frames=tuple(f.name for f in files))
    return Manifest(records=[rec], root=directory.resolve(), dataset="query")


def video_manifest(video: Path) -> Manifest:
    decord = load_decord()
    DECORDError = decord.DECORDError

    try:
        vr = decord.VideoReader(str(video), ctx=decord.cpu(0), num_threads=1)
        n = len(vr)
        vr.get_batch([0, n - 1])  # a truncated file opens but fails here
    except (DECORDError, RuntimeError, OSError, IndexError) as exc:
        first = (str(exc).splitlines() or ["unknown error"])[0][:160]
        raise ReidError(f"cannot read query video {video}: {first}") from None
    if n == 0:
        raise ReidError(f"query video {video} has no frames")
    rec = TrackletRecord(tracklet_id=video.stem, pid=-1, camid=-1, dataset="query", role="query", num_frames=n,
                         video=video.name)
    return Manifest(records=[rec], root=video.resolve().parent, dataset="query")


def manifest_row(path: Path, row: str) -> tuple[Manifest, int]:
    from reid.data.records import read_manifest

    m = read_manifest(path)
    for i, r in enumerate(m.records):
        if r.tracklet_id == row:
            return m, i
    if row.isdigit() and int(row) < len(m.records):
        return m, int(row)
    raise ReidError(f"manifest {path} has no tracklet '{row}' (give a tracklet_id or a row number < "
                    f"{len(m.records)}; {examples(m)})")


def examples(m: Manifest, n: int = 3) -> str:
    """'query tracklets: A, B, C, ...': what a user can pass as --row (query-role tracklets first)."""
    queries = [r.tracklet_id for r in m.records if r.role == "query"]
    ids, what = (queries, "query tracklets") if queries else ([r.tracklet_id for r in m.records], "tracklets")
    return f"{what}: " + ", ".join(ids[:n]) + (", ..." if len(ids) > n else "")


def resolve_query(query: Path, row: str | None = None) -> tuple[Manifest, int]:
    """(manifest, record index) of a query path: frames directory, video file, or manifest (+ row)."""
    query = Path(query)
    if not query.exists():
        raise ReidError(f"query {query} does not exist")
    if query.is_dir():
        return frames_manifest(query), 0
    if query.suffix == ".parquet":
        if row is None:
            from reid.data.records import read_manifest

            raise ReidError(f"query {query} is a manifest: name the tracklet with --row TRACKLET_ID "
                            f"({examples(read_manifest(query))})")
        return manifest_row(query, row)
    if query.suffix.lower() in IMAGE_SUFFIXES:  # decord would call it a video with broken metadata
        raise ReidError(f"query {query} is one image, and a query is a tracklet: give the directory of its frames "
                        f"(a directory holding this image alone is a one-frame tracklet)")
    return video_manifest(query), 0


@torch.no_grad()
def embed_query(run: LoadedRun, manifest: Manifest, index: int) -> np.ndarray:
    """Embedding [D] float32 of one record, as the gallery was embedded (L2-normalised if eval.normalize)."""
    from reid.data.batching import BatchMaker
    from reid.data.decode import DecodeError
    from reid.evaluation.run.extract import record_feature

    if {"pose_maps", "keypoints"} & run.spec.inputs and not manifest.records[index].keypoints:
        raise ReidError(f"{run.cfg.method} needs keypoints for a query; give a manifest row that has them")
    maker = BatchMaker(manifest, run.cfg.data, run.spec.inputs - {"attributes"}, train=False)
    try:
        feat, _ = record_feature(run.model, maker, index, run.cfg, run.spec, torch.device("cpu"))
    except DecodeError as exc:
        raise ReidError(f"cannot decode the query: {exc}") from None
    finally:
        maker.close()
    if run.cfg.eval.normalize:
        feat = torch.nn.functional.normalize(feat.float(), dim=0)
    return feat.float().numpy()
