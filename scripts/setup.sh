#!/usr/bin/env bash
# Installs mevwatch into ./.venv (Python >= 3.11), compiled with mypyc.
#   scripts/setup.sh          the package, its runtime dependencies, the graph model's extra (torch), the
#                             embedded store's (chDB) and anvil (for `mevwatch demo`)
#   scripts/setup.sh --all    also test tools and the local services the tests start:
#                             Apache Kafka (Maven Central jars) and anvil (npm)
# Idempotent; downloads are cached (pip cache, ~/.m2, .services/).
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=0
[[ "${1:-}" == "--all" ]] && ALL=1

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "mevwatch needs Python >= 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [[ $ALL == 1 ]]; then
  .venv/bin/python -m pip install -q ".[dev,gnn,embedded]"
  bash scripts/services/install.sh
else
  .venv/bin/python -m pip install -q ".[gnn,embedded]"
  bash scripts/services/install.sh --anvil-only
fi
echo "mevwatch installed: $(.venv/bin/mevwatch version)"
