"""Where a chunk's time goes: forward and backward of every layer of a preset, one BLAS
thread, median over repeats (milliseconds per chunk).

    python scripts/benchmarks/profile_layers.py --model lenet5-cat --chunk 8 --dtype float32
    python scripts/benchmarks/profile_layers.py --model lenet5-cat --conv-method im2col   # compare
    python scripts/benchmarks/profile_layers.py --model lenet5-cat --no-keep-freed-memory
    python scripts/benchmarks/profile_layers.py --model lenet5 --split   # fixed vs per-sample

Random inputs of the preset's shape are enough: every layer's cost depends on shapes,
not values. Benchmarks are not tests; this prints, it asserts nothing.
"""

import argparse
import time

import numpy as np

from partrain.engine.host import keep_freed_memory, one_blas_thread
from partrain.nn import Conv2D
from partrain.presets import build_model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet5-cat")
    ap.add_argument("--chunk", type=int, default=8, help="samples per chunk")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--conv-method", choices=["auto", "im2col", "fft"], default="auto",
                    help="force every convolution to one method (presets are stride 1)")
    ap.add_argument("--no-keep-freed-memory", action="store_true",
                    help="leave glibc's allocator as it is, to see what keep_freed_memory saves")
    ap.add_argument("--split", action="store_true",
                    help="also split a chunk's time into a fixed part (Python and numpy's "
                         "per-call cost) and a part per sample (arithmetic, copies), by timing "
                         "model.loss_sum_and_grads at chunks of 2 to 32 and fitting a + b N")
    args = ap.parse_args()

    if not args.no_keep_freed_memory:
        keep_freed_memory()   # as every engine process does
    model = build_model(args.model, dtype=args.dtype)
    if args.conv_method != "auto":
        for layer in model.layers:
            if isinstance(layer, Conv2D):
                layer.method = args.conv_method
    rng = np.random.default_rng(0)
    X = rng.random((args.chunk,) + model.input_shape).astype(model.dtype)
    y = rng.integers(0, model.num_classes, args.chunk)
    fwd = {name: [] for name in model.layer_names}
    bwd = {name: [] for name in model.layer_names}
    total = []
    with one_blas_thread():
        for _ in range(args.repeats + 1):
            t_start = time.perf_counter()
            out, caches = X, []
            for name, layer in zip(model.layer_names, model.layers):
                t0 = time.perf_counter()
                out, cache = layer.forward(out)
                fwd[name].append(time.perf_counter() - t0)
                caches.append(cache)
            _, d = model.loss(out, y)
            for i in range(len(model.layers) - 1, -1, -1):
                t0 = time.perf_counter()
                d, _ = model.layers[i].backward(d, caches[i])
                bwd[model.layer_names[i]].append(time.perf_counter() - t0)
            total.append(time.perf_counter() - t_start)

    def ms(values):
        return 1e3 * float(np.median(values[1:]))   # the first repeat warms caches

    print(f"{args.model}, {args.dtype}, chunk of {args.chunk}: ms per chunk (median of "
          f"{args.repeats})")
    print(f"  {'layer':<6} {'kind':<62} {'forward':>8} {'backward':>9}")
    for name, layer in zip(model.layer_names, model.layers):
        print(f"  {name:<6} {layer.describe():<62} {ms(fwd[name]):8.2f} {ms(bwd[name]):9.2f}")
    print(f"  total forward+backward+loss: {ms(total):.2f} ms per chunk, "
          f"{ms(total) / args.chunk:.3f} ms per sample")
    if args.split:
        print_split(model, args.chunk, args.repeats)


SPLIT_CHUNKS = (2, 4, 8, 16, 32)   # not 1: BLAS takes other paths for single rows


def print_split(model, chunk, repeats):
    """Time the whole chunk path (forward, loss, backward and the gradient bookkeeping,
    as a worker runs it) at several chunk sizes, interleaved, and fit t(N) = a + b N:
    a is what a chunk costs whatever its size (Python, numpy's per-call dispatch, small
    fixed-size work), b N what grows with the samples (arithmetic, copies, memory)."""
    rng = np.random.default_rng(1)
    inputs = {n: (rng.random((n,) + model.input_shape).astype(model.dtype),
                  rng.integers(0, model.num_classes, n)) for n in SPLIT_CHUNKS}
    grad = np.empty(model.num_params, model.dtype)
    times = {n: [] for n in SPLIT_CHUNKS}
    with one_blas_thread():
        # Rounds interleave the sizes; within a round one size runs several times in a
        # row, as a worker's chunks do, and the first call of each run is not counted.
        for _ in range(max(1, repeats // 5)):
            for n, (X, y) in inputs.items():
                for i in range(6):
                    t0 = time.perf_counter()
                    model.loss_sum_and_grads(X, y, grad_out=grad)
                    if i:
                        times[n].append(time.perf_counter() - t0)
    med = np.array([1e3 * float(np.median(times[n])) for n in SPLIT_CHUNKS])
    b, a = np.polyfit(np.array(SPLIT_CHUNKS, float), med, 1)
    at = a + b * chunk
    print(f"  split: a chunk of N costs {a:.3f} + {b:.4f} N ms (fit over N = "
          f"{', '.join(map(str, SPLIT_CHUNKS))}: "
          f"{', '.join(f'{t:.2f}' for t in med)} ms); at N = {chunk} the fixed part is "
          f"{100 * a / at:.0f}%")


if __name__ == "__main__":
    main()
