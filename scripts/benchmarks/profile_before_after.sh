#!/usr/bin/env bash
# Where a chunk's time goes, before and after a change: scripts/benchmarks/profile_layers.py
# on an older commit and on the working tree (one core, chunks of 8, float32), each
# model ROUNDS times, before and after alternating. For each side the round with the
# median total is kept, as OUT/<model>-chunk8-before.txt and -after.txt; every round's
# total is printed.
#
#   bash scripts/benchmarks/profile_before_after.sh OLD_REV [OUT] [REPEATS] [ROUNDS]
#
# OUT defaults to results/profile, REPEATS (chunks timed per run) to 40, ROUNDS to 5.
# The old commit runs from a temporary `git worktree` with its own profile_layers.py.
# A benchmark, not a test.
set -euo pipefail
old=$1
out=$(realpath -m "${2:-results/profile}")
repeats=${3:-40}
rounds=${4:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
cleanup() { git -C "$root" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
git -C "$root" worktree add --detach -q "$tmp/old" "$old"
mkdir -p "$out"
total() { tail -1 "$1" | sed 's/.*: \([0-9.]*\) ms per chunk.*/\1/'; }
for model in lenet5 mnist-conv convnet3 lenet5-cat; do
  for round in $(seq "$rounds"); do
    for side in before after; do
      checkout=$root
      [ "$side" = before ] && checkout=$tmp/old
      (cd "$checkout" && PYTHONPATH="$checkout" python scripts/benchmarks/profile_layers.py \
        --model "$model" --repeats "$repeats") > "$tmp/$model-$side-$round.txt"
    done
  done
  line="$model, ms per chunk:"
  for side in before after; do
    totals=$(for f in "$tmp/$model-$side-"*.txt; do echo "$(total "$f") $f"; done | sort -n)
    median=$(echo "$totals" | sed -n "$(( (rounds + 1) / 2 ))p" | cut -d' ' -f2)
    cp "$median" "$out/$model-chunk8-$side.txt"
    line="$line $side $(echo "$totals" | cut -d' ' -f1 | tr '\n' ' ')(median $(total "$median"))"
  done
  echo "$line"
done
