"""Two choices of the FFT convolution, timed on LeNet-5-cat's real shapes, one core:

* the exact-zero test (partrain.nn.fft.structural_zeros) on C1's input, the cat
  images, both ways: the maps ORed first (used when every output reads every map) and
  per map with a product (used with a connection table, as on C3, also timed);
* C3's transforms at 28 x 28 (sizes with factors up to 11, used) and at 30 x 30
  (``next_fast_len(28, real=True)``, used before).

    python scripts/benchmarks/fft_parts.py --rounds 20

Medians of interleaved rounds, ms per chunk of 8. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.fft
from threadpoolctl import threadpool_limits

from partrain.data import open_data
from partrain.nn import fft
from partrain.presets import build_model

sys.path.insert(0, str(Path(__file__).parent))
from gemm_layouts import median_ms  # noqa: E402  (one interleaved timer)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "catvnoncat"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--data-dir", default=str(DATA))
    args = p.parse_args()
    data = open_data(dataset="catvnoncat", data_dir=args.data_dir)
    X, _ = data.train
    model = build_model("lenet5-cat", input_shape=X.shape[1:], num_classes=2)
    c1, c3 = model.layers[0], model.layers[3]
    chunks = [X[i : i + 8] for i in range(0, len(X) - 7, 8)]
    c3_inputs = [_input_of(model, 3, x) for x in chunks]
    links1, links3 = c1._links(), c3._links()
    x3 = c3_inputs[0]
    n = len(chunks)
    with_black = sum(bool((x == 0).any()) for x in chunks)
    ops = {
        "C1 exact zeros, maps ORed first": lambda: [fft.zeros_all_linked(x, 9, 6) for x in chunks],
        "C1 exact zeros, per map": lambda: [fft.zeros_per_map(x, 9, links1) for x in chunks],
        "C3 exact zeros, per map (its table)": lambda: [fft.zeros_per_map(a, 9, links3)
                                                        for a in c3_inputs],
    }
    spectra = {s: np.concatenate([scipy.fft.rfft2(x3, s=(s, s))] * 3, axis=1)[:, :16]
               for s in (28, 30)}
    for s in (28, 30):
        ops[f"C3 forward transforms at {s}"] = lambda s=s: scipy.fft.rfft2(x3, s=(s, s))
        ops[f"C3 inverse transforms at {s}"] = lambda s=s: scipy.fft.irfft2(spectra[s], s=(s, s))
    with threadpool_limits(1):
        times = median_ms(ops, args.rounds)
    print(f"LeNet-5-cat, one core, ms per chunk of 8 (median of {args.rounds} rounds); "
          f"{with_black} of {n} chunks of cat images hold a black pixel")
    for name, ms in times.items():
        per_chunk = ms / n if "exact zeros" in name else ms
        print(f"  {name:<38} {per_chunk:.3f}")


def _input_of(model, index, x):
    """What layer ``index`` of ``model`` receives for the input x."""
    for layer in model.layers[:index]:
        x, _ = layer.forward(x)
    return x


if __name__ == "__main__":
    main()
