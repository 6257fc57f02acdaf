"""Kubernetes scraping of every Ray component port: the plain scrape config (infra/prometheus/prometheus.yml) and
the Prometheus Operator objects (infra/prometheus/kuberay-monitors.yaml), applied to the pods the shipped KubeRay
manifests create, through a small model of Prometheus' relabelling (keep / replace, anchored regexes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = [ROOT / "cluster/kuberay-raycluster.yaml", *sorted((ROOT / "infra/kuberay").glob("rayjob-*.yaml"))]
AUTOSCALER_PORT, DASHBOARD_PORT = 44217, 44227


def ray_ports() -> tuple[int, int]:
    from ray.autoscaler._private.constants import AUTOSCALER_METRIC_PORT
    from ray.dashboard.consts import DASHBOARD_METRIC_PORT

    return AUTOSCALER_METRIC_PORT, DASHBOARD_METRIC_PORT


def cluster_specs(path: Path) -> list[dict]:
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        if doc["kind"] == "RayCluster":
            out.append(doc["spec"])
        elif doc["kind"] == "RayJob":
            out.append(doc["spec"]["rayClusterSpec"])
    return out


def discovered_targets(spec: dict, cluster: str) -> list[dict[str, str]]:
    """What Kubernetes pod discovery yields for the pods KubeRay makes of `spec`: one target per container port,
    with KubeRay's pod labels (ray.io/cluster, ray.io/node-type)."""
    groups = [("head", spec["headGroupSpec"]["template"])]
    groups += [("worker", g["template"]) for g in spec.get("workerGroupSpecs", [])]
    targets = []
    for i, (kind, template) in enumerate(groups):
        ip = f"10.0.0.{i + 1}"
        for container in template["spec"]["containers"]:
            for port in container.get("ports", []):
                targets.append({"__address__": f"{ip}:{port['containerPort']}", "__meta_kubernetes_pod_ip": ip,
                                "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                                "__meta_kubernetes_pod_label_ray_io_cluster": cluster,
                                "__meta_kubernetes_pod_label_ray_io_node_type": kind,
                                "__meta_kubernetes_pod_name": f"{cluster}-{kind}-{i}"})
    return targets


def relabel(target: dict[str, str], rules: list[dict]) -> dict[str, str] | None:
    """Prometheus relabel_configs (keep / drop / replace) on one target; None when dropped."""
    t = dict(target)
    for r in rules:
        value = r.get("separator", ";").join(t.get(s, "") for s in r.get("source_labels", []))
        m = re.fullmatch(r.get("regex", "(.*)"), value)
        action = r.get("action", "replace")
        if action == "keep" and not m:
            return None
        if action == "drop" and m:
            return None
        if action == "replace" and m:
            t[r["target_label"]] = m.expand(r.get("replacement", "$1").replace("$", "\\"))
    return t


def expected(targets: list[dict[str, str]]) -> set[str]:
    """Every Ray component port: each pod's metrics agent, plus the head's autoscaler and dashboard."""
    nodes = {t["__meta_kubernetes_pod_ip"]: t["__meta_kubernetes_pod_label_ray_io_node_type"] for t in targets}
    out = {f"{ip}:8080" for ip in nodes}
    out |= {f"{ip}:{p}" for ip, kind in nodes.items() if kind == "head" for p in (AUTOSCALER_PORT, DASHBOARD_PORT)}
    return out


def outsider() -> dict[str, str]:
    return {"__address__": "10.9.9.9:8080", "__meta_kubernetes_pod_ip": "10.9.9.9",
            "__meta_kubernetes_pod_container_port_name": "metrics", "__meta_kubernetes_pod_name": "not-ray"}


def test_ray_component_ports_are_the_ones_ray_uses():
    assert ray_ports() == (AUTOSCALER_PORT, DASHBOARD_PORT)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_plain_scrape_config_covers_every_ray_component_port(manifest: Path):
    cfg = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    jobs = [j for j in cfg["scrape_configs"] if "kubernetes_sd_configs" in j]
    for spec in cluster_specs(manifest):
        targets = discovered_targets(spec, "c1")
        scraped = set()
        for job in jobs:
            assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
            for t in [*targets, outsider()]:
                out = relabel(t, job["relabel_configs"])
                if out is not None:
                    assert out["ray_io_cluster"] == "c1" and out["pod"].startswith("c1-")
                    scraped.add(out["__address__"])
        assert scraped == expected(targets), manifest


def podmonitor_targets(pm: dict, targets: list[dict[str, str]]) -> set[str]:
    """What the operator generates for a PodMonitor: keep the selected pods' named port, then the relabelings."""
    labels = pm["spec"]["selector"]["matchLabels"]
    out = set()
    for endpoint in pm["spec"]["podMetricsEndpoints"]:
        rules = [{"source_labels": [f"__meta_kubernetes_pod_label_{re.sub(r'[^a-zA-Z0-9_]', '_', k)}"],
                  "regex": v, "action": "keep"} for k, v in labels.items()]
        rules.append({"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": endpoint["port"],
                      "action": "keep"})
        for r in endpoint.get("relabelings", []):
            rules.append({"source_labels": r["sourceLabels"], "regex": r.get("regex", "(.*)"),
                          "replacement": r.get("replacement", "$1"), "target_label": r["targetLabel"],
                          "action": r.get("action", "replace")})
        for t in targets:
            got = relabel(t, rules)
            if got is not None:
                assert got["ray_io_cluster"] == "c1"
                out.add(got["__address__"])
    return out


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_podmonitors_cover_every_ray_component_port(manifest: Path):
    docs = list(yaml.safe_load_all((ROOT / "infra/prometheus/kuberay-monitors.yaml").read_text()))
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    assert all(d["apiVersion"] == "monitoring.coreos.com/v1" for d in docs)
    assert all(m["spec"]["namespaceSelector"] == {"any": True} for m in monitors)
    for spec in cluster_specs(manifest):
        targets = [*discovered_targets(spec, "c1"), outsider()]
        scraped = set().union(*(podmonitor_targets(m, targets) for m in monitors))
        assert scraped == expected(targets[:-1]), manifest


def test_prometheus_rule_carries_the_shipped_alert_rules():
    docs = list(yaml.safe_load_all((ROOT / "infra/prometheus/kuberay-monitors.yaml").read_text()))
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    shipped = yaml.safe_load((ROOT / "infra/prometheus/reid-alerts.yml").read_text())
    assert rule["spec"] == shipped


def test_relabel_model_drops_and_rewrites_like_prometheus():
    t = {"a": "x", "b": "head", "__address__": "1.2.3.4:8080", "ip": "1.2.3.4"}
    assert relabel(t, [{"source_labels": ["a", "b"], "regex": ".+;head", "action": "keep"}]) is not None
    assert relabel(t, [{"source_labels": ["b"], "regex": "hea", "action": "keep"}]) is None  # anchored
    out = relabel(t, [{"source_labels": ["ip"], "regex": "(.+)", "replacement": "$1:44217",
                       "target_label": "__address__"}])
    assert out["__address__"] == "1.2.3.4:44217"
