"""The shipped alert rules (infra/prometheus/reid-alerts.yml) through Prometheus' own `promtool`: the file is valid,
its unit tests (reid-alerts.test.yml) pass, they fail when a rule is broken, and every alert has a runbook line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra/prometheus/reid-alerts.yml"
TESTS = ROOT / "infra/prometheus/reid-alerts.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: apt-get install -y prometheus (Debian/Ubuntu; gives promtool)")


def alerts() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@needs_promtool
def test_rule_file_is_valid():
    out = promtool("check", "rules", str(RULES), cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_unit_tests_of_every_alert_pass():
    out = promtool("test", "rules", TESTS.name, cwd=TESTS.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    tested = set(re.findall(r"alertname: (\w+)", TESTS.read_text()))
    assert tested == {a["alert"] for a in alerts()}


@needs_promtool
@pytest.mark.parametrize("broken", [
    ("ray_reid_train_last_step_timestamp_seconds) > 900", "ray_reid_train_last_step_timestamp_seconds) > 9000"),
    ("ray_reid_train_data_wait_share) > 0.5", "ray_reid_train_data_wait_share) > 0.9"),
    ('device="cuda"', 'device=~".*"'),
    ("max by (run) (max_over_time(ray_reid_train_restarts", "max by (run) (min_over_time(ray_reid_train_restarts"),
    ("< 0.10", "< 0.01"),
])
def test_unit_tests_catch_a_broken_rule(tmp_path: Path, broken: tuple[str, str]):
    text = RULES.read_text()
    assert broken[0] in text
    (tmp_path / RULES.name).write_text(text.replace(broken[0], broken[1]))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    out = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert out.returncode != 0, f"the unit tests did not notice {broken}"


def test_every_alert_has_severity_summary_and_a_runbook_line():
    doc = (ROOT / "docs/operations.md").read_text()
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)) and len(names) >= 7
    for rule in alerts():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == f"runbook-{rule['alert'].lower()}"
        assert f'<a id="{anchor}"></a>' in doc, f"no runbook line for {rule['alert']} in docs/operations.md"


def test_shipped_prometheus_config_loads_the_rules():
    cfg = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    assert (ROOT / "infra/prometheus" / cfg["rule_files"][0]).resolve() == RULES
