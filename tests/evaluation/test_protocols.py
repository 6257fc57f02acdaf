"""Protocol index sets on hand-built records, the registry, and the 10-trial aggregation."""

import numpy as np
import pytest

from reid.data.records import TrackletRecord
from reid.errors import ReidError
from reid.evaluation.metrics import evaluate_ranking
from reid.evaluation.protocols import (
    aggregate_trials,
    default_protocol,
    evaluate_split,
    get_protocol,
    protocol_names,
)


def _rec(i, pid, cam, role, dataset="mars"):
    return TrackletRecord(tracklet_id=f"t{i}", pid=pid, camid=cam, dataset=dataset, role=role, num_frames=4)


def _mars_records():
    spec = [(1, 1, "train"), (5, 1, "query"), (6, 2, "query"), (5, 2, "gallery"), (5, 1, "gallery"),
            (6, 3, "gallery"), (0, 4, "gallery"), (-1, 2, "gallery"), (7, 5, "gallery"), (6, 1, "unused")]
    return [_rec(i, *s) for i, s in enumerate(spec)]


def test_mars_official_keeps_queries_in_the_gallery_and_drops_junk():
    recs = _mars_records()
    split = get_protocol("mars-official").split(recs)
    assert split.query.tolist() == [1, 2]
    assert split.gallery.tolist() == [1, 2, 3, 4, 5, 6, 8]
    assert split.label == "mars-official"


def test_mars_torchreid_removes_queries_and_junk():
    split = get_protocol("mars-torchreid").split(_mars_records())
    assert split.query.tolist() == [1, 2]
    assert split.gallery.tolist() == [3, 4, 5, 6, 8]


def test_official_protocol_query_is_not_its_own_match():
    recs = _mars_records()
    split = get_protocol("mars-official").split(recs)
    ids = split.ids(recs)
    # distance 0 to itself: the same-id-same-camera rule must ignore the query's own entry
    d = np.ones((2, 7), dtype=np.float32)
    d[0, 0] = d[1, 1] = 0.0
    r = evaluate_split(d, recs, split)
    assert r.num_valid_queries == 2
    assert ids["g_pids"].tolist() == [5, 6, 5, 5, 6, 0, 7]
    # query 0 (pid 5, cam 1): only gallery record 3 (pid 5, cam 2) counts; record 4 (cam 1) is ignored
    assert r.ap[0] == pytest.approx(evaluate_ranking(d[:1], [5], ids["g_pids"], [1], ids["g_camids"]).ap[0])


def test_distractor_and_junk_queries_are_rejected():
    recs = _mars_records() + [_rec(20, 0, 3, "query")]
    with pytest.raises(ReidError, match="junk / distractor"):
        get_protocol("mars-official").split(recs)


def test_duke_and_generic_use_the_gallery_role():
    recs = [_rec(0, 1, 1, "query", "duke"), _rec(1, 1, 1, "gallery", "duke"), _rec(2, 1, 2, "gallery", "duke"),
            _rec(3, -1, 2, "gallery", "duke")]
    for name in ("duke-video", "generic"):
        split = get_protocol(name).split(recs)
        assert split.query.tolist() == [0] and split.gallery.tolist() == [1, 2]


def _trial_records(seed):
    rng = np.random.default_rng(seed)
    people = rng.choice(300, 6, replace=False) + 1
    recs = []
    for k, p in enumerate(people):
        recs.append(_rec(2 * k, int(p), 1, "query", "ilidsvid"))
        recs.append(_rec(2 * k + 1, int(p), 2, "gallery", "ilidsvid"))
    return recs


@pytest.mark.parametrize("name", ["ilidsvid", "prid2011"])
def test_two_camera_protocols_and_their_10_trial_aggregation(name):
    proto = get_protocol(name)
    assert proto.num_trials == 10
    results = []
    for trial in range(proto.num_trials):
        recs = _trial_records(trial)
        split = proto.split(recs)
        assert split.query.tolist() == [0, 2, 4, 6, 8, 10] and split.gallery.tolist() == [1, 3, 5, 7, 9, 11]
        assert split.notes == ("probe camera 1, gallery camera 2",)
        d = np.random.default_rng(100 + trial).random((6, 6)).astype(np.float32)
        results.append(evaluate_split(d, recs, split))
    summary = aggregate_trials(results)
    r1 = np.array([r.rank(1) for r in results])
    aps = np.array([r.mAP for r in results])
    assert summary.num_trials == 10
    assert summary.mean["rank1"] == pytest.approx(r1.mean()) and summary.std["rank1"] == pytest.approx(r1.std())
    assert summary.mean["mAP"] == pytest.approx(aps.mean()) and summary.std["mAP"] == pytest.approx(aps.std())
    np.testing.assert_allclose(summary.cmc_mean, np.mean([r.cmc for r in results], axis=0))


def test_two_camera_protocol_rejects_mixed_cameras():
    recs = _trial_records(0)
    recs[1] = _rec(1, recs[1].pid, 1, "gallery", "ilidsvid")
    with pytest.raises(ReidError, match="one camera"):
        get_protocol("ilidsvid").split(recs)


def test_registry_defaults_cross_dataset_and_misses():
    assert default_protocol("mars") == "mars-official"
    assert default_protocol("synthetic") == "synthetic"
    assert get_protocol(None, dataset="prid2011").name == "prid2011"
    assert {"mars-official", "mars-torchreid", "duke-video", "ilidsvid", "prid2011", "synthetic",
            "cross-dataset"} <= set(protocol_names())
    cross = get_protocol("cross-dataset", dataset="prid2011", train_dataset="ilidsvid")
    split = cross.split([_rec(i, r.pid, r.camid, r.role, "prid2011") for i, r in enumerate(_trial_records(1))])
    assert split.label == "prid2011 (cross-dataset ilidsvid -> prid2011)"
    with pytest.raises(ReidError, match="mars-torchreid"):
        get_protocol("mars-torchreed")
    with pytest.raises(ReidError, match="train dataset"):
        get_protocol("cross-dataset", dataset="prid2011")
    with pytest.raises(ReidError, match="role 'query'"):
        get_protocol("generic").split([_rec(0, 1, 1, "train")])
