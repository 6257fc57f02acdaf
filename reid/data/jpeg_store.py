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

Packing (what is copied, what is encoded, unreadable frames, resuming): jpeg_pack.py. CPU decoding calls
libjpeg-turbo through simplejpeg (`jpeg_decode.py`: Pillow's pixels in half the time), with Pillow's DCT-domain
downscaling rule (`Image.draft`) when the output is at most half the stored size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reid.data.decode import DecodeError, decode_pil
from reid.data.jpeg_decode import is_jpeg
from reid.data.jpeg_index import IndexedShard
from reid.data.records import Manifest, TrackletRecord

JPEG_DIR = "jpeg"
log = logging.getLogger(__name__)


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
