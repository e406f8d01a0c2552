"""How much do W single-worker runs of a workload slow each other down? The ceiling of
any W-worker speedup for that workload on this machine (shared caches and memory), as
``hardware_ceiling`` is for independent GEMMs.

    python scripts/benchmarks/contention.py --model mnist-conv --batch 100 --rounds 3

Each round times one serial engine alone, then W of them at once in separate processes
(compare_commits.py's timer: serial steps of the preset on its dataset, chunks of 8);
prints the median step of each and the slowdown of the slowest. Not a test: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare_commits import DATA, ROOT, TIMER  # noqa: E402  (one serial-step timer)


def step_seconds_at_once(runs, model, batch, steps, data_dir):
    """Median serial step of each of ``runs`` processes started together, seconds."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", TIMER, model, str(batch), str(steps),
                               data_dir], stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
                              env=env) for _ in range(runs)]
    outputs = [proc.communicate()[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise SystemExit("a timing process failed (is the dataset under --data-dir?)")
    return [float(out.strip().splitlines()[-1]) for out in outputs]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mnist-conv")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--runs", type=int, default=2, help="runs at once (default 2)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data-dir", default=str(DATA))
    args = p.parse_args()
    job = (args.model, args.batch, args.steps, args.data_dir)
    slowdowns = []
    for r in range(args.rounds):
        [alone] = step_seconds_at_once(1, *job)
        together = step_seconds_at_once(args.runs, *job)
        slowdowns.append(max(together) / alone)
        print(f"round {r + 1}: alone {alone * 1e3:.2f} ms a step; {args.runs} at once "
              + ", ".join(f"{t * 1e3:.2f}" for t in together)
              + f" ms; slowest {slowdowns[-1]:.2f}x", flush=True)
    print(f"{args.model} batch {args.batch}: {args.runs} runs at once take "
          f"{statistics.median(slowdowns):.2f}x the time of one (median of {args.rounds})")


if __name__ == "__main__":
    main()
