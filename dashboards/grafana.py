"""Operating the dashboards: push them to a Grafana, and check every panel's query against
the real Prometheus and ClickHouse they read.

``push`` uses grafana-client (Grafana's HTTP API: the folder, then each dashboard with
``overwrite``). ``check`` runs each panel's query the way Grafana would (macros expanded by
dashboards/build.py) and reports, per panel, the series or rows it returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mevwatch.dashboards.build import CHAIN_ALL, DEFAULT_DATABASE, dashboards, expand_promql, expand_sql, queries
from mevwatch.monitor.errors import MevwatchError

FOLDER_UID = "mevwatch"


def push(url: str, token: str, *, folder: str = "mevwatch", timeout: float = 10.0) -> list[str]:
    """Create or update every dashboard in ``folder``; returns their URLs in Grafana."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    out = []
    try:
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaClientError as exc:
            if getattr(exc, "status_code", None) != 404:
                raise
            api.folder.create_folder(folder, uid=FOLDER_UID)
        for d in dashboards().values():
            r = api.dashboard.update_dashboard({"dashboard": d, "folderUid": FOLDER_UID, "overwrite": True,
                                                "message": "mevwatch dashboards push"})
            out.append(str(r.get("url", d["uid"])))
    except (GrafanaException, OSError) as exc:
        raise MevwatchError(f"Grafana at {url} refused the dashboards: {str(exc)[:300]}") from None
    except Exception as exc:  # noqa: BLE001 - connection errors of the HTTP client
        raise MevwatchError(f"cannot reach Grafana at {url}: {type(exc).__name__}") from None
    return out


@dataclass
class PanelCheck:
    dashboard: str
    panel: str
    source: str
    results: int  # series (Prometheus) or rows (ClickHouse); -1 on error
    error: str | None = None


def prom_query(base: str, expr: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    import orjson
    import urllib.parse
    import urllib.request

    url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body = orjson.loads(r.read())
    if body.get("status") != "success":
        raise MevwatchError(f"Prometheus: {body.get('error')}")
    return body["data"]["result"]


def check(*, prometheus: str | None, store: Any | None, from_s: int | None = None, to_s: int | None = None,
          rate_interval: str = "1m", range_: str = "1h", chain: str = CHAIN_ALL) -> list[PanelCheck]:
    """Run every panel's query against the given backends (a missing backend skips its panels).

    The dashboards' chain variables take the store's own database (ClickHouse) and ``chain``, a regex on the
    ``chain`` label (Prometheus; All by default)."""
    database = str(getattr(getattr(store, "backend", None), "database", DEFAULT_DATABASE))
    to_s = to_s if to_s is not None else int(time.time())
    from_s = from_s if from_s is not None else to_s - 7 * 86400
    out = []
    for uid, d in dashboards().items():
        for title, kind, q in queries(d):
            if kind == "prometheus":
                if prometheus is None:
                    continue
                try:
                    res = prom_query(prometheus, expand_promql(q, rate_interval, range_, chain))
                    # a series whose every value is NaN (a quantile of nothing) shows nothing
                    n = sum(1 for s in res if s.get("value", [0, "NaN"])[1] not in ("NaN", "+Inf", "-Inf"))
                    out.append(PanelCheck(uid, title, "prometheus", n))
                except Exception as exc:  # noqa: BLE001
                    out.append(PanelCheck(uid, title, "prometheus", -1, str(exc)[:300]))
            else:
                if store is None:
                    continue
                try:
                    rows = store.backend.query(expand_sql(q, from_s, to_s, database))
                    out.append(PanelCheck(uid, title, "clickhouse", len(rows)))
                except Exception as exc:  # noqa: BLE001
                    out.append(PanelCheck(uid, title, "clickhouse", -1, str(exc)[:300]))
    return out
