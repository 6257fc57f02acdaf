"""The JPEG store's frame index: a clip reads exactly its frames' bytes, equal to the row group's; a missing,
stale or damaged index only falls back to reading by row group."""

import logging
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reid.bench.toydata import write_toy_dataset
from reid.data.jpeg_index import IndexedShard, find_frames, index_location, write_index
from reid.data.jpeg_pack import pack_jpeg
from reid.data.jpeg_store import ShardReader
from reid.data.records import read_manifest
from reid.errors import ReidError

PICKS = [0, 4, 4, 8, 2, 99, -3]  # repeats, any order, past the end and before the start (clamped)


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    video = read_manifest(write_toy_dataset(root / "video", ids=4, cams=2, num_frames=9, size=(64, 32)))
    return pack_jpeg(video, root / "jpeg", quality=95, tracklets_per_group=3, shard_size=5, progress=False)


def _naive(path, row, picks):
    """The frames of one row as Parquet gives them: the whole table, no index."""
    frames = pq.read_table(path).column("frames")[row].as_py()
    return [frames[min(max(i, 0), len(frames) - 1)] for i in picks]


def test_pack_writes_an_index_beside_each_shard_that_finds_every_frame(jpeg):
    for shard in sorted({r.shard for r in jpeg.records}):
        path = jpeg.resolve(shard)
        assert index_location(path) == path.with_name(path.stem + ".index.parquet") and index_location(path).is_file()
        data = path.read_bytes()
        offsets, sizes = find_frames(path)
        for row, (offs, lens) in enumerate(zip(offsets, sizes, strict=True)):
            assert [data[o:o + n] for o, n in zip(offs, lens, strict=True)] == _naive(path, row, range(len(offs)))


def test_indexed_reads_are_the_row_group_reads_without_reading_a_row_group(jpeg, monkeypatch):
    want = {(r.shard, r.shard_row): _naive(jpeg.resolve(r.shard), r.shard_row, PICKS) for r in jpeg.records}

    def no_row_groups(*args, **kwargs):
        raise AssertionError("read a row group")

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", no_row_groups)
    reader = ShardReader()
    for r in jpeg.records:
        assert reader.blobs(jpeg.resolve(r.shard), r.shard_row, PICKS) == want[(r.shard, r.shard_row)]
    reader.close()


def _copy_store(jpeg, tmp_path):
    shutil.copytree(jpeg.root, tmp_path / "store")
    return tmp_path / "store"


def test_a_store_without_an_index_is_read_by_row_group_and_says_so_once(jpeg, tmp_path, caplog, monkeypatch):
    import reid.data.jpeg_index as jpeg_index

    monkeypatch.setattr(jpeg_index, "_told_missing", False)
    root = _copy_store(jpeg, tmp_path)
    shards = sorted({r.shard for r in jpeg.records})
    for s in shards:
        index_location(root / s).unlink()
    with caplog.at_level(logging.WARNING):
        assert all(IndexedShard.open(root / s) is None for s in shards)
        r = jpeg.records[6]
        assert ShardReader().blobs(root / r.shard, r.shard_row, PICKS) == _naive(root / r.shard, r.shard_row, PICKS)
    warnings = [m for m in caplog.messages if "has no frame index" in m]
    assert len(warnings) == 1 and "reid prepare --pack jpeg" in warnings[0]


def test_an_index_of_another_file_is_not_used(jpeg, tmp_path, caplog):
    root = _copy_store(jpeg, tmp_path)
    a, b = (root / s for s in sorted({r.shard for r in jpeg.records}))
    shutil.copy(index_location(a), index_location(b))  # shard b's index now describes shard a
    with caplog.at_level(logging.WARNING):
        assert IndexedShard.open(b) is None  # the recorded shard size differs
    assert any("written for a shard of another size" in m for m in caplog.messages)
    r = next(r for r in jpeg.records if root / r.shard == b)
    assert ShardReader().blobs(b, r.shard_row, PICKS) == _naive(b, r.shard_row, PICKS)


def test_an_index_that_misses_the_frames_falls_back_to_row_groups_and_says_so(jpeg, tmp_path, caplog):
    root = _copy_store(jpeg, tmp_path)
    r = jpeg.records[1]
    shard = root / r.shard
    table = pq.read_table(index_location(shard))
    moved = pa.array([[o + 1 for o in offs] for offs in table.column("offset").to_pylist()], pa.list_(pa.int64()))
    pq.write_table(table.set_column(0, "offset", moved), index_location(shard))  # same shard size, wrong offsets
    assert IndexedShard.open(shard) is not None
    reader = ShardReader()
    with caplog.at_level(logging.WARNING):
        assert reader.blobs(shard, r.shard_row, PICKS) == _naive(shard, r.shard_row, PICKS)
        assert reader.blobs(shard, r.shard_row, [1]) == _naive(shard, r.shard_row, [1])
    warnings = [m for m in caplog.messages if "does not match" in m]
    assert len(warnings) == 1 and str(shard) in warnings[0]  # once per shard, then by row group


@pytest.mark.parametrize("how", [{"compression": "zstd", "use_dictionary": False},
                                 {"compression": "none", "use_dictionary": True}])
def test_a_shard_whose_frames_are_not_stored_plain_cannot_be_indexed(tmp_path, how):
    path = tmp_path / "shard.parquet"
    rng = np.random.default_rng(0)
    blobs = [b"\xff\xd8\xff" + bytes(rng.integers(0, 8, 4000, dtype=np.uint8)) for _ in range(3)]
    pq.write_table(pa.table({"frames": [blobs, blobs[:1]]}), path, **how)  # statistics hold copies of frames
    with pytest.raises(ReidError, match="not stored as plain bytes"):
        write_index(path)
