"""The monitoring stack against a real Prometheus (Debian's `prometheus` package) and a real run.

Prometheus is started on localhost with the shipped scrape config (infra/prometheus/prometheus.yml) whose `ray` job
reads the head's service-discovery file, and the shipped alert rules, in a test copy where only the `for:` durations
and the stall threshold are shorter. A tiny 2-worker job trains epoch 1 (steps, validation), then stalls at epoch 2
(`train.inject_fault=stall@2:1`). While it stalls, every Grafana panel query must return a series of this run, every
alert expression must evaluate, every metric an alert reads must exist, and ReidTrainingStalled must fire.
With REID_BOARD_DATA=<file> the panels' time series are written there for infra/grafana/render_board.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from jobs.local_cluster import free_port
from tests.ops.helpers import job_status, ray_job, submit_train, tiny_overrides

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
INSTALL = "apt-get install -y prometheus  (Debian/Ubuntu package; also gives promtool)"
RUN = "live"
# Ray exports its node GPU series only on nodes that have a GPU
GPU_ONLY = ("ray_node_gpus_utilization", "ray_node_gram_used")
# the test copy of the rules: stall after 20 s without a step instead of 900 s, and every `for:` at 5 s
STALL_TEST_S = 20

pytestmark = [pytest.mark.ray, pytest.mark.slow,
              pytest.mark.skipif(PROMETHEUS is None, reason=f"prometheus binary missing: {INSTALL}")]


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


def panel_queries() -> list[tuple[str, str]]:
    dash = json.loads((ROOT / "infra/grafana/reid-dashboard.json").read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            q = (t["expr"].replace("$run", RUN).replace("$SessionName", ".*")
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


@pytest.mark.timeout(480)
def test_live_run_fills_every_panel_and_a_stall_fires_the_alert(head, submitter, ops_data, tmp_path):
    rules = shortened_rules(tmp_path)
    check = subprocess.run([shutil.which("promtool") or "promtool", "check", "rules", str(rules)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    config = scrape_config(tmp_path, head.temp_dir / "prom_metrics_service_discovery.json", rules)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    prom_log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=prom_log, stderr=subprocess.STDOUT)
    job_id = "reid-live"
    storage = tmp_path / "runs"
    started = time.time()
    try:
        wait_until(lambda: _ready(base), 60, "prometheus ready")
        out = submit_train(submitter, head.dashboard_url, job_id,
                           tiny_overrides(ops_data, storage, RUN, "train.inject_fault=stall@2:1"), wait=False)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        # epoch 1 trained and validated, epoch 2 hangs before its first step
        def validated() -> bool:
            status = job_status(submitter, head.dashboard_url, job_id)
            assert status in {"PENDING", "RUNNING"}, (status, ray_job(submitter, head.dashboard_url, "logs",
                                                                      job_id).stdout[-3000:])
            return bool(api(base, "query", query=f'ray_reid_val_map{{run="{RUN}"}}')["result"])

        wait_until(validated, 300, "validation mAP of epoch 1 in Prometheus", period_s=2.0)
        wait_until(lambda: api(base, "query", query='ALERTS{alertname="ReidTrainingStalled",'
                                                    f'alertstate="firing",run="{RUN}"}}')["result"],
                   STALL_TEST_S + 60, "ReidTrainingStalled firing")

        # a panel shows a time range: its query must return data somewhere in the run's window, not necessarily
        # at this instant (Ray drops a gauge ~20 s after it was last set; during the stall Ray Data sets none)
        empty = []
        window = {"start": f"{started:.3f}", "end": f"{time.time():.3f}", "step": "5"}
        for title, query in panel_queries():
            if any(name in query for name in GPU_ONLY):
                continue
            if not api(base, "query_range", query=query, **window)["result"]:
                empty.append((title, query))
        names = [n for n in api(base, "label/__name__/values") if n.startswith(("ray_data", "ray_actors"))]
        assert not empty, (empty, names)  # names: what Ray Data exported, for a panel that needs a new query

        for rule in alert_rules():
            api(base, "query", query=rule["expr"])  # evaluates (a query error fails `api`)
            for name in set(re.findall(r"\bray_[a-z_]+\b", rule["expr"])) - {"ray_train_run_name"}:
                # over the run: Ray sets some of its gauges only on change and drops them ~20 s later
                assert api(base, "query", query=f"count(last_over_time({name}[10m]))")["result"], \
                    (rule["alert"], name)

        if os.environ.get("REID_BOARD_DATA"):
            dump_board(base, started, Path(os.environ["REID_BOARD_DATA"]))
    finally:
        ray_job(submitter, head.dashboard_url, "stop", job_id)
        prom.terminate()
        try:
            prom.wait(20)
        except subprocess.TimeoutExpired:
            prom.kill()
        prom_log.close()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def dump_board(base: str, start: float, path: Path) -> None:
    """Every panel's series over the run (2 s resolution), for infra/grafana/render_board.py."""
    end = time.time()
    panels = []
    for title, query in panel_queries():
        data = api(base, "query_range", query=query, start=f"{start:.0f}", end=f"{end:.0f}", step="2")
        panels.append({"title": title, "query": query, "result": data["result"]})
    alerts = api(base, "query_range", query="ALERTS", start=f"{start:.0f}", end=f"{end:.0f}", step="2")
    path.write_text(json.dumps({"start": start, "end": end, "panels": panels, "alerts": alerts["result"]}))
