"""ASTPN's two-camera MARS protocol (Xu et al., ICCV 2017, sec. 4.2) on a tiny hand-built manifest."""

import numpy as np
import pytest

from reid.config import build_config
from reid.data.records import TrackletRecord
from reid.errors import ReidError
from reid.evaluation.metrics import evaluate_ranking
from reid.evaluation.protocols import evaluate_split, get_protocol, protocol_names
from reid.evaluation.two_camera import two_camera_split


def _records(n_ids: int = 30, seed: int = 0) -> list[TrackletRecord]:
    """A MARS-like test set: per identity 1-4 cameras, 1-3 tracklets per camera, split over query / gallery roles,
    plus distractors (pid 0), junk (-1), training records and an identity with one camera."""
    rng = np.random.default_rng(seed)
    recs: list[TrackletRecord] = []

    def add(pid: int, cam: int, role: str) -> None:
        recs.append(TrackletRecord(tracklet_id=f"{pid:04d}C{cam}T{len(recs):04d}", pid=pid, camid=cam,
                                   dataset="mars", role=role, num_frames=8))

    for pid in range(1, n_ids + 1):
        for cam in sorted(rng.choice(6, size=int(rng.integers(2, 5)), replace=False) + 1):
            for _ in range(int(rng.integers(1, 4))):
                add(pid, int(cam), "query" if rng.random() < 0.3 else "gallery")
    add(500, 2, "gallery")                      # one camera only: left out
    add(500, 2, "query")
    add(0, 1, "gallery")                        # distractor
    add(-1, 3, "gallery")                       # junk
    add(900, 1, "train")                        # training identity
    add(900, 4, "train")
    return recs


def check_two_camera(records: list[TrackletRecord], query: np.ndarray, gallery: np.ndarray) -> None:
    """The paper's conditions, written independently of the implementation: one probe and one gallery tracklet per
    test identity seen by >= 2 cameras, the same identity at the same position, from two different cameras."""
    test = [r for r in records if r.role in ("query", "gallery") and r.pid > 0]
    multi = sorted({r.pid for r in test if len({s.camid for s in test if s.pid == r.pid}) >= 2})
    assert [records[i].pid for i in query] == multi
    assert [records[i].pid for i in gallery] == multi
    for q, g in zip(query, gallery, strict=True):
        assert records[q].role in ("query", "gallery") and records[g].role in ("query", "gallery")
        assert records[q].camid != records[g].camid


def test_split_follows_the_paper():
    recs = _records()
    split = get_protocol("mars-two-camera").split(recs)
    check_two_camera(recs, split.query, split.gallery)
    assert split.label == "mars-two-camera" and "1 identities seen by one camera left out" in split.notes


def test_check_rejects_the_official_protocol_and_a_same_camera_split():
    recs = _records()
    official = get_protocol("mars-official").split(recs)
    with pytest.raises(AssertionError):
        check_two_camera(recs, official.query, official.gallery)
    # broken: the gallery tracklet from the probe's own camera whenever the identity has two there
    q, g, _ = two_camera_split(recs, 0)
    same = [next((j for j, r in enumerate(recs) if j != i and r.pid == recs[i].pid and r.camid == recs[i].camid
                  and r.role in ("query", "gallery")), gi) for i, gi in zip(q, g, strict=True)]
    assert same != g.tolist()
    with pytest.raises(AssertionError):
        check_two_camera(recs, q, np.array(same))


def test_deterministic_by_seed_and_independent_of_other_identities():
    recs = _records()
    a, b = get_protocol("mars-two-camera").split(recs), get_protocol("mars-two-camera:0").split(recs)
    assert a.query.tolist() == b.query.tolist() and a.gallery.tolist() == b.gallery.tolist()
    c = get_protocol("mars-two-camera:7").split(recs)
    check_two_camera(recs, c.query, c.gallery)
    assert (a.query != c.query).any() or (a.gallery != c.gallery).any()
    # dropping identity 1 changes nobody else's draw (the generator is seeded per identity)
    kept = [r for r in recs if r.pid != 1]
    sub = get_protocol("mars-two-camera").split(kept)
    pick = {recs[i].tracklet_id for i in a.query[1:]} | {recs[i].tracklet_id for i in a.gallery[1:]}
    assert pick == {kept[i].tracklet_id for i in sub.query} | {kept[i].tracklet_id for i in sub.gallery}


def test_both_camera_orders_and_every_tracklet_get_drawn_across_seeds():
    """The draw is random over cameras (which one probes) and over a camera's tracklets."""
    recs = _records()
    pid = next(p for p in range(1, 31) if len({r.camid for r in recs if r.pid == p}) >= 2
               and max(sum(1 for r in recs if r.pid == p and r.camid == c) for c in range(1, 7)) >= 2)
    probes = set()
    for seed in range(60):
        q, _, _ = two_camera_split(recs, seed)
        probes.add(int(next(i for i in q if recs[i].pid == pid)))
    cams = {recs[i].camid for i in probes}
    assert len(cams) >= 2 and len(probes) > len(cams)


def test_ranking_is_the_ilidsvid_style_n_by_n_problem():
    recs = _records()
    split = get_protocol("mars-two-camera").split(recs)
    n = split.query.size
    dist = np.full((n, n), 5.0)
    dist[np.arange(n), np.arange(n)] = 1.0              # every probe's own identity is nearest
    dist[0, 0], dist[0, 1] = 2.0, 0.5                  # except the first probe: its match ranks second
    res = evaluate_split(dist, recs, split)
    ids = split.ids(recs)
    naive = evaluate_ranking(dist, ids["q_pids"], ids["g_pids"], ids["q_camids"], ids["g_camids"])
    assert res.summary()["rank1"] == pytest.approx((n - 1) / n) == naive.summary()["rank1"]


def test_registry_names_and_errors():
    assert "mars-two-camera" in protocol_names()
    with pytest.raises(ReidError, match="seed"):
        get_protocol("mars-two-camera:x")
    train_only = [r for r in _records() if r.role == "train"]
    with pytest.raises(ReidError, match="two cameras"):
        get_protocol("mars-two-camera").split(train_only)


def test_astpn_mars_recipes_use_it():
    assert build_config("astpn", ["astpn-mars"], []).eval.protocol == "mars-two-camera"
    from pathlib import Path

    import yaml

    spec = yaml.safe_load((Path(__file__).parents[2] / "tune" / "ablations" / "astpn-fig5-mars.yaml").read_text())
    assert all(row["overrides"]["eval.protocol"] == "mars-two-camera" for row in spec["rows"])
