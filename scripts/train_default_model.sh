#!/usr/bin/env bash
# Rebuilds the shipped model, models/default/model.pt (+ model.json), with the project's own
# commands: lab exports for seeds 101-106 (40 blocks each) plus the recorded mainnet blocks
# (weak labels from the exact rules), 20 epochs, seed 0, CPU. Held-out evaluation: seeds
# 201-203 (`mevwatch eval`). Needs `scripts/setup.sh --all` (anvil, the gnn extra).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MEVWATCH_DATA:-../shared/data}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
args=()
for s in 101 102 103 104 105 106; do
  .venv/bin/mevwatch --log-level WARNING sim export --blocks 40 --seed "$s" --out "$WORK/seed$s"
  args+=(--data "$WORK/seed$s")
done
.venv/bin/mevwatch --log-level WARNING train "${args[@]}" --data "$DATA/mainnet-traces" \
  --out models/default/model.pt --epochs 20 --seed 0 --device cpu
for s in 201 202 203; do
  .venv/bin/mevwatch --log-level WARNING sim export --blocks 40 --seed "$s" --out "$WORK/eval$s"
done
held=(--data "$WORK/eval201" --data "$WORK/eval202" --data "$WORK/eval203")
# the per-role report (docs/model-eval/report.md and its plots)
.venv/bin/mevwatch --log-level WARNING eval --roles --model models/default/model.pt "${held[@]}" --out docs/model-eval \
  --device cpu > /dev/null
sed -i "s|$WORK/||g" docs/model-eval/report.md  # the exports' names, not this run's temporary folder
# the shipped model through the alert path (rules, token-flow rules, model, fused), as recorded and perturbed
.venv/bin/mevwatch --log-level WARNING eval --model models/default/model.pt "${held[@]}" \
  --json docs/model-eval/shipped-classic.json --out "$WORK/ev" > /dev/null
cp "$WORK/ev/report.md" docs/model-eval/shipped-classic.md
# the classic lab's per-variant table (docs/model-eval/alert-path.md's figures)
.venv/bin/python -m mevwatch.models.alert_eval --model --json docs/model-eval/alert-path.json \
  "$WORK/eval201" "$WORK/eval202" "$WORK/eval203"
sed -i "s|$WORK/||g" docs/model-eval/alert-path.json
