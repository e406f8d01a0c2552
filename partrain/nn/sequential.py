"""A sequential model whose parameters are named views into one flat buffer.

``model.flat`` is a 1-D array holding every parameter; ``model.params["c1.W"]`` is a
view of its slice. Gradients use the same layout, so averaging gradients, applying an
optimizer, broadcasting parameters to workers or saving a checkpoint is one array
operation on a flat vector, not a loop over layers.

Any object with ``forward(x) -> (y, cache)`` and ``backward(dy, cache) -> (dx, grads)``
can be a layer (see :class:`partrain.nn.layer.Layer`), including your own classes defined
in a script or a notebook: the engine sends the model itself to its workers.
"""

from __future__ import annotations

import builtins
import copy
import math
import os
import traceback
from typing import NamedTuple

import numpy as np

from ..errors import LayerError, UsageError

DTYPES = {"float32": np.float32, "float64": np.float64}


class ParamSlot(NamedTuple):
    """Where one parameter lives in the model's flat buffer:
    ``flat[offset : offset + size]``, reshaped to ``shape``."""

    key: str        # "<layer name>.<parameter name>", as in model.params
    layer: int      # index into model.layers
    name: str       # the parameter's name inside its layer ("W", "b")
    shape: tuple
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)   # not np.prod: a Python-level call, on every chunk


def _named(layers):
    """[(name, layer)] from a list of layers, of (name, layer) pairs, or a dict."""
    if isinstance(layers, dict):
        layers = list(layers.items())
    named, counts = [], {}
    for item in layers:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            named.append(item)
            continue
        kind = type(item).__name__.lower()
        named.append((f"{kind}{counts.get(kind, 0)}", item))   # conv2d0, relu0, conv2d1...
        counts[kind] = counts.get(kind, 0) + 1
    names = [n for n, _ in named]
    if len(set(names)) != len(names) or any("." in n or "/" in n for n in names):
        raise UsageError(f"layer names must be unique and contain no '.' or '/': {names}")
    for name, layer in named:
        if not (callable(getattr(layer, "forward", None)) and callable(getattr(layer, "backward", None))):
            raise UsageError(f"layer {name} ({type(layer).__name__}) has no forward/backward methods")
    return named


def _param_shapes(layer):
    """A layer's {name: shape}: from param_shapes() when it has one (the built-in
    layers), else from the arrays in its ``params`` (a plain class of your own)."""
    if hasattr(layer, "param_shapes"):
        return layer.param_shapes()
    return {k: np.shape(v) for k, v in getattr(layer, "params", {}).items()}


def _init_params(layer, rng):
    if hasattr(layer, "init_params"):
        return layer.init_params(rng)
    return {k: np.array(v, dtype=np.float64) for k, v in getattr(layer, "params", {}).items()}


class Sequential:
    """Layers applied in order, followed by a loss.

    layers: a list of layers, of ``(name, layer)`` pairs, or a dict name -> layer.
    loss: a :mod:`partrain.nn.losses` object (``loss(scores, y) -> (loss_sum, dscores)``).
    input_shape: (C, H, W) of one sample; optional, checked when training starts.
    Parameters are initialised in layer order from ``numpy.random.default_rng(seed)``
    in float64 and then cast, so float32 and float64 models start from the same values.
    """

    def __init__(self, layers, loss, input_shape=None, seed=0, dtype="float32",
                 name="sequential"):
        if str(dtype) not in DTYPES:
            raise UsageError(f"unknown dtype {dtype!r}; choose float32 or float64")
        named = _named(layers)
        self.name = name
        self.layers = [layer for _, layer in named]
        self.layer_names = [n for n, _ in named]
        self.loss = loss
        self.dtype = np.dtype(DTYPES[str(dtype)])
        self.seed = seed
        self.input_shape = None
        # Nobody needs d(loss)/d(input image); for a convolution it is the most
        # expensive part of backward.
        self.layers[0].need_dx = False

        self.layout: list[ParamSlot] = []   # the flat buffer, parameter by parameter
        offset = 0
        for i, (lname, layer) in enumerate(named):
            for pname, pshape in _param_shapes(layer).items():
                slot = ParamSlot(f"{lname}.{pname}", i, pname, tuple(pshape), offset)
                self.layout.append(slot)
                offset += slot.size
        self.num_params = offset
        self.decay_mask = np.zeros(offset, dtype=bool)
        for slot in self.layout:
            if slot.name in getattr(self.layers[slot.layer], "decay", ()):
                self.decay_mask[slot.offset : slot.offset + slot.size] = True

        rng = np.random.default_rng(seed)
        initial = [_init_params(layer, rng) for layer in self.layers]
        self.bind(np.empty(offset, dtype=self.dtype))
        for slot in self.layout:
            value = np.asarray(initial[slot.layer][slot.name])
            if value.shape != slot.shape:
                raise UsageError(f"layer {self.layer_names[slot.layer]}: initial {slot.name} "
                                 f"has shape {value.shape}, param_shapes() says {slot.shape}")
            self.params[slot.key][...] = value
        if input_shape is not None:
            self.check_input(input_shape)

    # -- the flat buffer ------------------------------------------------------

    def bind(self, flat):
        """Make every parameter a view into ``flat`` (1-D, ``num_params`` long, model dtype).

        The engine uses this to place the parameters in shared memory.
        """
        if flat.shape != (self.num_params,) or flat.dtype != self.dtype:
            raise ValueError(f"flat buffer must be ({self.num_params},) {self.dtype}")
        self.flat = flat
        self.params = self.views(flat)
        for layer in self.layers:
            if not hasattr(layer, "params"):
                layer.params = {}
        for slot in self.layout:
            self.layers[slot.layer].params[slot.name] = self.params[slot.key]

    def views(self, flat):
        """dict[key, ndarray]: named views of a flat vector laid out like the parameters."""
        return {slot.key: flat[slot.offset : slot.offset + slot.size].reshape(slot.shape)
                for slot in self.layout}

    def __getstate__(self):
        """Pickle the architecture and the parameter values once (not once per view)."""
        state = dict(self.__dict__)
        state["layers"] = [copy.copy(layer) for layer in self.layers]
        for layer in state["layers"]:
            if hasattr(layer, "params"):
                layer.params = {}
        state.pop("params")
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.bind(self.flat)

    # -- shapes ---------------------------------------------------------------

    def check_input(self, input_shape):
        """Fix the sample shape (C, H, W) and return the output shape of one sample.

        A forward pass on one zero image finds every layer's output shape, so your own
        layers need no ``output_shape`` method, and a geometry that does not fit fails
        here with the layer's name rather than deep inside a training step.
        """
        input_shape = tuple(int(d) for d in input_shape)
        x = np.zeros((1,) + input_shape, self.dtype)
        for lname, layer in zip(self.layer_names, self.layers):
            try:
                with np.errstate(all="ignore"):
                    x, _ = layer.forward(x)
            except Exception as exc:   # a user's layer may raise anything
                raise UsageError(f"model {self.name!r} cannot take {input_shape} inputs: "
                                 f"layer {lname} ({type(layer).__name__}) failed: "
                                 f"{type(exc).__name__}: {exc}") from None
            if not isinstance(x, np.ndarray) or x.ndim < 2 or x.shape[0] != 1 or x.size == 0:
                raise UsageError(f"model {self.name!r} cannot take {input_shape} inputs: "
                                 f"layer {lname} returned {getattr(x, 'shape', type(x).__name__)}")
        if x.ndim != 2:
            raise UsageError(f"model {self.name!r} ends in scores of shape {x.shape[1:]} per "
                             "sample; the loss needs a flat vector (add a Flatten and a Dense)")
        self.input_shape = input_shape
        self.output_shape = x.shape[1:]
        self.num_classes = self.loss.num_classes(self.output_shape[0])
        return self.output_shape

    # -- computation ----------------------------------------------------------

    def forward(self, X):
        """X: (N, *input_shape) -> scores (N, *output_shape) and the per-layer caches."""
        caches = []
        out = X
        for i, layer in enumerate(self.layers):
            try:
                out, cache = layer.forward(out)
            except LayerError:   # a layer of a nested model: already named
                raise
            except Exception as exc:
                raise self._blame(i, "forward", exc) from exc
            caches.append(cache)
        return out, caches

    def predict(self, X, batch_size=512):
        """Scores for X: (N, *input_shape) -> (N, K), in batches to bound memory, in this
        process (``partrain.predict`` uses every core)."""
        X = np.asarray(X, dtype=self.dtype)
        parts = [self.forward(X[i : i + batch_size])[0] for i in range(0, len(X), batch_size)]
        return np.concatenate(parts)

    def loss_sum_and_grads(self, X, y, grad_out=None):
        """Data loss **summed** over the batch and its gradient, without weight decay.

        X: (N, *input_shape) in the model dtype, y: (N,) ints.
        grad_out: optional flat (num_params,) array to write the gradient sum into (the
        engine passes a shared-memory slot); a new one is allocated otherwise.
        Returns (loss_sum: float, grad_flat).
        """
        scores, caches = self.forward(X)
        loss_sum, d = self.loss(scores, y)
        grad = np.empty(self.num_params, self.dtype) if grad_out is None else grad_out
        gviews = self.views(grad)
        for i in range(len(self.layers) - 1, -1, -1):
            try:
                d, grads = self.layers[i].backward(d, caches[i])
            except LayerError:   # a layer of a nested model: already named
                raise
            except Exception as exc:
                raise self._blame(i, "backward", exc) from exc
            for slot in self._checked(i, grads):
                gviews[slot.key][...] = grads[slot.name]
        return loss_sum, grad

    def _blame(self, i, method, exc):
        """A LayerError naming layer ``i`` and the line of its own code that raised
        ``exc`` (the caller chains ``exc`` as its cause). A plain try in the hot loop:
        it costs nothing until something raises."""
        hint = ""
        if isinstance(exc, ValueError) and "read-only" in str(exc):
            # The engine hands layers the training data read-only: written in place, it
            # would change the data of every later step and of a resumed run.
            hint = ("; layers must not modify their input in place (compute a new array: "
                    "x = x * 2, not x *= 2)")
        return LayerError(f"layer {self.layer_names[i]} ({type(self.layers[i]).__name__})."
                          f"{method} raised {type(exc).__name__}: {exc}{_where(exc)}{hint}")

    def _checked(self, i, grads):
        """The layer's parameter slots, once ``grads`` (what its backward returned) holds
        exactly one real array of each parameter's shape: a scalar is not broadcast
        into a weight, a missing gradient does not leave the slot's old values."""
        slots = self._slots_of_layer()[i]
        grads = {} if grads is None else grads
        if type(grads) is dict and len(grads) == len(slots) and all(
                type(g := grads.get(slot.name)) is np.ndarray and g.shape == slot.shape
                and g.dtype.kind == "f" for slot in slots):
            return slots   # the usual case, checked without building messages (every chunk)
        where = f"layer {self.layer_names[i]} ({type(self.layers[i]).__name__}).backward"
        if not isinstance(grads, dict) or set(grads) != {slot.name for slot in slots}:
            got = sorted(grads) if isinstance(grads, dict) else type(grads).__name__
            raise LayerError(f"{where} returned gradients for {got}; its parameters are "
                             f"{sorted(slot.name for slot in slots)}")
        for slot in slots:
            g = grads[slot.name]
            dtype = getattr(g, "dtype", None)
            if np.shape(g) != slot.shape or dtype is None or dtype.kind != "f":
                raise LayerError(f"{where} returned a gradient for {slot.name} of shape "
                                 f"{np.shape(g)} and dtype {dtype}; {slot.name} is "
                                 f"{slot.shape} {self.dtype}")
        return slots

    def _slots_of_layer(self):
        """[layer index] -> that layer's ParamSlots, built once."""
        if getattr(self, "_layer_slots", None) is None:
            self._layer_slots = [tuple(slot for slot in self.layout if slot.layer == i)
                                 for i in range(len(self.layers))]
        return self._layer_slots

    def add_weight_decay(self, loss, grad_flat, weight_decay):
        """Add 1/2 wd * sum(W^2) to the loss and wd * W to the gradient (weights only)."""
        if weight_decay == 0:
            return loss
        w = self.flat[self.decay_mask]
        grad_flat[self.decay_mask] += weight_decay * w
        return loss + 0.5 * weight_decay * float(np.dot(w.astype(np.float64), w))

    def loss_and_grads(self, X, y, weight_decay=0.0):
        """Mean loss over the batch (plus weight decay) and grads keyed like ``params``."""
        X = np.asarray(X, dtype=self.dtype)
        loss_sum, grad = self.loss_sum_and_grads(X, np.asarray(y))
        grad /= len(X)
        loss = self.add_weight_decay(loss_sum / len(X), grad, weight_decay)
        return loss, self.views(grad)

    def describe_layers(self):
        """[(name, description, output shape or None, parameter count)] per layer."""
        rows, x = [], None
        if self.input_shape is not None:
            x = np.zeros((1,) + self.input_shape, self.dtype)
        for lname, layer in zip(self.layer_names, self.layers):
            if x is not None:
                with np.errstate(all="ignore"):
                    x, _ = layer.forward(x)
            n = sum(int(np.prod(s)) for s in _param_shapes(layer).values())
            describe = getattr(layer, "describe", lambda: type(layer).__name__)
            rows.append((lname, describe(), None if x is None else x.shape[1:], n))
        return rows

    def code_fingerprint(self):
        """{class name: sha256 of its code} for every class of your own the model is made
        of (the layers', the loss's, the model's and their base classes; partrain's own
        are covered by its version): resuming after a layer's ``forward`` was edited
        would otherwise go on from parameters trained by other code. The code is the
        class's source, parsed (so comments and spacing do not count), or, where there
        is no source (``python -c``), the bytecode of its methods."""
        out = {}
        for obj in [self, self.loss, *self.layers]:
            for cls in type(obj).__mro__:
                module = getattr(cls, "__module__", "") or ""
                if getattr(builtins, cls.__name__, None) is cls or module == "partrain" \
                        or module.startswith("partrain."):
                    continue
                out[cls.__qualname__] = _class_code_sha(cls)
        return out

    def summary(self):
        shape = self.input_shape or "?"
        lines = [f"{self.name}: input {shape}, {self.num_params:,} parameters"]
        for lname, text, out, n in self.describe_layers():
            lines.append(f"  {lname:<8} {text:<50} -> {str(out or '?'):<14} {n:>8,}")
        lines.append(f"  loss     {getattr(self.loss, 'name', type(self.loss).__name__)}")
        return "\n".join(lines)


def _where(exc):
    """" (file:line)" of the deepest frame of ``exc`` outside numpy: the line of the
    layer's own code that failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    numpy_dir = os.path.dirname(np.__file__)
    own = [f for f in frames if not f.filename.startswith(numpy_dir)]
    frame = (own or frames)[-1] if frames else None
    return f" ({frame.filename}:{frame.lineno})" if frame else ""


def _class_code_sha(cls):
    import ast
    import hashlib
    import inspect
    import textwrap

    try:
        text = ast.dump(ast.parse(textwrap.dedent(inspect.getsource(cls))))
    except (OSError, TypeError, SyntaxError):
        text = repr(sorted((name, _code_of(value)) for name, value in vars(cls).items()
                           if not name.startswith("__") or name == "__init__"))
    return hashlib.sha256(text.encode()).hexdigest()


def _code_of(value):
    """What a class attribute contributes without source: a function's bytecode, its
    constants (nested code included) and names; any other value's type."""
    value = getattr(value, "__func__", value)   # staticmethod, classmethod
    code = getattr(value, "__code__", value if hasattr(value, "co_code") else None)
    if code is None:
        return type(value).__qualname__
    return (code.co_code.hex(), code.co_names,
            tuple(_code_of(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts))
