"""Scaling experiments: time gradient steps against worker count (and batch size).

Every configuration is built once and timed in the same run, interleaved round by
round, so that load from other tenants of a shared machine hits all of them alike;
figures are medians over rounds with min/max as the spread. Baselines in the same run:

* ``blas``: one process, one chunk holding the whole batch, BLAS on all cores;
* ``torch``: PyTorch CPU on the same architecture, when torch is importable;
* ``ceiling``: how much faster W processes run independent single-thread GEMMs than
  one does, i.e. the best speedup any W-process code can reach on this machine.

A cost model T(w) = T1 (s + (1 - s) / w) (Amdahl) is fitted to the medians; its serial
fraction s gives a clearly labelled *projection* to 16 and 64 cores.

Outputs: ``<out>/<name>.csv``, ``<name>.png`` (speedup and efficiency vs workers with
the ideal line), ``<name>.md`` (table, baselines, cost model).
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from pathlib import Path

import numpy as np

from ..data import open_data
from ..engine import make_engine
from ..presets import build_model
from ..run.files import atomic_path, write_csv, write_json, write_text


def _gemm_seconds(_=None, reps=1500):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        a = np.random.default_rng(0).random((256, 256), dtype=np.float32)
        t = time.perf_counter()
        for _ in range(reps):
            a @ a
        return time.perf_counter() - t


def hardware_ceiling(workers, rounds=3):
    """Speedup of ``workers`` processes over one on independent single-thread GEMMs."""
    ratios = []
    with mp.get_context("spawn").Pool(workers) as pool:
        for _ in range(rounds):
            one = pool.apply(_gemm_seconds)
            many = max(pool.map(_gemm_seconds, range(workers)))
            ratios.append(workers * one / many)
    return statistics.median(ratios)


def parallel_share(workers, chunks):
    """Fraction of the one-worker parallel time that w workers still take: the busiest
    worker computes ceil(chunks / w) of the chunks."""
    return np.array([-(-chunks // w) / chunks for w in np.atleast_1d(workers)])


def fit_serial_fraction(workers, seconds, chunks):
    """Least-squares Amdahl fit of T(w) = a + b * ceil(chunks / w) / chunks.

    Returns (T1 = a + b, s = a / T1), the one-worker time and the serial fraction.
    """
    A = np.stack([np.ones(len(workers)), parallel_share(workers, chunks)], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, np.asarray(seconds, float), rcond=None)
    a = max(a, 0.0)
    return a + b, a / (a + b)


def project(t1, s, workers, chunks):
    """Step seconds the fitted model predicts for ``workers``: (len(workers),)."""
    return t1 * (s + (1 - s) * parallel_share(workers, chunks))


def torch_step_seconds(model, X, y, threads, repeats):
    """Median seconds of one forward+backward+SGD step in PyTorch CPU, or None."""
    try:
        import torch
    except ImportError:
        return None
    from .torch_reference import to_torch

    torch.set_num_threads(threads)
    net, loss_fn = to_torch(model)
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    yt = torch.from_numpy(y)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    times = []
    for r in range(repeats + 1):
        t = time.perf_counter()
        opt.zero_grad()
        loss_fn(net(Xt), yt).backward()
        opt.step()
        if r:   # the first call pays one-off allocation costs
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_scaling(model_name, dataset, data_dir=None, workers=(1, 2), batch_sizes=("full",),
                dtype="float32", chunk_size=None, rounds=5, steps=3, baselines=True,
                name=None, out=None, log=print):
    from ..machine import machine_info, physical_cores
    from ..train.settings import default_chunk_size

    if out is None:
        raise ValueError("run_scaling needs out, the folder to write its files to")

    data = open_data(dataset=dataset, data_dir=data_dir, dtype=dtype)
    X, y = data.train
    cores = physical_cores()
    name = name or f"{model_name}-{dtype}"
    rows = []
    for bs in batch_sizes:
        batch = len(X) if bs == "full" else min(int(bs), len(X))
        chunk = chunk_size or default_chunk_size(batch)
        idx = np.arange(batch)
        configs = {}
        for w in workers:
            m = build_model(model_name, seed=0, dtype=dtype, input_shape=X.shape[1:],
                            num_classes=data.num_classes)
            configs[f"{w} workers"] = (w, make_engine(m, {"train": (X, y)}, chunk, backend="process",
                                                      workers=w, max_batch=batch))
        if baselines:
            m = build_model(model_name, seed=0, dtype=dtype, input_shape=X.shape[1:],
                            num_classes=data.num_classes)
            configs["blas"] = (cores, make_engine(m, {"train": (X, y)}, batch, backend="serial",
                                                  max_batch=batch, blas_threads=cores))
        samples = {k: [] for k in configs}
        overheads = {k: [] for k in configs}
        try:
            for _, e in configs.values():
                e.start()
                e.gradient(idx)   # warm-up: first touch of buffers
            for r in range(rounds):
                for key, (_, e) in configs.items():
                    for _ in range(steps):
                        e.gradient(idx)
                        samples[key].append(e.stats.wall)
                        overheads[key].append(e.stats.overhead)
                log(f"  batch {batch}: round {r + 1}/{rounds} done")
            rss = {k: e.peak_rss() for k, (_, e) in configs.items()}
        finally:
            for _, e in configs.values():
                e.close()
        t1 = statistics.median(samples[f"{workers[0]} workers"]) * workers[0]
        for key, (w, _) in configs.items():
            med = statistics.median(samples[key])
            rows.append(dict(batch=batch, config=key, workers=w, chunk_size=chunk,
                             step_seconds_median=med, step_seconds_min=min(samples[key]),
                             step_seconds_max=max(samples[key]),
                             overhead_percent=100 * statistics.median(overheads[key]) / med,
                             speedup=t1 / med, efficiency=t1 / med / w,
                             images_per_second=batch / med,
                             peak_rss_mib_per_worker=max(rss[key], default=0) / 2**20,
                             samples=len(samples[key])))
        if baselines:
            tt = torch_step_seconds(m, X[:batch], y[:batch], cores, rounds * steps)
            if tt is not None:
                rows.append(dict(batch=batch, config="torch", workers=cores, chunk_size=batch,
                                 step_seconds_median=tt, speedup=t1 / tt,
                                 efficiency=t1 / tt / cores, images_per_second=batch / tt,
                                 samples=rounds * steps))
    ceiling = hardware_ceiling(max(workers)) if max(workers) > 1 else 1.0
    result = dict(name=name, model=model_name, dataset=dataset, dtype=dtype, rows=rows,
                  hardware_ceiling=dict(workers=max(workers), speedup=ceiling),
                  machine=machine_info())
    _write(result, Path(out), name, workers)
    return result


# The files run_scaling writes, as <name><suffix>.
OUTPUT_SUFFIXES = (".csv", ".json", ".md", ".png")

FIELDS = ["batch", "config", "workers", "chunk_size", "step_seconds_median", "step_seconds_min",
          "step_seconds_max", "overhead_percent", "speedup", "efficiency", "images_per_second",
          "peak_rss_mib_per_worker", "samples"]


def _write(result, out: Path, name, workers):
    out.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    write_csv(out / f"{name}.csv", rows, FIELDS)
    write_json(out / f"{name}.json", result)
    m = result["machine"]
    lines = [f"# Scaling: {result['model']} on {result['dataset']}, {result['dtype']}", "",
             f"Machine: {m['physical_cores']} physical cores, "
             f"BLAS {(m['blas'] or [{}])[0].get('library')}, numpy {m['versions']['numpy']}. "
             "Medians over interleaved rounds (min-max in brackets).", "",
             "| batch | config | workers | step s (min-max) | speedup | efficiency | images/s | "
             "coord. overhead | peak RSS/worker MiB |",
             "|---:|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        spread = (f" ({r['step_seconds_min']:.4f}-{r['step_seconds_max']:.4f})"
                  if "step_seconds_min" in r else "")
        over = f"{r['overhead_percent']:.2f}%" if "overhead_percent" in r else "-"
        rss = f"{r['peak_rss_mib_per_worker']:.0f}" if r.get("peak_rss_mib_per_worker") else "-"
        lines.append(f"| {r['batch']} | {r['config']} | {r['workers']} | "
                     f"{r['step_seconds_median']:.4f}{spread} | {r['speedup']:.2f}x | "
                     f"{r['efficiency']:.2f} | {r['images_per_second']:.0f} | {over} | {rss} |")
    c = result["hardware_ceiling"]
    lines += ["", f"Hardware ceiling, same run: {c['workers']} processes run independent "
              f"single-thread GEMMs {c['speedup']:.2f}x faster than one."]
    for batch in sorted({r["batch"] for r in rows}):
        pts = [(r["workers"], r["step_seconds_median"]) for r in rows
               if r["batch"] == batch and r["config"].endswith("workers")]
        if len(pts) >= 2:
            chunks = -(-batch // rows[0]["chunk_size"])
            t1, s = fit_serial_fraction(*zip(*pts), chunks)
            # The parallel part comes in whole chunks, so workers beyond the chunk
            # count add nothing.
            proj = dict(zip((16, 64), project(t1, s, [16, 64], chunks)))
            lines += ["", f"Cost model, batch {batch}: T(w) = {t1:.4f} s x ({s:.4f} + "
                      f"{1 - s:.4f} x ceil({chunks} / w) / {chunks}), serial fraction "
                      f"s = {s:.4f} (least-squares Amdahl fit over {chunks} chunks of "
                      f"{rows[0]['chunk_size']}).",
                      f"PROJECTION, not measured: 16 cores {proj[16]:.4f} s/step "
                      f"({t1 / proj[16]:.1f}x), 64 cores {proj[64]:.4f} s/step "
                      f"({t1 / proj[64]:.1f}x)."]
            if s == 0:
                lines.append("The fit found no serial part (the measured speedup was at or "
                             "above ideal, within this machine's noise): the projection "
                             "is an upper bound.")
    write_text(out / f"{name}.md", "\n".join(lines) + "\n")
    _plot(out / f"{name}.png", result, workers)


def _plot(path, result, workers):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ws = np.array(sorted(workers))
    ax1.plot(ws, ws, "k--", lw=1, label="ideal")
    for batch in sorted({r["batch"] for r in result["rows"]}):
        pts = sorted((r["workers"], r["speedup"], r["efficiency"]) for r in result["rows"]
                     if r["batch"] == batch and r["config"].endswith("workers"))
        w, sp, eff = map(np.array, zip(*pts))
        ax1.plot(w, sp, "o-", label=f"batch {batch}")
        ax2.plot(w, eff, "o-", label=f"batch {batch}")
        for r in result["rows"]:
            if r["batch"] == batch and r["config"] in ("blas", "torch"):
                ax1.plot([r["workers"]], [r["speedup"]], "x" if r["config"] == "blas" else "s",
                         label=f"{r['config']} ({r['workers']} threads), batch {batch}")
    c = result["hardware_ceiling"]
    ax1.plot([c["workers"]], [c["speedup"]], "*", ms=12, label="machine ceiling (GEMM)")
    ax1.set(xlabel="workers", ylabel="speedup vs 1 worker", title=f"{result['model']} {result['dtype']}")
    ax2.axhline(1.0, color="k", ls="--", lw=1)
    ax2.set(xlabel="workers", ylabel="parallel efficiency", ylim=(0, 1.1), title="Efficiency")
    for ax in (ax1, ax2):
        ax.set_xticks(ws)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
