"""What a first run on a real GPU cluster needs from the shipped specs (issue 18): a driver that can use the GPUs,
shared storage the image's uid can write, drivers on the head, one availability zone for DDP, GCS fault tolerance,
bounded hangs, and a lean image build context. Each check reads the spec files the operator applies."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from jobs.submit import DRIVER_RESOURCE

ROOT = Path(__file__).resolve().parents[2]
AWS = ["cluster/single-gpu-node.yaml", "cluster/multi-node-gpu-aws.yaml"]
KUBERAY = ["cluster/kuberay-raycluster.yaml", "infra/kuberay/rayjob-train.yaml", "infra/kuberay/rayjob-tune.yaml"]
IMAGE_UID = 1000


def load_all(rel: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / rel).read_text()) if d is not None]


def _ray_spec(rel: str) -> dict:
    doc = next(d for d in load_all(rel) if d["apiVersion"] == "ray.io/v1")
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def _node_init_commands(cfg: dict, node_type: str) -> list[str]:
    """What the launcher runs on the host of a node type: its own list, else the top-level one (ray 2.60
    autoscaler._get_node_type_specific_fields replaces, it does not merge)."""
    return cfg["available_node_types"][node_type].get("initialization_commands", cfg["initialization_commands"])


def _gpu_types(cfg: dict) -> list[str]:
    return [n for n, t in cfg["available_node_types"].items() if t["node_config"]["InstanceType"].startswith(("g", "p"))]


def _driver_check(cfg: dict, node_type: str) -> str:
    checks = [c for c in _node_init_commands(cfg, node_type) if "nvidia-smi" in c]
    assert len(checks) == 1, node_type
    return checks[0]


@pytest.mark.parametrize("rel", AWS)
def test_gpu_nodes_boot_an_ami_with_a_new_enough_driver_and_check_it(rel):
    cfg = load_all(rel)[0]
    for name, node_type in cfg["available_node_types"].items():
        assert re.fullmatch(r"ami-[0-9a-f]{17}", node_type["node_config"]["ImageId"]), name  # never the default AMI
    for name in _gpu_types(cfg):
        assert "580" in _driver_check(cfg, name)


@pytest.mark.parametrize("version, ok", [("535.183.01", False), ("570.86.15", False), ("580.65.06", True),
                                         ("590.12", True), ("", False)])
def test_the_driver_check_refuses_drivers_older_than_580(tmp_path, version, ok):
    """The launcher's check runs as written, against a fake `nvidia-smi` that reports `version`."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\necho '{version}'\n" if version else "#!/bin/sh\nexit 9\n")
    fake.chmod(0o755)
    cfg = load_all("cluster/multi-node-gpu-aws.yaml")[0]
    out = subprocess.run(["bash", "-c", _driver_check(cfg, "ray.worker.gpu")], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert (out.returncode == 0) == ok, out
    if not ok:
        assert "< 580" in out.stdout and "docs/operations.md" in out.stdout and len(out.stdout.splitlines()) == 1


def test_the_image_exposes_the_gpus_and_sets_the_weights_home():
    text = (ROOT / "infra/Dockerfile").read_text()
    assert "NVIDIA_VISIBLE_DEVICES=all" in text and "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in text
    assert "TORCH_HOME=/shared/torch" in text
    assert re.search(r"^COPY --from=ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ ", text, re.M)  # a pinned uv release


def test_the_build_context_leaves_out_the_venv_data_and_runs():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "data", "runs", ".git"} <= ignored
    text = (ROOT / "infra/Dockerfile").read_text()
    copied = re.findall(r"^COPY --chown=ray:ray (.+) \./", text, re.M)
    for entry in " ".join(copied).split():  # nothing the image copies is ignored
        assert entry.rstrip("/") not in ignored, entry


def test_efs_is_writable_by_the_image_user_and_mounted_to_reconnect():
    cfg = load_all("cluster/multi-node-gpu-aws.yaml")[0]
    for name in cfg["available_node_types"]:
        mount = next(c for c in _node_init_commands(cfg, name) if "mount -t nfs4" in c)
        assert f"chown {IMAGE_UID}:{IMAGE_UID} /shared" in mount and "noresvport" in mount, name
    single = load_all("cluster/single-gpu-node.yaml")[0]
    assert any(f"chown -R {IMAGE_UID}:{IMAGE_UID} /shared" in c for c in single["initialization_commands"])


def test_all_gpu_nodes_share_one_availability_zone():
    cfg = load_all("cluster/multi-node-gpu-aws.yaml")[0]
    assert "," not in cfg["provider"]["availability_zone"]
    for rel in KUBERAY:
        gpu = next(g for g in _ray_spec(rel)["workerGroupSpecs"] if g["groupName"] == "gpu")
        terms = gpu["template"]["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms[0]["topologyKey"] == "topology.kubernetes.io/zone"
        assert terms[0]["labelSelector"]["matchLabels"]["ray.io/group"] == "gpu"


def _kuberay_resources(value: str) -> dict:
    """KubeRay's rayStartParams `resources`: a JSON object wrapped in double quotes for the shell."""
    assert value.startswith('"') and value.endswith('"')
    return json.loads(value[1:-1].replace('\\"', '"'))


@pytest.mark.parametrize("rel", KUBERAY)
def test_kuberay_heads_host_only_the_drivers_and_pods_can_write_shared(rel):
    spec = _ray_spec(rel)
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert _kuberay_resources(head["rayStartParams"]["resources"]) == {DRIVER_RESOURCE: 100}
    init = head["template"]["spec"]["initContainers"][0]
    assert init["securityContext"]["runAsUser"] == 0 and f"chown {IMAGE_UID}:{IMAGE_UID} /shared" in init["command"][-1]
    for group in [head, *spec["workerGroupSpecs"]]:
        assert group["template"]["spec"]["securityContext"]["fsGroup"] == IMAGE_UID
        assert "resources" not in group["rayStartParams"] or group is head  # only heads advertise the slots


@pytest.mark.parametrize("rel", AWS + ["cluster/local.yaml"])
def test_launcher_heads_advertise_driver_slots_and_workers_do_not(rel):
    cfg = load_all(rel)[0]
    if "available_node_types" in cfg:
        for name, node_type in cfg["available_node_types"].items():
            has = node_type["resources"].get(DRIVER_RESOURCE)
            assert (has == 100) == (name == cfg["head_node_type"]), name
    else:  # the "local" provider: the flag on the head's `ray start`
        head = " ".join(cfg["head_start_ray_commands"])
        assert f"--resources='{{\"{DRIVER_RESOURCE}\": 100}}'" in head
        assert "--resources" not in " ".join(cfg["worker_start_ray_commands"])


def test_the_long_lived_raycluster_keeps_its_gcs_in_the_shipped_redis():
    ft = _ray_spec("cluster/kuberay-raycluster.yaml")["gcsFaultToleranceOptions"]
    docs = {(d["kind"], d["metadata"]["name"]): d for d in load_all("infra/kuberay/redis.yaml")}
    host, port = ft["redisAddress"].split(":")
    service = docs[("Service", host)]
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    secret = ft["redisPassword"]["valueFrom"]["secretKeyRef"]
    redis = docs[("Deployment", host)]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": secret}} in redis["env"]
    assert "--requirepass" in redis["args"][0] and "--appendonly yes" in redis["args"][0]
    assert service["spec"]["selector"] == docs[("Deployment", host)]["spec"]["selector"]["matchLabels"]


def test_ablation_specs_name_their_datasets_by_absolute_paths():
    """A sweep job's driver runs in a temporary copy of the working directory: a relative `data.root` in a spec
    would resolve there. Datasets live under /shared/data on every cluster shape (docs/operations.md)."""
    from tune.ablation import REAL_DATA_KEYS

    for path in sorted((ROOT / "tune/ablations").glob("*.yaml")):
        for row in yaml.safe_load(path.read_text())["rows"]:
            for key in ("data.root", "data.manifest"):
                assert key in REAL_DATA_KEYS
                value = (row.get("overrides") or {}).get(key)
                if value is not None:
                    assert value.startswith("/shared/data/") or "://" in value, (path.name, row["name"], value)
