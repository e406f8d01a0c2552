"""Would a compiled kernel library pay? numba's cost to a worker process, and two kernels
written with it against partrain's numpy ones, at lenet5's chunk-of-8 shapes, one core.

    pip install numba      # not a partrain dependency; this script only measures it
    python scripts/benchmarks/numba_probe.py --rounds 15

Measures:

* what ``pip install numba`` adds: the installed size of numba and llvmlite;
* start-up, in fresh processes: ``import numba``, then the first call of a cached kernel
  (the first process compiles and writes the cache; later ones load it). Every worker
  process pays this once, and partrain starts one per core;
* the im2col window copy, written as plain loops, against Conv2D's numpy copy;
* average-pool backward fused with the tanh before it (one pass, no temporaries) against
  ``AvgPool2D.backward`` then ``Tanh.backward``.

Medians of interleaved rounds. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from gemm_layouts import median_ms  # noqa: E402

KERNELS = textwrap.dedent('''
    import numba

    @numba.njit(cache=True)
    def im2col(x, k, out):
        """(N, C, H, W) -> out (C k k, N oh ow): Conv2D's layout, stride 1."""
        n, c, h, w = x.shape
        oh, ow = h - k + 1, w - k + 1
        for ci in range(c):
            for i in range(k):
                for j in range(k):
                    row = (ci * k + i) * k + j
                    for a in range(n):
                        for p in range(oh):
                            for q in range(ow):
                                out[row, (a * oh + p) * ow + q] = x[a, ci, p + i, q + j]
        return out

    @numba.njit(cache=True)
    def avgpool2_tanh_backward(dy, t, gain, out):
        """dy (N, C, h, w), t = tanh(...) (N, C, 2h, 2w) -> the tanh input's gradient."""
        n, c, hh, ww = out.shape
        for a in range(n):
            for b in range(c):
                for i in range(hh):
                    for j in range(ww):
                        s = t[a, b, i, j]
                        out[a, b, i, j] = dy[a, b, i // 2, j // 2] * 0.25 * (1 - s * s) * gain
        return out
''')

START = textwrap.dedent('''
    import sys, time
    t0 = time.perf_counter()
    import numba
    t1 = time.perf_counter()
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import probe_kernels
    x = np.zeros((8, 6, 28, 28), np.float32)
    probe_kernels.avgpool2_tanh_backward(np.zeros((8, 6, 14, 14), np.float32), x, 1.0,
                                         np.empty_like(x))
    print(t1 - t0, time.perf_counter() - t1)
''')


def installed_mib(dist):
    """MiB that the installed distribution ``dist`` occupies on disk."""
    from importlib.metadata import files

    return sum(f.locate().stat().st_size for f in files(dist) or ()
               if f.locate().is_file()) / 2 ** 20


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    try:
        import numba   # noqa: F401
    except ImportError:
        sys.exit("numba_probe.py: numba is not installed (pip install numba)")
    from partrain.nn import AvgPool2D, Tanh
    from partrain.nn.windows import windows

    sizes = {name: installed_mib(name) for name in ("numba", "llvmlite")}
    print("installed: " + ", ".join(f"{name} {version(name)} {mib:.0f} MiB"
                                    for name, mib in sizes.items())
          + f" ({sum(sizes.values()):.0f} MiB in all)")

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "probe_kernels.py").write_text(KERNELS)
        for label in ("first process (compiles)", "second process (cache)"):
            out = subprocess.run([sys.executable, "-c", START, tmp], capture_output=True,
                                 text=True, check=True).stdout.split()
            print(f"{label}: import numba {float(out[0]):.2f} s, first kernel call "
                  f"{float(out[1]):.2f} s")
        sys.path.insert(0, tmp)
        import probe_kernels as nb

        rng = np.random.default_rng(0)
        print(f"ms per chunk of 8, one core (median of {args.rounds} rounds)")
        for shape, k in [((8, 1, 32, 32), 5), ((8, 6, 14, 14), 5), ((8, 1, 28, 28), 9)]:
            x = rng.standard_normal(shape, dtype=np.float32)
            n, c, h, _ = shape
            oh = h - k + 1
            out = np.empty((c * k * k, n * oh * oh), np.float32)
            ops = {"numpy": lambda: np.ascontiguousarray(
                       windows(x, k, k, 1).transpose(1, 4, 5, 0, 2, 3)).reshape(-1, n * oh * oh),
                   "numba": lambda: nb.im2col(x, k, out)}
            same = np.array_equal(ops["numpy"](), ops["numba"]())
            ms = median_ms(ops, args.rounds, reps=20)
            print(f"  im2col {shape} k={k}: numpy {ms['numpy']:.3f}, numba {ms['numba']:.3f}"
                  f" (same values: {same})")

        tanh, pool = Tanh(1.7159, 2 / 3), AvgPool2D(2)
        t = np.tanh(rng.standard_normal((8, 6, 28, 28), dtype=np.float32))
        dy = rng.standard_normal((8, 6, 14, 14), dtype=np.float32)
        gain = np.float32(tanh.amplitude * tanh.slope)
        fused_out = np.empty_like(t)
        ops = {"numpy": lambda: tanh.backward(pool.backward(dy, t.shape)[0], t)[0],
               "numba": lambda: nb.avgpool2_tanh_backward(dy, t, gain, fused_out)}
        close = np.allclose(ops["numpy"](), ops["numba"](), rtol=1e-5, atol=1e-6)
        ms = median_ms(ops, args.rounds, reps=20)
        print(f"  avgpool + tanh backward (8, 6, 28, 28): numpy {ms['numpy']:.3f}, "
              f"numba fused {ms['numba']:.3f} (close: {close})")


if __name__ == "__main__":
    main()
