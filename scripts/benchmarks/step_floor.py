"""How close can numpy get? A serial step, the numpy/scipy primitives it cannot do without,
and PyTorch's step, on one core, interleaved in one run.

    python scripts/benchmarks/step_floor.py --rounds 15

For each workload of the single-core goals, three things are timed round by round:

* ``partrain step``: one gradient step of the serial engine (1 worker, default chunk);
* ``primitives only``: just the heavy calls that step makes, on random arrays of the
  same shapes, chunk by chunk: every BLAS product of the Dense and im2col Conv2D layers
  (each in its faster orientation, ``gemm_layouts.py``), and every FFT, inverse FFT and
  per-frequency channel mix of the FFT Conv2D layers. No im2col copy, pooling,
  activation, loss, bookkeeping or gradient sum: a floor that no rearrangement of the
  Python around these calls can go below;
* ``torch 1 thread``: PyTorch's step as a user writes it (``many_cores.py``'s).

If the floor alone is above a goal's share of PyTorch's time, no change to partrain's
own code reaches that goal with numpy's BLAS and scipy's FFT at this chunk size.
Medians of interleaved rounds, milliseconds. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from partrain.data import open_data
from partrain.engine import make_engine
from partrain.errors import PartrainError
from partrain.nn import Conv2D, Dense, fft
from partrain.presets import build_model
from partrain.train.settings import default_chunk_size

sys.path.insert(0, str(Path(__file__).parent))
from gemm_layouts import layer_products, median_ms  # noqa: E402
from many_cores import WORKLOADS, data_dir, set_data_root, torch_stepper  # noqa: E402

# The workloads of the single-core goals, and each goal (partrain's time / PyTorch's).
GOALS = {"lenet5 b32": 1.0, "mnist-conv b100": 1.0, "lenet5-cat full": 0.5}


def blas_calls(layer, x_shape, rng, rounds):
    """The products ``layer`` runs on an input of ``x_shape``, each the faster way round."""
    products, _ = layer_products(layer, x_shape, rng)
    if not layer.need_dx:   # the first layer: no input gradient
        products = {k: v for k, v in products.items() if not k.startswith(("dx", "dcols"))}
    calls = []
    for written, other in products.values():
        ms = median_ms({0: written, 1: other}, rounds=max(3, rounds // 3))
        calls.append(written if ms[0] <= ms[1] else other)
    return calls


def fft_calls(layer, x_shape, rng):
    """The transforms and channel mixes of ``layer``'s FFT forward and backward."""
    n, _, h, w = x_shape
    hp, wp = h + 2 * layer.pad, w + 2 * layer.pad
    s = fft.transform_size(hp, wp)
    oh, ow = hp - layer.k + 1, wp - layer.k + 1
    f32 = np.float32
    xp = rng.standard_normal((n, layer.cin, hp, wp), dtype=f32)
    dy = rng.standard_normal((n, layer.cout, oh, ow), dtype=f32)
    Wf = fft.spectrum(rng.standard_normal((layer.cout, layer.cin, layer.k, layer.k),
                                          dtype=f32), s)
    Xf, dYf, Wf_conj = fft.spectrum(xp, s), fft.spectrum(dy, s), Wf.conj()
    irfft2 = fft._scipy_fft().irfft2
    calls = [lambda: fft.spectrum(xp, s),
             lambda: irfft2(fft.mix_channels(Xf, Wf_conj), s=s),
             lambda: fft.spectrum(dy, s),
             lambda: fft.kernel_gradient(dYf, Xf, layer.k, s, layer._connected)]
    if layer.need_dx:
        calls.append(lambda: fft.input_gradient(dYf, Wf, s, hp, wp))
    return calls


def primitive_calls(model, x_shape, rng, rounds):
    """Every heavy call of one chunk of ``x_shape`` through ``model``, in layer order."""
    calls = []
    x = np.zeros(x_shape, np.float32)
    for layer in model.layers:
        if isinstance(layer, Conv2D) and layer.method == "fft":
            calls += fft_calls(layer, x.shape, rng)
        elif isinstance(layer, (Dense, Conv2D)):
            calls += blas_calls(layer, x.shape, rng, rounds)
        x, _ = layer.forward(x)
    return calls


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--workloads", default=",".join(GOALS))
    p.add_argument("--data-root", default=None, help="folder holding mnist/ and catvnoncat/")
    args = p.parse_args(argv)
    try:
        import torch   # noqa: F401
    except ImportError:
        sys.exit("step_floor.py: PyTorch is not installed (pip install \".[bench]\")")
    unknown = sorted(set(args.workloads.split(",")) - set(GOALS))
    if unknown:
        sys.exit(f"step_floor.py: unknown workload {', '.join(unknown)}; choose from "
                 f"{', '.join(GOALS)}")
    if args.data_root:
        set_data_root(args.data_root)
    rng = np.random.default_rng(0)
    print(f"one core, ms per step (median of {args.rounds} interleaved rounds)")
    print(f"{'workload':<17} {'partrain step':>13} {'primitives only':>15} "
          f"{'torch 1 thread':>14} {'step/torch':>10} {'floor/torch':>11} {'goal':>5}")
    with threadpool_limits(1):
        for wname in args.workloads.split(","):
            preset, dataset, batch_spec, _ = WORKLOADS[wname]
            try:
                data = open_data(dataset=dataset, data_dir=data_dir(dataset))
            except PartrainError as exc:
                sys.exit(f"step_floor.py: {exc}")
            X, y = data.train
            batch = len(X) if batch_spec == "full" else batch_spec
            chunk = default_chunk_size(batch)
            model = build_model(preset, input_shape=X.shape[1:], num_classes=data.num_classes)
            engine = make_engine(model, {"train": (X, y)}, chunk, workers=1, max_batch=batch)
            engine.start()
            idx = np.arange(batch)
            sizes = [min(chunk, batch - lo) for lo in range(0, batch, chunk)]
            per_size = {n: primitive_calls(model, (n,) + X.shape[1:], rng, args.rounds)
                        for n in set(sizes)}

            def primitives():
                for n in sizes:
                    for call in per_size[n]:
                        call()
            ops = {"step": lambda: engine.gradient(idx), "floor": primitives}
            ops["torch"] = torch_stepper(model, X[:batch], y[:batch], 1)
            reps = max(1, 200 // batch)
            try:
                ms = median_ms(ops, args.rounds, reps)
            finally:
                engine.close()
            torch_ms = ms["torch"]
            print(f"{wname:<17} {ms['step']:13.2f} {ms['floor']:15.2f} {torch_ms:14.2f} "
                  f"{ms['step'] / torch_ms:10.2f} {ms['floor'] / torch_ms:11.2f} "
                  f"{GOALS.get(wname, float('nan')):5.1f}", flush=True)


if __name__ == "__main__":
    main()
