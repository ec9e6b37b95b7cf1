#!/usr/bin/env bash
# Prepares the Helm chart helm/mevwatch: copies the dashboards (dashboards/json/*.json) and the
# alert rules (dashboards/prometheus/rules.yml) into helm/mevwatch/generated/, where the chart's
# templates read them. dashboards/ is their one source; the copies are not committed (.gitignore),
# so run this before any helm package, install, template or lint of helm/mevwatch.
#   scripts/package-chart.sh                      copy only (then: helm install mev helm/mevwatch ...)
#   scripts/package-chart.sh package [FLAGS...]   copy, then `helm package helm/mevwatch
#                                                 --destination dist FLAGS...` (e.g. --version 0.1.1)
# helm: $HELM, else helm on PATH, else the one scripts/services/install.sh built.
set -euo pipefail
cd "$(dirname "$0")/.."
CHART=helm/mevwatch

PY=${PYTHON:-}
if [[ -z $PY ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
"$PY" dashboards/chart.py "$CHART" >/dev/null  # stdlib only: any python3 will do
echo "synced dashboards/json/*.json and dashboards/prometheus/rules.yml into $CHART/generated/"

[[ "${1:-}" == "package" ]] || exit 0
shift
HELM=${HELM:-}
if [[ -z $HELM ]]; then
  if command -v helm >/dev/null; then
    HELM=helm
  else
    HELM=$(ls -d "${MEVWATCH_SERVICES:-$HOME/.cache/mevwatch/services}"/helm/*/helm 2>/dev/null | sort -V | tail -1 || true)
  fi
fi
if [[ -z $HELM || ! -x $(command -v "$HELM" || true) ]]; then
  echo "helm not found: set HELM=/path/to/helm or run scripts/services/install.sh" >&2
  exit 1
fi
"$HELM" package "$CHART" --destination dist "$@"
