"""Which way round should a layer ask BLAS for its products? Both orientations of every
GEMM of the presets' Dense and im2col Conv2D layers, at one chunk, on one core.

    python scripts/benchmarks/gemm_layouts.py --chunk 8 --rounds 30

A @ B and (B^T @ A^T)^T are the same dot products, but BLAS picks different kernels for
them, and on the skinny matrices of a chunk of 8 images one can take twice the time of
the other. The layers use the faster one (see their comments). Medians of interleaved
rounds, milliseconds. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from partrain.nn import Conv2D, Dense
from partrain.presets import PRESETS, build_model


def median_ms(ops, rounds, reps=10):
    """{name: median ms per call} over ``rounds`` interleaved rounds of ``reps`` calls."""
    samples = {name: [] for name in ops}
    for _ in range(rounds):
        for name, op in ops.items():
            op()
            t0 = time.perf_counter()
            for _ in range(reps):
                op()
            samples[name].append((time.perf_counter() - t0) / reps)
    return {name: 1e3 * statistics.median(s) for name, s in samples.items()}


def layer_products(layer, x_shape, rng):
    """({product: (as written in the math, the other way round)}, flops of each
    product) for one layer at the input shape ``x_shape`` (N, ...)."""
    f32 = np.float32
    if isinstance(layer, Dense):
        n = x_shape[0]
        x = rng.standard_normal((n, layer.din), dtype=f32)
        W = rng.standard_normal((layer.din, layer.dout), dtype=f32)
        dy = rng.standard_normal((n, layer.dout), dtype=f32)
        return {"y = x W": (lambda: x @ W, lambda: (W.T @ x.T).T),
                "dW = x^T dy": (lambda: x.T @ dy, lambda: (dy.T @ x).T),
                "dx = dy W^T": (lambda: dy @ W.T, lambda: (W @ dy.T).T)}, 2 * n * layer.din * layer.dout
    n, _, h, w = x_shape
    taps = layer.cin * layer.k * layer.k
    oh = (h + 2 * layer.pad - layer.k) // layer.stride + 1
    ow = (w + 2 * layer.pad - layer.k) // layer.stride + 1
    cols = rng.standard_normal((taps, n * oh * ow), dtype=f32)
    Wd = rng.standard_normal((layer.cout, taps), dtype=f32)
    dy = rng.standard_normal((layer.cout, n * oh * ow), dtype=f32)
    return {"y = W cols": (lambda: Wd @ cols, lambda: (cols.T @ Wd.T).T),
            "dW = dy cols^T": (lambda: dy @ cols.T, lambda: (cols @ dy.T).T),
            "dcols = W^T dy": (lambda: Wd.T @ dy, lambda: (dy.T @ Wd).T)}, \
        2 * layer.cout * taps * n * oh * ow


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--models", default="mnist-conv,lenet5,convnet3,lenet5-cat")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print(f"ms per product, chunk of {args.chunk}, one core (median of {args.rounds} rounds)")
    print(f"{'layer':<22} {'product':<16} {'as written':>10} {'other way':>10} {'same bits':>10}"
          f" {'GFLOPS, faster way':>19}")
    with threadpool_limits(1):
        for name in args.models.split(","):
            model = build_model(name, dtype="float32")
            shape = (args.chunk,) + PRESETS[name].input_shape
            x = np.zeros(shape, np.float32)
            for lname, layer in zip(model.layer_names, model.layers):
                if isinstance(layer, Dense) or (isinstance(layer, Conv2D)
                                                and layer.method == "im2col"):
                    products, flops = layer_products(layer, x.shape, rng)
                    times = median_ms({f"{k} {i}": f for k, pair in products.items()
                                       for i, f in enumerate(pair)}, args.rounds)
                    for k, (written, other) in products.items():
                        same = np.array_equal(written(), other())
                        best = min(times[k + " 0"], times[k + " 1"])
                        print(f"{name + ' ' + lname:<22} {k:<16} {times[k + ' 0']:10.4f} "
                              f"{times[k + ' 1']:10.4f} {str(same):>10} "
                              f"{flops / best / 1e6:19.0f}")
                x, _ = layer.forward(x)
        square = np.random.default_rng(1).random((512, 512), dtype=np.float32)
        ms = median_ms({"square": lambda: square @ square}, args.rounds)["square"]
        print(f"for comparison, a square 512 x 512 product: {2 * 512 ** 3 / ms / 1e6:.0f} GFLOPS")


if __name__ == "__main__":
    main()
