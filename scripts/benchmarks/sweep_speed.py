"""How much faster a sweep is than running its candidates one after another.

    python scripts/benchmarks/sweep_speed.py                # 8 candidates, 3 rounds

Eight small candidates (lenet5 on digits32, a grid of 4 learning rates x 2 seeds), in
each round, in turn:

* **one after another**: eight ``partrain train`` commands, as a user or the old
  ``reproduce.py`` ran them (each with the default ``--workers auto``);
* **sweep --jobs 1**: ``partrain sweep`` running them one at a time in one process (what
  start-up alone saves);
* **sweep**: ``partrain sweep`` with its defaults (one run per core).

Medians over rounds of wall time, and the sweep's ratio to one after another, go to
results/sweeps/<machine>.md and .json; every candidate's parameters are checked to be
the same bytes in all three. Not a test: it asserts nothing but the bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = ["--model", "lenet5", "--dataset", "digits32", "--batch-size", "32", "--val-split",
        "0.1", "--eval-every", "25"]
LRS, SEEDS = ["0.01", "0.02", "0.05", "0.1"], ["0", "1"]


def cli(*args):
    subprocess.run([sys.executable, "-m", "partrain.cli", *args, "--no-progress"], check=True,
                   capture_output=True)


def one_after_another(folder, steps):
    for i, (lr, seed) in enumerate((lr, s) for lr in LRS for s in SEEDS):
        cli("train", *BASE, "--steps", str(steps), "--lr", lr, "--seed", seed, "--out",
            str(folder / f"{i:02d}-lr={lr}-seed{seed}"))


def sweep(folder, steps, *extra):
    cli("sweep", *BASE, "--steps", str(steps), "--grid", "lr=" + ",".join(LRS), "--seeds",
        ",".join(SEEDS), "--out", str(folder), *extra)


def params(folder):
    from partrain.testing import h5_arrays

    return {p.parent.name: h5_arrays(p) for p in sorted(folder.glob("*/model.h5"))}


def main():
    from partrain.machine import physical_cores

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--out", default=str(ROOT / "results" / "sweeps"))
    args = p.parse_args()
    ways = {"one after another": lambda d: one_after_another(d, args.steps),
            "sweep --jobs 1": lambda d: sweep(d, args.steps, "--jobs", "1"),
            "sweep": lambda d: sweep(d, args.steps)}
    times = {k: [] for k in ways}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            bits = {}
            for name, run in ways.items():
                folder = Path(tmp, name.replace(" ", "_"))
                shutil.rmtree(folder, ignore_errors=True)
                t0 = time.perf_counter()
                run(folder)
                times[name].append(time.perf_counter() - t0)
                bits[name] = params(folder)
            same = len({json.dumps(sorted(b), default=str) for b in bits.values()}) == 1 and \
                all(b == bits["sweep"] for b in bits.values())
            if not same:
                raise SystemExit("sweep_speed: the candidates' bytes differ between the ways")
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
                  file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    cores = physical_cores()
    result = dict(cores=cores, rounds=args.rounds, steps=args.steps, candidates=8,
                  median_seconds=med, samples=times,
                  ratio_sweep_to_one_after_another=med["sweep"] / med["one after another"],
                  ratio_sweep_to_jobs_1=med["sweep"] / med["sweep --jobs 1"],
                  command="python scripts/benchmarks/sweep_speed.py " + " ".join(sys.argv[1:]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{cores}-core"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = "\n".join([
        f"# A sweep of 8 candidates against running them one after another ({cores} cores)",
        "", f"`{result['command'].strip()}`: lenet5 on digits32, {args.steps} steps of batch "
        f"32 each, lr in {{{', '.join(LRS)}}} x seeds {{{', '.join(SEEDS)}}}; medians over "
        f"{args.rounds} interleaved rounds of wall time. Every candidate's parameters were "
        "the same bytes in all three ways.", "",
        "| way | wall time, s | ratio to one after another |", "|---|---:|---:|",
        *[f"| {k} | {v:.1f} | {v / med['one after another']:.2f} |" for k, v in med.items()],
        ""])
    (out / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
