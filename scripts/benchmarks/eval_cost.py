"""Does evaluating slow training down? Step time with and without evaluations, the
seconds an evaluation takes on 1 and 2 workers, and peak memory.

    python scripts/benchmarks/eval_cost.py --data-dir ../shared/data/catvnoncat --rounds 3

Full-batch lenet5-cat, 12 steps per run, interleaved rounds of: 2 workers evaluating
every step (train and test splits), 2 workers evaluating only at the end, and 1 worker
evaluating every step. Medians over rounds -> results/eval_cost.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIGS = {"2 workers, evaluate every step": ["--workers", "2", "--eval-every", "1"],
           "2 workers, evaluate at the end": ["--workers", "2", "--eval-every", "1000"],
           "1 worker, evaluate every step": ["--workers", "1", "--eval-every", "1"]}


def run(extra, data_dir, steps):
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "partrain.cli", "train", "--model", "lenet5-cat",
               "--dataset", "catvnoncat", "--data-dir", data_dir, "--steps", str(steps),
               "--no-progress", "--out", str(Path(tmp) / "run"), *extra]
        subprocess.run(cmd, check=True, capture_output=True)
        return json.loads((Path(tmp) / "run" / "metrics.json").read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/catvnoncat")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--out", default="results")
    args = p.parse_args()
    samples = {k: [] for k in CONFIGS}
    for r in range(args.rounds):
        for name, extra in CONFIGS.items():
            samples[name].append(run(extra, args.data_dir, args.steps))
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
    med = lambda name, key: statistics.median(m[key] for m in samples[name])   # noqa: E731
    rows = ["| configuration | s/step (median) | s per evaluation | coordinator peak RSS (MiB) "
            "| worker peak RSS (MiB) |", "|---|---:|---:|---:|---:|"]
    summary = {}
    for name in CONFIGS:
        rss = samples[name][-1]["peak_rss_mib"]
        summary[name] = dict(step=med(name, "seconds_per_step_median"),
                             eval=med(name, "eval_seconds_median"), rss=rss)
        rows.append(f"| {name} | {summary[name]['step']:.4f} | {summary[name]['eval']:.3f} | "
                    f"{rss['coordinator']} | {', '.join(map(str, rss['workers'])) or '-'} |")
    cmd = (f"python scripts/benchmarks/eval_cost.py --data-dir {args.data_dir} "
           f"--rounds {args.rounds}")
    text = "\n".join(["# Evaluation cost (full-batch lenet5-cat, 209 train + 50 test images)", "",
                      f"`{cmd}`: {args.steps} steps per run, medians over {args.rounds} "
                      "interleaved rounds. An evaluation covers the train and test splits, "
                      "as forward-only chunks on the workers.", "", *rows, ""])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval_cost.md").write_text(text)
    (out / "eval_cost.json").write_text(json.dumps(dict(summary=summary, command=cmd), indent=2))
    print(text)


if __name__ == "__main__":
    main()
