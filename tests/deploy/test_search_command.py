"""`reid search` says which tracklet it searched with before its table (reid/commands/search.py)."""

from reid.commands.search import query_line
from reid.data.records import TrackletRecord


def _rec(**kw):
    base = dict(tracklet_id="0001C1T0001", pid=1, camid=1, dataset="synthetic", role="train", num_frames=15)
    return TrackletRecord(**{**base, **kw})


def test_a_manifest_row_names_its_identity_camera_and_role():
    assert query_line(_rec()) == "query 0001C1T0001: pid 1, camera 1, 15 frames (train)"


def test_a_frames_directory_or_video_has_no_identity():
    assert query_line(_rec(tracklet_id="clip", pid=-1, camid=-1, dataset="query", role="query", num_frames=40)) == (
        "query clip: 40 frames")
