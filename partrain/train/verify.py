"""Does a model keep partrain's bits? Two checks behind ``partrain verify``.

* :func:`layer_determinism`: every layer, called twice on the same input under the same
  random stream, must give the same bytes forward and backward. A layer that draws from
  numpy's global generator (``np.random.rand``...), from an unseeded
  ``np.random.default_rng()``, reads the clock or keeps state between calls fails here,
  named, with the reason where it can be seen (the global generator moved).
* :func:`compare_trainings`: a few steps of the same training on several engines,
  every parameter compared byte for byte after every step; the first array that
  differs, and the step, are reported.
"""

from __future__ import annotations

import numpy as np

from ..nn.randomness import training_stream
from .callbacks import Callback


def layer_determinism(model, X, y, key=(0, 1)):
    """None when every layer of ``model`` repeats itself exactly on (X, y) under the
    stream of ``key``; else one line naming the first layer that does not, and why."""
    first, second = _layer_outputs(model, X, y, key), _layer_outputs(model, X, y, key)
    for (name, kind, out_a, moved), (_, _, out_b, _) in zip(first, second):
        if out_a != out_b:
            layer, phase = name
            if moved:
                why = ("it draws from numpy's global random generator (np.random.*), whose "
                       "state depends on what else ran in the process")
            else:
                why = ("it gives other numbers for the same input and stream: an unseeded "
                       "generator (np.random.default_rng()), the clock, or state kept "
                       "between calls")
            return (f"layer {layer} ({kind}) is not deterministic in {phase}: {why}; draw "
                    "random numbers from partrain.nn.training_rng() instead, keyed on "
                    "(seed, step, chunk)")
    return None


def _layer_outputs(model, X, y, key):
    """[((layer name, phase), class name, output bytes, moved np.random), ...] of one
    forward and backward pass."""
    records = []
    with training_stream(key, 0), np.errstate(all="ignore"):
        out, caches = X, []
        for name, layer in zip(model.layer_names, model.layers):
            before = np.random.get_state()[1].copy()
            out, cache = layer.forward(out)
            moved = not np.array_equal(before, np.random.get_state()[1])
            records.append(((name, "forward"), type(layer).__name__,
                            np.asarray(out).tobytes(), moved))
            caches.append(cache)
        _, d = model.loss(out, y)
        for i in range(len(model.layers) - 1, -1, -1):
            layer = model.layers[i]
            before = np.random.get_state()[1].copy()
            d, grads = layer.backward(d, caches[i])
            moved = not np.array_equal(before, np.random.get_state()[1])
            blob = b"".join([np.asarray(d if d is not None else b"").tobytes()] +
                            [np.asarray(grads[k]).tobytes() for k in sorted(grads or {})])
            records.append(((model.layer_names[i], "backward"), type(layer).__name__, blob,
                            moved))
    return records


class ParameterSnapshots(Callback):
    """The model's flat parameters after every committed step."""

    def __init__(self):
        self.steps = []

    def on_step_end(self, trainer, row):
        self.steps.append(trainer.model.flat.copy())


def first_difference(model, reference, other):
    """(step, parameter name) of the first difference between two lists of per-step
    flat parameters, or None when they are byte-identical."""
    for step, (a, b) in enumerate(zip(reference, other), start=1):
        if a.tobytes() != b.tobytes():
            for slot in model.layout:
                lo, hi = slot.offset, slot.offset + slot.size
                if a[lo:hi].tobytes() != b[lo:hi].tobytes():
                    return step, slot.key
    if len(reference) != len(other):
        return min(len(reference), len(other)) + 1, "(a run stopped early)"
    return None


def compare_trainings(make_trainer, engines):
    """Train once per ``engines`` entry ({label: settings changes}) with
    ``make_trainer(callbacks, **changes)`` -> Trainer; returns the reference (first)
    per-step parameters and {label: first difference or None} for the others."""
    runs = {}
    model = None
    for label, changes in engines.items():
        snapshots = ParameterSnapshots()
        trainer = make_trainer([snapshots], **changes)
        trainer.run()
        runs[label] = snapshots.steps
        model = model or trainer.model
    reference_label = next(iter(runs))
    reference = runs.pop(reference_label)
    return reference, {label: first_difference(model, reference, steps)
                       for label, steps in runs.items()}
