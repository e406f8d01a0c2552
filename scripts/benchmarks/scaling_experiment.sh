#!/usr/bin/env bash
# The scaling experiments behind results/scaling/ and the README's figures.
# Usage: scripts/benchmarks/scaling_experiment.sh [DATA_ROOT]   (default ../shared/data)
# Not a test: timings depend on the machine and its load; rerun to regenerate.
set -euo pipefail
data=${1:-"$(dirname "$0")/../../../shared/data"}
cores=$(python -c "import psutil; print(psutil.cpu_count(logical=False))")
workers=$(seq -s, 1 "$cores")
out="$(dirname "$0")/../../results/scaling"   # the committed figures: replaced on purpose
# Issue 3/4 headline: full-batch LeNet-5 (seed 000), float32 and float64.
partrain scale --model lenet5-cat --dataset catvnoncat --data-dir "$data/catvnoncat" \
    --workers "$workers" --dtype float32 --rounds 5 --steps 3 --out "$out" --overwrite
partrain scale --model lenet5-cat --dataset catvnoncat --data-dir "$data/catvnoncat" \
    --workers "$workers" --dtype float64 --rounds 3 --steps 2 --out "$out" --overwrite
# Seed 004's minibatch run: batch 100, and a larger batch for the cost model.
partrain scale --model mnist-conv --dataset mnist --data-dir "$data/mnist" \
    --workers "$workers" --batch-sizes 100,400 --dtype float32 --rounds 5 --steps 5 \
    --out "$out" --overwrite
