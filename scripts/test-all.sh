#!/usr/bin/env bash
# Installs everything (package, test tools, local services) and runs the whole test suite.
# The tests start and stop the services themselves (tests/services.py), on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
# lint and type checks first (configured in pyproject.toml); set -e stops the script if either fails
bash scripts/lint.sh
exec .venv/bin/pytest -q "$@"
