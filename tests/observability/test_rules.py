"""Prometheus alert rules: syntax and unit tests with the real promtool; every metric the rules
and dashboards name is one mevwatch exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mevwatch.dashboards.build import dashboards, queries

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "dashboards" / "prometheus"
pytestmark = pytest.mark.fast


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not installed: run scripts/setup.sh --all (Debian's prometheus package)")
    return path


def test_rules_are_valid_and_their_unit_tests_pass():
    r = subprocess.run([promtool(), "check", "rules", "rules.yml"], cwd=RULES, capture_output=True, text=True)
    assert r.returncode == 0 and "7 rules found" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([promtool(), "test", "rules", "rules_test.yml"], cwd=RULES, capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_a_wrong_expectation_fails_the_rule_tests(tmp_path):
    text = (RULES / "rules_test.yml").read_text().replace("150 sandwiches", "151 sandwiches")
    (tmp_path / "rules_test.yml").write_text(text)
    shutil.copy(RULES / "rules.yml", tmp_path / "rules.yml")
    r = subprocess.run([promtool(), "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "MevwatchSandwichSurge" in r.stdout + r.stderr


def exported_names() -> set[str]:
    from prometheus_client import REGISTRY

    import mevwatch.monitor.metrics  # noqa: F401 - registers them

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",), "gauge": ("",)}
    names = set()
    for fam in REGISTRY.collect():
        if fam.name.startswith("mevwatch_"):
            names |= {fam.name + sfx for sfx in suffixes[fam.type]}
    return names


def test_rules_and_dashboards_name_only_exported_metrics():
    have = exported_names()
    used = set(re.findall(r"\bmevwatch_[a-z_]+", (RULES / "rules.yml").read_text()))
    for d in dashboards().values():
        for _title, kind, q in queries(d):
            if kind == "prometheus":
                used |= set(re.findall(r"\bmevwatch_[a-z_]+", q))
    assert used, "no metric referenced"
    missing = sorted(n for n in used if n not in have)
    assert not missing, f"rules or panels name metrics mevwatch does not export: {missing}"
