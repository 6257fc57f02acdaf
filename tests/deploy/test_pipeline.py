"""End to end on the synthetic set: trained run -> export -> index (Ray Data) -> search, then serve (Ray Serve, 2
replicas, a posted video), and bad input: clear one-line errors that leave the index directory as it was.

One Ray cluster for the module (no dashboard, capped object store): `reid index` and `reid serve` find it running
(reid.ray_runtime.init_ray) instead of each starting their own."""

from __future__ import annotations

import base64
import json
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from reid.cli import main
from tests.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())} if path.exists() else {}


def _frames(manifest: Path, tracklet: str) -> np.ndarray:
    from reid.data.decode import Decoder, read_frames
    from reid.data.records import read_manifest

    m = read_manifest(manifest)
    rec = next(r for r in m.records if r.tracklet_id == tracklet)
    decoder = Decoder(timeout_s=None)
    try:
        return read_frames(m, rec, np.arange(rec.num_frames), decoder)
    finally:
        decoder.close()


@pytest.fixture(scope="module")
def cluster():
    import ray

    from reid.ray_runtime import start_local_ray

    start_local_ray(num_cpus=2, object_store_memory=300 * 1024**2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def built(cluster, trained_run, deploy_data, tmp_path_factory):
    idx = tmp_path_factory.mktemp("deploy") / "idx"
    manifest = deploy_data / "manifest.parquet"
    assert main(["index", str(trained_run), "--manifest", str(manifest), "--out", str(idx), "--backend", "ray"]) == 0
    return idx, manifest


@pytest.mark.timeout(900)
def test_train_export_index_search(built, trained_run, tmp_path, capsys):
    from reid.data.records import read_manifest
    from reid.deploy.runs import load_run

    idx, manifest = built
    m = read_manifest(manifest)
    gallery = [r for r in m.records if r.role == "gallery"]
    table = pq.read_table(idx / "gallery.parquet")
    assert table.column_names == ["tracklet_id", "pid", "camid", "source", "record", "embedding"]
    assert len(table) == len(gallery) > 0
    meta = json.loads((idx / "meta.json").read_text())
    run = load_run(trained_run)
    assert meta["model_hash"] == run.model_hash and meta["feature_dim"] == 512 and meta["index_kind"] == "flat"

    # export of the same run carries the same hash as the index
    assert main(["export", str(trained_run), "--out", str(tmp_path / "m.onnx")]) == 0
    assert json.loads((tmp_path / "m.onnx.json").read_text())["model_hash"] == meta["model_hash"]

    # search with a gallery tracklet as a manifest row, as its video, and as a directory of its frames (PNG):
    # each finds that tracklet first at distance ~0
    target = gallery[3]
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    from PIL import Image

    for i, f in enumerate(_frames(manifest, target.tracklet_id)):
        Image.fromarray(f).save(frames_dir / f"{i:04d}.png")
    capsys.readouterr()
    for query in (["--query", str(manifest), "--row", target.tracklet_id], ["--query", str(m.resolve(target.video))],
                  ["--query", str(frames_dir)]):
        assert main(["search", str(idx), *query, "--top-k", "3", "--json", "--html", str(tmp_path / "s.html")]) == 0
        out = capsys.readouterr().out
        hits = json.loads(out[:out.rindex("]") + 1])
        assert hits[0]["tracklet_id"] == target.tracklet_id and hits[0]["distance"] < 1e-3, (query, hits)
        assert len(hits) == 3 and hits[0]["distance"] <= hits[1]["distance"] <= hits[2]["distance"]
        # a manifest row has an identity: each hit says whether it is a match (itself: from the same camera)
        assert hits[0].get("match") == ("same camera" if "--row" in query else None), (query, hits)
    assert (tmp_path / "s.html").read_text().count("<img") >= 4  # the query strip and the hits' strips
    assert main(["search", str(idx), "--query", str(manifest), "--row", target.tracklet_id, "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("tracklet          match") and lines[2].endswith(f"{target.tracklet_id:<16}  same camera")
    assert lines[5].startswith(("first match from another camera: rank ", "no match from another camera in the top 3"))
    assert main(["search", str(idx), "--query", str(frames_dir), "--rerank", "--top-k", "5"]) == 0
    out = capsys.readouterr().out
    assert target.tracklet_id in out and out.startswith(f"query frames: {target.num_frames} frames\n")

    # incremental --add from another manifest: the query tracklets alone, as new footage with no training rows
    # (its model actors are built from the run's DataInfo, not from this manifest's identities); the old rows keep
    # their embeddings, and a new row is embedded as the search path embeds it (it finds itself)
    from reid.data.records import Manifest, write_manifest

    queries = m.by_role("query")
    new_footage = tmp_path / "new-footage.parquet"
    write_manifest(Manifest(records=queries, root=m.root, dataset=m.dataset, attributes=m.attributes, meta=m.meta),
                   new_footage)
    added_idx = tmp_path / "idx2"
    shutil.copytree(idx, added_idx)
    assert main(["index", str(trained_run), "--manifest", str(new_footage), "--out", str(added_idx), "--add",
                 "--role", "query", "--backend", "ray"]) == 0
    t2 = pq.read_table(added_idx / "gallery.parquet")
    assert len(t2) == len(gallery) + len(queries)
    assert t2.slice(0, len(table)).column("embedding").equals(table.column("embedding"))
    capsys.readouterr()
    # the same footage again (a nightly --add): nothing new, exit 0, the index files untouched
    snap = _snapshot(added_idx)
    assert main(["index", str(trained_run), "--manifest", str(new_footage), "--out", str(added_idx), "--add",
                 "--role", "query"]) == 0
    assert capsys.readouterr().out.startswith(f"nothing to add: every query tracklet of {new_footage} is in the "
                                              f"index already ({len(t2)} in {added_idx})")
    assert _snapshot(added_idx) == snap
    assert main(["search", str(added_idx), "--query", str(manifest), "--row", queries[0].tracklet_id, "--top-k", "1",
                 "--json"]) == 0
    out = capsys.readouterr().out
    hit = json.loads(out[:out.rindex("]") + 1])[0]
    assert hit["tracklet_id"] == queries[0].tracklet_id and hit["distance"] < 1e-3, hit

    # the default backend indexes this small gallery in the command's process, with the same embeddings
    local_idx = tmp_path / "idx-local"
    assert main(["index", str(trained_run), "--manifest", str(manifest), "--out", str(local_idx)]) == 0
    assert capsys.readouterr().out.startswith(f"[reid] features in this process ({len(gallery)} tracklets and no "
                                              f"Ray cluster configured")
    local = pq.read_table(local_idx / "gallery.parquet")
    assert local.column("tracklet_id").equals(table.column("tracklet_id"))
    np.testing.assert_allclose(np.stack(local.column("embedding").to_numpy(zero_copy_only=False)),
                               np.stack(table.column("embedding").to_numpy(zero_copy_only=False)), atol=1e-5)


@pytest.mark.timeout(600)
def test_serve_two_replicas_video_and_bad_input(built, trained_run, tmp_path, capsys):
    """Ray Serve with 2 replicas (0.25 CPU each): a tracklet posted as a video file (written here from a gallery
    tracklet's frames) and as JPEG frames gets its top-k JSON, the video's equal to `reid search` on the same file;
    a bad video is a 400 with one line that changes nothing (index files, later answers)."""
    from ray import serve

    from reid.data.records import read_manifest
    from reid.data.synth.video import encode_video
    from reid.deploy import service
    from reid.deploy.loadtest import frames_payload, post, run_load, video_payload

    idx, manifest = built
    meta = json.loads((idx / "meta.json").read_text())
    target = [r for r in read_manifest(manifest).records if r.role == "gallery"][3]
    frames = _frames(manifest, target.tracklet_id)
    video = encode_video(tmp_path / "user-video.mp4", frames)   # the user's own footage: a re-encoded tracklet
    capsys.readouterr()
    assert main(["search", str(idx), "--query", str(video), "--top-k", "3", "--json"]) == 0
    out = capsys.readouterr().out
    expected = json.loads(out[:out.rindex("]") + 1])
    assert expected[0]["tracklet_id"] == target.tracklet_id

    before = _snapshot(idx)
    port = free_port()
    url = service.start(idx, port=port, replicas=2, num_cpus=0.25)
    try:
        states = serve.status().applications["reid"].deployments["SearchService"].replica_states
        assert {getattr(k, "value", k): v for k, v in states.items()}.get("RUNNING") == 2, states
        for _ in range(3):  # more than one request, so both replicas are likely asked; every answer is the same
            status, body = post(url, json.dumps(video_payload(video, top_k=3)).encode())
            assert status == 200 and body["model_hash"] == meta["model_hash"], body
            assert [h["tracklet_id"] for h in body["hits"]] == [h["tracklet_id"] for h in expected]
            assert [h["rank"] for h in body["hits"]] == [1, 2, 3]
            assert np.allclose([h["distance"] for h in body["hits"]], [h["distance"] for h in expected], atol=1e-5)
        status, body = post(url, json.dumps(frames_payload(frames, top_k=3)).encode())
        assert status == 200 and body["hits"][0]["tracklet_id"] == target.tracklet_id, body

        good = video.read_bytes()
        for bad in (b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100, good[: len(good) // 3]):  # junk; truncated
            status, body = post(url, json.dumps({"video": base64.b64encode(bad).decode()}).encode())
            assert status == 400 and "cannot read query video" in body["error"], body
            assert "\n" not in body["error"]
        status, body = post(url, json.dumps({"video": "not base64!"}).encode())
        assert status == 400 and "base64" in body["error"], body
        status, body = post(url, json.dumps({**frames_payload(frames), "top_k": "abc"}).encode())
        assert status == 400 and body["error"] == 'top_k must be a positive integer, got "abc"', body
        status, body = post(url, json.dumps({"frames": [base64.b64encode(b"not a JPEG").decode()]}).encode())
        assert status == 400 and "tracklet/00000.jpg" in body["error"] and "reid-serve-" not in body["error"], body
        with urllib.request.urlopen(url, timeout=60) as resp:   # GET /: what is served, for a browser or a probe
            served = json.loads(resp.read())
        assert (served["tracklets"], served["model_hash"], served["index"]) == (meta["count"], meta["model_hash"],
                                                                                idx.name), served
        status, body = post(url, json.dumps(video_payload(video, top_k=3)).encode())   # the service is unharmed
        assert status == 200 and [h["tracklet_id"] for h in body["hits"]] == [h["tracklet_id"] for h in expected]
        assert _snapshot(idx) == before

        result = run_load(url, video_payload(video, top_k=3), requests=4, concurrency=2, max_seconds=120)
        print(f"load test (2 replicas, video): {result.line()}")
        assert result.ok == 4 and result.errors == 0 and result.p50_ms <= result.p99_ms
    finally:
        service.stop()


@pytest.mark.timeout(600)
def test_reid_serve_load_test_prints_its_result_not_serves_log(built, tmp_path):
    """`reid serve --load-test` as a user runs it (its own local cluster, Ray's console on): one line per request
    and Serve's INFO lines stay in <session>/logs/serve/, the console keeps the endpoint and the result."""
    import os
    import subprocess
    import sys

    idx, _ = built
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_SERVE_LOG_TO_STDERR")}
    proc = subprocess.run([sys.executable, "-m", "reid.cli", "serve", str(idx), "--port", str(port),
                           "--load-test", "6", "--concurrency", "2"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=540)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "load test (1 replica(s), concurrency 2): 6/6 ok" in out, out[-3000:]
    assert "request log: " in out and "/logs/serve/" in out
    meta = json.loads((idx / "meta.json").read_text())
    assert proc.stdout.startswith(f"[reid] starting 1 replica(s) of the search service for {idx} ({meta['count']} "
                                  f"tracklets, {meta['method']}) ...\n")
    assert "POST /" not in out and " INFO " not in out and "graceful_shutdown" not in out, out[-3000:]


def _cli_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.timeout(600)
def test_bad_input_is_one_line_and_changes_nothing(built, trained_run, tmp_path, capsys):
    from PIL import Image

    idx, manifest = built
    before = _snapshot(idx)
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    assert "cannot read query video" in _cli_error(["search", str(idx), "--query", str(bad_video)], capsys)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("RGB", (32, 64)).save(mixed / "0.jpg")
    Image.new("RGB", (40, 80)).save(mixed / "1.jpg")
    assert "mixed sizes" in _cli_error(["search", str(idx), "--query", str(mixed)], capsys)

    assert main(["serve", str(tmp_path / "nope")]) == 2    # one line, before any "starting" or Ray start-up
    out, err = capsys.readouterr()
    assert out == "" and err.strip().endswith("nope is not an index directory (no meta.json); build one with "
                                              f"`reid index RUN --manifest M --out {tmp_path / 'nope'}`"), err

    empty_out = tmp_path / "never"
    err = _cli_error(["index", str(trained_run), "--manifest", str(manifest), "--out", str(empty_out),
                      "--role", "unused"], capsys)
    assert "empty gallery" in err and not empty_out.exists()
    assert "already holds an index" in _cli_error(["index", str(trained_run), "--manifest", str(manifest),
                                                   "--out", str(idx)], capsys)
    assert _snapshot(idx) == before

    # an index built by another model: another hash, or another feature dim
    for key, value, expect in (("model_hash", "0123456789abcdef", "built by another model"),
                               ("feature_dim", 2048, "2048-d")):
        other = tmp_path / f"other-{key}"
        shutil.copytree(idx, other)
        meta = json.loads((other / "meta.json").read_text())
        (other / "meta.json").write_text(json.dumps({**meta, key: value}))
        snap = _snapshot(other)
        assert expect in _cli_error(["search", str(other), "--query", str(manifest), "--row",
                                     pq.read_table(idx / "gallery.parquet").column("tracklet_id")[0].as_py(),
                                     "--run", str(trained_run)], capsys)
        assert expect in _cli_error(["index", str(trained_run), "--manifest", str(manifest), "--out", str(other),
                                     "--add", "--role", "query"], capsys)
        assert _snapshot(other) == snap
