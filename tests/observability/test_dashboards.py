"""Grafana dashboards as code: the committed JSON is what the code builds, the data sources
match the provisioning, and every ClickHouse panel's SQL returns rows on a ClickHouse server
filled by a real `mevwatch replay` (and attest flush) of recorded mainnet blocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from mevwatch.dashboards.build import (DATABASES_SQL, GRAFANA_VERSION, JSON_DIR, SCHEMA_VERSION, dashboards, expand_promql, expand_sql,
                                       queries, render, to_json, with_chain)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.fast
def test_committed_json_is_what_the_code_builds(tmp_path):
    built = dashboards()
    assert sorted(p.stem for p in JSON_DIR.glob("*.json")) == sorted(built)
    for uid, d in built.items():
        assert (JSON_DIR / f"{uid}.json").read_text() == render(d), f"{uid}: run mevwatch dashboards export dashboards/json"
    # the CLI writes the same files
    r = subprocess.run([sys.executable, "-m", "mevwatch.monitor.cli", "dashboards", "export", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    for uid in built:
        assert (tmp_path / f"{uid}.json").read_text() == (JSON_DIR / f"{uid}.json").read_text()


def _kept(a, b, where="") -> list[str]:
    """Paths of what ``a`` holds that ``b`` lacks or holds differently (b may hold more: defaults)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k, v in a.items() for p in (_kept(v, b[k], f"{where}.{k}") if k in b else [f"{where}.{k}"])]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _kept(x, y, f"{where}[{i}]")]
    return [] if a == b else [where]


@pytest.mark.fast
def test_json_is_the_sdk_schema_of_the_targeted_grafana():
    """The committed JSON carries the dashboard schema version of the grafana-foundation-sdk build in use,
    that build targets the Grafana version the docs name, and the JSON decodes into the SDK's typed
    model (Grafana's schemas) without losing a field."""
    from importlib.metadata import version

    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.cog.runtime import UnknownDataquery
    from grafana_foundation_sdk.models import prometheus
    from grafana_foundation_sdk.models.dashboard import Dashboard

    assert SCHEMA_VERSION == Dashboard().schema_version == 41
    assert version("grafana-foundation-sdk").endswith("!" + GRAFANA_VERSION) and GRAFANA_VERSION.startswith("11.6.")
    major_minor = ".".join(GRAFANA_VERSION.split(".")[:2])
    assert f"target Grafana {major_minor}" in (REPO / "docs" / "observability.md").read_text()
    register_default_plugins()  # typed decoding of the panels' options and the Prometheus queries
    for uid in dashboards():
        committed = json.loads((JSON_DIR / f"{uid}.json").read_text())
        assert committed["schemaVersion"] == SCHEMA_VERSION, uid
        model = Dashboard.from_json(committed)
        assert _kept(committed, to_json(model)) == [], uid
        for panel in model.panels or []:
            kind = prometheus.Dataquery if panel.datasource.type_val == "prometheus" else UnknownDataquery
            for t in panel.targets or []:  # Prometheus: the SDK's typed query; ClickHouse: its generic dataquery
                assert isinstance(t, kind), (uid, panel.title)


@pytest.mark.fast
def test_panels_use_the_provisioned_datasources_and_fit_the_grid():
    ds = yaml.safe_load((REPO / "dashboards" / "provisioning" / "datasources" / "mevwatch.yaml").read_text())
    uids = {d["uid"]: d["type"] for d in ds["datasources"]}
    assert uids == {"mevwatch-prometheus": "prometheus", "mevwatch-clickhouse": "grafana-clickhouse-datasource"}
    kinds = set()
    for d in dashboards().values():
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        # data sources are variables (any Grafana's uids can be picked) defaulting to the provisioned ones
        variables = {v["name"]: v for v in d["templating"]["list"] if v["type"] == "datasource"}
        for v in variables.values():
            assert uids[v["current"]["value"]] == v["query"], v
        used = set()
        for p in d["panels"]:
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24 and g["w"] > 0 and g["h"] > 0
            for ref in [p["datasource"]] + [t["datasource"] for t in p["targets"]]:
                name = ref["uid"].removeprefix("${").removesuffix("}")
                assert ref["uid"] == f"${{{name}}}" and variables[name]["query"] == ref["type"], (d["uid"], p["title"], ref)
                used.add(name)
                kinds.add(ref["type"])
        assert used == set(variables), d["uid"]  # no variable for a data source the dashboard does not read
    assert kinds == set(uids.values())
    prov = yaml.safe_load((REPO / "dashboards" / "provisioning" / "dashboards" / "mevwatch.yaml").read_text())
    assert prov["providers"][0]["type"] == "file"


@pytest.mark.fast
def test_macros_expand_like_grafana():
    assert expand_sql("WHERE $__timeFilter(block_time)", 10, 20) == \
        "WHERE block_time >= toDateTime(10) AND block_time <= toDateTime(20)"
    assert expand_promql("rate(x[$__rate_interval]) + increase(y[$__range])", "30s", "5m") == "rate(x[30s]) + increase(y[5m])"
    with pytest.raises(ValueError):
        expand_sql("$__timeInterval(t)", 0, 1)
    # the chain variables: a database name (an identifier, never SQL) and a regex on the `chain` label
    assert expand_sql("FROM ${database}.alerts", 0, 1) == "FROM mevwatch.alerts"
    assert expand_sql("FROM ${database}.alerts", 0, 1, "mevwatch_base") == "FROM mevwatch_base.alerts"
    with pytest.raises(ValueError):
        expand_sql("FROM ${database}.alerts", 0, 1, "x; DROP TABLE alerts")
    assert with_chain('sum(rate(mevwatch_a_total[1m])) / max(mevwatch_b{stage="x"}) > 0') == \
        'sum(rate(mevwatch_a_total{chain=~"$chain"}[1m])) / max(mevwatch_b{stage="x", chain=~"$chain"}) > 0'
    # not rewritten: recording-rule names, label names, strings, a series that names its chain already
    for kept in ("job:mevwatch_blocks:rate5m", 'foo{mevwatch_stage="x"}', 'foo{a="1", mevwatch_stage!="x"}',
                 'label_replace(up, "x", "mevwatch_y", "", "")', 'mevwatch_a{chain="base"}', 'mevwatch_a{x="y", chain!~"b"}'):
        assert with_chain(kept) == kept, kept
    assert with_chain('mevwatch_a{x="b",}') == 'mevwatch_a{x="b", chain=~"$chain"}'
    assert with_chain('mevwatch_a{p=~"a{2}"} != 1') == 'mevwatch_a{p=~"a{2}", chain=~"$chain"} != 1'
    assert expand_promql('mevwatch_a{chain=~"$chain"}') == 'mevwatch_a{chain=~".*"}'
    assert expand_promql('mevwatch_a{chain=~"$chain"}', chain='base"|x\\d') == 'mevwatch_a{chain=~"base\\"|x\\\\d"}'
    with pytest.raises(ValueError):
        expand_promql("rate(x[$__interval])")


@pytest.mark.fast
def test_every_panel_follows_the_chain_variables():
    """Several chains (docs/operations.md): each ClickHouse panel reads only the chosen chain's database and each
    Prometheus series is selected by the chosen chain, so no panel mixes chains."""
    import re

    for uid, d in dashboards().items():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        kinds = {k for _t, k, _q in queries(d)}
        assert ("database" in variables) == ("grafana-clickhouse-datasource" in kinds), uid
        assert ("chain" in variables) == ("prometheus" in kinds), uid
        for title, kind, q in queries(d):
            if kind == "prometheus":
                names = re.findall(r"\bmevwatch_\w+", q)
                assert names and len(names) == q.count('chain=~"$chain"'), (uid, title, q)
            else:
                tables = re.findall(r"\b(?:FROM|JOIN)\s+([\w${}.]+)", q, re.I)  # a subquery's "(" is not matched
                assert tables and all(t.startswith("${database}.") for t in tables), (uid, title, tables)
        if "chain" in variables:
            v = variables["chain"]
            assert v["includeAll"] and v["allValue"] == ".*" and v["datasource"]["uid"] == "${prometheus}"
        if "database" in variables:
            v = variables["database"]
            assert v["current"]["value"] == "mevwatch" and v["datasource"]["uid"] == "${clickhouse}"
            assert v["allowCustomValue"] is False and re.fullmatch(v["regex"].strip("/"), "mevwatch_base")
            assert not re.fullmatch(v["regex"].strip("/"), "x; DROP TABLE alerts")


def test_every_clickhouse_panel_returns_rows_after_a_real_replay(tmp_path, clickhouse, traces_dir):
    url = clickhouse.url(f"dash_{uuid.uuid4().hex[:8]}")
    env = dict(os.environ, PYTHONPATH=str(REPO), MEVWATCH_NODE__CONFIRMATIONS="0", MEVWATCH_DATA_DIR=str(tmp_path / "data"))
    cli = [sys.executable, "-m", "mevwatch.monitor.cli", "--log-level", "WARNING"]
    r = subprocess.run(cli + ["replay", str(traces_dir), "--clickhouse", url, "--out", str(tmp_path / "alerts.jsonl"), "-q"],
                       cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode in (0, 1), r.stderr  # 1: the data folder's README is reported as rejected input
    n_alerts = len((tmp_path / "alerts.jsonl").read_text().splitlines())
    assert n_alerts > 0
    r = subprocess.run(cli + ["attest", "flush", "--clickhouse", url], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "batch 1:" in r.stderr, r.stderr
    # the store holds what the replay found: every alert, final
    from mevwatch.monitor.store.store import open_store

    store = open_store(url, tmp_path)
    assert store.count("alerts") == len({json.loads(x)["alert_id"] for x in (tmp_path / "alerts.jsonl").read_text().splitlines()})
    assert store.count("alerts", where="stage != 'final'") == 0
    assert store.count("swaps") > 100 and store.count("blocks") >= 10
    store.close()
    # recorded mev-inspect blocks carry no timestamp (block_time 0): check over all time
    r = subprocess.run(cli + ["dashboards", "check", "--clickhouse", url, "--days", "30000"], cwd=REPO,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for title in ("Sandwiches per hour", "Top attackers", "Top pools", "Detector mix", "Attested batches", "Recent sandwiches"):
        assert title in r.stdout
    # a second chain's database on the same server: the chain variable lists both, and the panels of the
    # other chain show none of this chain's rows
    other = clickhouse.url(f"dash_{uuid.uuid4().hex[:8]}_base")
    store, other_store = open_store(url, tmp_path), open_store(other, tmp_path)
    try:
        listed = [row[0] for row in store.backend.query(DATABASES_SQL)]
        assert store.backend.database in listed and other_store.backend.database in listed and "system" not in listed
        from mevwatch.dashboards.grafana import check

        here = {c.panel: c.results for c in check(prometheus=None, store=store, from_s=0, to_s=2**31 - 1)}
        there = {c.panel: c.results for c in check(prometheus=None, store=other_store, from_s=0, to_s=2**31 - 1)}
        assert here["Recent sandwiches"] > 0 and here["Attested batches"] > 0
        assert there["Recent sandwiches"] == 0 and there["Attested batches"] == 0 and there["Top attackers"] == 0
    finally:
        store.close()
        other_store.close()
