"""The local paths of Ray work seen from every node of a multi-node cluster first (reid/node_paths.py).

The cluster test gives this machine's second node a view of the file system without one directory: its raylet is
started in a private mount namespace with an empty tmpfs over it, as a worker node that lacks the head's local disk
(`unshare -m`, root). The head and that node share everything else, /tmp/ray included."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from reid import node_paths
from reid.config import build_config
from reid.errors import ReidError


def config(data_root: Path, *extra: str):
    return build_config("baseline", [], [f"data.root={data_root}", "model.pretrained=false", *extra])


def test_local_paths_leave_out_uris_and_manifests_their_keys_cover(tmp_path):
    cfg = config(tmp_path / "data", "train.init_from=s3://bucket/runs/a")
    runs = str(tmp_path / "runs")
    assert node_paths.local_paths(cfg, tmp_path / "data" / "manifest.parquet", runs) == {
        "data.root": str(tmp_path / "data")}
    assert node_paths.local_paths(cfg, f"{runs}/run/manifest-val.parquet", runs) == {
        "data.root": str(tmp_path / "data")}
    assert node_paths.local_paths(cfg, tmp_path / "elsewhere.parquet", runs) == {
        "data.root": str(tmp_path / "data"), "manifest": str(tmp_path / "elsewhere.parquet")}
    weights = config(tmp_path / "data", "model.pretrained=true", f"model.weights_path={tmp_path / 'w.pth'}",
                     f"train.init_from={tmp_path / 'runs' / 'a'}")
    assert node_paths.local_paths(weights, "s3://bucket/m.parquet", "s3://bucket/runs") == {
        "data.root": str(tmp_path / "data"), "model.weights_path": str(tmp_path / "w.pth"),
        "train.init_from": str(tmp_path / "runs" / "a")}


def test_missing_here_names_the_keys_and_the_storage_without_the_marker(tmp_path):
    (tmp_path / "data").mkdir()
    marker = tmp_path / "marker"
    paths = {"data.root": str(tmp_path / "data"), "manifest": str(tmp_path / "m.parquet")}
    assert node_paths.missing_here(paths, str(marker)) == ["manifest", node_paths.STORAGE]
    marker.write_text("")
    assert node_paths.missing_here(paths, str(marker)) == ["manifest"]
    assert node_paths.missing_here({"data.root": str(tmp_path / "data")}, None) == []


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """A head (2 CPUs) and a 1-CPU node that cannot see `<hidden>`; this process a driver of the cluster.
    Yields (hidden directory, its twin that both nodes see)."""
    import ray

    from jobs.local_cluster import ray_cli
    from tests.ops.helpers import local_head, token_mode

    probe = ["unshare", "-m", "--propagation", "private", "true"]
    if os.geteuid() != 0 or shutil.which("unshare") is None or subprocess.run(probe, capture_output=True).returncode:
        # like the report test without Chromium: this machine cannot give a node its own view of the file system
        pytest.skip("needs root and a mount namespace (unshare -m) for a node that cannot see a directory")
    base = tmp_path_factory.mktemp("node-paths")
    hidden, seen = base / "hidden", base / "seen"
    for d in (hidden, seen):
        (d / "data").mkdir(parents=True)
        (d / "runs").mkdir()
    with local_head("reid-paths-") as head, token_mode():
        env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
        node = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             f"mount -t tmpfs none {hidden} && exec {ray_cli()} start --address={head.gcs_address} --num-cpus=1 "
             f"--block --disable-usage-stats"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            ray.init(address=head.gcs_address, log_to_driver=False)
            deadline = time.monotonic() + 120
            while sum(1 for n in ray.nodes() if n.get("Alive")) < 2:
                assert node.poll() is None and time.monotonic() < deadline, "the second node did not join"
                time.sleep(1)
            yield hidden, seen
        finally:
            ray.shutdown()
            node.terminate()
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()


@pytest.mark.ray
@pytest.mark.timeout(400)
def test_a_path_another_node_cannot_see_stops_the_fit_before_it_starts(two_nodes):
    hidden, seen = two_nodes
    def start(data: Path, runs: Path):
        cfg = config(data)
        return node_paths.start(node_paths.local_paths(cfg, data / "manifest.parquet", str(runs)), str(runs))

    ok = start(seen / "data", seen / "runs")
    assert ok is not None and len(ok.pending) == 1  # the other node; the driver's own is checked by the driver
    node_paths.finish(ok)
    assert not any(p.name.startswith(node_paths.MARKER_PREFIX) for p in (seen / "runs").iterdir())

    with pytest.raises(ReidError) as err:
        node_paths.finish(start(hidden / "data", seen / "runs"))
    message = str(err.value)
    assert message.startswith(f"data.root={hidden / 'data'} is missing on 1 node that may run this fit's workers (")
    assert "Every node reads the frames itself" in message and "ray.storage_path" not in message

    with pytest.raises(ReidError, match=rf"ray\.storage_path={hidden / 'runs'} is another directory on 1 node .*"
                                        r"use a shared file system"):
        node_paths.finish(start(seen / "data", hidden / "runs"))
    assert list((hidden / "runs").iterdir()) == []  # the marker is removed whatever the verdict
    with pytest.raises(ReidError, match=rf"^--out={hidden / 'runs'} is another directory on 1 node that may run the "
                                        r"sweep's trials .*\(--out /shared/tune\)"):
        node_paths.finish(node_paths.start({}, str(hidden / "runs"), storage_key="--out"),
                          workers="the sweep's trials and their workers")


def test_a_worker_on_a_node_without_the_data_says_so_as_it_starts(tmp_path):
    """A node an autoscaler adds after the driver's check: the Train worker there checks its own node."""
    (tmp_path / "data").mkdir()
    node_paths.check_here({"data.root": str(tmp_path / "data")}, "Train worker rank 1")
    with pytest.raises(ReidError, match=rf"^data\.root={tmp_path / 'gone'} is missing on this node \(.+\), where "
                                        r"Train worker rank 1 runs\. Every node reads the frames itself: "):
        node_paths.check_here({"data.root": str(tmp_path / "gone")}, "Train worker rank 1")
