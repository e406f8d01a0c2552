"""How partrain uses every core of this machine, against PyTorch, in one interleaved run.

    python scripts/benchmarks/many_cores.py                  # every physical core
    python scripts/benchmarks/many_cores.py --workers 1,2,4,8,16 --rounds 5

Measures, all in the same run (timings from different runs or machines are not
comparable; ratios within one run are):

* step time of each workload (lenet5-cat full batch, mnist-conv batch 100, lenet5 batch
  32 and 256) on 1..N workers and on ``auto``, medians over rounds that interleave every
  configuration, with PyTorch CPU as a user writes it (nn.Conv2d, pooling, Linear, SGD
  with momentum) on 1 thread and on N threads;
* PyTorch DistributedDataParallel over gloo with N processes (each its share of the
  batch), when torch is installed: one launch per workload after the rounds, timing
  ``steps x rounds`` steps (a launch of N torch processes costs more than all the rest);
* start-up: wall time of ``partrain train --steps 1`` on 1 worker and on N, and of the
  engine's start alone;
* the seed's 500-step lenet5-cat run end to end (``partrain train``, auto workers),
  against 500 PyTorch steps on N threads (their step time measured right before and
  right after it);
* the machine's ceiling: how much faster N processes run independent single-thread
  GEMMs than one.

Writes ``results/scaling/<machine>/`` (README.md table, results.json, scaling.png) and
prints the table; results.json is rewritten after each part, so a run cut short keeps what
it measured. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"   # --data-root replaces it

# PyTorch steps timed right before and right after the end-to-end run (their mean step
# time, times the run's steps, is what the run is compared with).
E2E_TORCH_STEPS = 30

# name: (preset, dataset, batch, timed steps per round)
WORKLOADS = {
    "lenet5-cat full": ("lenet5-cat", "catvnoncat", "full", 2),
    "mnist-conv b100": ("mnist-conv", "mnist", 100, 10),
    "lenet5 b32": ("lenet5", "mnist32", 32, 20),
    "lenet5 b256": ("lenet5", "mnist32", 256, 5),
}


def data_dir(dataset):
    return str(DATA / ("mnist" if dataset == "mnist32" else dataset))


def set_data_root(path):
    global DATA
    DATA = Path(path)


def machine_name():
    import psutil

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    vendor = "amd" if "AMD" in cpu else "intel" if "Intel" in cpu else platform.machine()
    return f"{psutil.cpu_count(logical=False)}-core-{vendor}", cpu


# -- PyTorch as a user writes it -----------------------------------------------------------

def torch_stepper(model, X, y, threads):
    """A function doing one PyTorch SGD-momentum step on (X, y) with ``threads``."""
    import torch

    from partrain.bench.torch_reference import to_torch

    net, loss_fn = to_torch(model)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y)

    def step():
        torch.set_num_threads(threads)
        opt.zero_grad()
        loss_fn(net(Xt), yt).backward()
        opt.step()
    return step


def ddp_rank(rank, world, port, preset, dataset, folder, batch, steps, out):
    """One DDP process: its 1/world share of the batch, gloo all-reduce, 1 thread."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from partrain.bench.torch_reference import to_torch
    from partrain.data import open_data
    from partrain.presets import build_model

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    data = open_data(dataset=dataset, data_dir=folder)
    X, y = data.train
    n = len(X) if batch == "full" else batch
    lo, hi = rank * n // world, (rank + 1) * n // world
    model = build_model(preset, input_shape=X.shape[1:], num_classes=data.num_classes)
    net, loss_fn = to_torch(model)
    ddp = DistributedDataParallel(net)
    opt = torch.optim.SGD(ddp.parameters(), lr=1e-3, momentum=0.9)
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X[lo:hi])), torch.from_numpy(y[lo:hi])
    times = []
    for i in range(steps + 2):
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(ddp(Xt), yt).backward()
        opt.step()
        dist.barrier()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    if rank == 0:
        Path(out).write_text(json.dumps(statistics.median(times)))
    dist.destroy_process_group()


def ddp_step_seconds(world, preset, dataset, batch, steps):
    import torch.multiprocessing as tmp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        out = Path(d, "median.json")
        tmp.start_processes(ddp_rank, args=(world, port, preset, dataset, data_dir(dataset),
                                                  batch, steps, str(out)),
                            nprocs=world, start_method="spawn")
        return json.loads(out.read_text())


# -- command-line timings ---------------------------------------------------------------------

def cli_seconds(args):
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "partrain.cli", "train", *args, "--no-progress",
                        "--out", str(Path(d, "run"))], check=True, capture_output=True)
        return time.perf_counter() - t0


def main(argv=None):
    import psutil

    from partrain.bench.scaling import hardware_ceiling
    from partrain.data import open_data
    from partrain.engine import make_engine
    from partrain.presets import build_model
    from partrain.train.settings import default_chunk_size

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cores = psutil.cpu_count(logical=False) or 1
    p.add_argument("--workers", default=None, help="comma-separated counts (default: "
                   "1, 2, 4, ... up to and including the physical cores)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--end-to-end-steps", type=int, default=500)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--data-root", default=str(DATA), help="folder holding mnist/ and "
                   "catvnoncat/ (default: ../shared/data beside the checkout)")
    p.add_argument("--out", default=None, help="default results/scaling/<machine>")
    args = p.parse_args(argv)
    set_data_root(args.data_root)
    counts = sorted({*([int(w) for w in args.workers.split(",")] if args.workers else
                       [2 ** i for i in range(cores.bit_length()) if 2 ** i <= cores]), cores})
    try:
        import torch   # noqa: F401
        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
    name, cpu = machine_name()
    out = Path(args.out or ROOT / "results" / "scaling" / name)
    result = dict(machine=name, cpu=cpu, physical_cores=cores, workers=counts, rounds=args.rounds,
                  command="python scripts/benchmarks/many_cores.py " + " ".join(argv or sys.argv[1:]),
                  workloads={})

    for wname in args.workloads.split(","):
        preset, dataset, batch_spec, steps = WORKLOADS[wname]
        data = open_data(dataset=dataset, data_dir=data_dir(dataset))
        X, y = data.train
        batch = len(X) if batch_spec == "full" else batch_spec
        chunk = default_chunk_size(batch)
        idx = np.arange(batch)
        print(f"{wname}: {batch} images, chunks of {chunk}", file=sys.stderr, flush=True)
        configs, engines = {}, []
        for w in [*counts, "auto"]:
            model = build_model(preset, input_shape=X.shape[1:], num_classes=data.num_classes)
            engine = make_engine(model, {"train": (X, y)}, chunk, workers=w, max_batch=batch)
            t0 = time.perf_counter()
            engine.start()
            start = time.perf_counter() - t0
            engine.gradient(idx)   # first touch of every buffer
            engines.append(engine)
            label = f"partrain {w}" if w != "auto" else f"partrain auto ({engine.workers})"
            configs[label] = (lambda e=engine: e.gradient(idx), dict(start_seconds=start,
                              workers=engine.workers))
        if have_torch:
            model = build_model(preset, input_shape=X.shape[1:], num_classes=data.num_classes)
            for threads in sorted({1, cores}):
                step = torch_stepper(model, X[:batch], y[:batch], threads)
                step()
                configs[f"torch {threads} thread{'s' * (threads > 1)}"] = (step, {})
        samples = {k: [] for k in configs}
        try:
            for r in range(args.rounds):
                for label, (step, _) in configs.items():
                    for _ in range(steps):
                        t0 = time.perf_counter()
                        step()
                        samples[label].append(time.perf_counter() - t0)
        finally:
            for engine in engines:
                engine.close()
        if have_torch and cores > 1:
            samples[f"torch DDP {cores} processes"] = [ddp_step_seconds(
                cores, preset, dataset, batch_spec, steps * args.rounds)]
        rows = {label: dict(step_seconds=statistics.median(s), **configs.get(label, (0, {}))[1])
                for label, s in samples.items()}
        one = rows["partrain 1"]["step_seconds"]
        for row in rows.values():
            row["speedup_vs_1_worker"] = one / row["step_seconds"]
        result["workloads"][wname] = dict(batch=batch, chunks=-(-batch // chunk), rows=rows)
        save_partial(result, out)

    print("start-up and end to end", file=sys.stderr, flush=True)
    start = {}
    for w in sorted({1, cores, 8}):   # 8: the start-up goal's count on a small machine
        start[w] = statistics.median(
            cli_seconds(["--steps", "1", "--workers", str(w)]) for _ in range(3))
    result["startup"] = dict(one_step_run_seconds={str(w): s for w, s in start.items()},
                             ratio=start[cores] / start[1], ratio_8=start[8] / start[1])
    save_partial(result, out)
    cat = ["--model", "lenet5-cat", "--data-dir", data_dir("catvnoncat")]
    if Path(data_dir("catvnoncat")).is_dir():
        # PyTorch's steps are timed right before and right after partrain's run, not
        # taken from the rounds minutes earlier: on a shared machine the load moves.
        torch_step = None
        if have_torch:
            data = open_data(dataset="catvnoncat", data_dir=data_dir("catvnoncat"))
            X, y = data.train
            model = build_model("lenet5-cat", input_shape=X.shape[1:],
                                num_classes=data.num_classes)
            torch_step = torch_stepper(model, X, y, cores)
            torch_step()

        def torch_steps_seconds(n=E2E_TORCH_STEPS):
            t0 = time.perf_counter()
            for _ in range(n):
                torch_step()
            return (time.perf_counter() - t0) / n

        before = torch_steps_seconds() if torch_step else None
        e2e = cli_seconds([*cat, "--steps", str(args.end_to_end_steps)])
        result["end_to_end"] = dict(steps=args.end_to_end_steps, partrain_seconds=e2e)
        if torch_step:
            t = (before + torch_steps_seconds()) / 2 * args.end_to_end_steps
            result["end_to_end"].update(torch_steps_seconds=t, ratio=e2e / t)
    result["gemm_ceiling"] = dict(processes=cores, speedup=hardware_ceiling(cores)
                                  if cores > 1 else 1.0)
    write(result, out)


def save_partial(result, out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["workloads"] if "startup" not in result else result["startup"]),
          file=sys.stderr, flush=True)


def write(result, out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    cores = result["physical_cores"]
    lines = [f"# Every core of a {cores}-core machine: partrain against PyTorch", "",
             f"{result['cpu']}; medians over {result['rounds']} interleaved rounds, all in one "
             f"run of `{result['command'].strip()}`. Seconds per step; in brackets, speedup "
             "over partrain on 1 worker.", ""]
    for wname, w in result["workloads"].items():
        lines += [f"## {wname} ({w['batch']} images, {w['chunks']} chunks)", "",
                  "| configuration | s/step | speedup | engine start s |", "|---|---:|---:|---:|"]
        for label, r in w["rows"].items():
            start = f"{r['start_seconds']:.2f}" if "start_seconds" in r else ""
            lines.append(f"| {label} | {r['step_seconds']:.4f} | {r['speedup_vs_1_worker']:.2f}x "
                         f"| {start} |")
        lines.append("")
    s = result["startup"]
    one, many = s["one_step_run_seconds"]["1"], s["one_step_run_seconds"][str(cores)]
    lines += ["## Start-up and end to end", "",
              f"* `partrain train --steps 1`: {one:.2f} s on 1 worker, {many:.2f} s on "
              f"{cores} ({s['ratio']:.2f}x), {s['one_step_run_seconds']['8']:.2f} s on 8 "
              f"({s['ratio_8']:.2f}x).", ]
    if "end_to_end" in result:
        e = result["end_to_end"]
        lines.append(f"* The seed's {e['steps']}-step lenet5-cat run, `partrain train --model "
                     f"lenet5-cat --steps {e['steps']}` (auto workers), end to end: "
                     f"{e['partrain_seconds']:.1f} s" + (
                         f"; {e['steps']} PyTorch steps on {cores} threads: "
                         f"{e['torch_steps_seconds']:.1f} s ({e['ratio']:.2f}x)"
                         if "ratio" in e else "") + ".")
    c = result["gemm_ceiling"]
    lines += [f"* Machine ceiling: {c['processes']} processes run independent single-thread "
              f"GEMMs {c['speedup']:.2f}x faster than one.", ""]
    (out / "README.md").write_text("\n".join(lines))
    plot(result, out / "scaling.png")
    print("\n".join(lines))


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = result["workloads"]
    fig, axes = plt.subplots(1, len(workloads), figsize=(4 * len(workloads), 3.6), squeeze=False)
    for ax, (wname, w) in zip(axes[0], workloads.items()):
        pts = sorted((r["workers"], r["step_seconds"]) for label, r in w["rows"].items()
                     if label.startswith("partrain ") and "auto" not in label)
        ax.plot(*zip(*pts), "o-", label="partrain")
        for label, r in w["rows"].items():
            if label.startswith("torch"):
                ax.axhline(r["step_seconds"], ls="--", lw=1, color="C1" if "DDP" not in label
                           and "1 thread" not in label else ("C2" if "DDP" in label else "C3"),
                           label=label)
            elif "auto" in label:
                ax.plot([r["workers"]], [r["step_seconds"]], "*", ms=12, label=label)
        ax.set(xscale="log", yscale="log", xlabel="workers", ylabel="s / step", title=wname)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
