"""Every shipped cluster / infra / job spec parses, and the fields that matter agree with the code: the image, the
interpreter path, resources, token auth and bind addresses, entrypoints, and the metric names the workers export."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from jobs.submit import DRIVER_RESOURCE, IMAGE_PYTHON, JOBS, RUNTIME_ENV_DIR, entrypoint_resources
from reid.training.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/reid:0.1.0"
LAUNCHER = ["cluster/local.yaml", "cluster/single-gpu-node.yaml", "cluster/multi-node-gpu-aws.yaml"]
KUBERAY = ["cluster/kuberay-raycluster.yaml", "infra/kuberay/rayjob-train.yaml", "infra/kuberay/rayjob-tune.yaml"]
AWS = ["cluster/single-gpu-node.yaml", "cluster/multi-node-gpu-aws.yaml"]


def load_all(rel: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / rel).read_text()) if d is not None]


def ray_start_flags(command: str) -> dict[str, str]:
    """--key=value / --key value flags of the `ray start` inside a shell command line."""
    words = shlex.split(command.split("ray start", 1)[1].split(";")[0])
    flags, i = {}, 0
    while i < len(words):
        if words[i].startswith("--"):
            key, eq, value = words[i][2:].partition("=")
            if not eq and i + 1 < len(words) and not words[i + 1].startswith("--"):
                value, i = words[i + 1], i + 1
            flags[key] = value
        i += 1
    return flags


@pytest.mark.parametrize("rel", LAUNCHER)
def test_cluster_launcher_specs_validate_and_start_ray_securely(rel):
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = load_all(rel)[0]
    validate_config(prepare_config(raw))  # what `ray up` does first: fill defaults, check Ray's JSON schema
    assert raw["docker"]["image"] == IMAGE
    assert raw["file_mounts"].get("/home/ray/.ray/auth_token") == "~/.ray/auth_token"
    assert any("chmod 600 /home/ray/.ray/auth_token" in c for c in raw["setup_commands"])
    head = [c for c in raw["head_start_ray_commands"] if "ray start" in c]
    assert len(head) == 1 and "RAY_AUTH_MODE=token" in head[0]
    flags = ray_start_flags(head[0])
    assert flags["dashboard-host"] == "127.0.0.1" and flags["metrics-export-port"] == "8080"
    assert flags["autoscaling-config"] == "~/ray_bootstrap_config.yaml"
    for cmd in raw["worker_start_ray_commands"]:
        if "ray start" in cmd:
            assert "RAY_AUTH_MODE=token" in cmd and ray_start_flags(cmd)["address"] == "$RAY_HEAD_IP:6379"


@pytest.mark.parametrize("rel, path, value", [
    ("cluster/multi-node-gpu-aws.yaml", "max_workers", "eight"),
    ("cluster/multi-node-gpu-aws.yaml", "available_node_types/ray.worker.gpu/max_worker", 2),  # a typo
    ("cluster/multi-node-gpu-aws.yaml", "available_node_types/ray.worker.gpu/node_config", None),  # required
    ("cluster/single-gpu-node.yaml", "docker/pull_befor_run", True),
    ("cluster/local.yaml", "provider/type", None),
])
def test_a_broken_launcher_spec_fails_rays_validation(rel, path, value):
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = load_all(rel)[0]
    validate_config(prepare_config(raw))
    broken = _break(raw, path, value)
    with pytest.raises(Exception):  # noqa: B017 - jsonschema's ValidationError or Ray's own ValueError
        validate_config(prepare_config(broken))


def test_gpu_launcher_specs_ask_for_gpu_machines():
    single = load_all("cluster/single-gpu-node.yaml")[0]
    assert single["max_workers"] == 0
    assert single["available_node_types"]["ray.head.gpu"]["node_config"]["InstanceType"].startswith("g5.")
    multi = load_all("cluster/multi-node-gpu-aws.yaml")[0]
    types = multi["available_node_types"]
    assert types[multi["head_node_type"]]["resources"] == {"CPU": 0, DRIVER_RESOURCE: 100}  # drivers only
    assert types["ray.worker.gpu"]["node_config"]["InstanceType"].startswith("g5.")
    assert types["ray.worker.cpu"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert multi["max_workers"] >= sum(t.get("max_workers", 0) for t in types.values())


def _containers(spec: dict) -> list[dict]:
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


@pytest.mark.parametrize("rel", KUBERAY)
def test_kuberay_specs_use_the_image_token_auth_and_gpu_resources(rel):
    docs = load_all(rel)
    ray_doc = next(d for d in docs if d["apiVersion"] == "ray.io/v1")
    spec = ray_doc["spec"] if ray_doc["kind"] == "RayCluster" else ray_doc["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == "2.60.0"
    assert spec["authOptions"] == {"mode": "token"}
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"  # never a LoadBalancer: port-forward to reach it
    assert all(c["image"] == IMAGE for c in _containers(spec))
    head_ports = {p["name"]: p["containerPort"] for p in spec["headGroupSpec"]["template"]["spec"]["containers"][0]
                  ["ports"]}
    assert head_ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "metrics": 8080}
    gpu = next(g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu")
    res = gpu["template"]["spec"]["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == res["requests"]["nvidia.com/gpu"] == "1"
    for group in spec["workerGroupSpecs"]:
        c = group["template"]["spec"]["containers"][0]
        assert {"name": "metrics", "containerPort": 8080} in c["ports"]  # what prometheus.yml keeps
        assert any(v["mountPath"] == "/shared" for v in c["volumeMounts"])


K8S_VERSION = "1.33"  # Kubernetes schema the manifests are checked against (any supported EKS/GKE release)
KUBERAY_SCHEMA = ROOT / "tests/data/kuberay/ray.io_v1.schema.yaml"
KUBERAY_FILES = [*KUBERAY, "infra/kuberay/redis.yaml"]


def _k8s_definitions() -> dict:
    from importlib.resources import files

    strict = files("kubernetes_validate") / f"kubernetes-json-schema/v{K8S_VERSION}.0-local-strict/_definitions.json"
    return json.loads(strict.read_text())


def schema_errors(doc: dict) -> list[str]:
    """Every violation of the real schemas by one manifest document: KubeRay kinds against the ray.io/v1 schema of
    tests/data/kuberay (whose Kubernetes types resolve into the strict Kubernetes OpenAPI schema), every other kind
    against that Kubernetes schema directly (kubernetes-validate). Unknown fields count, as under `kubectl apply`."""
    import jsonschema
    import kubernetes_validate
    from referencing import Registry, Resource

    if doc.get("apiVersion") != "ray.io/v1":
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"]
        return []
    kuberay = yaml.safe_load(KUBERAY_SCHEMA.read_text())
    defs = _k8s_definitions()
    registry = Registry().with_resources([(defs["$id"], Resource.from_contents(defs)),
                                          (kuberay["$id"], Resource.from_contents(kuberay))])
    kind = doc.get("kind")
    if kind not in ("RayCluster", "RayJob"):
        return [f"kind {kind!r} is not a KubeRay kind this project applies"]
    validator = jsonschema.Draft202012Validator({"$ref": f"{kuberay['$id']}#/$defs/{kind}"}, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("rel", KUBERAY_FILES)
def test_kubernetes_manifests_match_the_kuberay_and_kubernetes_schemas(rel):
    for doc in load_all(rel):
        assert schema_errors(doc) == [], (rel, doc["kind"])


def _break(doc: dict, path: str, value) -> dict:
    """A deep copy of doc with the value at a slash path set (or, for value None, deleted)."""
    import copy

    out = copy.deepcopy(doc)
    *parents, last = path.split("/")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.mark.parametrize("rel, path, value", [
    ("infra/kuberay/rayjob-train.yaml", "spec/entrypointNumCPUs", 0),  # a typo of entrypointNumCpus
    ("infra/kuberay/rayjob-train.yaml", "spec/submissionMode", "K8sJob"),
    ("infra/kuberay/rayjob-tune.yaml", "spec/rayClusterSpec/workerGroupSpecs/0/template", None),
    ("infra/kuberay/rayjob-tune.yaml", "spec/rayClusterSpec/headGroupSpec/rayStartParams/num-cpus", 0),  # not a str
    ("cluster/kuberay-raycluster.yaml", "spec/authOptions/mode", "tokens"),
    ("cluster/kuberay-raycluster.yaml", "spec/workerGroupSpecs/0/minReplica", 0),
    ("cluster/kuberay-raycluster.yaml", "spec/gcsFaultToleranceOptions/redisPassword/valueFrom/secretKeyRef/nme",
     "reid-redis"),  # inside a Kubernetes type
    ("cluster/kuberay-raycluster.yaml", "spec/headGroupSpec/template/spec/containers/0/resource", {}),  # pod spec
    ("cluster/kuberay-raycluster.yaml", "spec/workerGroupSpecs/0/template/spec/tolerations/0/operator", 1),
    ("infra/kuberay/redis.yaml", "spec/template/spec/containers/0/volumeMount", []),  # a core Deployment
])
def test_a_broken_manifest_fails_the_schema_check(rel, path, value):
    docs = load_all(rel)
    index = next(i for i, d in enumerate(docs)
                 if d["kind"] in ("RayCluster", "RayJob", "Deployment"))
    assert schema_errors(docs[index]) == []
    errors = schema_errors(_break(docs[index], path, value))
    assert errors, path


@pytest.mark.parametrize("rel, kind", [("infra/kuberay/rayjob-train.yaml", "train"),
                                       ("infra/kuberay/rayjob-tune.yaml", "tune")])
def test_rayjob_entrypoints_run_the_project_interpreter_with_shared_paths(rel, kind):
    job = load_all(rel)[0]
    spec = job["spec"]
    entry = spec["entrypoint"]
    assert f"{IMAGE_PYTHON} -m reid.cli {JOBS[kind].command} " in entry
    assert spec["entrypointNumCpus"] == JOBS[kind].num_cpus == 0
    assert spec["entrypointResources"] == entrypoint_resources(kind)  # the same pin as `ray job submit`
    assert spec["shutdownAfterJobFinishes"] is True and spec["backoffLimit"] >= 1
    paths = re.findall(r"(?:ray\.storage_path|data\.root|--out)[= ](\S+)", entry)
    assert paths and all(p.startswith("/shared/") for p in paths), paths
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] == "600"
    assert env["RAY_TRAIN_COLLECTIVE_TIMEOUT_S"] == "1800"  # a stalled rank fails the group instead of hanging
    assert spec["activeDeadlineSeconds"] <= 86400  # a hung job is bounded (the demo's own scale)
    if kind == "train":
        assert "ray.use_gpu=true" in entry and "ray.max_failures=" in entry
    else:  # a retried submission continues the sweep instead of refusing the existing directory
        assert "--resume" in entry and "--max-concurrent" in entry


def test_dockerfile_installs_the_locked_project_where_the_jobs_expect_it():
    text = (ROOT / "infra/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    syncs = re.findall(r"^RUN --mount=type=cache,target=/home/ray/.cache/uv,uid=1000,gid=1000 \\\n    uv sync (.*)$",
                       text, re.M)  # the uv cache in a BuildKit cache mount, never in a layer
    assert len(syncs) == 2 and all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert len(re.findall(r"\buv sync\b", text)) == 2
    assert "COPY --chown=ray:ray pyproject.toml uv.lock" in text
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in text and IMAGE_PYTHON == "/app/.venv/bin/python"
    assert "PATH=/app/.venv/bin:$PATH" in text
    # login shells (KubeRay's `bash -lc`, the launcher's `bash --login`) reset PATH; profile.d restores the venv
    assert "echo 'export PATH=/app/.venv/bin:$PATH' > /etc/profile.d/reid-venv.sh" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = json.loads(re.search(r'packages = (\[.*?\])', pyproject).group(1))
    for package in packages:  # everything the wheel ships is in the image
        assert f"COPY --chown=ray:ray {package} ./{package}" in text
    assert re.search(r"apt-get install[^\n]*\bwget\b", text)  # KubeRay's probes
    assert re.search(r"^USER ray$", text, re.M)


def test_prometheus_config_scrapes_ray_service_discovery_and_kuberay_pods():
    cfg = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["ray"]["file_sd_configs"][0]["files"] == ["/tmp/ray/prom_metrics_service_discovery.json"]
    relabel = jobs["ray-kubernetes"]["relabel_configs"]
    assert {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics",
            "action": "keep"} in relabel


def _exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_grafana_dashboard_queries_the_metrics_the_workers_export():
    dash = json.loads((ROOT / "infra/grafana/reid-dashboard.json").read_text())
    exprs = " ".join(_exprs(dash))
    for name in METRIC_NAMES:
        assert re.search(rf"\bray_{name}\b", exprs), f"no panel for ray_{name}"
    used = set(re.findall(r"\bray_reid_\w+", exprs))
    assert used <= {f"ray_{n}" for n in METRIC_NAMES}, used - {f"ray_{n}" for n in METRIC_NAMES}
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "SessionName", "run"} <= variables
    for p in dash["panels"]:
        assert p.get("datasource") in (None, "${datasource}")


def test_grafana_dashboard_uses_only_ray_metrics_that_ray_itself_charts():
    """Beside ours, the board shows Ray's own metrics: each name must appear in Ray 2.60's generated dashboards."""
    from ray.dashboard.modules.metrics.grafana_dashboard_factory import (
        generate_data_grafana_dashboard,
        generate_default_grafana_dashboard,
        generate_train_grafana_dashboard,
    )

    ray_text = (generate_default_grafana_dashboard()[0] + generate_train_grafana_dashboard()[0]
                + generate_data_grafana_dashboard()[0])
    known = set(re.findall(r"\bray_[a-z_]+", ray_text))
    dash = json.loads((ROOT / "infra/grafana/reid-dashboard.json").read_text())
    ours = {m for e in _exprs(dash) for m in re.findall(r"\bray_[a-z_]+", e)
            if not m.startswith("ray_reid_") and not m.startswith("ray_train_run_name")}
    assert ours and ours <= known, ours - known


@pytest.mark.parametrize("kind", sorted(JOBS))
def test_runtime_env_files_are_valid_runtime_envs(kind):
    from ray.runtime_env import RuntimeEnv

    raw = yaml.safe_load((RUNTIME_ENV_DIR / f"{kind}.yaml").read_text())
    env = RuntimeEnv(**raw)  # Ray's own validation of the fields
    assert env["working_dir"] == "."
    assert env["env_vars"]["PYTHONUNBUFFERED"] == "1"
    assert "TQDM_DISABLE" not in env["env_vars"]  # progress reaches the job log as lines (reid/progress.py)
    assert all(isinstance(v, str) for v in env["env_vars"].values())
    text = (RUNTIME_ENV_DIR / f"{kind}.yaml").read_text()
    assert f"--entrypoint-num-cpus {JOBS[kind].num_cpus:g}" in text  # the header documents the same request
    assert f"-m reid.cli {JOBS[kind].command} " in text


def test_local_cluster_script_uses_the_project_interpreter():
    text = (ROOT / "cluster/local.sh").read_text()
    assert 'py="${REID_PYTHON:-$root/.venv/bin/python}"' in text
    assert '-m jobs.local_cluster "$cmd"' in text and "RAY_AUTH_MODE=token" in text
