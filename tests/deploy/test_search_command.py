"""`reid search` says which tracklet it searched with before its table (reid/commands/search.py)."""

from reid.commands.search import query_line
from reid.data.records import TrackletRecord
from reid.deploy.search import Hit, first_match_line, known_identity, match


def _rec(**kw):
    base = dict(tracklet_id="0001C1T0001", pid=1, camid=1, dataset="synthetic", role="train", num_frames=15)
    return TrackletRecord(**{**base, **kw})


def test_a_manifest_row_names_its_identity_camera_and_role():
    assert query_line(_rec()) == "query 0001C1T0001: pid 1, camera 1, 15 frames (train)"


def test_a_frames_directory_or_video_has_no_identity():
    assert query_line(_rec(tracklet_id="clip", pid=-1, camid=-1, dataset="query", role="query", num_frames=40)) == (
        "query clip: 40 frames")


def _hit(rank, pid, camid):
    return Hit(rank=rank, row=rank - 1, tracklet_id=f"{pid:04d}C{camid}T0001", pid=pid, camid=camid, distance=rank,
               source="m.parquet", record=rank - 1)


def test_hits_of_the_query_identity_are_marked_and_the_first_cross_camera_one_named():
    q = _rec(pid=7, camid=1, role="query")
    hits = [_hit(1, 7, 1), _hit(2, 3, 2), _hit(3, 7, 2), _hit(4, 7, 3)]
    assert [match(q, h) for h in hits] == ["same camera", "", "yes", "yes"]
    assert first_match_line(q, hits) == "first match from another camera: rank 3 of 4"
    assert first_match_line(q, hits[:2]) == "no match from another camera in the top 2"


def test_only_a_query_of_a_known_identity_can_be_told_right_or_wrong():
    assert known_identity(_rec(pid=7), {})
    assert known_identity(_rec(pid=0), {})  # a dataset without distractors may number people from 0
    assert not known_identity(_rec(pid=-1), {})  # a frames directory or a video
    mars = {"distractor_pids": "0", "junk_pids": "-1"}
    assert not known_identity(_rec(pid=0), mars) and known_identity(_rec(pid=7), mars)
