"""Check a layer's backward against central differences, in float64.

    import partrain
    errors = partrain.gradcheck(MyLayer(...), x)     # {"x": 3e-10, "W": 2e-9, ...}

Below about 1e-6 the gradients are right; above 1e-3 ``backward`` has a bug (a missed
term, a transposed product, a wrong sum axis).
"""

from __future__ import annotations

import copy

import numpy as np


def gradcheck(layer, x, *, seed=0, samples=30, h=1e-6):
    """Relative errors {"x": ..., parameter name: ...} of ``layer``'s backward against
    central differences of a random linear read-out of its output, in float64.

    layer: any object with ``forward(x) -> (y, cache)``, ``backward(dy, cache) -> (dx,
    grads)`` and optional ``params`` (a dict of arrays); it is copied, never changed.
    x: an input batch (N, ...). samples: positions checked per array (all of a small one).
    """
    layer = copy.deepcopy(layer)
    layer.params = {k: np.array(v, dtype=np.float64)
                    for k, v in (getattr(layer, "params", None) or {}).items()}
    x = np.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    y, cache = layer.forward(x)
    readout = rng.standard_normal(np.shape(y))

    def objective():
        return float(np.sum(layer.forward(x)[0] * readout))

    dx, grads = layer.backward(readout, cache)
    errors = {}
    for name, value, analytic in [("x", x, dx)] + [
            (k, v, (grads or {}).get(k)) for k, v in layer.params.items()]:
        if analytic is None:
            if name != "x" or getattr(layer, "need_dx", True):
                errors[name] = float("nan")   # backward returned nothing for it
            continue
        coords = sample_coords(value.size, samples, rng)
        numeric = numeric_grad(objective, value, h, coords)
        errors[name] = rel_error(np.ravel(analytic)[coords], numeric)
    return errors


def rel_error(a, b):
    """||a - b|| / (||a|| + ||b||): 0 for equal vectors, ~1 for unrelated ones."""
    a, b = np.ravel(a), np.ravel(b)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def numeric_grad(f, x, h=1e-6, coords=None):
    """d f / d x by central differences at the flat positions ``coords`` (all if None),
    shape (len(coords),). f() reads x, which is perturbed in place and restored."""
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
    """``n`` distinct flat positions out of ``size``, drawn by ``rng`` (all when
    size <= n): where to check a large gradient."""
    return np.arange(size) if size <= n else rng.choice(size, n, replace=False)


