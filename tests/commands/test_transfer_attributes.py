import csv
import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from reid.cli import main
from reid.commands.transfer_attributes import truth_accuracy
from reid.data.attributes import read_binary_attribute_file
from reid.data.records import Manifest, TrackletRecord, read_manifest, write_manifest
from reid.registry import DataInfo, get_method

GROUPS = {"upper": ["up-Red"], "lower": ["low-Black"], "head": ["hs-Hat"]}


def _person(rng, red: int, black: int, hat: int, gain: float = 1.0) -> np.ndarray:
    """32x16 'person': upper half red or blue, lower half black or white, a green hat band or none."""
    img = np.zeros((32, 16, 3), np.float32)
    img[:16] = (200, 30, 30) if red else (30, 30, 200)
    img[16:] = (20, 20, 20) if black else (230, 230, 230)
    if hat:
        img[:4] = (30, 200, 30)
    img = img * gain + rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture()
def toy(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "source"
    (src / "images").mkdir(parents=True)
    rows = []
    for i in range(24):
        a = {"up-Red": i % 2, "low-Black": (i // 2) % 2, "hs-Hat": int(i % 3 == 0)}
        Image.fromarray(_person(rng, a["up-Red"], a["low-Black"], a["hs-Hat"])).save(src / "images" / f"{i:03d}.png")
        rows.append({"image": f"{i:03d}.png", **a})
    with open(src / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "up-Red", "low-Black", "hs-Hat"])
        w.writeheader()
        w.writerows(rows)
    (src / "groups.json").write_text(json.dumps(GROUPS))

    tgt = tmp_path / "target"
    records = []
    for n, (pid, cam, role) in enumerate([(1, 1, "train"), (1, 2, "train"), (2, 1, "train"), (2, 2, "train")]):
        folder = tgt / "frames" / f"t{n}"
        folder.mkdir(parents=True)
        names = []
        for f in range(3):  # target domain: darker frames
            Image.fromarray(_person(rng, pid == 1, pid == 2, 0, gain=0.7)).save(folder / f"{f}.png")
            names.append(f"frames/t{n}/{f}.png")
        records.append(TrackletRecord(f"toy-{n}", pid, cam, "toy", role, 3, frames=tuple(names),
                                      attributes={"red": int(pid == 1)}))
    (tgt / "videos").mkdir()
    container = av.open(str(tgt / "videos" / "q.mp4"), "w")
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = 32, 64, "yuv420p"  # decord fails on 16-wide videos
    for _ in range(5):
        for pkt in stream.encode(av.VideoFrame.from_ndarray(_person(rng, 1, 0, 1, 0.7).repeat(2, 0).repeat(2, 1), format="rgb24")):
            container.mux(pkt)
    for pkt in stream.encode():
        container.mux(pkt)
    container.close()
    records.append(TrackletRecord("toy-q", 3, 1, "toy", "query", 4, video="videos/q.mp4", frame_start=1,
                                  attributes={"red": 1}))
    write_manifest(Manifest(records, tgt, "toy"))
    return tmp_path


def _args(toy, *extra):
    return ["transfer-attributes", "--source", str(toy / "source"), "--target", str(toy / "target"),
            "--out", str(toy / "out" / "attrs.csv"), "--epochs", "1", "--no-pretrained", "--height", "32",
            "--width", "16", "--batch-size", "8", "--target-batch", "8", "--target-frames", "2", "--workers", "0",
            "--device", "cpu", "--decode-timeout", "0", *extra]


@pytest.mark.slow
def test_transfer_writes_a_file_adfta_trains_from(toy, capsys):
    assert main(_args(toy, "--variant", "wbce_mmd", "--out-manifest", str(toy / "labelled" / "manifest.parquet"))) == 0
    assert "wrote" in capsys.readouterr().out
    schema, values = read_binary_attribute_file(toy / "out" / "attrs.csv")
    assert [g.name for g in schema.groups] == ["upper", "lower", "head"]
    assert all(g.kind == "relevant" and g.width == 1 for g in schema.groups)
    assert set(values) == {(1, 1, 0), (1, 2, 0), (2, 1, 0), (2, 2, 0), (3, 1, 0)}
    assert all(v in (0, 1) for row in values.values() for v in row.values())
    report = json.loads((toy / "out" / "attrs.report.json").read_text())
    assert len(report["history"]) == 1 and "mmd" in report["history"][0] and report["tracklets_undecodable"] == 0
    # the labelled manifest carries the transferred attributes and schema; adfta builds and trains from it
    manifest = read_manifest(toy / "labelled" / "manifest.parquet")
    assert manifest.attributes == schema and manifest.by_role("query")[0].video == "videos/q.mp4"
    assert manifest.resolve("videos/q.mp4").is_file()
    train = manifest.by_role("train")
    assert all(r.attributes == values[(r.pid, r.camid, 0)] for r in train)
    info = DataInfo(num_classes=2, attributes=manifest.attributes, height=32, width=16)
    spec = get_method("adfta")
    model = spec.build_model({"depth": 18, "pretrained": False, "segment_dim": 4}, info)
    attrs = torch.tensor([[r.attributes[c] for c in schema.column_names] for r in train])
    batch = {"frames": torch.randn(4, 2, 3, 32, 16), "pid": torch.tensor([0, 0, 1, 1]), "attributes": attrs}
    losses = spec.build_objective({}, info)(model(batch), batch)
    losses["loss"].backward()
    assert torch.isfinite(losses["attr"]) and model.group_names == ("upper", "lower", "head")


def test_variant_without_mmd_and_identity_merge(toy):
    assert main(_args(toy, "--variant", "wbce", "--merge", "identity", "--epochs", "1")) == 0
    _, values = read_binary_attribute_file(toy / "out" / "attrs.csv")
    assert values[(1, 1, 0)] == values[(1, 2, 0)] and values[(2, 1, 0)] == values[(2, 2, 0)]
    report = json.loads((toy / "out" / "attrs.report.json").read_text())
    assert "mmd" not in report["history"][0] and report["merge"] == "identity"


def _scores(path) -> dict[tuple[int, int], list[float]]:
    with open(path, newline="") as fh:
        return {(int(r["person_id"]), int(r["camera_id"])): [float(r[n]) for n in ("up-Red", "low-Black", "hs-Hat")]
                for r in csv.DictReader(fh)}


def test_defaults_follow_the_paper_identity_merge_and_raw_mmd(toy):
    """Eq. 9 averages the frame scores over all frames of a PERSON; the MMD of eqs. 5-6 runs on raw features.

    Naive eq. 9 from a per-tracklet run of the same training (same seed): every toy tracklet of persons 1 and 2 has
    3 decoded frames, so the person's score is the plain mean of its two tracklet means."""
    assert main(_args(toy, "--merge", "tracklet")) == 0
    per_tracklet = _scores(toy / "out" / "attrs.scores.csv")
    assert main(_args(toy)) == 0                                   # the defaults
    report = json.loads((toy / "out" / "attrs.report.json").read_text())
    assert report["merge"] == "identity" and report["mmd_features"] == "raw"
    assert report["settings"]["mmd_normalize"] is False
    per_person = _scores(toy / "out" / "attrs.scores.csv")
    for pid in (1, 2):
        naive = [(a + b) / 2 for a, b in zip(per_tracklet[(pid, 1)], per_tracklet[(pid, 2)], strict=True)]
        assert per_person[(pid, 1)] == per_person[(pid, 2)] == pytest.approx(naive, abs=2e-4)
    assert per_tracklet[(1, 1)] != per_tracklet[(1, 2)]             # the tracklet merge keeps them apart
    assert per_person[(3, 1)] == pytest.approx(per_tracklet[(3, 1)], abs=1e-4)   # a person with one tracklet
    assert main(_args(toy, "--mmd-features", "normalized")) == 0
    assert json.loads((toy / "out" / "attrs.report.json").read_text())["settings"]["mmd_normalize"] is True


def test_bad_source_is_a_clear_error(toy, capsys):
    (toy / "source" / "groups.json").unlink()
    assert main(_args(toy)) == 2
    assert "groups.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_args(toy, "--variant", "mmd"))


def test_truth_accuracy_counts_per_attribute():
    recs = [TrackletRecord(f"r{i}", i, 1, "toy", "train", 1, attributes={"red": r}) for i, r in enumerate([1, 0, 0, 0])]
    recs.append(TrackletRecord("d", 0, 1, "toy", "gallery", 1))  # no ground truth: not counted
    labels = np.array([[1, 1], [0, 1], [0, 0], [1, 0], [1, 1]])
    out = truth_accuracy(recs, ("up-Red", "other"), labels, lambda a: {"up-Red": a["red"]})
    red = out["per_attribute"]["up-Red"]
    assert red["accuracy"] == 0.75 and red["balanced_accuracy"] == pytest.approx(0.5 * (1 + 2 / 3))
    assert red["f1"] == pytest.approx(2 / 3) and out["attributes_evaluated"] == 1 and out["tracklets_evaluated"] == 4
    assert out["majority_class_accuracy"] == 0.75


def test_binary_attribute_file_reader_rejects_malformed_files(tmp_path):
    from reid.errors import ReidError

    path = tmp_path / "a.csv"
    (tmp_path / "a.groups.json").write_text(json.dumps({"upper": ["up-Red"], "motion": ["walking"]}))
    path.write_text("person_id,camera_id,tracklets_id,up-Red,walking\n1,1,0,1,0\n2,1,0,0,-1\n")
    schema, values = read_binary_attribute_file(path)
    assert [(g.name, g.kind) for g in schema.groups] == [("upper", "relevant"), ("motion", "irrelevant")]
    assert values[(2, 1, 0)] == {"up-Red": 0, "walking": -1}
    for text, match in (("pid,cam,t,up-Red,walking\n", "header"), ("person_id,camera_id,tracklets_id,up-Red\n", "missing"),
                        ("person_id,camera_id,tracklets_id,up-Red,walking\n1,1,0,1,0\n1,1,0,0,0\n", "duplicate"),
                        ("person_id,camera_id,tracklets_id,up-Red,walking\n1,1,0,2,0\n", "-1/0/1")):
        path.write_text(text)
        with pytest.raises(ReidError, match=match):
            read_binary_attribute_file(path)


@pytest.mark.timeout(120)
def test_a_target_in_a_bucket_is_checked_like_a_local_one(toy, capsys):
    """--target and --out-manifest may be URIs (a dataset copied into a bucket as it is); --source and --out are
    local files, and a URI there is one line."""
    from reid import storage
    from tests.ops.storage_server import s3_server

    with s3_server() as s3:
        target = storage.copy_dir(toy / "target", s3.uri("target"))
        same = ["--target", target, "--out-manifest", storage.join(target, "manifest.parquet")]
        assert main([*_args(toy), *same]) == 2  # later --target wins
        assert "--out-manifest would overwrite the target manifest" in capsys.readouterr().err
        assert main([*_args(toy), "--out", s3.uri("attrs.csv")]) == 2
        assert "--out s3://reid-test/attrs.csv: `reid transfer-attributes` works on local files and folders only" in \
            capsys.readouterr().err
