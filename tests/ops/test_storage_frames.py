"""A prepared dataset directory copied into a bucket as it is (moto's S3 server on 127.0.0.1) is read in place:
JPEG-store shards through ranged reads (only the row group asked for), frame files as bytes, videos and keypoints
fetched into the decoder's cache. The frames are those of the local copy, and a missing or corrupt file in the bucket
is an unreadable tracklet, as on a local disk."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest

from reid import storage
from reid.bench.toydata import write_toy_dataset
from reid.config.schema import ExperimentConfig
from reid.data.batching import make_batch
from reid.data.decode import DecodeError, Decoder, read_frames
from reid.data.frame_cache import FrameCache
from reid.data.jpeg_pack import pack_jpeg
from reid.data.plan import global_plan
from reid.data.records import ManifestError, read_manifest, write_manifest
from tests.ops.storage_server import s3_server

IDX = np.array([0, 3, 3, 7, 1])  # repeats and any order


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def stores(s3, tmp_path_factory):
    """{store: (local manifest, the same directory read from the bucket)} for video, frame-file and JPEG stores."""
    root = tmp_path_factory.mktemp("frames")
    video = read_manifest(write_toy_dataset(root / "video", ids=3, cams=2, num_frames=8))
    files = read_manifest(write_toy_dataset(root / "files", ids=3, cams=2, num_frames=8, frame_files=True))
    jpeg = pack_jpeg(video, root / "jpeg", tracklets_per_group=1, shard_size=6, progress=False)
    write_manifest(jpeg)
    out = {}
    for name, local in (("video", video), ("files", files), ("jpeg", jpeg)):
        storage.copy_dir(local.root, s3.uri("data", name))
        out[name] = (local, read_manifest(s3.uri("data", name)))
    return out


@pytest.mark.parametrize("store", ["video", "files", "jpeg"])
def test_frames_read_from_the_bucket_are_the_local_frames(stores, s3, store):
    local, remote = stores[store]
    assert remote.remote and remote.root == s3.uri("data", store)  # no reid.root stored: the bucket directory
    decoder = Decoder(None)
    try:
        for a, b in zip(local.records, remote.records, strict=True):
            np.testing.assert_array_equal(read_frames(remote, b, IDX, decoder), read_frames(local, a, IDX, decoder))
        # videos go through the decoder's cache (one fetch per file, kept for the next read); shards and frame
        # files are read in place
        fetched = decoder._cache.fetched if decoder._cache is not None else 0
        assert fetched == (len(remote.records) if store == "video" else 0)
        read_frames(remote, remote.records[0], IDX, decoder)
        assert (decoder._cache.fetched if decoder._cache is not None else 0) == fetched
    finally:
        decoder.close()


def test_a_batch_with_keypoints_from_the_bucket_equals_the_local_batch(stores):
    local, remote = stores["video"]
    c = ExperimentConfig(seed=5, data={"height": 32, "width": 16, "seq_len": 4, "ids_per_batch": 2,
                                       "tracklets_per_id": 2, "decode_timeout_s": 30, "val_identities": 0})
    row = global_plan(local.records, c.data, c.seed, "pk", 0, 1)[0]
    a = make_batch(row, local, c.data, {"frames", "keypoints"}, train=True)
    b = make_batch(row, remote, c.data, {"frames", "keypoints"}, train=True)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("indexed", [True, False])
def test_a_clip_reads_its_part_of_a_shard_not_the_shard(s3, tmp_path, monkeypatch, indexed):
    """With the store's frame index, a clip reads the index once and then one span of its own tracklet's frames;
    a store without one is read by row group: the footer, then the one row group."""
    import pyarrow.parquet as pq

    from reid.data.jpeg_index import find_frames, index_location

    video = read_manifest(write_toy_dataset(tmp_path / "video", ids=4, cams=2, tracklets_per_cam=2, num_frames=16,
                                            size=(128, 64)))
    local = pack_jpeg(video, tmp_path / "jpeg", tracklets_per_group=1, shard_size=16, progress=False)
    write_manifest(local)
    rec = local.records[9]
    if not indexed:
        index_location(local.resolve(rec.shard)).unlink()
    storage.copy_dir(local.root, s3.uri(f"big-{indexed}"))
    remote = read_manifest(s3.uri(f"big-{indexed}"))
    sizes: dict[str, int] = {}
    read: dict[str, int] = {}

    class Counting(io.RawIOBase):  # a bucket file, counting the bytes the readers pull from it
        def __init__(self, f, location):
            self.f, self.location = f, location

        def readable(self):
            return True

        def seekable(self):
            return True

        def seek(self, pos, whence=0):
            return self.f.seek(pos, whence)

        def tell(self):
            return self.f.tell()

        def readinto(self, buf):
            data = self.f.read(len(buf))
            buf[:len(data)] = data
            read[self.location] = read.get(self.location, 0) + len(data)
            return len(data)

    real = storage.open_input_file

    def counting(location):
        f = real(location)
        sizes[str(location)] = f.size()
        return pa.PythonFile(Counting(f, str(location)), mode="r")

    monkeypatch.setattr(storage, "open_input_file", counting)
    np.testing.assert_array_equal(read_frames(remote, remote.records[9], IDX, Decoder(None)),
                                  read_frames(local, rec, IDX, Decoder(None)))
    shard = remote.locate(rec.shard)
    assert sizes[shard] > 64 * 1024 + 4 * pq.ParquetFile(local.resolve(rec.shard)).metadata.row_group(0).total_byte_size
    if indexed:
        offsets, lengths = find_frames(local.resolve(rec.shard))
        starts, ends = np.array(offsets[rec.shard_row]), np.array(offsets[rec.shard_row]) + lengths[rec.shard_row]
        span = int(ends[IDX].max() - starts[IDX].min())  # the frames the clip asks for, and what lies between
        assert sorted(read) == sorted([shard, index_location(shard)]) and read[shard] == span, (read, span)
        assert read[index_location(shard)] == sizes[index_location(shard)]
    else:
        group = pq.ParquetFile(local.resolve(rec.shard)).metadata.row_group(rec.shard_row).total_byte_size
        # Parquet reads the file's last 64 KiB for the footer, then the one row group: not the other 15 tracklets
        assert list(read) == [shard] and 0 < read[shard] <= 64 * 1024 + group + 4096, (read, sizes, group)


def test_missing_and_corrupt_files_in_the_bucket_are_decode_errors(stores, s3):
    remote = read_manifest(storage.copy_dir(s3.uri("data", "video"), s3.uri("broken", "video")))
    decoder = Decoder(None)
    try:
        gone = remote.records[0]
        fs, path = storage.resolve(remote.locate(gone.video))
        fs.delete_file(path)
        with pytest.raises(DecodeError, match="cannot fetch"):
            read_frames(remote, gone, IDX, decoder)
        bad = remote.records[1]
        storage.write_bytes(remote.locate(bad.video), b"\x00garbage" * 300)
        with pytest.raises(DecodeError, match="cannot open video"):
            read_frames(remote, bad, IDX, decoder)
    finally:
        decoder.close()
    jpeg = read_manifest(storage.copy_dir(s3.uri("data", "jpeg"), s3.uri("broken", "jpeg")))
    storage.write_bytes(jpeg.locate(jpeg.records[0].shard), b"PAR1 truncated")
    with pytest.raises(DecodeError, match="cannot open JPEG shard"):
        read_frames(jpeg, jpeg.records[0], IDX, Decoder(None))


def test_a_bucket_root_refuses_paths_that_leave_it(s3):
    from reid.data.records import Manifest

    m = Manifest([], s3.uri("data", "x"), "toy")
    assert m.locate("videos/a.mp4") == s3.uri("data", "x", "videos", "a.mp4")
    for rel in ("../y/a.mp4", "/etc/passwd", "videos/../../a.mp4"):
        with pytest.raises(ManifestError, match="outside the dataset root"):
            m.locate(rel)
    with pytest.raises(ManifestError, match="is a URI"):
        m.resolve("videos/a.mp4")


def test_the_cache_evicts_least_recently_used_files(s3, tmp_path):
    for i in range(3):
        storage.write_bytes(s3.uri("cache", f"{i}.bin"), bytes(100))
    cache = FrameCache(max_bytes=250, directory=tmp_path)
    paths = [cache.path(s3.uri("cache", f"{i}.bin")) for i in range(2)]
    cache.path(s3.uri("cache", "0.bin"))  # 0 used again: 1 is now the oldest
    cache.path(s3.uri("cache", "2.bin"))
    assert paths[0].exists() and not paths[1].exists() and cache.fetched == 3
    cache.close()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def ray_local(s3):
    """Ray started after the S3 server: the raylet and its workers inherit AWS_ENDPOINT_URL from this process."""
    import ray

    from reid.ray_runtime import start_local_ray

    start_local_ray(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("store", ["video", "jpeg"])
def test_a_pipeline_epoch_reads_the_bucket_and_counts_unreadable_tracklets(ray_local, s3, tmp_path, store):
    """Ray Data's decoding actors read a dataset directory in the bucket; a corrupt video / a lost shard there is
    skipped, replaced inside its batch and counted in the run's ledger, as for a local root."""
    from collections import Counter
    from dataclasses import replace

    from reid.data.pipeline import get_or_create_ledger, open_rank_stream, unreadable_tracklets
    from reid.data.records import Manifest

    local = read_manifest(write_toy_dataset(tmp_path / "video", ids=4, cams=2, tracklets_per_cam=2, num_frames=8))
    victim = 3
    if store == "jpeg":
        local = pack_jpeg(local, tmp_path / "jpeg", progress=False)
        write_manifest(local)
    uri = s3.uri("epoch", store)
    storage.copy_dir(local.root, uri)
    remote = read_manifest(uri)
    if store == "jpeg":
        records = list(remote.records)
        records[victim] = replace(records[victim], shard="jpeg/gone.parquet")  # a shard lost on the way
        write_manifest(Manifest(records, remote.root, remote.dataset, remote.attributes, remote.meta))
        expected = "cannot open JPEG shard"
    else:
        storage.write_bytes(remote.locate(remote.records[victim].video), b"\x00garbage" * 300)
        expected = "cannot open video"
    c = ExperimentConfig(seed=11, train={"epochs": 1},
                         data={"height": 32, "width": 16, "seq_len": 4, "ids_per_batch": 4, "tracklets_per_id": 4,
                               "decode_workers": 1, "decode_cpus": 0.5, "decode_timeout_s": 30,
                               "max_errored_fraction": 0.2, "batches_per_epoch": 4})
    name = f"test-bucket-{store}"
    ledger = get_or_create_ledger(name)
    s = open_rank_stream(storage.join(uri, "manifest.parquet"), c.data, c.seed, {"frames"}, "pk", rank=0,
                         world_size=1, start_epoch=0, end_epoch=c.train.epochs, ledger_name=name)
    batches = [{k: v.numpy() for k, v in b.items()} for b in s.epoch(0)]
    assert len(batches) == 4
    for b in batches:
        assert victim not in b["index"].tolist() and b["frames_hwc"].shape[0] == 16
        assert set(Counter(b["pid"].tolist()).values()) == {4}
    bad = unreadable_tracklets(ledger)
    assert list(bad) == [victim] and expected in bad[victim]
