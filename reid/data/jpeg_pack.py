"""Writing the JPEG frame store (`reid prepare --pack jpeg`; the store's layout and reading: jpeg_store.py).

Frame files that are JPEG already (MARS, Duke) are copied byte for byte; videos and other images are encoded with
Pillow (libjpeg-turbo) at `quality`. A frame file that cannot be read (missing, not an image, or a JPEG cut short:
one without its end-of-image marker that does not decode) is replaced by the nearest readable frame of its
tracklet, so every tracklet keeps its length and its keypoints stay aligned; a tracklet with no readable frame, or
whose video does not decode (in a helper process with a time bound, as the pipeline decodes), is left out of the
manifest. Both are reported (`PackReport`). JPEGs with their end marker are copied unchecked (a full decode of every
frame would double the pack's time): damage inside one shows when a decoding actor reads it, and the pipeline
replaces that tracklet and counts it (`reid.data.batching`).

Shards are written under a temporary name with their frame index, then renamed into place, and recorded in
`jpeg/pack-ledger.jsonl`: the same command run again keeps every shard an earlier run finished (`pack_ledger.py`).
"""

from __future__ import annotations

import io
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from reid.data.decode import DecodeError, Decoder, decode_pil, nearest_readable
from reid.data.jpeg_decode import is_jpeg
from reid.data.jpeg_index import index_location, write_index
from reid.data.jpeg_store import JPEG_DIR, JpegStoreError, ShardReader
from reid.data.pack_ledger import PackLedger, PackReport
from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError
from reid.progress import bar as progress_bar

_EOI = b"\xff\xd9"  # a JPEG's end-of-image marker
VIDEO_TIMEOUT_S = 60.0  # a source video's decode, as the pipeline's `data.decode_timeout_s` default


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """uint8 [H, W, 3] RGB -> JPEG bytes (4:2:0, libjpeg-turbo through Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def frame_jpeg(path: Path, quality: int) -> bytes | None:
    """A frame file as JPEG bytes (a JPEG as it is, anything else encoded), or None when it cannot be read. A JPEG
    whose last bytes hold no end-of-image marker is decoded in full, and kept only if that works."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not is_jpeg(data):
            return encode_jpeg(decode_pil([data])[0], quality)
        if _EOI not in data[-64:]:  # cut short, or followed by padding: decode to tell which
            decode_pil([data])
    except DecodeError:
        return None
    return data


def tracklet_jpegs(manifest: Manifest, record: TrackletRecord, quality: int,
                   decoder: Decoder | None = None) -> tuple[list[bytes], list[str]]:
    """Every frame of a record as JPEG bytes, each unreadable frame file replaced by the nearest readable one, and
    the unreadable frame files as the record names them. No bytes when no frame is readable, or when the record's
    video does not decode or hangs past `decoder`'s time bound. A shard is read whole (an error there is the pack's
    error)."""
    if record.frames:
        blobs = [frame_jpeg(manifest.resolve(rel), quality) for rel in record.frames]
        unreadable = [rel for rel, b in zip(record.frames, blobs, strict=True) if b is None]
        near = nearest_readable([b is not None for b in blobs])
        return ([] if near is None else [blobs[j] for j in near]), unreadable  # type: ignore[misc]
    if record.video:
        try:
            frames = (decoder or Decoder(None)).video(manifest.resolve(record.video), record.frame_start,
                                                      record.num_frames, np.arange(record.num_frames))
        except DecodeError:  # DecodeTimeout included: decord can hang on a damaged file (dmlc/decord#373)
            return [], []
        if "frame_size" in record.extra:  # packed videos pad odd sizes; store the real size
            h0, w0 = (int(v) for v in record.extra["frame_size"].split("x"))
            frames = frames[:, :h0, :w0]
        return [encode_jpeg(np.ascontiguousarray(f), quality) for f in frames], []
    if record.shard:
        return ShardReader().blobs(manifest.resolve(record.shard), record.shard_row, range(record.num_frames)), []
    raise JpegStoreError(f"tracklet {record.tracklet_id} names neither a video nor frame files")


def _source_frames(record: TrackletRecord) -> int:
    return len(record.frames) if record.frames else record.num_frames


def _write_shard(manifest: Manifest, records: Sequence[TrackletRecord], out: Path, rel: str, quality: int,
                 tracklets_per_group: int, bar: Any | None) -> dict[str, Any]:
    """Write one shard (and its index) under a temporary name, rename it into place; returns its ledger entry:
    for each record, its row (None when it has no readable frame) and frame count, and the unreadable frames."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("tracklet_id", pa.string()), ("frames", pa.list_(pa.binary()))])
    tmp = out / (rel + ".tmp")
    rows: list[int | None] = []
    counts: list[int] = []
    unreadable: dict[str, list[str]] = {}
    # JPEG does not compress further; no min/max statistics of the frames column (they would copy two JPEGs per row
    # group into the footer, which every reader fetches first: ~70 KB for 16 tracklets of 128x64); no dictionary for
    # it either (pyarrow hashed every JPEG, wrote a dictionary page of the first ones and fell back to plain:
    # reading a row group then took twice as long)
    decoder = Decoder(timeout_s=VIDEO_TIMEOUT_S)  # a helper process, started on the first video only
    with closing(decoder), pq.ParquetWriter(tmp, schema, compression="none", write_statistics=["tracklet_id"],
                                            use_dictionary=["tracklet_id"]) as writer:
        ids: list[str] = []
        blobs: list[list[bytes]] = []
        row = 0
        for k, rec in enumerate(records):
            data, bad = tracklet_jpegs(manifest, rec, quality, decoder)
            if bad:
                unreadable[rec.tracklet_id] = bad
            rows.append(row if data else None)
            counts.append(len(data))
            if data:
                ids.append(rec.tracklet_id)
                blobs.append(data)
                row += 1
            if len(ids) == tracklets_per_group or (k == len(records) - 1 and ids):
                writer.write_table(pa.table({"tracklet_id": ids, "frames": blobs}, schema=schema))
                ids, blobs = [], []
            if bar is not None:
                bar.update(1)
    if row:
        write_index(tmp, index_of=out / rel)
        tmp.replace(out / rel)  # a shard that exists is complete, and so is its index
    else:
        tmp.unlink()
    return {"tracklets": [r.tracklet_id for r in records], "source_frames": [_source_frames(r) for r in records],
            "rows": rows, "frames": counts, "unreadable": unreadable,
            "dropped": [r.tracklet_id for r, n in zip(records, counts, strict=True) if n == 0]}


def _reusable(entry: dict[str, Any] | None, records: Sequence[TrackletRecord], shard: Path) -> bool:
    """Whether an earlier run's shard holds exactly what this one would write there."""
    if not entry or entry.get("tracklets") != [r.tracklet_id for r in records]:
        return False
    if entry.get("source_frames") != [_source_frames(r) for r in records]:
        return False
    if all(row is None for row in entry.get("rows", [])):
        return True  # nothing readable: no file
    return shard.is_file() and Path(index_location(shard)).is_file()


def _written(manifest: Manifest, shards: list[list[TrackletRecord]], rels: list[str], todo: list[int], out: Path,
             quality: int, tracklets_per_group: int, workers: int, bar: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(shard number, ledger entry) of each shard of `todo` as it is written: here, or by `workers` processes, one
    shard a task (each gets only its shard's records), in the order they finish."""
    if workers <= 1 or len(todo) <= 1:
        for no in todo:
            yield no, _write_shard(manifest, shards[no], out, rels[no], quality, tracklets_per_group, bar)
        return
    # spawned, not forked: this process holds threads (pyarrow's, tqdm's) that a fork would copy mid-lock
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_write_shard, replace(manifest, records=shards[no]), shards[no], out, rels[no],
                               quality, tracklets_per_group, None): no for no in todo}
        try:
            for done in as_completed(futures):
                no = futures[done]
                yield no, done.result()
                bar.update(len(shards[no]))
        except BaseException:  # an error or Ctrl-C: stop now rather than write the rest unrecorded
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def pack_jpeg(manifest: Manifest, out: str | Path, *, quality: int = 90, tracklets_per_group: int = 4,
              shard_size: int = 1024, progress: bool = True, report: PackReport | None = None,
              workers: int = 1) -> Manifest:
    """Write every tracklet of `manifest` into JPEG shards under `<out>/jpeg/`; returns the manifest of the copy
    (the caller writes it). Keypoints files are copied under `out` at the same relative path. Unreadable frames and
    tracklets left out go into `report`; shards that an earlier run with the same settings wrote are kept.
    `workers` > 1: shards written by that many processes at once (the output does not depend on it)."""
    if not 1 <= quality <= 100:
        raise ReidError(f"--quality must be in 1..100, got {quality}")
    out = Path(out)
    report = report if report is not None else PackReport()
    ledger = PackLedger(out / JPEG_DIR, {"source_root": str(manifest.root.resolve()), "quality": quality,
                                         "tracklets_per_group": tracklets_per_group, "shard_size": shard_size})
    for stale in (out / JPEG_DIR).glob("*.tmp"):  # an interrupted run's shards and indexes; this run holds the lock
        stale.unlink()
    records = list(manifest.records)
    shards = [records[i:i + shard_size] for i in range(0, len(records), shard_size)]
    rels = [f"{JPEG_DIR}/shard-{no:05d}.parquet" for no in range(len(shards))]
    kept = {no for no, (rel, recs) in enumerate(zip(rels, shards, strict=True))
            if _reusable(ledger.entry(rel), recs, out / rel)}
    report.reused, report.units = len(kept), len(shards)
    if kept:
        print(f"[reid] pack jpeg: {len(kept)} of {len(shards)} shards already written in {out / JPEG_DIR} (an earlier "
              f"run with the same settings); writing the other {len(shards) - len(kept)}", flush=True)
    entries = {no: ledger.entry(rels[no]) for no in kept}
    bar = progress_bar(total=len(records), initial=sum(len(shards[no]) for no in kept), desc="pack jpeg",
                       unit="tracklets", disable=not progress)
    try:
        todo = [no for no in range(len(shards)) if no not in kept]
        for no, entry in _written(manifest, shards, rels, todo, out, quality, tracklets_per_group, workers, bar):
            ledger.add(rels[no], entry)
            entries[no] = entry
    finally:
        ledger.close()
        bar.close()
    packed: list[TrackletRecord] = []
    for no, (rel, recs) in enumerate(zip(rels, shards, strict=True)):
        entry = entries[no]
        report.add(entry)
        for rec, row, n in zip(recs, entry["rows"], entry["frames"], strict=True):
            if row is not None:
                packed.append(replace(rec, video=None, frame_start=0, frames=(), shard=rel, shard_row=row,
                                      num_frames=n, keypoints=_keep(manifest, rec.keypoints, out),
                                      extra={k: v for k, v in rec.extra.items() if k != "frame_size"}))
    return Manifest(packed, out, manifest.dataset, manifest.attributes,
                    {**manifest.meta, "store": "jpeg", "jpeg_quality": str(quality)})


def _keep(manifest: Manifest, rel: str | None, out: Path) -> str | None:
    """A keypoints reference that stays valid under the new root (copied when it lies elsewhere)."""
    if not rel:
        return None
    src = manifest.resolve(rel)
    dst = out / rel
    if src != dst.resolve():
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    return rel
