"""`reid prepare --pack`: an unreadable frame replaced by its tracklet's nearest readable frame, a tracklet with none
left out and reported, and a pack stopped part-way continued by the same command (reid/data/pack_ledger.py)."""

import json
from dataclasses import replace

import numpy as np
import pytest
from layout_fixtures import make_mars, run_prepare, write_image

from reid.data import jpeg_pack, pack
from reid.data.datasets import load_dataset
from reid.data.decode import Decoder, nearest_readable, read_frames
from reid.data.jpeg_pack import frame_jpeg, pack_jpeg
from reid.data.pack_ledger import LEDGER, PackReport
from reid.data.records import read_manifest
from reid.errors import ReidError

TRAIN = [(1, 1, 1, 5), (2, 1, 2, 4), (4, 2, 1, 3)]
TEST = [(3, 1, 1, 3), (3, 2, 5, 3)]


def naive_nearest(readable: list[bool]) -> list[int] | None:
    """The rule as written: frame i takes the readable j with the smallest |j - i|, the earlier of two."""
    if not any(readable):
        return None
    out = []
    for i in range(len(readable)):
        best = None
        for j, ok in enumerate(readable):
            if ok and (best is None or abs(j - i) < abs(best - i)):
                best = j
        out.append(best)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_nearest_readable_matches_a_naive_search(seed):
    rng = np.random.default_rng(seed)
    readable = [bool(v) for v in rng.random(int(rng.integers(1, 12))) < 0.5]
    assert nearest_readable(readable) == naive_nearest(readable)


def damaged_mars(root):
    """A MARS tree whose first training tracklet has frame 1 cut short and frame 3 missing (its frames' red channel:
    0, 50, 100, 150, 200), and whose second has no readable frame."""
    names = make_mars(root, TRAIN, TEST, [1])
    first = [root / "bbox_train" / n[:4] / n for n in names["train"][:5]]
    for k, path in enumerate(first):
        write_image(path, 50 * k, size=(16, 32))
    first[1].write_bytes(first[1].read_bytes()[:60])
    first[3].unlink()
    for n in names["train"][5:9]:
        path = root / "bbox_train" / n[:4] / n
        path.write_bytes(path.read_bytes()[:40])
    return names


@pytest.mark.parametrize("store", ["video", "jpeg"])
def test_unreadable_frames_are_replaced_and_empty_tracklets_left_out(tmp_path, capsys, store):
    damaged_mars(tmp_path / "mars")
    out = tmp_path / "out"
    assert run_prepare(["mars", "--root", str(tmp_path / "mars"), "--out", str(out), "--no-check-frames",
                        "--pack", store]) == 0
    printed = capsys.readouterr().out
    assert "unreadable frames, each replaced by its tracklet's nearest readable frame: 6 in 2 tracklet(s)" in printed
    assert "tracklets with no readable frame, left out of the manifest: 1 (mars-train-00002)" in printed
    m = read_manifest(out)
    ids = [r.tracklet_id for r in m.records]
    assert "mars-train-00002" not in ids and len(ids) == len(TRAIN) + len(TEST) - 1
    first = m.records[ids.index("mars-train-00001")]
    assert first.num_frames == 5  # the tracklet keeps its length: frame i is still frame i
    red = read_frames(m, first, np.arange(5), Decoder(None))[:, :32, :16, 0].astype(float).mean(axis=(1, 2))
    np.testing.assert_allclose(red, [0, 0, 100, 100, 200], atol=6)  # 1 -> 0 (the earlier of 0 and 2), 3 -> 2
    s = json.loads((out / "summary.json").read_text())["pack"]
    assert s["store"] == store and s["unreadable_frames"] == 6 and s["tracklets_dropped"] == ["mars-train-00002"]
    assert s["unreadable"]["mars-train-00001"] == ["bbox_train/0001/0001C1T0001F002.jpg",
                                                   "bbox_train/0001/0001C1T0001F004.jpg"]


def test_a_pack_with_no_readable_frame_at_all_is_one_line(tmp_path):
    names = make_mars(tmp_path / "mars", TRAIN, TEST, [1])
    for split in ("train", "test"):
        for n in names[split]:
            (tmp_path / "mars" / f"bbox_{split}" / n[:4] / n).write_bytes(b"")
    with pytest.raises(ReidError, match="no tracklet under .* has a readable frame; nothing was packed"):
        run_prepare(["mars", "--root", str(tmp_path / "mars"), "--out", str(tmp_path / "out"), "--pack", "video"])


def test_frame_jpeg_copies_jpegs_encodes_others_and_refuses_what_does_not_decode(tmp_path):
    write_image(tmp_path / "a.jpg", 80, size=(16, 32))
    write_image(tmp_path / "b.png", 80, size=(16, 32))
    data = (tmp_path / "a.jpg").read_bytes()
    assert frame_jpeg(tmp_path / "a.jpg", 90) == data  # byte for byte
    (tmp_path / "padded.jpg").write_bytes(data + bytes(100))  # end marker followed by padding: decodes, kept
    assert frame_jpeg(tmp_path / "padded.jpg", 90) == data + bytes(100)
    assert frame_jpeg(tmp_path / "b.png", 90)[:2] == b"\xff\xd8"
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert frame_jpeg(tmp_path / "cut.jpg", 90) is None
    assert frame_jpeg(tmp_path / "missing.jpg", 90) is None


def test_a_stopped_video_pack_continues_where_it_stopped(tmp_path, monkeypatch, capsys):
    make_mars(tmp_path / "mars", TRAIN, TEST, [1])
    argv = ["mars", "--root", str(tmp_path / "mars"), "--out", str(tmp_path / "out"), "--pack", "video"]
    real, calls = pack._pack_one, []

    def failing(job):
        calls.append(job[0])
        if len(calls) == 3:
            raise ReidError("disk full")
        return real(job)

    monkeypatch.setattr(pack, "_pack_one", failing)
    with pytest.raises(ReidError, match="disk full"):
        run_prepare(argv)
    first_two = [tmp_path / "out" / "videos" / f"{t}.mp4" for t in calls[:2]]
    stamps = [p.stat().st_mtime_ns for p in first_two]
    calls.clear()
    monkeypatch.setattr(pack, "_pack_one", lambda job: (calls.append(job[0]), real(job))[1])
    assert run_prepare(argv) == 0
    assert "[reid] pack: 2 of 5 tracklets already packed" in capsys.readouterr().out
    assert len(calls) == 3 and [p.stat().st_mtime_ns for p in first_two] == stamps
    resumed = read_manifest(tmp_path / "out")
    assert run_prepare([*argv[:3], "--out", str(tmp_path / "fresh"), "--pack", "video"]) == 0
    fresh = read_manifest(tmp_path / "fresh")
    assert [(r.tracklet_id, r.video, r.num_frames, r.extra) for r in resumed.records] == \
        [(r.tracklet_id, r.video, r.num_frames, r.extra) for r in fresh.records]
    assert not list((tmp_path / "out" / "videos").glob("*.part.mp4"))
    left = tmp_path / "out" / "videos" / "gone.part.mp4"  # a temporary file of a tracklet no longer packed
    left.write_bytes(b"x")
    assert run_prepare(argv) == 0 and not left.exists()


def test_other_settings_are_refused_and_a_cut_ledger_line_packs_its_unit_again(tmp_path, monkeypatch):
    make_mars(tmp_path / "mars", TRAIN, TEST, [1])
    argv = ["mars", "--root", str(tmp_path / "mars"), "--out", str(tmp_path / "out"), "--pack", "video"]
    assert run_prepare(argv) == 0
    with pytest.raises(ReidError, match=r"packed with other settings \(gop: 8 there, 4 now\)"):
        run_prepare([*argv, "--gop", "4"])
    ledger = tmp_path / "out" / "videos" / LEDGER
    text = ledger.read_text()
    ledger.write_text(text[: len(text) - 20])  # the last tracklet's line cut short, as by a crash
    calls = []
    real = pack._pack_one
    monkeypatch.setattr(pack, "_pack_one", lambda job: (calls.append(job[0]), real(job))[1])
    assert run_prepare(argv) == 0 and len(calls) == 1
    assert run_prepare(argv) == 0 and len(calls) == 1  # the ledger reads whole again: nothing left to pack


def test_a_stopped_jpeg_pack_keeps_its_finished_shards(tmp_path, monkeypatch):
    make_mars(tmp_path / "mars", TRAIN, TEST, [1])
    manifest = load_dataset("mars", tmp_path / "mars")
    real, calls = jpeg_pack._write_shard, []

    def failing(*args):
        calls.append(args[3])
        if len(calls) == 2:  # Ctrl-C half-way through writing the second shard
            (args[2] / (args[3] + ".tmp")).write_bytes(b"PAR1")
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(jpeg_pack, "_write_shard", failing)
    with pytest.raises(KeyboardInterrupt):
        pack_jpeg(manifest, tmp_path / "out", shard_size=2, tracklets_per_group=1, progress=False)
    assert (tmp_path / "out" / "jpeg" / "shard-00001.parquet.tmp").exists()
    calls.clear()
    monkeypatch.setattr(jpeg_pack, "_write_shard", lambda *a: (calls.append(a[3]), real(*a))[1])
    resumed = pack_jpeg(manifest, tmp_path / "out", shard_size=2, tracklets_per_group=1, progress=False)
    assert calls == ["jpeg/shard-00001.parquet", "jpeg/shard-00002.parquet"]
    assert not list((tmp_path / "out" / "jpeg").glob("*.tmp"))  # the interrupted shard's temporary file removed
    fresh = pack_jpeg(manifest, tmp_path / "fresh", shard_size=2, tracklets_per_group=1, progress=False)
    assert resumed.records == fresh.records
    for r in resumed.records:
        got = read_frames(resumed, r, np.arange(r.num_frames), Decoder(None))
        want = read_frames(manifest, manifest.records[[x.tracklet_id for x in manifest.records].index(r.tracklet_id)],
                           np.arange(r.num_frames), Decoder(None))
        np.testing.assert_array_equal(got, want)  # JPEG files copied byte for byte
    calls.clear()  # another manifest: the shards whose tracklets changed are written again, and only those
    fewer = replace(manifest, records=[r for i, r in enumerate(manifest.records) if i != 2])
    pack_jpeg(fewer, tmp_path / "out", shard_size=2, tracklets_per_group=1, progress=False)
    assert calls == ["jpeg/shard-00001.parquet"]  # [0, 1] kept; [2, 3] -> [3, 4]; shard 2 no longer written


def test_a_second_pack_into_the_same_folder_is_refused_while_one_runs(tmp_path):
    from reid.data.pack_ledger import PackLedger

    first = PackLedger(tmp_path / "videos", {"gop": 8})
    with pytest.raises(ReidError, match="another `reid prepare --pack` is writing .*videos; let it finish"):
        PackLedger(tmp_path / "videos", {"gop": 8})
    with pytest.raises(ReidError, match="another"):  # refused before its settings are even compared
        PackLedger(tmp_path / "videos", {"gop": 4})
    first.close()
    with pytest.raises(ReidError, match="other settings"):  # the lock is free again; this one releases it too
        PackLedger(tmp_path / "videos", {"gop": 4})
    PackLedger(tmp_path / "videos", {"gop": 8}).close()


@pytest.mark.timeout(120)
def test_jpeg_shards_written_by_several_processes_are_the_ones_one_writes(tmp_path):
    damaged_mars(tmp_path / "mars")
    manifest = load_dataset("mars", tmp_path / "mars", check_frames=False)
    one, two = PackReport(), PackReport()
    a = pack_jpeg(manifest, tmp_path / "one", shard_size=2, tracklets_per_group=1, progress=False, report=one)
    b = pack_jpeg(manifest, tmp_path / "two", shard_size=2, tracklets_per_group=1, progress=False, report=two,
                  workers=2)
    assert a.records == b.records and one == two and one.dropped == ["mars-train-00002"]
    shards = sorted(p.name for p in (tmp_path / "one" / "jpeg").glob("shard-*"))
    assert len(shards) == 6 and shards == sorted(p.name for p in (tmp_path / "two" / "jpeg").glob("shard-*"))
    for name in shards:  # byte for byte: the output does not depend on --workers
        assert (tmp_path / "one" / "jpeg" / name).read_bytes() == (tmp_path / "two" / "jpeg" / name).read_bytes()


@pytest.mark.timeout(120)
def test_a_video_that_does_not_decode_is_left_out_of_a_jpeg_pack(tmp_path):
    from reid.bench.toydata import write_toy_dataset

    video = read_manifest(write_toy_dataset(tmp_path / "video", ids=3, cams=2, num_frames=5, size=(64, 32)))
    bad = video.records[2]
    video.resolve(bad.video).write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    report = PackReport()
    packed = pack_jpeg(video, tmp_path / "jpeg", progress=False, report=report)
    assert [r.tracklet_id for r in packed.records] == [r.tracklet_id for r in video.records if r is not bad]
    assert report.dropped == [bad.tracklet_id] and report.unreadable == {}
    assert report.lines() == [f"tracklets with no readable frame, left out of the manifest: 1 ({bad.tracklet_id})"]
    assert all(r.num_frames == 5 for r in packed.records)


@pytest.mark.timeout(120)
def test_a_video_pack_with_several_processes_gives_the_same_manifest(tmp_path):
    damaged_mars(tmp_path / "mars")
    manifest = load_dataset("mars", tmp_path / "mars", check_frames=False)
    one, two = PackReport(), PackReport()
    a = pack.pack_manifest(manifest, tmp_path / "one", pack.PackOptions(gop=4), report=one)
    b = pack.pack_manifest(manifest, tmp_path / "two", pack.PackOptions(gop=4), workers=2, report=two)
    assert a.records == b.records and one == two and one.dropped == ["mars-train-00002"]
    assert sorted(p.name for p in (tmp_path / "two" / "videos").glob("*.mp4")) == \
        sorted(p.name for p in (tmp_path / "one" / "videos").glob("*.mp4"))
