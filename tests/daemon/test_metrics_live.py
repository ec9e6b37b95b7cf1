"""Observability for real: a real Prometheus scrapes a real `mevwatch run` following the lab on
anvil (alerts, webhooks, attestation on the embedded chain). Every Prometheus panel of the
dashboards returns data, the alert rules load, the metrics follow the naming rules, and after
the run every ClickHouse panel returns rows from the daemon's own chDB store."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from mevwatch.dashboards.build import CHAINS_PROMQL, dashboards, queries
from mevwatch.dashboards.grafana import check, prom_query
from harness import REPO, Daemon, Receiver, start_on_lab, wait_until
from services import Anvil, Prometheus
from mevwatch.monitor.store.store import open_store
from mevwatch.sim.runner import Lab
from conftest import Rpc

pytestmark = pytest.mark.anvil
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HEX_ID = re.compile(r'="0x[0-9a-fA-F]{8,}"')


def test_prometheus_scrapes_a_real_run_and_every_panel_has_data(tmp_path):
    node = Anvil(tmp_path / "anvil", chain_id=31337).start()
    rx = Receiver(SECRET)
    daemon = Daemon(tmp_path, kafka=None, clickhouse=None, confirmations=2, role="all", rpc=node.ws_url,
                    webhooks=[{"url": rx.url, "secrets": [SECRET]}],
                    extra={"attest": {"batch_blocks": 1, "batch_seconds": 0.5}})
    prom = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{daemon.health_port}"], interval="1s",
                      rule_files=[REPO / "dashboards" / "prometheus" / "rules.yml"], labels={"chain": "lab"})
    rpc = Rpc(node.http_url)
    try:
        prom.start()
        lab = Lab(node.http_url, node.ws_url, seed=5)
        start_on_lab(daemon, lab, rpc)

        def scraped() -> bool:  # Prometheus applies new targets a few seconds after it starts
            res = prom_query(prom.url, 'up{job="mevwatch"}')
            return bool(res) and res[0]["value"][1] == "1"
        wait_until(scraped, 60, "Prometheus to scrape the daemon", daemon.tail)
        lab.run(10)
        for _ in range(4):
            rpc("evm_mine")  # the last lab blocks become final and get attested

        def attested() -> bool:
            res = prom_query(prom.url, "sum(mevwatch_attestation_batches_total)")
            return bool(res) and float(res[0]["value"][1]) > 0
        wait_until(attested, 60, "an attested batch in Prometheus", daemon.tail)
        time.sleep(3)  # a few more scrapes for the rates

        # /metrics: names and labels
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.health_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        families = {m.group(2): m.group(3) for m in re.finditer(r"^# TYPE ((mevwatch_\w+)) (\w+)$", text, re.M)}
        assert len(families) >= 25
        assert all(n.endswith("_total") for n, k in families.items() if k == "counter"), "counters end in _total"
        assert not [n for n in families if n.endswith("_created")], "no _created series"
        units = ("_total", "_seconds", "_blocks", "_records", "_info", "_depth", "_block", "_alerts", "_seconds_bucket", "_ratio")
        assert all(n.endswith(units) for n in families), [n for n in families if not n.endswith(units)]
        # no hash or address as a label value; the one exception is the model's info metric (one series
        # naming the loaded model's hash, like a build_info)
        series = [ln for ln in text.splitlines() if not ln.startswith(("#", "mevwatch_model_info"))]
        assert not [ln for ln in series if HEX_ID.search(ln)], "a hash or an address used as a label value"
        info = [ln for ln in text.splitlines() if ln.startswith("mevwatch_model_info{")]
        assert len(info) == 1
        assert re.search(r'^mevwatch_alerts_total\{kind="sandwich",stage="included"\} [1-9]', text, re.M)

        # every Prometheus panel returns data
        results = check(prometheus=prom.url, store=None, rate_interval="5m", range_="5m")  # the whole run
        assert len(results) == sum(1 for d in dashboards().values() for _t, k, _q in queries(d) if k == "prometheus")
        empty = [(r.dashboard, r.panel, r.error) for r in results if r.results <= 0]
        assert not empty, empty
        # the chain variable (the `chain` target label, as the chart's ServiceMonitor sets it): the chain's own
        # panels have data, another chain's have none, and the variable lists the chain
        results = check(prometheus=prom.url, store=None, rate_interval="5m", range_="5m", chain="lab")
        assert not [(r.dashboard, r.panel, r.error) for r in results if r.results <= 0]
        results = check(prometheus=prom.url, store=None, rate_interval="5m", range_="5m", chain="base")
        assert [(r.panel, r.results) for r in results if r.results != 0] == []
        metric = CHAINS_PROMQL.removeprefix("label_values(").split(",")[0]
        with urllib.request.urlopen(f"{prom.url}/api/v1/label/chain/values?match[]={metric}", timeout=5) as r:
            assert json.loads(r.read())["data"] == ["lab"]

        # the rules load and evaluate
        with urllib.request.urlopen(f"{prom.url}/api/v1/rules", timeout=5) as r:
            groups = json.loads(r.read())["data"]["groups"]
        rules = [x for g in groups for x in g["rules"]]
        import yaml

        shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "dashboards" / "prometheus" / "rules.yml").read_text())
        n_shipped = sum(len(g["rules"]) for g in shipped["groups"])
        assert n_shipped >= 7 and len(rules) == n_shipped and all(x["health"] == "ok" for x in rules), rules
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        prom.stop()
        node.stop()

    # after the run, the daemon's chDB store feeds every ClickHouse panel
    store = open_store(None, tmp_path / "data" / "chdb")
    try:
        results = check(prometheus=None, store=store, from_s=0, to_s=int(time.time()) + 60)
        empty = [(r.dashboard, r.panel, r.error) for r in results if r.results <= 0]
        assert not empty, empty
    finally:
        store.close()
