"""The JPEG frame store: packing, exact reads of sampled frames, byte-for-byte copies, bad data."""

from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from reid.bench.toydata import write_toy_dataset
from reid.config.schema import DataConfig
from reid.data.batching import BatchMaker, batch_frames, make_batch
from reid.data.decode import DecodeError, Decoder, decode_video_inline, read_frames
from reid.data.jpeg_pack import pack_jpeg
from reid.data.jpeg_store import JpegStoreError, ShardReader, decode_jpegs, read_jpeg_blobs
from reid.data.plan import global_plan
from reid.data.records import Manifest, read_manifest, write_manifest


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    video = read_manifest(write_toy_dataset(root / "video", ids=4, cams=2, num_frames=9, size=(64, 32)))
    packed = pack_jpeg(video, root / "jpeg", quality=95, tracklets_per_group=3, shard_size=5, progress=False)
    write_manifest(packed)
    return video, read_manifest(root / "jpeg" / "manifest.parquet")


def test_pack_writes_shards_with_row_groups_and_a_manifest(stores):
    video, jpeg = stores
    assert len(jpeg.records) == len(video.records) == 8 and jpeg.meta["store"] == "jpeg"
    shards = sorted({r.shard for r in jpeg.records})
    assert shards == ["jpeg/shard-00000.parquet", "jpeg/shard-00001.parquet"]  # 5 + 3 tracklets
    pf = pq.ParquetFile(jpeg.resolve(shards[0]))
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)] == [3, 2]
    frames = pf.metadata.row_group(0).column(1)
    assert frames.path_in_schema == "frames.list.element"
    assert not frames.has_dictionary_page and frames.compression == "UNCOMPRESSED"  # JPEG bytes stored plain
    for v, j in zip(video.records, jpeg.records, strict=True):
        assert (j.tracklet_id, j.pid, j.camid, j.role, j.num_frames) == (v.tracklet_id, v.pid, v.camid, v.role,
                                                                          v.num_frames)
        assert j.video is None and not j.frames and j.keypoints == v.keypoints
        assert jpeg.resolve(j.keypoints).is_file()


def test_sampled_frames_match_the_video_within_jpeg_error(stores):
    video, jpeg = stores
    idx = np.array([0, 4, 4, 8, 2])  # repeats and any order
    for v, j in zip(video.records, jpeg.records, strict=True):
        ref = decode_video_inline(video.resolve(v.video), v.frame_start, v.num_frames, idx).astype(int)
        got = read_frames(jpeg, j, idx, Decoder(None))
        assert got.shape == ref.shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - ref).mean() < 3.0  # quality 95
        np.testing.assert_array_equal(got[1], got[2])
        # and each frame is the right one: another frame of the same video is further away
        other = decode_video_inline(video.resolve(v.video), v.frame_start, v.num_frames, idx[::-1]).astype(int)
        assert np.abs(got.astype(int) - ref).mean() < np.abs(got.astype(int) - other).mean()


def test_jpeg_frame_files_are_copied_byte_for_byte(tmp_path):
    m = read_manifest(write_toy_dataset(tmp_path / "frames", ids=2, cams=2, num_frames=5, frame_files=True))
    packed = pack_jpeg(m, tmp_path / "jpeg", progress=False)
    r = packed.records[0]
    blobs = ShardReader().blobs(packed.resolve(r.shard), r.shard_row, range(r.num_frames))
    assert blobs == [m.resolve(f).read_bytes() for f in m.records[0].frames]


def test_batches_from_both_stores_agree(stores):
    video, jpeg = stores
    c = DataConfig(height=64, width=32, seq_len=4, ids_per_batch=2, tracklets_per_id=2, decode_timeout_s=None)
    row = global_plan(video.records, c, 3, "pk", 0, 1)[0]
    a = make_batch(row, video, c, {"frames"}, train=True)
    b = make_batch(row, jpeg, c, {"frames"}, train=True)
    fa, fb = batch_frames(a), batch_frames(b)
    assert fa.shape == fb.shape
    np.testing.assert_array_equal(a["index"], b["index"])
    assert np.abs(fa.astype(int) - fb.astype(int)).mean() < 3.0


def test_draft_decoding_shrinks_only_down_to_the_requested_size(stores):
    _, jpeg = stores
    r = jpeg.records[0]
    blobs = ShardReader().blobs(jpeg.resolve(r.shard), r.shard_row, [0])
    assert decode_jpegs(blobs).shape == (1, 64, 32, 3)
    assert decode_jpegs(blobs, draft_size=(32, 16)).shape == (1, 32, 16, 3)  # 1/2 scale in the DCT domain
    assert decode_jpegs(blobs, draft_size=(40, 20)).shape == (1, 64, 32, 3)  # 1/2 would be too small


def test_corrupt_frame_and_missing_shard_are_decode_errors_and_replaced(stores, tmp_path):
    _, jpeg = stores
    with pytest.raises(JpegStoreError, match="not a readable JPEG"):
        decode_jpegs([b"\xff\xd8\xffnot really"])
    gone = replace(jpeg.records[0], shard="jpeg/missing.parquet")
    with pytest.raises(DecodeError, match="cannot open JPEG shard"):
        read_frames(jpeg, gone, np.array([0]), Decoder(None))
    # in a batch, the unreadable tracklet is replaced by another of the same identity and counted
    records = list(jpeg.records)
    records[0] = gone
    m = Manifest(records, jpeg.root, jpeg.dataset, jpeg.attributes, jpeg.meta)
    c = DataConfig(height=64, width=32, seq_len=4, ids_per_batch=2, tracklets_per_id=2, decode_timeout_s=None,
                   max_errored_fraction=0.5)
    maker = BatchMaker(m, c, {"frames"}, train=True)
    rows = [r for e in range(4) for r in global_plan(m.records, c, 3, "pk", e, 1) if 0 in r.indices]
    out = maker(rows[0])
    assert 0 not in out["index"].tolist() and list(maker.errors.bad) == [0]


def test_a_truncated_shard_is_a_store_error(stores, tmp_path):
    _, jpeg = stores
    r = jpeg.records[0]
    data = jpeg.resolve(r.shard).read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[:len(data) // 2])
    with pytest.raises(JpegStoreError, match="cannot open JPEG shard"):
        ShardReader().blobs(tmp_path / "cut.parquet", 0, [0])


def test_bytes_and_frames_of_repeated_unsorted_indices_come_in_the_order_asked(stores):
    _, jpeg = stores
    r = jpeg.records[2]
    idx = np.array([5, 1, 5, 0, 8, 1])
    every = pq.read_table(jpeg.resolve(r.shard)).column("frames")[r.shard_row].as_py()  # naive: the whole row
    assert read_jpeg_blobs(jpeg, r, idx, ShardReader()) == [every[i] for i in idx]
    np.testing.assert_array_equal(read_frames(jpeg, r, idx, Decoder(None)), decode_jpegs([every[i] for i in idx]))


def test_frames_decode_into_the_array_given_when_they_fit(stores):
    _, jpeg = stores
    r = jpeg.records[1]
    plain = read_frames(jpeg, r, np.array([0, 2, 5, 7]), Decoder(None))
    given = np.full_like(plain, 7)
    assert read_frames(jpeg, r, np.array([0, 2, 5, 7]), Decoder(None), out=given) is given
    np.testing.assert_array_equal(given, plain)
    for idx, out in ((np.array([0, 2, 2, 7]), np.empty_like(plain)),  # repeats: decoded once each, then gathered
                     (np.array([0, 2, 5, 7]), np.empty((4, 32, 16, 3), np.uint8))):  # another size
        got = read_frames(jpeg, r, idx, Decoder(None), out=out)
        assert got is not out
        np.testing.assert_array_equal(got, read_frames(jpeg, r, idx, Decoder(None)))


def test_a_training_batch_decodes_each_frame_into_its_slot(stores, monkeypatch):
    """Frames-only training batches of a JPEG store: libjpeg-turbo writes every frame into the batch's array."""
    from reid.data import jpeg_decode

    _, jpeg = stores
    c = DataConfig(height=64, width=32, seq_len=4, ids_per_batch=2, tracklets_per_id=2, decode_timeout_s=None)
    maker = BatchMaker(jpeg, c, {"frames"}, train=True)
    buffer = np.empty(maker.frames_shape(4), np.uint8)
    into: list[bool] = []
    decode = jpeg_decode.decode_jpeg_rgb

    def spy(blob, draft_size=None, out=None):
        got = decode(blob, draft_size, out=out)
        into.append(got is not None and np.shares_memory(got, buffer))
        return got

    monkeypatch.setattr(jpeg_decode, "decode_jpeg_rgb", spy)
    row = global_plan(jpeg.records, c, 3, "pk", 0, 1)[0]
    got = maker(row, frames_out=buffer)
    assert got["frames_hwc"] is buffer and into == [True] * 16
    monkeypatch.setattr(jpeg_decode, "decode_jpeg_rgb", decode)
    np.testing.assert_array_equal(batch_frames(got), batch_frames(make_batch(row, jpeg, c, {"frames"}, train=True)))
