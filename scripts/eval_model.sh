#!/usr/bin/env bash
# The evaluation of docs/model-eval/lab-v2.md, with the project's own commands: lab v2 exports of the
# training families (train ranges, seeds 301-304) and of the held-out families (held-out ranges,
# seeds 401-403), then `mevwatch eval` training the graph model and the per-transaction baseline on
# three seeds (with the tip/gas ablation), under the three conditions; then the shipped model on the
# same held-out exports, and an in-family control (training-family exports, other seeds); the same
# in transfers-only mode (models trained and run on token-transfer graphs); and the real recorded
# blocks split by block into 4 folds, a model per fold and seed trained on the lab exports plus the
# other folds' blocks (each once), full decoders and transfers only.
# Needs `scripts/setup.sh --all` (anvil, the gnn extra). About 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/model-eval}
BLOCKS=${BLOCKS:-30}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mw() { .venv/bin/mevwatch --log-level WARNING "$@"; }
train=()
for s in 301 302 303 304; do
  mw sim export --blocks "$BLOCKS" --seed "$s" --family train --ranges train --out "$WORK/train$s"
  train+=(--train "$WORK/train$s")
done
held=()
for s in 401 402 403; do
  mw sim export --blocks "$BLOCKS" --seed "$s" --family heldout --ranges heldout --out "$WORK/heldout$s"
  held+=(--data "$WORK/heldout$s")
done
mw eval "${train[@]}" "${held[@]}" --seeds 0,1,2 --ablate --json "$OUT/lab-v2.json" --out "$WORK/ev" > /dev/null
cp "$WORK/ev/report.md" "$OUT/lab-v2-report.md"
mw eval "${held[@]}" --json "$OUT/lab-v2-shipped.json" --out "$WORK/ev2" > /dev/null
cp "$WORK/ev2/report.md" "$OUT/lab-v2-shipped-report.md"
for s in 501 502; do
  mw sim export --blocks "$BLOCKS" --seed "$s" --family train --ranges train --out "$WORK/infam$s"
done
mw eval "${train[@]}" --data "$WORK/infam501" --data "$WORK/infam502" --same-families --seeds 0,1,2 \
  --conditions recorded,tips --json "$OUT/lab-v2-in-family.json" --out "$WORK/ev3" > /dev/null
cp "$WORK/ev3/report.md" "$OUT/lab-v2-in-family-report.md"
mw eval "${train[@]}" "${held[@]}" --seeds 0,1,2 --decoders transfers --conditions recorded \
  --json "$OUT/lab-v2-transfers.json" --out "$WORK/ev4" > /dev/null
cp "$WORK/ev4/report.md" "$OUT/lab-v2-transfers-report.md"
DATA=${MEVWATCH_DATA:-../shared/data}
for dec in full transfers; do
  mw eval --blocks "$DATA/mainnet-traces" --folds 4 "${train[@]}" --seeds 0,1,2 --decoders "$dec" \
    --json "$OUT/real-blocks-$dec.json" --out "$WORK/blocks-$dec" > /dev/null
  cp "$WORK/blocks-$dec/report.md" "$OUT/real-blocks-$dec-report.md"
done
echo "wrote $OUT/lab-v2*.json and reports"
