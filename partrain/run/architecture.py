"""A model's architecture as plain JSON, so a run directory can be read back without
running any code it holds.

model.pkl (cloudpickle) can rebuild any model, but unpickling runs whatever code the
file names: a run directory from someone else would run their code. So for a model made
only of partrain's own layers and losses, config.json records each layer's class name
and constructor arguments ("architecture"), and the model is rebuilt from that with no
unpickling at all. A model with a class of your own has no such record and needs an
explicit ``allow_pickle`` (as numpy's ``np.load``).

The record is only written when rebuilding from it gives back exactly the same model
(every layer's attributes compared), so a built-in layer changed after construction
falls back to the pickle rather than coming back different.
"""

from __future__ import annotations

import numpy as np

from ..errors import PartrainError
from ..nn import (AvgPool2D, Conv2D, Dense, Dropout, Flatten, HalfSumSquares, MaxPool2D,
                  ReLU, Sequential, Sigmoid, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy,
                  Tanh)

ARCHITECTURE_FORMAT = 1


def _conv_args(layer):
    table = None
    if layer.table_out is not None:
        table = [[int(i) for o2, i in zip(layer.table_out, layer.table_in) if o2 == o]
                 for o in range(layer.cout)]
    return dict(in_channels=layer.cin, out_channels=layer.cout, kernel=layer.k,
                stride=layer.stride, pad=layer.pad, table=table, bias=layer.bias,
                method=layer.method)


# class name -> (class, its constructor arguments read back from an instance)
LAYERS = {
    "Conv2D": (Conv2D, _conv_args),
    "Dense": (Dense, lambda l: dict(in_features=l.din, out_features=l.dout, bias=l.bias)),
    "Flatten": (Flatten, lambda l: {}),
    "ReLU": (ReLU, lambda l: dict(backward_rule=l.backward_rule)),
    "Sigmoid": (Sigmoid, lambda l: {}),
    "Tanh": (Tanh, lambda l: dict(amplitude=l.amplitude, slope=l.slope)),
    "MaxPool2D": (MaxPool2D, lambda l: dict(window=l.window, stride=l.stride, ties=l.ties)),
    "AvgPool2D": (AvgPool2D, lambda l: dict(window=l.window, stride=l.stride)),
    "Dropout": (Dropout, lambda l: dict(rate=l.rate)),
}
LOSSES = {cls.__name__: cls for cls in (SoftmaxCrossEntropy, SigmoidBinaryCrossEntropy,
                                        HalfSumSquares)}


def _plain(value):
    """``value`` as JSON would give it back (numpy scalars to Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def describe(model):
    """The JSON record of ``model``'s architecture, or None when it holds a class that
    is not partrain's own (or was changed in a way its arguments do not capture)."""
    if type(model) is not Sequential or type(model.loss).__name__ not in LOSSES \
            or type(model.loss) is not LOSSES[type(model.loss).__name__] \
            or vars(model.loss) or model.input_shape is None:
        return None
    layers = []
    for name, layer in zip(model.layer_names, model.layers):
        entry = LAYERS.get(type(layer).__name__)
        if entry is None or type(layer) is not entry[0]:
            return None
        try:
            args = {k: _plain(v) for k, v in entry[1](layer).items()}
        except (AttributeError, TypeError, ValueError):
            return None
        layers.append(dict(name=name, cls=type(layer).__name__, args=args))
    record = dict(format=ARCHITECTURE_FORMAT, name=model.name, layers=layers,
                  loss=type(model.loss).__name__, input_shape=list(model.input_shape),
                  dtype=str(model.dtype), seed=_plain(model.seed))
    try:
        if not _same(build(record), model):
            return None
    except Exception:   # arguments a constructor refuses: not rebuildable, use the pickle
        return None
    return record


def build(record, where="config.json"):
    """The model ``record`` (from :func:`describe`) describes, with freshly initialised
    parameters (the caller reads model.h5 into it). Only partrain's own classes can be
    named, so nothing from the run directory runs."""
    try:
        if record.get("format") != ARCHITECTURE_FORMAT:
            raise ValueError(f"format {record.get('format')!r}")
        layers = []
        for entry in record["layers"]:
            cls, _ = LAYERS[entry["cls"]]
            args = entry["args"]
            if not isinstance(args, dict):
                raise TypeError("layer arguments are not an object")
            layers.append((entry["name"], cls(**args)))
        return Sequential(layers, LOSSES[record["loss"]](), tuple(record["input_shape"]),
                          seed=record["seed"], dtype=record["dtype"], name=record["name"])
    except PartrainError as exc:
        raise PartrainError(f"{where}: the model's architecture is corrupt ({exc})") from None
    except Exception as exc:   # any malformed field: one line, never a traceback
        raise PartrainError(f"{where}: the model's architecture is corrupt "
                            f"({type(exc).__name__}: {exc})") from None


# Attributes that do not shape the computation: the parameters (read from model.h5),
# how they were first drawn (replaced by model.h5) and private caches.
_IGNORED = {"params", "w_init", "b_init"}


def _same(a, b):
    if (a.name, a.layer_names, a.input_shape, a.dtype, a.num_params, a.layout) != \
            (b.name, b.layer_names, b.input_shape, b.dtype, b.num_params, b.layout):
        return False
    return all(type(x) is type(y) and _state(x) == _state(y)
               for x, y in zip(a.layers, b.layers))


def _state(layer):
    out = {}
    for k, v in vars(layer).items():
        if k in _IGNORED or k.startswith("_"):
            continue
        out[k] = ("array", v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) \
            else v
    return out
