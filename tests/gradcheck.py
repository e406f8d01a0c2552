"""Central-difference gradient checking in float64, shared by the test modules."""

import numpy as np


def rel_error(a, b):
    """||a - b|| / (||a|| + ||b||): 0 for equal vectors, ~1 for unrelated ones."""
    a, b = np.ravel(a), np.ravel(b)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def numeric_grad(f, x, h=1e-6, coords=None):
    """d f / d x by central differences at the flat positions ``coords`` (all if None).
    f() reads x, which is perturbed in place and restored."""
    flat = x.reshape(-1)
    coords = range(flat.size) if coords is None else coords
    out = []
    for i in coords:
        old = flat[i]
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        out.append((plus - minus) / (2 * h))
    return np.array(out)


def sample_coords(size, n, rng):
    return np.arange(size) if size <= n else rng.choice(size, n, replace=False)
