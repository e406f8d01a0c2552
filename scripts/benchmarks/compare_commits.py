"""Is a change slower, and does it keep the bits? One serial step of a preset, timed on an
older commit and on the working tree, interleaved round by round, in one run.

    python scripts/benchmarks/compare_commits.py a436735 --model mnist-conv --batch 100

Each round starts a fresh process per version (PYTHONPATH at that version's checkout,
made with `git worktree` in a temporary folder) that times ``--steps`` gradient steps
after one warm-up and prints their median and a digest of the step's gradient. Prints
every round, the medians and whether both versions computed the same gradient bytes
(a kernel change that keeps them needs no rerun of the results). Not a test: it
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"

TIMER = """
import hashlib, statistics, sys, time
import numpy as np
from partrain.data import open_data
from partrain.engine import make_engine
from partrain.presets import PRESETS, build_model
model, batch, steps, data_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dataset = PRESETS[model].dataset
folder = data_dir + "/" + ("mnist" if dataset == "mnist32" else dataset)
data = open_data(dataset=dataset, data_dir=folder)
X, y = data.train
m = build_model(model, input_shape=X.shape[1:], num_classes=data.num_classes)
engine = make_engine(m, {"train": (X, y)}, 8, workers=1, max_batch=batch)
idx = np.arange(batch)
engine.start()
engine.gradient(idx)
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    engine.gradient(idx)
    times.append(time.perf_counter() - t0)
print(hashlib.sha256(engine.grad.tobytes()).hexdigest()[:16])
engine.close()
print(statistics.median(times))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", help="the commit to compare the working tree with")
    p.add_argument("--model", default="mnist-conv")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data-dir", default=str(DATA))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp, "old")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old),
                        args.old], check=True)
        try:
            versions = {args.old: old, "working tree": ROOT}
            times = {k: [] for k in versions}
            digests = {}
            for r in range(args.rounds):
                for label, path in versions.items():
                    out = subprocess.run(
                        [sys.executable, "-c", TIMER, args.model, str(args.batch),
                         str(args.steps), args.data_dir], capture_output=True, text=True,
                        check=True, env=dict(os.environ, PYTHONPATH=str(path)),
                        # `python -c` puts the current folder first on sys.path, ahead of
                        # PYTHONPATH: run each version in its own checkout
                        cwd=str(path))
                    digest, seconds = out.stdout.strip().splitlines()[-2:]
                    times[label].append(float(seconds))
                    digests[label] = digest
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1] * 1e3:.2f} ms"
                                                     for k, v in times.items()))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)])
    print(f"{args.model} batch {args.batch}, serial step, median of {args.rounds} rounds: "
          + ", ".join(f"{k} {statistics.median(v) * 1e3:.2f} ms" for k, v in times.items()))
    same = len(set(digests.values())) == 1
    print("gradient bytes: " + ("the same in both versions" if same else
                                "DIFFERENT (" + ", ".join(f"{k} {v}" for k, v in digests.items())
                                + ")"))


if __name__ == "__main__":
    main()
