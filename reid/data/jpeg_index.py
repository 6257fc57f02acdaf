"""Where every JPEG of a store shard lies in the shard file, so that a reader reads exactly the frames it samples.

Parquet's unit of reading is the column chunk of a row group: a clip of T frames sampled from one tracklet read all
frames of the `tracklets_per_group` tracklets of its row group and copied them into Arrow buffers. The cost grows
with the row group, not with T (2-core development machine, 2026-12-05, 9 KB frames, 8 frames a clip, one row
group read per clip): 0.08 ms a clip for 4 tracklets of 12 frames, 0.47 ms for 4 of 60 (MARS tracklets have 59
frames on average), 0.87 ms for 4 of 120 (DukeMTMC-VideoReID: 168), against about 2 ms to decode the clip's 8
frames at 256x128; from a bucket each clip moved its whole row group.

The shard's `frames` column is written uncompressed, PLAIN-encoded and without a dictionary (`jpeg_store.pack_jpeg`),
so each JPEG's bytes lie contiguously in the file, in row and frame order. `write_index` finds them once, right after
the shard is written, and stores their byte ranges beside it:

    jpeg/shard-00000.parquet         the shard, a plain Parquet file that any Parquet reader reads
    jpeg/shard-00000.index.parquet   one row per shard row: offset list<int64>, size list<int64> (bytes in the
                                     shard file), and the shard's size in bytes in the schema metadata

`IndexedShard` reads frame i of row r as the bytes [offset, offset + size) of the shard: a slice of the
memory-mapped file on a local disk; from a bucket, one ranged read of the span of the tracklet's frames it needs.
An index whose shard has another size (written again since), or whose slice does not start as a JPEG, is not
used: the reader falls back to the row group (`jpeg_store.ShardReader`) and says so once. A store packed without
an index is read by row group, with one warning per process.
"""

from __future__ import annotations

import logging
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reid import storage
from reid.data.jpeg_decode import is_jpeg
from reid.errors import ReidError

INDEX_SUFFIX = ".index.parquet"
_SIZE_KEY = b"shard_bytes"
log = logging.getLogger(__name__)
_told_missing = False  # the missing-index warning, once per process


def index_location(shard: str | Path) -> str | Path:
    """`jpeg/shard-00000.parquet` -> `jpeg/shard-00000.index.parquet` (a Path for a Path, a string for a URI)."""
    text = str(shard)
    base = text[: -len(".parquet")] if text.endswith(".parquet") else text
    return Path(base + INDEX_SUFFIX) if isinstance(shard, Path) else base + INDEX_SUFFIX


def find_frames(shard: Path) -> tuple[list[list[int]], list[list[int]]]:
    """(offsets, sizes) per shard row: where each JPEG of the local shard's `frames` column lies in its bytes.

    Each frame is searched inside its row group's `frames` column chunk, from the end of the previous frame, so
    repeated frames get their own copies (and never a copy in the footer's statistics). A column chunk stored
    compressed or dictionary-encoded, or a frame not found, is a ReidError.
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(shard, memory_map=True)
    column = pf.schema_arrow.get_field_index("frames")
    offsets: list[list[int]] = []
    sizes: list[list[int]] = []
    with open(shard, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for group in range(pf.num_row_groups):
            chunk = pf.metadata.row_group(group).column(column)
            if chunk.compression != "UNCOMPRESSED" or chunk.has_dictionary_page:
                raise ReidError(f"cannot index JPEG shard {shard}: its frames are not stored as plain bytes "
                                f"(row group {group}: {chunk.compression}, dictionary page {chunk.has_dictionary_page})")
            pos, end = chunk.data_page_offset, chunk.data_page_offset + chunk.total_compressed_size
            for blobs in pf.read_row_group(group, columns=["frames"]).column("frames").to_pylist():
                row: list[int] = []
                for blob in blobs:
                    at = mm.find(blob, pos, end) if blob else -1
                    if at < 0:
                        raise ReidError(f"cannot index JPEG shard {shard}: frame {len(row)} of row {len(offsets)} "
                                        f"is not stored as plain bytes in its column chunk")
                    row.append(at)
                    pos = at + len(blob)
                offsets.append(row)
                sizes.append([len(b) for b in blobs])
    return offsets, sizes


def write_index(shard: Path, index_of: Path | None = None) -> Path:
    """Write the index of local shard `shard` beside it (module docstring), named after `index_of` when the shard
    is still a temporary file that will be renamed to it; returns the index's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    offsets, sizes = find_frames(shard)
    table = pa.table({"offset": pa.array(offsets, pa.list_(pa.int64())), "size": pa.array(sizes, pa.list_(pa.int64()))})
    table = table.replace_schema_metadata({_SIZE_KEY: str(shard.stat().st_size).encode()})
    out = Path(index_location(index_of or shard))
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out)
    return out


@dataclass
class IndexedShard:
    """A shard read through its index: `blobs(row, indices)` slices the frames out of the shard's bytes."""

    location: str | Path
    offsets: np.ndarray  # int64 [frames in the shard], row after row
    sizes: np.ndarray    # int64 [frames in the shard]
    first: np.ndarray    # int64 [rows + 1]: row r's frames are offsets[first[r]:first[r + 1]]
    data: Any            # mmap.mmap of a local shard, or a pyarrow NativeFile of a bucket's

    @classmethod
    def open(cls, location: str | Path) -> IndexedShard | None:
        """The shard at `location` with its index; None when it has none, or one written for another file."""
        import pyarrow.parquet as pq

        index = index_location(location)
        if not storage.exists(index):
            global _told_missing
            if not _told_missing:  # once per process: every shard of an old store lacks one
                _told_missing = True
                log.warning("JPEG shard %s has no frame index (a store packed before 2026-12-06): each clip reads "
                            "its whole row group; `reid prepare --pack jpeg` writes the store again with one",
                            location)
            return None
        try:
            if storage.is_uri(index):  # one GET of the whole (small) file, not a footer read and then the rest
                import pyarrow as pa

                with storage.open_input_file(index) as f:
                    table = pq.read_table(pa.BufferReader(f.read()))
            else:
                table = pq.read_table(index, memory_map=True)
        except Exception:  # an unreadable index only costs speed: the shard is read by row group
            return None
        meta = table.schema.metadata or {}
        data: Any = None
        try:
            if storage.is_uri(location):
                data = storage.open_input_file(location)
                size = data.size()
            else:
                with open(location, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except (OSError, ReidError):  # the shard itself is missing: the row-group reader says so
            return None
        if meta.get(_SIZE_KEY) != str(size).encode() or data is None:
            if data is not None:
                data.close()
            log.warning("the frame index of JPEG shard %s was written for a shard of another size; reading the "
                        "shard by row group (re-pack the store to rebuild the index)", location)
            return None
        offsets = table.column("offset").combine_chunks()
        counts = np.asarray(offsets.value_lengths(), dtype=np.int64)
        first = np.concatenate([[0], np.cumsum(counts)])
        flat = np.asarray(offsets.flatten(), dtype=np.int64)
        sizes = np.asarray(table.column("size").combine_chunks().flatten(), dtype=np.int64)
        return cls(location, flat, sizes, first, data)

    @property
    def rows(self) -> int:
        return len(self.first) - 1

    def blobs(self, row: int, indices: list[int]) -> list[bytes] | None:
        """JPEG bytes of frames `indices` (clamped to the row's length) of row `row`; None when the index does not
        fit the shard (a row it lacks, an empty row, a slice that is not a JPEG)."""
        if not 0 <= row < self.rows:
            return None
        lo, hi = int(self.first[row]), int(self.first[row + 1])
        if hi == lo:
            return None
        picks = [lo + min(max(int(i), 0), hi - lo - 1) for i in indices]
        starts, ends = self.offsets[picks], self.offsets[picks] + self.sizes[picks]
        if isinstance(self.data, mmap.mmap):
            out = [self.data[int(s):int(e)] for s, e in zip(starts, ends, strict=True)]
        else:  # one ranged read of the span the clip needs
            base = int(starts.min())
            span = self.data.read_at(int(ends.max()) - base, base)
            out = [span[int(s) - base:int(e) - base] for s, e in zip(starts, ends, strict=True)]
        return out if all(is_jpeg(b) for b in out) else None

    def close(self) -> None:
        self.data.close()
