"""Grafana dashboards as code, built with Grafana's own ``grafana-foundation-sdk``.

Three dashboards, exported to dashboards/json/ (committed; a test rebuilds and compares):

- ``mevwatch-overview``: the few numbers to look at first (both data sources);
- ``mevwatch-mev``: MEV activity from ClickHouse (sandwiches per hour, victim loss in ETH,
  top attackers and pools, pending vs included, detector mix, attested batches);
- ``mevwatch-pipeline``: pipeline health from Prometheus (throughput, head lag, latency,
  Kafka, ClickHouse, webhooks, attestation).

The dashboards, panels (timeseries, stat, table, bar chart, pie chart), their options and
the Prometheus queries are the SDK's typed builders, generated from Grafana's schemas; the
JSON is the SDK's model serialised (``schemaVersion`` :data:`SCHEMA_VERSION`). The SDK build
pinned in pyproject.toml targets Grafana :data:`GRAFANA_VERSION` (its version string is
``<build epoch>!<Grafana version>``; docs/observability.md). Where the SDK cannot say it:

- it has no builder for the ClickHouse plugin (``grafana-clickhouse-datasource``): its
  queries are the SDK's generic dataquery (``cog.runtime.UnknownDataquery``, the bag it
  decodes unknown plugins' queries into), made by :class:`ClickHouseQuery`;
- its automatic placement (``Dashboard.with_panel``) only starts a new row after a row is
  full, so a full-width panel after a half row would run past column 24; grid positions
  are computed here (:class:`_Layout`, unchanged) and given to each panel.

Data sources are chosen by two dashboard variables of type *datasource*, ``prometheus`` and
``clickhouse`` (:data:`DATASOURCE_VARIABLES`): every panel and query names ``${prometheus}`` or
``${clickhouse}``, so a Grafana whose data sources have other uids (kube-prometheus-stack's
``prometheus``, ...) shows the dashboards by picking them in the variable, or by default the
first data source of the type. The variables default to the uids provisioned by
dashboards/provisioning/: ``mevwatch-prometheus`` (Prometheus) and ``mevwatch-clickhouse`` (the
``grafana-clickhouse-datasource`` plugin, native protocol). The chain shown is chosen by
two more variables (several chains: docs/operations.md): ``database`` (ClickHouse, every table is
``${database}.<table>``) and ``chain`` (Prometheus, every mevwatch series gets ``{chain=~"$chain"}``,
:func:`with_chain`). SQL uses the plugin's
``$__timeFilter(column)`` macro and runs unchanged on ClickHouse 18.16 and 25+; PromQL uses
Grafana's ``$__rate_interval`` and ``$__range``. :func:`expand_sql` and :func:`expand_promql`
do what Grafana does with them, so ``mevwatch dashboards check`` (and the tests) can run
every panel's query against real backends.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import barchart, common, piechart, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models

# variable name -> (data source type, label, the provisioned data source it defaults to: name, uid)
DATASOURCE_VARIABLES = {
    "prometheus": ("prometheus", "Prometheus", "mevwatch Prometheus", "mevwatch-prometheus"),
    "clickhouse": ("grafana-clickhouse-datasource", "ClickHouse", "mevwatch ClickHouse", "mevwatch-clickhouse"),
}
# The chain shown, one variable per data source (docs/operations.md, "Several chains"): each chain keeps its
# rows in a ClickHouse database of its own, and the chart's ServiceMonitor gives each chain's targets the label
# `chain`. `database` lists the databases holding mevwatch's tables (default: the provisioned data source's
# `mevwatch`); `chain` lists the `chain` label's values, All (`.*`, which also matches a single-chain deployment's
# series without the label) by default.
DATABASE_VARIABLE, CHAIN_VARIABLE, DEFAULT_DATABASE = "database", "chain", "mevwatch"
DATABASES_SQL = ("SELECT database FROM system.tables WHERE name IN ('alerts', 'blocks', 'swaps') "
                 "GROUP BY database HAVING count() = 3 ORDER BY database")
CHAINS_PROMQL = "label_values(mevwatch_blocks_processed_total, chain)"
CHAIN_ALL = ".*"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a database name (the store checks its own the same way)
PROM = models.DataSourceRef(type_val="prometheus", uid="${prometheus}")
CH = models.DataSourceRef(type_val="grafana-clickhouse-datasource", uid="${clickhouse}")
JSON_DIR = Path(__file__).resolve().parent / "json"
FORMAT_TIMESERIES, FORMAT_TABLE = 0, 1
SCHEMA_VERSION: int = models.Dashboard().schema_version  # the dashboard schema of the SDK build in use
GRAFANA_VERSION = version("grafana-foundation-sdk").partition("!")[2]  # e.g. "11.6.0"

# sandwiches of the dashboard's time range, by the alert's own time (its block's time: docs/store.md): the
# filter on alert_time, the partition key, reads only the months of the range; stage filters after FINAL
_SANDWICHES = """SELECT alert_id, alert_time, victim_loss_eth, profit_eth, attackers, pools, stage, block_number, order_flow
  FROM ${database}.alerts FINAL WHERE $__timeFilter(alert_time) AND kind = 'sandwich'"""
_SANDWICHES_IN = f"""({_SANDWICHES}) AS s
WHERE stage IN ('included', 'final')"""

Query = cogbuilder.Builder[cogvariants.Dataquery]
PanelBuilder = timeseries.Panel | stat.Panel | table.Panel | barchart.Panel | piechart.Panel  # the SDK's builders share no base class


class ClickHouseQuery(cogbuilder.Builder[cogvariants.Dataquery]):
    """A ``grafana-clickhouse-datasource`` SQL query, as the SDK's generic dataquery (it has no ClickHouse builder)."""

    def __init__(self, sql: str, fmt: int = FORMAT_TABLE, ref: str = "A") -> None:
        self._data: dict[str, Any] = {"refId": ref, "datasource": CH.to_json(), "editorType": "sql", "format": fmt,
                                      "queryType": "timeseries" if fmt == FORMAT_TIMESERIES else "table", "rawSql": sql.strip()}

    def build(self) -> cogvariants.Dataquery:
        return cogruntime.UnknownDataquery(dict(self._data))


# a mevwatch metric name (not part of a longer name, a recording rule's `a:b:c` name, a label name after `{` or
# `,`, or a string),
# and its matchers: label values in double quotes may hold any character but an unescaped quote
_METRIC = re.compile(r'(?<![\w:"\'{,])(?<!\{ )(?<!, )(mevwatch_[a-z0-9_]+)(?![\w:"\'])(\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})?')


def with_chain(expr: str) -> str:
    """``expr`` with every mevwatch series selected by the dashboard's chain: ``{chain=~"$chain"}`` added
    (a series that already names ``chain`` is kept as written)."""
    def add(m: re.Match[str]) -> str:
        inner = (m.group(2) or "{}")[1:-1].strip().rstrip(",").strip()
        if re.match(r"(?:.*[{,]\s*|\s*)chain\s*[=!]", "{" + inner):
            return m.group(0)
        return f'{m.group(1)}{{{inner + ", " if inner else ""}chain=~"${CHAIN_VARIABLE}"}}'
    return _METRIC.sub(add, expr)


def _prom(expr: str, legend: str = "__auto", ref: str = "A") -> Query:
    return prometheus.Dataquery().ref_id(ref).datasource(PROM).expr(with_chain(expr)).legend_format(legend).range()


def _sql(sql: str, fmt: int = FORMAT_TABLE, ref: str = "A") -> Query:
    return ClickHouseQuery(sql, fmt, ref)


def _stat(text_mode: common_models.BigValueTextMode | None = None) -> stat.Panel:
    p = stat.Panel().reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"])).color_mode(common_models.BigValueColorMode.VALUE)
    return p.text_mode(text_mode) if text_mode is not None else p


def _datasource_of(q: Query) -> models.DataSourceRef:
    return CH if isinstance(q, ClickHouseQuery) else PROM


class _Layout:
    """Panels left to right in rows of 24 columns; a panel that does not fit starts the next row."""

    def __init__(self) -> None:
        self.x, self.y, self.row_h, self.next_id = 0, 0, 0, 1

    def panel(self, title: str, panel: PanelBuilder, targets: list[Query], *, w: int = 12, h: int = 8, unit: str | None = None,
              description: str = "") -> PanelBuilder:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = panel.id(self.next_id).title(title).grid_pos(models.GridPos(x=self.x, y=self.y, w=w, h=h)).datasource(_datasource_of(targets[0]))
        for t in targets:
            panel = panel.with_target(t)
        if description:
            panel = panel.description(description)
        if unit:
            panel = panel.unit(unit)
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        return panel


def _dashboard(uid: str, title: str, description: str, panels: list[PanelBuilder], time_from: str = "now-24h") -> dict[str, Any]:
    d = (dash.Dashboard(title).uid(uid).description(description).tags(["mevwatch"]).timezone("utc").editable()
         .version(1).refresh("30s").time(time_from, "now")
         .link(dash.DashboardLink("mevwatch").type(models.DashboardLinkType.DASHBOARDS).tags(["mevwatch"]).as_dropdown(True)))
    reads = {getattr(p.build().datasource, "uid", None) for p in panels}  # only the data sources it reads get variables
    for name, (kind, label, text, uid) in DATASOURCE_VARIABLES.items():
        if f"${{{name}}}" in reads:
            d = d.with_variable(dash.DatasourceVariable(name).label(label).type(kind)
                                .current(models.VariableOption(text=text, value=uid, selected=True)))
    if CH.uid in reads:
        # no custom values: the value goes into the SQL as a name (a URL's ?var-database= is only ever a listed database)
        d = d.with_variable(dash.QueryVariable(DATABASE_VARIABLE).label("Chain (ClickHouse database)").datasource(CH)
                            .query(DATABASES_SQL).refresh(models.VariableRefresh.ON_DASHBOARD_LOAD)
                            .allow_custom_value(False).regex(f"/^{_IDENTIFIER.pattern}$/")
                            .sort(models.VariableSort.ALPHABETICAL_ASC)
                            .current(models.VariableOption(text=DEFAULT_DATABASE, value=DEFAULT_DATABASE, selected=True))
                            .description("Each chain's rows are in a database of its own (docs/operations.md, Several chains)"))
    if PROM.uid in reads:
        d = d.with_variable(dash.QueryVariable(CHAIN_VARIABLE).label("Chain (Prometheus)").datasource(PROM)
                            .query(CHAINS_PROMQL).refresh(models.VariableRefresh.ON_DASHBOARD_LOAD)
                            .sort(models.VariableSort.ALPHABETICAL_ASC).include_all(True).all_value(CHAIN_ALL)
                            .current(models.VariableOption(text="All", value="$__all", selected=True))
                            .description("The `chain` label the chart's ServiceMonitor gives each chain's targets; "
                                         "All includes a single-chain deployment without it"))
    for p in panels:
        d = d.with_panel(p)
    return to_json(d.build())


def to_json(model: Any) -> dict[str, Any]:
    """The SDK's model as dashboard JSON (plain dicts and lists)."""
    out: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return out


def overview() -> dict[str, Any]:
    L = _Layout()
    panels = [
        L.panel("Sandwiches (included or final)", _stat(), [_sql(f"""
SELECT count() AS sandwiches
FROM {_SANDWICHES_IN}""")], w=6, h=5),
        L.panel("Victim loss (ETH)", _stat(), [_sql(f"""
SELECT sum(victim_loss_eth) AS victim_loss_eth
FROM {_SANDWICHES_IN}""")], w=6, h=5, unit="none"),
        L.panel("Blocks processed / s", _stat(), [_prom("sum(rate(mevwatch_blocks_processed_total[$__rate_interval]))")],
                w=6, h=5, unit="ops"),
        L.panel("Head lag", _stat(), [_prom("max(mevwatch_head_lag_seconds)")], w=6, h=5, unit="s"),
        L.panel("Alerts by stage", timeseries.Panel(), [_prom("sum by (stage) (rate(mevwatch_alerts_total[$__rate_interval]))",
                                                         "{{stage}}")], unit="ops"),
        L.panel("Detection latency p99", timeseries.Panel(), [_prom(
            "histogram_quantile(0.99, sum by (le, source) (rate(mevwatch_detection_latency_seconds_bucket[$__rate_interval])))",
            "{{source}}")], unit="s", description="pending: first sight of the transaction to the committed alert; head: block on the bus to the committed alert"),
        L.panel("Webhook outbox depth", _stat(), [_prom("sum(mevwatch_webhook_outbox_depth)")], w=6, h=5),
        L.panel("Final alerts awaiting attestation", _stat(), [_prom("sum(mevwatch_attestation_waiting_alerts)")], w=6, h=5),
        L.panel("Model", _stat(common_models.BigValueTextMode.NAME), [_prom("max by (model_hash, device, detector) (mevwatch_model_info)",
                                        "{{detector}} {{model_hash}} on {{device}}")], w=12, h=5),
    ]
    return _dashboard("mevwatch-overview", "mevwatch / Overview", "What mevwatch sees and how it is doing.", panels)


def mev_activity() -> dict[str, Any]:
    L = _Layout()
    panels = [
        L.panel("Sandwiches per hour", timeseries.Panel(), [_sql(f"""
SELECT toStartOfHour(alert_time) AS time, count() AS sandwiches
FROM {_SANDWICHES_IN}
GROUP BY time ORDER BY time""", FORMAT_TIMESERIES)]),
        L.panel("Victim loss per hour (ETH)", timeseries.Panel(), [_sql(f"""
SELECT toStartOfHour(alert_time) AS time, sum(victim_loss_eth) AS victim_loss_eth
FROM {_SANDWICHES_IN}
GROUP BY time ORDER BY time""", FORMAT_TIMESERIES)]),
        L.panel("Top attackers", table.Panel(), [_sql(f"""
SELECT arrayJoin(attackers) AS attacker, count() AS sandwiches, sum(profit_eth) AS profit_eth,
       sum(victim_loss_eth) AS victim_loss_eth
FROM {_SANDWICHES_IN}
GROUP BY attacker ORDER BY sandwiches DESC, attacker LIMIT 20""")]),
        L.panel("Top pools", table.Panel(), [_sql(f"""
SELECT arrayJoin(pools) AS pool, count() AS sandwiches, sum(victim_loss_eth) AS victim_loss_eth
FROM {_SANDWICHES_IN}
GROUP BY pool ORDER BY sandwiches DESC, pool LIMIT 20""")]),
        L.panel("Pending vs included", barchart.Panel(), [_sql("""
SELECT kind, stage, count() AS alerts
FROM ${database}.alerts FINAL
WHERE $__timeFilter(alert_time) AND kind IN ('sandwich', 'sandwich_attempt', 'exposed_swap')
GROUP BY kind, stage ORDER BY kind, stage""")],
                description="Alerts by newest stage, by the alert's time (block time; first sight for pending ones): attempts "
                            "seen in the mempool against sandwiches that landed"),
        L.panel("Detector mix", piechart.Panel(), [_sql("""
SELECT detector, count() AS alerts
FROM (SELECT detector, stage FROM ${database}.alerts FINAL WHERE $__timeFilter(alert_time)) AS s
WHERE stage IN ('included', 'final')
GROUP BY detector ORDER BY detector""")], description="rules, gnn, or both"),
        L.panel("Swaps per hour by protocol", timeseries.Panel(), [_sql("""
SELECT toStartOfHour(block_time) AS time, protocol, count() AS swaps
FROM ${database}.swaps FINAL
WHERE block_number >= (SELECT min(block_number) FROM ${database}.blocks WHERE $__timeFilter(block_time))
  AND block_number <= (SELECT max(block_number) FROM ${database}.blocks WHERE $__timeFilter(block_time)) AND $__timeFilter(block_time)
GROUP BY time, protocol ORDER BY time, protocol""", FORMAT_TIMESERIES)]),
        L.panel("Public vs private sandwiches per hour", timeseries.Panel(), [_sql(f"""
SELECT toStartOfHour(alert_time) AS time, if(order_flow = '', 'unknown', order_flow) AS order_flow, count() AS sandwiches
FROM {_SANDWICHES_IN}
GROUP BY time, order_flow ORDER BY time, order_flow""", FORMAT_TIMESERIES)],
                description="By the attack legs' order flow: public (all seen in our mempool before the block), private "
                            "(none), partly_private, unknown (no mempool: replays of files, or before it was watched)"),
        L.panel("Recent sandwiches", table.Panel(), [_sql(f"""
SELECT alert_time, block_number, stage, alert_id, attackers, profit_eth, victim_loss_eth
FROM {_SANDWICHES_IN}
ORDER BY block_number DESC, alert_id LIMIT 100""")], w=24, h=10),
        L.panel("Attested batches", table.Panel(), [_sql("""
SELECT batch_id, from_block, to_block, alert_count, root, tx_hash, gas_used, attest_chain_id, contract
FROM ${database}.attestations FINAL
WHERE $__timeFilter(attested_at)
ORDER BY batch_id DESC LIMIT 50""")], w=24, h=8, description="Verify any alert with: mevwatch verify ALERT_ID"),
    ]
    return _dashboard("mevwatch-mev", "mevwatch / MEV activity", "Sandwiches and their victims, from ClickHouse.", panels, "now-7d")


def pipeline() -> dict[str, Any]:
    L = _Layout()
    rate = "[$__rate_interval]"
    panels = [
        L.panel("Blocks and pending transactions / s", timeseries.Panel(), [
            _prom(f"sum(rate(mevwatch_blocks_processed_total{rate}))", "blocks"),
            _prom(f"sum(rate(mevwatch_pending_txs_seen_total{rate}))", "pending txs", "B")], unit="ops"),
        L.panel("Head lag", timeseries.Panel(), [_prom("max by (instance) (mevwatch_head_lag_seconds)", "{{instance}}")], unit="s"),
        L.panel("Detection latency", timeseries.Panel(), [
            _prom(f"histogram_quantile(0.5, sum by (le, source) (rate(mevwatch_detection_latency_seconds_bucket{rate})))", "p50 {{source}}"),
            _prom(f"histogram_quantile(0.99, sum by (le, source) (rate(mevwatch_detection_latency_seconds_bucket{rate})))", "p99 {{source}}", "B")],
                unit="s"),
        L.panel("Alerts by kind", timeseries.Panel(), [_prom(f"sum by (kind) (rate(mevwatch_alerts_total{rate}))", "{{kind}}")], unit="ops"),
        L.panel("Kafka consumer lag", timeseries.Panel(), [_prom("sum by (topic) (mevwatch_kafka_consumer_lag_records)", "{{topic}}")]),
        L.panel("Kafka produce errors, node reconnects, reorgs", timeseries.Panel(), [
            _prom("sum(increase(mevwatch_kafka_produce_errors_total[$__range]))", "produce errors"),
            _prom("sum(increase(mevwatch_node_reconnects_total[$__range]))", "reconnects", "B"),
            _prom("sum(increase(mevwatch_reorgs_total[$__range]))", "reorgs", "C"),
            _prom("sum(increase(mevwatch_reverted_blocks_total[$__range]))", "reverted blocks", "D")]),
        L.panel("ClickHouse insert latency", timeseries.Panel(), [
            _prom(f"histogram_quantile(0.99, sum by (le) (rate(mevwatch_clickhouse_insert_seconds_bucket{rate})))", "p99"),
            _prom(f"histogram_quantile(0.5, sum by (le) (rate(mevwatch_clickhouse_insert_seconds_bucket{rate})))", "p50", "B")], unit="s"),
        L.panel("ClickHouse insert failures", stat.Panel(), [_prom("sum(increase(mevwatch_clickhouse_insert_failures_total[$__range]))")],
                w=6, h=8),
        L.panel("Webhook outbox depth", stat.Panel(), [_prom("sum(mevwatch_webhook_outbox_depth)")], w=6, h=8),
        L.panel("Webhook deliveries by status", timeseries.Panel(), [
            _prom(f"sum by (status) (rate(mevwatch_webhook_deliveries_total{rate}))", "{{status}}")], unit="ops"),
        L.panel("Webhook latency p99", timeseries.Panel(), [
            _prom(f"histogram_quantile(0.99, sum by (le) (rate(mevwatch_webhook_delivery_seconds_bucket{rate})))", "p99")], unit="s"),
        L.panel("Attestation", timeseries.Panel(), [
            _prom("sum(increase(mevwatch_attestation_batches_total[$__range]))", "batches"),
            _prom("sum(increase(mevwatch_attestation_failures_total[$__range]))", "failures", "B"),
            _prom("sum(mevwatch_attestation_waiting_alerts)", "waiting alerts", "C")]),
        L.panel("Attestation gas", stat.Panel(), [_prom("sum(increase(mevwatch_attestation_gas_total[$__range]))")], w=6, h=8),
        L.panel("Since last attested batch", stat.Panel(), [
            _prom("time() - max(mevwatch_attestation_last_success_timestamp_seconds > 0)")], w=6, h=8, unit="s"),
    ]
    return _dashboard("mevwatch-pipeline", "mevwatch / Pipeline health", "Throughput, lag, latency and sinks, from Prometheus.",
                      panels, "now-6h")


def dashboards() -> dict[str, dict[str, Any]]:
    return {d["uid"]: d for d in (overview(), mev_activity(), pipeline())}


def render(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for uid, d in dashboards().items():
        p = out_dir / f"{uid}.json"
        p.write_text(render(d))
        paths.append(p)
    return paths


def queries(d: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, datasource type, query) of every target."""
    out = []
    for p in d["panels"]:
        for t in p["targets"]:
            kind = t["datasource"]["type"]
            out.append((p["title"], kind, t["expr"] if kind == "prometheus" else t["rawSql"]))
    return out


_TIME_FILTER = re.compile(r"\$__timeFilter\((\w+)\)")


def expand_sql(sql: str, from_s: int, to_s: int, database: str = DEFAULT_DATABASE) -> str:
    """The ClickHouse plugin's macros, as it expands them (seconds since the epoch), and the chain's database."""
    if not _IDENTIFIER.fullmatch(database):
        raise ValueError(f"not a ClickHouse database name: {database!r}")
    out = _TIME_FILTER.sub(lambda m: f"{m.group(1)} >= toDateTime({int(from_s)}) AND {m.group(1)} <= toDateTime({int(to_s)})", sql)
    out = out.replace(f"${{{DATABASE_VARIABLE}}}", database)
    if "$" in out:
        raise ValueError(f"unexpanded macro or variable in {out!r}")
    return out


def expand_promql(expr: str, rate_interval: str = "1m", range_: str = "1h", chain: str = CHAIN_ALL) -> str:
    """Grafana's variables in PromQL: ``$__rate_interval``, ``$__range`` and the chain (a label regex; All = ``.*``)."""
    quoted = chain.replace("\\", "\\\\").replace('"', '\\"')  # inside the matcher's double-quoted string
    out = expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)
    if re.search(rf"\$(?!{CHAIN_VARIABLE}\b)", out):
        raise ValueError(f"unexpanded variable in {out!r}")
    return out.replace(f"${CHAIN_VARIABLE}", quoted)
