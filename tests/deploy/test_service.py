"""The search service's request handling without a cluster: top_k, the GET answer, errors without server paths."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from reid.deploy import service
from reid.deploy.service import USAGE, info, materialise, requested_top_k, without_workdir
from reid.errors import ReidError


@pytest.mark.parametrize("k", [0, -3, 2.0, "3", None, True, [5]])
def test_top_k_other_than_a_positive_integer_is_a_one_line_error(k):
    with pytest.raises(ReidError, match=r"^top_k must be a positive integer, got \S+$"):
        requested_top_k({"top_k": k}, 10)


def test_top_k_defaults_to_the_service_s():
    assert requested_top_k({}, 10) == 10
    assert requested_top_k({"top_k": 3}, 10) == 3


def test_get_answer_names_the_index_folder_not_its_path():
    meta = {"count": 163, "method": "baseline", "model_hash": "5e63acf271e0fdfa", "feature_dim": 512}
    got = info(meta, "/srv/indexes/mars-v2")
    assert got["index"] == "mars-v2" and got["tracklets"] == 163 and got["feature_dim"] == 512
    assert got["usage"].startswith('POST / with JSON {"frames"')


def test_errors_leave_the_request_folder_out(tmp_path: Path):
    folder = materialise({"frames": [base64.b64encode(b"x").decode()]}, tmp_path)
    message = f"cannot read query frame {folder / '00000.jpg'}: cannot identify image file '{folder / '00000.jpg'}'"
    assert without_workdir(message, tmp_path) == ("cannot read query frame tracklet/00000.jpg: cannot identify "
                                                  "image file 'tracklet/00000.jpg'")


@pytest.mark.parametrize("body", [{}, {"frames": []}, {"video": 3}])
def test_a_body_without_frames_or_video_says_what_to_send(body, tmp_path: Path):
    with pytest.raises(ReidError) as err:
        materialise(body, tmp_path)
    assert str(err.value) == USAGE


def test_replicas_the_cluster_cannot_hold_are_an_error_on_a_local_cluster_and_a_line_elsewhere(monkeypatch, capsys):
    """Serve alone waits for them without a word on the console (`reid serve --replicas 8` on 2 CPUs hung)."""
    import ray

    from reid.training import driver

    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0}}])
    monkeypatch.setattr(driver, "local_cluster_started", lambda: True)
    service.check_replicas(4, 0.5)
    assert capsys.readouterr().out == ""
    with pytest.raises(ReidError, match=r"^--replicas 8 Serve replicas of 0.5 CPU each, but the cluster's 1 node\(s\) "
                                        r"\(2 CPU in all\) hold 4, and this local Ray cluster cannot grow: fewer "
                                        r"--replicas"):
        service.check_replicas(8, 0.5)
    monkeypatch.setattr(driver, "local_cluster_started", lambda: False)
    service.check_replicas(8, 0.5)
    assert capsys.readouterr().out.startswith("[reid] waiting for resources: --replicas 8 Serve replicas")


def test_a_port_another_process_listens_on_or_a_foreign_host_is_one_line_before_serve_starts():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ReidError, match=rf"--port {port}: another process listens on 127.0.0.1:{port} already"):
            service.check_port("127.0.0.1", port)
    service.check_port("127.0.0.1", port)  # free again
    with pytest.raises(ReidError, match="--host 203.0.113.77: not an address of this machine"):
        service.check_port("203.0.113.77", port)  # TEST-NET-3: documentation only
    with pytest.raises(ReidError, match="--host no-such-host.invalid: not a name or address"):
        service.check_port("no-such-host.invalid", port)
