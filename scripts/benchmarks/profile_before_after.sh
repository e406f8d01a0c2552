#!/usr/bin/env bash
# Where a chunk's time goes, before and after a change: scripts/benchmarks/profile_layers.py
# on an older commit and on the working tree, alternating model by model (one core,
# chunks of 8, float32), written as OUT/<model>-chunk8-before.txt and -after.txt.
#
#   bash scripts/benchmarks/profile_before_after.sh OLD_REV [OUT] [REPEATS]
#
# OUT defaults to results/profile, REPEATS to 40. The old commit runs from a temporary
# `git worktree` with its own profile_layers.py. A benchmark, not a test.
set -euo pipefail
old=$1
out=$(realpath -m "${2:-results/profile}")
repeats=${3:-40}
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
cleanup() { git -C "$root" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
git -C "$root" worktree add --detach -q "$tmp/old" "$old"
mkdir -p "$out"
for model in lenet5 mnist-conv convnet3 lenet5-cat; do
  for side in before after; do
    checkout=$root
    [ "$side" = before ] && checkout=$tmp/old
    (cd "$checkout" && PYTHONPATH="$checkout" python scripts/benchmarks/profile_layers.py \
      --model "$model" --repeats "$repeats") > "$out/$model-chunk8-$side.txt"
  done
  echo "$model: $(tail -1 "$out/$model-chunk8-before.txt" | sed 's/.*: //') -> $(tail -1 "$out/$model-chunk8-after.txt" | sed 's/.*: //')"
done
