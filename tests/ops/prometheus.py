"""A real Prometheus (Debian's `prometheus` package) for the monitoring test (tests/ops/test_stalled_job.py): started
on localhost with the shipped scrape config (infra/prometheus/prometheus.yml), whose `ray` job reads a head's
service-discovery file, and the shipped alert rules in a test copy where only the `for:` durations and the stall
threshold are shorter; the Grafana panels' queries and the alert rules, to evaluate against it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

from jobs.local_cluster import free_port

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
INSTALL = "apt-get install -y prometheus  (Debian/Ubuntu package; also gives promtool)"
# Ray exports its node GPU series only on nodes that have a GPU
GPU_ONLY = ("ray_node_gpus_utilization", "ray_node_gram_used")
# the test copy of the rules: stall after 20 s without a step instead of 900 s, and every `for:` at 5 s
STALL_TEST_S = 20


def api(base: str, path: str, **params: str) -> dict:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=20) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def shortened_rules(tmp: Path) -> Path:
    """The shipped rules with short `for:` and stall threshold (the shipped file is not touched)."""
    text = (ROOT / "infra/prometheus/reid-alerts.yml").read_text()
    text = re.sub(r"\bfor: \d+[smh]", "for: 5s", text)
    stall = re.search(r"(ray_reid_train_last_step_timestamp_seconds\) > )(\d+)", text)
    assert stall, "the stall rule's threshold moved: update this test"
    text = text.replace(stall.group(0), f"{stall.group(1)}{STALL_TEST_S}")
    out = tmp / "reid-alerts.yml"
    out.write_text(text)
    return out


def scrape_config(tmp: Path, sd_file: Path, rules: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(rules)]
    jobs = [j for j in cfg["scrape_configs"] if "file_sd_configs" in j]  # no Kubernetes API here
    assert [j["job_name"] for j in jobs] == ["ray"]
    jobs[0]["file_sd_configs"][0]["files"] = [str(sd_file)]
    jobs[0].pop("scrape_interval", None)
    cfg["scrape_configs"] = jobs
    out = tmp / "prometheus.yml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def panel_queries(run: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every Grafana panel, with the dashboard's variables filled for `run`."""
    dash = json.loads((ROOT / "infra/grafana/reid-dashboard.json").read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            q = (t["expr"].replace("$run", run).replace("$SessionName", ".*")
                 .replace("$__rate_interval", "30s").replace("$__interval", "5s"))
            out.append((p["title"], q))
    return out


def alert_rules() -> list[dict]:
    rules = yaml.safe_load((ROOT / "infra/prometheus/reid-alerts.yml").read_text())
    return [r for g in rules["groups"] for r in g["rules"]]


def wait_until(check, timeout_s: float, what: str, period_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(period_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f}s")


def ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def dump_board(base: str, run: str, start: float, path: Path) -> None:
    """Every panel's series over the run (2 s resolution), for infra/grafana/render_board.py."""
    end = time.time()
    panels = []
    for title, query in panel_queries(run):
        data = api(base, "query_range", query=query, start=f"{start:.0f}", end=f"{end:.0f}", step="2")
        panels.append({"title": title, "query": query, "result": data["result"]})
    alerts = api(base, "query_range", query="ALERTS", start=f"{start:.0f}", end=f"{end:.0f}", step="2")
    path.write_text(json.dumps({"start": start, "end": end, "panels": panels, "alerts": alerts["result"]}))


@contextlib.contextmanager
def running_prometheus(sd_file: Path, tmp: Path) -> Iterator[tuple[str, Path]]:
    """Prometheus scraping the metrics endpoints listed in `sd_file` (a head's
    `prom_metrics_service_discovery.json`) every second, with the shortened rules; yields (base URL, rules file) once
    it is ready, and stops it on exit."""
    rules = shortened_rules(tmp)
    config = scrape_config(tmp, sd_file, rules)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp / "prometheus.log", "wb") as log:
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: ready(base), 60, "prometheus ready")
            yield base, rules
        finally:
            prom.terminate()
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
