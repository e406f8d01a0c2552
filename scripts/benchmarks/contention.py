"""How much do W single-worker runs of a workload slow each other down? The ceiling of
any W-worker speedup for that workload on this machine (shared caches and memory), as
``hardware_ceiling`` is for independent GEMMs.

    python scripts/benchmarks/contention.py --model mnist-conv --batch 100 --rounds 3

Each round times one serial engine alone, then W of them at once in separate processes
(serial steps of the preset on its dataset, chunks of 8); prints the median step of
each and the slowdown of the slowest. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def serial_step_seconds(model, batch, steps, data_root, queue):
    import numpy as np

    from partrain.data import open_data
    from partrain.engine import make_engine
    from partrain.presets import PRESETS, build_model

    dataset = PRESETS[model].dataset
    folder = Path(data_root, "mnist" if dataset == "mnist32" else dataset)
    data = open_data(dataset=dataset, data_dir=str(folder))
    X, y = data.train
    batch = min(batch, len(X))
    m = build_model(model, input_shape=X.shape[1:], num_classes=data.num_classes)
    engine = make_engine(m, {"train": (X, y)}, 8, workers=1, max_batch=batch)
    idx = np.arange(batch)
    engine.start()
    for _ in range(3):
        engine.gradient(idx)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        engine.gradient(idx)
        times.append(time.perf_counter() - t0)
    engine.close()
    queue.put(statistics.median(times))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mnist-conv")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--runs", type=int, default=2, help="runs at once (default 2)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data-root", default=str(DATA))
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    job = (args.model, args.batch, args.steps, args.data_root)
    slowdowns = []
    for r in range(args.rounds):
        queue = ctx.Queue()
        one = ctx.Process(target=serial_step_seconds, args=(*job, queue))
        one.start()
        alone = queue.get()
        one.join()
        procs = [ctx.Process(target=serial_step_seconds, args=(*job, queue))
                 for _ in range(args.runs)]
        for proc in procs:
            proc.start()
        together = [queue.get() for _ in procs]
        for proc in procs:
            proc.join()
        slowdowns.append(max(together) / alone)
        print(f"round {r + 1}: alone {alone * 1e3:.2f} ms a step; {args.runs} at once "
              + ", ".join(f"{t * 1e3:.2f}" for t in together)
              + f" ms; slowest {slowdowns[-1]:.2f}x", flush=True)
    print(f"{args.model} batch {args.batch}: {args.runs} runs at once take "
          f"{statistics.median(slowdowns):.2f}x the time of one (median of {args.rounds})")


if __name__ == "__main__":
    main()
