import os
import time

import numpy as np
import pytest

from reid.bench.toydata import render_tracklet, write_toy_dataset
from reid.data.decode import (
    DecodeError,
    Decoder,
    DecodeTimeout,
    VideoRequest,
    decode_video_inline,
    read_frames,
    video_indices,
)
from reid.data.records import read_manifest


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy_dataset(root, ids=2, cams=2, num_frames=12, frame_files=True)
    return root


def reference(pid, cam, n=12):
    return render_tracklet(pid, cam * 10, n, (64, 32), 0)[0].astype(int)


def test_video_indices_clamp():
    assert video_indices(10, 2, 5, np.array([0, 4, 9])).tolist() == [2, 6, 6]
    assert video_indices(5, 2, 10, np.array([0, 2, 3, 8])).tolist() == [2, 4, 4, 4]  # file shorter than manifest
    with pytest.raises(DecodeError, match="holds 3 frames"):
        video_indices(3, 4, 5, np.array([0]))


def test_inline_decode_one_batch_matches_reference(toy):
    idx = np.array([7, 0, 7, 11, 3])
    frames = decode_video_inline(toy / "videos/p001_c1_t0.mp4", 0, 12, idx)
    assert frames.shape == (5, 64, 32, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - reference(1, 1)[idx]).mean() < 4  # lossy H.264, same frames


def test_decoder_process_and_frame_files(toy):
    m = read_manifest(toy / "manifest.parquet")
    rec = m.records[0]
    dec = Decoder(timeout_s=20)
    try:
        idx = np.array([1, 5, 5, 2])
        via_child = dec.video(toy / "videos/p001_c1_t0.mp4", 0, 12, idx)
        inline = decode_video_inline(toy / "videos/p001_c1_t0.mp4", 0, 12, idx)
        np.testing.assert_array_equal(via_child, inline)
        jpegs = read_frames(m, rec, idx, dec)  # the toy manifest with frame files points at JPEGs
        assert jpegs.shape == (4, 64, 32, 3)
        assert np.abs(jpegs.astype(int) - reference(1, 1)[idx]).mean() < 4
        # the manifest over-reports the length: indices are clamped to what the file holds
        long = dec.video(toy / "videos/p001_c1_t0.mp4", 0, 40, np.array([0, 30]))
        last = decode_video_inline(toy / "videos/p001_c1_t0.mp4", 0, 12, np.array([11]))
        np.testing.assert_array_equal(long[1], last[0])
    finally:
        dec.close()


def test_corrupt_video_is_a_decode_error(toy, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(DecodeError, match="cannot open video"):
        decode_video_inline(bad, 0, 10, np.array([0]))
    dec = Decoder(timeout_s=20)
    try:
        with pytest.raises(DecodeError, match="cannot open video"):
            dec.video(bad, 0, 10, np.array([0]))
        assert dec.video(toy / "videos/p001_c2_t0.mp4", 0, 12, np.array([0])).shape == (1, 64, 32, 3)
    finally:
        dec.close()


@pytest.mark.timeout(60)
def test_hanging_decode_times_out_and_the_decoder_recovers(toy, tmp_path):
    fifo = tmp_path / "never.mp4"
    os.mkfifo(fifo)  # opening a FIFO with no writer blocks forever: a real hang inside the decoder
    dec = Decoder(timeout_s=3)
    try:
        t0 = time.monotonic()
        with pytest.raises(DecodeTimeout, match="longer than 3 s"):
            dec.video(fifo, 0, 10, np.array([0]))
        assert time.monotonic() - t0 < 15
        assert dec.video(toy / "videos/p002_c1_t0.mp4", 0, 12, np.array([3])).shape == (1, 64, 32, 3)
        # pipelined: the requests after the hanging one are resubmitted to a fresh decoding process
        good = VideoRequest(toy / "videos/p002_c2_t0.mp4", 0, 12, np.array([0, 1]))
        out = dec.videos([good, VideoRequest(fifo, 0, 10, np.array([0])), good, good])
        assert isinstance(out[1], DecodeTimeout)
        assert [o.shape for i, o in enumerate(out) if i != 1] == [(2, 64, 32, 3)] * 3
    finally:
        dec.close()


def test_missing_frame_file(toy):
    m = read_manifest(toy / "manifest.parquet")
    from dataclasses import replace
    rec = replace(m.records[0], frames=m.records[0].frames[:3] + ("frames/none.jpg",))
    with pytest.raises(DecodeError, match="cannot read frame"):
        read_frames(m, rec, np.array([0, 3]), Decoder(None))
