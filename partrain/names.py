"""Resolve a model's name into a model: a preset, or a function in your file or module.

The command line and resume use this; the trainer takes objects.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

from .errors import UsageError
from .presets import PRESETS, build_model


def make_model(spec, *, input_shape, num_classes, seed=0, dtype="float32"):
    """A model from a preset name, ``path/to/net.py:function`` or ``package.module:function``.

    The function may take any of ``input_shape``, ``num_classes``, ``seed``, ``dtype``
    as keyword arguments and must return a :class:`partrain.Sequential`.
    """
    if spec in PRESETS:
        try:
            return build_model(spec, seed=seed, dtype=dtype, input_shape=input_shape,
                               num_classes=num_classes)
        except UsageError as exc:
            preset = PRESETS[spec]
            shape = "x".join(map(str, preset.input_shape))
            raise UsageError(f"{exc}; the {spec} preset is made for {shape} images like "
                             f"{preset.dataset}'s: for these, pass your own network "
                             "(`model` FILE.py:FUNCTION)") from None
    if ":" not in spec:
        raise UsageError(f"unknown model {spec!r}; choose a preset ({', '.join(PRESETS)}), "
                         "or give FILE.py:FUNCTION or MODULE:FUNCTION")
    where, func_name = spec.rsplit(":", 1)
    build = getattr(_import(where), func_name, None)
    if not callable(build):
        raise UsageError(f"`model` {spec}: {where} has no function {func_name!r}")
    offered = dict(input_shape=tuple(input_shape), num_classes=num_classes, seed=seed,
                   dtype=dtype)
    try:
        params = inspect.signature(build).parameters
        takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in offered.items() if takes_all or k in params}
        model = build(**kwargs)
    except UsageError:
        raise
    except SystemExit as exc:   # sys.exit(), exit() or argparse in the user's function
        raise UsageError(f"`model` {spec}: {func_name}() called sys.exit({_code(exc)}) "
                         "instead of returning a model") from None
    except Exception as exc:
        raise UsageError(f"`model` {spec}: {func_name}() raised {type(exc).__name__}: {exc}") from None
    if not all(hasattr(model, a) for a in ("layers", "flat", "loss_sum_and_grads")):
        raise UsageError(f"`model` {spec}: {func_name}() returned {type(model).__name__}, "
                         "not a partrain.Sequential")
    if str(model.dtype) != dtype and "dtype" not in kwargs:
        raise UsageError(f"`model` {spec}: the model is {model.dtype} but `dtype` is {dtype}; "
                         f"let {func_name}() take a dtype argument or pass `dtype={model.dtype}`")
    return model


def _import(where):
    """A module from a file path (loaded under a private name) or a dotted name."""
    import cloudpickle

    if where.endswith(".py") or os.sep in where:
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"`model`: file not found: {path}")
        name = f"partrain_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except SystemExit as exc:   # a script that parses its own arguments, say
            del sys.modules[name]
            raise UsageError(f"`model`: {path} called sys.exit({_code(exc)}) while it was "
                             "loaded; keep the network's function importable without "
                             "running the script") from None
        except Exception as exc:
            del sys.modules[name]
            raise UsageError(f"`model`: {path} failed to load: {type(exc).__name__}: {exc}") from None
        # Workers cannot import a module known only by its path: pickle its classes
        # and functions by value instead.
        cloudpickle.register_pickle_by_value(module)
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())   # `partrain` is a console script: add ./ as python does
    try:
        return importlib.import_module(where)
    except SystemExit as exc:
        raise UsageError(f"`model`: importing {where} called sys.exit({_code(exc)})") from None
    except Exception as exc:
        raise UsageError(f"`model`: cannot import {where}: {type(exc).__name__}: {exc}") from None


def _code(exc):
    return "" if exc.code is None else repr(exc.code)
