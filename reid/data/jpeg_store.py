"""The JPEG frame store: every tracklet's frames as JPEG bytes in Parquet shards (`reid prepare --pack jpeg`).

Layout under the output root:
    jpeg/shard-00000.parquet   columns tracklet_id: string, frames: list<binary> (one JPEG per frame, in order);
    jpeg/shard-00001.parquet   one row per tracklet, `tracklets_per_group` rows per row group, `shard_size` per file
    manifest.parquet           each record names its `shard` and `shard_row` (video / frames empty)

Why: a reader needs no seeking inside a video codec (a clip of T frames sampled across a tracklet decodes exactly T
JPEGs, against up to `gop - 1` extra frames per sampled frame for H.264), a CPU node can ship bytes and let the GPU
decode them (nvJPEG: `torchvision.io.decode_jpeg(..., device="cuda")`), and a row group of a few tracklets is one
sequential read on network storage. The cost is disk: JPEG at quality 90 takes several times the bytes of H.264.
`reid bench data` measures both stores side by side (bytes per frame, frames/s per core).

A store copied into a bucket is read in place: a shard URI is opened through `pyarrow.fs` as a random-access file,
so a read fetches the Parquet footer once per shard and then only the row group asked for (ranged GETs), never the
whole shard.

Frame files that are JPEG already (MARS, Duke) are copied byte for byte; videos and other images are encoded with
Pillow (libjpeg-turbo) at `quality`. CPU decoding calls libjpeg-turbo through simplejpeg (`jpeg_decode.py`: Pillow's
pixels in half the time), with Pillow's DCT-domain downscaling rule (`Image.draft`) when the output is at most half
the stored size.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from reid.data.decode import DecodeError, decode_images, decode_pil, decode_video_inline
from reid.data.jpeg_decode import is_jpeg
from reid.data.jpeg_index import IndexedShard, write_index
from reid.data.records import Manifest, TrackletRecord
from reid.errors import ReidError
from reid.progress import bar as progress_bar

JPEG_DIR = "jpeg"
log = logging.getLogger(__name__)


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """uint8 [H, W, 3] RGB -> JPEG bytes (4:2:0, libjpeg-turbo through Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_jpegs(blobs: Sequence[bytes], draft_size: tuple[int, int] | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
    """JPEG bytes -> uint8 [N, H, W, 3] RGB (`decode.decode_pil`: libjpeg-turbo, optional DCT-domain downscaling
    while the result stays at least `draft_size` (h, w) large; into `out` when it has that shape)."""
    return decode_pil(blobs, draft_size, error=JpegStoreError, out=out)


class JpegStoreError(DecodeError):
    """A shard or frame of the JPEG store that cannot be read."""


class ShardReader:
    """Reads tracklets' JPEG bytes from shards (one per worker process): through the shard's frame index when it has
    one (`jpeg_index`: only the frames asked for), else by row group; keeps each shard open."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[object, np.ndarray]] = {}
        self._indexed: dict[str, IndexedShard | None] = {}

    def _open(self, path: Path | str):
        key = str(path)
        if key not in self._files:
            import pyarrow.parquet as pq

            from reid import storage

            try:  # a local shard is memory-mapped and read without pre-buffering: a row group's read took 0.27 ms
                # for 4 tracklets of 12 frames, 0.07 ms so (17 % of a decoding actor's time before, 2026-12-05)
                pf = (pq.ParquetFile(storage.open_input_file(path)) if storage.is_uri(path)
                      else pq.ParquetFile(path, memory_map=True, pre_buffer=False))
            except Exception as exc:  # pyarrow raises several types for missing / truncated files
                raise JpegStoreError(f"cannot open JPEG shard {path}: {exc}") from None
            rows = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
            self._files[key] = (pf, rows)
        return self._files[key]

    def blobs(self, path: Path | str, row: int, indices: Sequence[int]) -> list[bytes]:
        """JPEG bytes of frames `indices` (clamped to the tracklet's length) of row `row` of shard `path`."""
        key = str(path)
        if key not in self._indexed:
            self._indexed[key] = IndexedShard.open(path)
        shard = self._indexed[key]
        if shard is not None:
            got = shard.blobs(row, list(indices))
            if got is not None:
                return got
            log.warning("the frame index of JPEG shard %s does not match it (row %d); reading the shard by row group "
                        "from now on (re-pack the store to rebuild the index)", path, row)
            shard.close()
            self._indexed[key] = None
        return self._row_group_blobs(path, row, indices)

    def _row_group_blobs(self, path: Path | str, row: int, indices: Sequence[int]) -> list[bytes]:
        pf, starts = self._open(path)
        group = int(np.searchsorted(starts, row, side="right") - 1)
        if not 0 <= group < len(starts) - 1:
            raise JpegStoreError(f"JPEG shard {path} has no row {row}")
        try:
            # one thread: the threaded reader took 170 us for a row group of 4 tracklets of 12 frames, this 60-75
            # (2-core development machine, 2026-12-05); a decoding actor has one core to itself anyway
            table = pf.read_row_group(group, columns=["frames"], use_threads=False)
        except Exception as exc:
            raise JpegStoreError(f"cannot read row group {group} of JPEG shard {path}: {exc}") from None
        frames = table.column("frames")[row - int(starts[group])]
        n = len(frames)
        if n == 0:
            raise JpegStoreError(f"row {row} of JPEG shard {path} holds no frames")
        return [frames[int(min(max(i, 0), n - 1))].as_py() for i in indices]

    def close(self) -> None:
        self._files.clear()
        for shard in self._indexed.values():
            if shard is not None:
                shard.close()
        self._indexed.clear()


def read_jpeg_frames(manifest: Manifest, record: TrackletRecord, indices: np.ndarray, reader: ShardReader,
                     draft_size: tuple[int, int] | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Frames `indices` (tracklet-relative) of a JPEG-store record: uint8 [T, H, W, 3]; each frame decoded once.
    `out`: decode into this array (returned) when `indices` are distinct and sorted and the frames fit it."""
    uniq, inverse = _distinct(indices)
    blobs = reader.blobs(manifest.locate(record.shard), record.shard_row, uniq)
    try:
        frames = decode_jpegs(blobs, draft_size, out if inverse is None else None)
    except JpegStoreError as exc:
        raise JpegStoreError(f"tracklet {record.tracklet_id}: {exc}") from None
    return frames if inverse is None else frames[inverse]


def _distinct(indices: np.ndarray) -> tuple[list[int], list[int] | None]:
    """(the distinct frame indices, sorted; where each of `indices` lies among them, or None when `indices` are
    already distinct and sorted). Plain Python: np.unique took 28 us a clip, 1.7 % of a JPEG batch's time."""
    wanted = np.asarray(indices, dtype=np.int64).ravel().tolist()
    uniq = sorted(set(wanted))
    if uniq == wanted:
        return uniq, None
    where = {v: k for k, v in enumerate(uniq)}
    return uniq, [where[v] for v in wanted]


def read_jpeg_blobs(manifest: Manifest, record: TrackletRecord, indices: np.ndarray,
                    reader: ShardReader) -> list[bytes]:
    """The JPEG bytes of frames `indices` (tracklet-relative) of a JPEG-store record, in order, undecoded (the
    trainer decodes them: `data.jpeg_decode=trainer`, reid.data.device_decode). Each frame is read once; bytes
    that do not start as a JPEG are a JpegStoreError here, so the tracklet is replaced like one that fails to
    decode (damage past the header shows only when the trainer decodes it)."""
    uniq, inverse = _distinct(indices)
    blobs = reader.blobs(manifest.locate(record.shard), record.shard_row, uniq)
    for i, b in zip(uniq, blobs, strict=True):
        if not is_jpeg(b):
            raise JpegStoreError(f"tracklet {record.tracklet_id}: frame {i} is not a JPEG")
    return blobs if inverse is None else [blobs[j] for j in inverse]


def _tracklet_jpegs(manifest: Manifest, record: TrackletRecord, quality: int) -> list[bytes]:
    """Every frame of a record as JPEG bytes: JPEG files copied as they are, anything else encoded."""
    if record.frames:
        out = []
        for rel in record.frames:
            data = manifest.resolve(rel).read_bytes()
            if not is_jpeg(data):
                data = encode_jpeg(decode_images([manifest.resolve(rel)])[0], quality)
            out.append(data)
        return out
    if record.video:
        frames = decode_video_inline(manifest.resolve(record.video), record.frame_start, record.num_frames,
                                     np.arange(record.num_frames))
        if "frame_size" in record.extra:  # packed videos pad odd sizes; store the real size
            h0, w0 = (int(v) for v in record.extra["frame_size"].split("x"))
            frames = frames[:, :h0, :w0]
        return [encode_jpeg(np.ascontiguousarray(f), quality) for f in frames]
    if record.shard:
        return ShardReader().blobs(manifest.resolve(record.shard), record.shard_row, range(record.num_frames))
    raise JpegStoreError(f"tracklet {record.tracklet_id} names neither a video nor frame files")


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def pack_jpeg(manifest: Manifest, out: str | Path, *, quality: int = 90, tracklets_per_group: int = 4,
              shard_size: int = 1024, progress: bool = True) -> Manifest:
    """Write every tracklet of `manifest` into JPEG shards under `<out>/jpeg/`; returns the manifest of the copy
    (the caller writes it). Keypoints files are copied under `out` at the same relative path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not 1 <= quality <= 100:
        raise ReidError(f"--quality must be in 1..100, got {quality}")
    out = Path(out)
    (out / JPEG_DIR).mkdir(parents=True, exist_ok=True)
    records = list(manifest.records)
    packed: list[TrackletRecord] = []
    schema = pa.schema([("tracklet_id", pa.string()), ("frames", pa.list_(pa.binary()))])
    bar = progress_bar(total=len(records), desc="pack jpeg", unit="tracklets", disable=not progress)
    for shard_no, idx in enumerate(_chunks(range(len(records)), shard_size)):
        rel = f"{JPEG_DIR}/shard-{shard_no:05d}.parquet"
        tmp = out / (rel + ".tmp")
        # JPEG does not compress further; no min/max statistics of the frames column (they would copy two JPEGs
        # per row group into the footer, which every reader fetches first: ~70 KB for 16 tracklets of 128x64);
        # no dictionary for it either (pyarrow hashed every JPEG, wrote a dictionary page of the first ones and
        # fell back to plain: reading a row group then took twice as long)
        with pq.ParquetWriter(tmp, schema, compression="none", write_statistics=["tracklet_id"],
                              use_dictionary=["tracklet_id"]) as writer:
            for group in _chunks(idx, tracklets_per_group):
                ids, blobs = [], []
                for row, i in enumerate(group, start=group[0] - idx[0]):
                    rec = records[i]
                    data = _tracklet_jpegs(manifest, rec, quality)
                    ids.append(rec.tracklet_id)
                    blobs.append(data)
                    packed.append(replace(rec, video=None, frame_start=0, frames=(), shard=rel, shard_row=row,
                                          num_frames=len(data), keypoints=_keep(manifest, rec.keypoints, out),
                                          extra={k: v for k, v in rec.extra.items() if k != "frame_size"}))
                    bar.update(1)
                writer.write_table(pa.table({"tracklet_id": ids, "frames": blobs}, schema=schema))
        write_index(tmp, index_of=out / rel)
        tmp.rename(out / rel)  # a shard that exists is complete, and so is its index
    bar.close()
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
