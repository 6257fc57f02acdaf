"""`reid prepare` end to end on tiny layouts, and `--pack video` (frame-accurate random access after packing)."""

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from layout_fixtures import make_ilids, make_mars, write_image
from layout_fixtures import run_prepare as prepare

from reid.cli import main
from reid.data.pack import PackOptions, check_decord, encode_frames, pack_manifest, padded_size
from reid.data.records import Manifest, TrackletRecord, read_manifest
from reid.data.video_libs import decord as load_decord
from reid.errors import ReidError

TRAIN = [(1, 1, 1, 3), (2, 1, 2, 4)]
TEST = [(-1, 1, 1, 2), (0, 2, 3, 2), (3, 1, 1, 3), (3, 2, 5, 2)]


def test_prepare_mars_writes_manifest_and_summary(tmp_path, capsys):
    root, out = tmp_path / "mars", tmp_path / "out"
    make_mars(root, TRAIN, TEST, [3])
    assert prepare(["mars", "--root", str(root), "--out", str(out), "--protocol", "torchreid"]) == 0
    printed = capsys.readouterr().out
    assert "gallery" in printed and "junk_tracklets" in printed
    meta = pq.read_schema(out / "manifest.parquet").metadata
    assert meta[b"reid.root"].decode() == str(root.resolve())
    m = read_manifest(out / "manifest.parquet")
    assert len(m.records) == 6 and m.resolve(m.records[0].frames[0]).is_file()
    s = json.loads((out / "summary.json").read_text())
    assert s["roles"]["train"] == {"identities": 2, "tracklets": 2, "frames": 7, "distractor_tracklets": 0,
                                   "junk_tracklets": 0}
    assert s["roles"]["gallery"]["identities"] == 1 and s["roles"]["gallery"]["junk_tracklets"] == 1
    assert s["roles"]["gallery"]["distractor_tracklets"] == 1
    assert s["protocol"] == "torchreid" and s["protocol_sets"] == {"query": 1, "gallery": 2}
    assert s["missing_frames"] == 0 and s["empty_tracklets_dropped"] == 0


def test_prepare_reports_missing_frames(tmp_path, capsys):
    root, out = tmp_path / "mars", tmp_path / "out"
    names = make_mars(root, TRAIN, TEST, [3])
    (root / "bbox_train" / "0002" / names["train"][4]).unlink()
    assert prepare(["mars", "--root", str(root), "--out", str(out)]) == 0
    assert "missing frames skipped: 1" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["missing_frames"] == 1


def test_prepare_pack_video_is_frame_accurate(tmp_path):
    decord = load_decord()  # its own x264 kept private (reid/data/video_libs.py)

    root, out = tmp_path / "ilids", tmp_path / "out"
    make_ilids(root, [1, 2], frames=12, trials=1)
    assert prepare(["ilidsvid", "--root", str(root), "--out", str(out), "--trial", "0",
                 "--pack", "video", "--gop", "4"]) == 0
    m = read_manifest(out)
    assert m.root == out and len(m.records) == 4
    r = m.records[0]
    assert r.video == "videos/ilidsvid-cam1-person001.mp4" and r.frames == () and r.num_frames == 12
    assert r.extra["frame_size"] == "8x4"
    vr = decord.VideoReader(str(m.resolve(r.video)))
    assert len(vr) == 12
    idx = [11, 3, 7, 0, 5]
    red = vr.get_batch(idx).asnumpy()[:, :8, :4, 0].astype(float).mean(axis=(1, 2))
    np.testing.assert_allclose(red, idx, atol=2.5)  # fixture frames encode their index in the red channel
    assert json.loads((out / "summary.json").read_text())["total"]["frames"] == 48


def test_prepare_pack_defaults_to_the_jpeg_store_and_reads_the_same_frames(tmp_path):
    from reid.data.decode import Decoder, read_frames

    root = tmp_path / "ilids"
    make_ilids(root, [1, 2], frames=12, trials=1)
    assert prepare(["ilidsvid", "--root", str(root), "--out", str(tmp_path / "plain"), "--trial", "0"]) == 0
    assert prepare(["ilidsvid", "--root", str(root), "--out", str(tmp_path / "jpeg"), "--trial", "0",
                    "--pack"]) == 0
    plain, packed = read_manifest(tmp_path / "plain"), read_manifest(tmp_path / "jpeg")
    assert packed.meta["store"] == "jpeg" and len(packed.records) == len(plain.records) == 4
    idx = np.array([11, 3, 7, 0, 5])
    for a, b in zip(plain.records, packed.records, strict=True):
        assert b.shard and not b.frames and b.num_frames == a.num_frames == 12
        ref = read_frames(plain, a, idx, Decoder(None)).astype(float)
        got = read_frames(packed, b, idx, Decoder(None)).astype(float)
        assert np.abs(got - ref).mean() < 2.0  # the fixture's PNG frames are encoded at quality 90


def test_padded_size():
    assert padded_size(7, 5) == (8, 10)  # 6 and 8 are widths decord 0.6.0 cannot return
    assert padded_size(128, 64) == (128, 64)
    assert padded_size(33, 47) == (34, 50)


@pytest.mark.parametrize("size", [(5, 7), (48, 20), (64, 128)])
def test_encode_pads_and_decord_reads_every_frame(tmp_path, size):
    decord = load_decord()  # its own x264 kept private (reid/data/video_libs.py)

    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        write_image(paths[-1], 40 * i, size=size)
    write_image(paths[3], 120, size=(size[0] + 1, size[1] + 2))  # another size: resized to the first frame's
    n, h, w, unreadable = encode_frames(paths, tmp_path / "v.mp4", PackOptions(gop=2))
    assert unreadable == []
    assert (n, h, w) == (5, size[1], size[0])
    check_decord(tmp_path / "v.mp4", 5, padded_size(h, w))
    frames = decord.VideoReader(str(tmp_path / "v.mp4")).get_batch([4, 0, 2]).asnumpy()
    np.testing.assert_allclose(frames[:, :h, :w, 0].astype(float).mean(axis=(1, 2)), [160, 0, 80], atol=3)


def test_pack_rejects_video_records(tmp_path):
    rec = TrackletRecord(tracklet_id="v", pid=1, camid=1, dataset="x", role="train", num_frames=3, video="a.mp4")
    with pytest.raises(ReidError, match="already a video"):
        pack_manifest(Manifest([rec], tmp_path, "x"), tmp_path / "out")


@pytest.mark.parametrize("argv, match", [
    (["mars", "--root", "{tmp}/nowhere"], "expected a directory at .*nowhere"),
    (["mars", "--root", "{tmp}", "--trial", "2"], "mars does not take --trial"),
    (["prid2011", "--root", "{tmp}"], "prid_2011/multi_shot/cam_a"),
    (["ilidsvid", "--root", "{tmp}", "--csv", "x.csv"], "does not take --csv"),
    (["mars", "--root", "{tmp}/nowhere", "--pack", "--quality", "0"], r"--quality in 1\.\.100"),  # before loading
])
def test_bad_input_exits_2_without_traceback(tmp_path, capsys, argv, match):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["prepare", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(match, err), err


def test_prepare_generator_mars_layout_with_attributes_and_packing(tmp_path):
    decord = load_decord()  # its own x264 kept private (reid/data/video_libs.py)

    from reid.data.synth import write_layout

    root = write_layout(tmp_path / "mars", "mars", seed=1, height=64, width=32, max_len=5, ids_train=3, ids_test=3,
                        cameras=2, tracklets_per_camera=1, distractors=1, junk=1)
    out = tmp_path / "out"
    assert prepare(["mars", "--root", str(root), "--out", str(out), "--attributes",
                 str(root / "mars_attributes.csv"), "--pack", "video"]) == 0
    m = read_manifest(out)
    s = json.loads((out / "summary.json").read_text())
    assert s["with_attributes"] == sum(r.pid > 0 for r in m.records) > 0
    assert {g.name for g in m.attributes.by_kind("irrelevant")} == {"motion", "pose"}
    assert s["total"]["tracklets"] == len(m.records) and all(r.video and not r.frames for r in m.records)
    r = max(m.records, key=lambda r: r.num_frames)
    assert len(decord.VideoReader(str(m.resolve(r.video)))) == r.num_frames
