"""What the coordinator costs per step, in one interleaved run on this machine.

    python scripts/benchmarks/coordination.py [--rounds 5]

* lenet5, batch 32, on 2 worker processes: the coordinator's share of a step
  (``engine.stats.overhead``: the step's wall time less the slowest worker's compute)
  when it adds the chunk gradients itself (the default for gradients this small) and
  when the workers add them by parameter range (a second round trip);
* digits123, batch 32 (a model of 69 numbers): a step on the serial engine against 2
  worker processes, and the count ``workers="auto"`` picks for it;
* mnist-conv, batch 100 (13 chunks of 202,620 parameters), on 2 workers, the
  coordinator adding against the workers adding by range, when ../shared/data/mnist
  is there.

Medians over rounds that interleave every configuration. Writes
results/scaling/<machine>/coordination.md and prints it. Not a test: it asserts nothing.
"""

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from many_cores import DATA, ROOT, machine_name  # noqa: E402  (the same machine folder)

from partrain.engine import make_engine  # noqa: E402
from partrain.presets import build_model  # noqa: E402
from partrain.testing import data_for  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=100, help="timed steps per round")
    args = p.parse_args(argv)
    X32, y32 = data_for("digits32").train
    X123, y123 = data_for("digits123").train
    idx = np.arange(32)
    engines = {
        "lenet5 b32, 2 workers, coordinator adds": make_engine(
            build_model("lenet5", input_shape=X32.shape[1:], num_classes=10),
            {"train": (X32, y32)}, 8, backend="process", workers=2, max_batch=32),
        "lenet5 b32, 2 workers, workers add": make_engine(
            build_model("lenet5", input_shape=X32.shape[1:], num_classes=10),
            {"train": (X32, y32)}, 8, backend="process", workers=2, max_batch=32),
        "digits123 b32, serial": make_engine(
            build_model("digits123"), {"train": (X123, y123)}, 8, backend="serial",
            max_batch=32),
        "digits123 b32, 2 workers": make_engine(
            build_model("digits123"), {"train": (X123, y123)}, 8, backend="process",
            workers=2, max_batch=32),
    }
    engines["lenet5 b32, 2 workers, workers add"].local_reduce_elements = 0
    batches = dict.fromkeys(engines, idx)
    mnist = DATA / "mnist"
    if mnist.is_dir():   # a gradient of 13 x 202,620 chunk-elements: who should add it?
        from partrain.data import open_data

        data = open_data(dataset="mnist", data_dir=str(mnist))
        Xm, ym = data.train
        for who in ("coordinator adds", "workers add"):
            key = f"mnist-conv b100, 2 workers, {who}"
            engines[key] = make_engine(
                build_model("mnist-conv", input_shape=Xm.shape[1:], num_classes=10),
                {"train": (Xm, ym)}, 8, backend="process", workers=2, max_batch=100)
            engines[key].local_reduce_elements = 10**12 if who == "coordinator adds" else 0
            batches[key] = np.arange(100)
    auto = make_engine(build_model("digits123"), {"train": (X123, y123)}, 8, max_batch=32)
    walls = {k: [] for k in engines}
    overheads = {k: [] for k in engines}
    try:
        for key, e in engines.items():
            e.start()
            e.gradient(batches[key])
        for _ in range(args.rounds):
            for key, e in engines.items():
                for _ in range(args.steps):
                    e.gradient(batches[key])
                    walls[key].append(e.stats.wall)
                    overheads[key].append(e.stats.overhead)
    finally:
        for e in engines.values():
            e.close()
    lines = ["# What the coordinator costs per step", "",
             f"`python scripts/benchmarks/coordination.py --rounds {args.rounds} --steps "
             f"{args.steps}`: medians of "
             f"{args.rounds} x {args.steps} steps per configuration, interleaved, ms.", "",
             "| configuration | step | coordinator's share |", "|---|---:|---:|"]
    for key in engines:
        lines.append(f"| {key} | {1e3 * statistics.median(walls[key]):.3f} | "
                     f"{1e3 * statistics.median(overheads[key]):.3f} |")
    lines += ["", f"`workers=\"auto\"` picks {auto.workers} for digits123 at batch 32.", ""]
    out = ROOT / "results" / "scaling" / machine_name()[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "coordination.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
