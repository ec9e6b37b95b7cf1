#!/usr/bin/env bash
# Static checks of the whole tree: ruff (style, errors) and mypy (types).
# mypy checks the installed names (mevwatch.monitor, ...): build/typecheck/mevwatch/ links each
# top-level folder under the namespace, so the checked files are the repository's own.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
mkdir -p build/typecheck/mevwatch
for top in monitor streams models sim dashboards; do
  ln -sfn "../../../$top" "build/typecheck/mevwatch/$top"
done
MYPYPATH=build/typecheck .venv/bin/mypy -p mevwatch.monitor -p mevwatch.streams -p mevwatch.models -p mevwatch.sim -p mevwatch.dashboards
