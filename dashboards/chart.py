"""Copy the dashboards and alert rules into the Helm chart before it is packaged or rendered.

``dashboards/`` is the one source: ``dashboards/json/*.json`` (built by
:mod:`dashboards.build`) and ``dashboards/prometheus/rules.yml``. Helm reads only files inside
the chart directory, so :func:`sync_chart` copies them to ``generated/dashboards/`` and
``generated/rules.yml`` of the chart, where its templates read them. Those copies are not committed
(.gitignore); ``scripts/package-chart.sh`` and tests/deploy/test_helm.py run this first.

    python dashboards/chart.py [CHART_DIR]      # default helm/mevwatch (standard library only)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
JSON_DIR = HERE / "json"  # what dashboards/build.py writes
RULES = HERE / "prometheus" / "rules.yml"
CHART_DIR = HERE.parent / "helm" / "mevwatch"


def _write(dst: Path, data: bytes) -> None:
    """Write ``dst`` only when it differs, through a temporary file and a rename."""
    if dst.is_file() and dst.read_bytes() == data:
        return
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync_chart(chart_dir: Path | str = CHART_DIR) -> list[Path]:
    """Make ``chart_dir/generated`` hold exactly the built dashboards and the rules; returns the chart's files."""
    chart_dir = Path(chart_dir)
    if not (chart_dir / "Chart.yaml").is_file():
        raise FileNotFoundError(f"{chart_dir} is not a Helm chart (no Chart.yaml)")
    sources = sorted(JSON_DIR.glob("*.json"))
    if not sources:
        raise FileNotFoundError(f"no dashboards in {JSON_DIR}: run mevwatch dashboards export {JSON_DIR}")
    dash_dir = chart_dir / "generated" / "dashboards"
    dash_dir.mkdir(parents=True, exist_ok=True)
    names = {src.name for src in sources}
    for stale in dash_dir.glob("*.json"):  # a dashboard removed from dashboards/ leaves the chart too
        if stale.name not in names:
            stale.unlink()
    out = []
    for src in sources:
        _write(dash_dir / src.name, src.read_bytes())
        out.append(dash_dir / src.name)
    _write(chart_dir / "generated" / "rules.yml", RULES.read_bytes())
    out.append(chart_dir / "generated" / "rules.yml")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python -m dashboards.chart [CHART_DIR]", file=sys.stderr)
        return 2
    for p in sync_chart(args[0] if args else CHART_DIR):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
