"""Rebuild a run from its directory: the model, data, optimizer and settings that
config.json records, for continuing it (``partrain train --resume``) or evaluating it.

A run started from the command line records in config.json how it named its model and
data (its "spec": a preset or FILE.py:FUNCTION, a dataset or a file); a run started from
Python records objects only, and its caller must hand them over again
(``partrain.fit(..., out=..., resume=True)``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

from ..data import open_data
from ..errors import PartrainError, UsageError
from ..names import make_model
from ..presets import PRESETS
from ..nn.optim import OPTIMIZERS
from ..train.settings import TrainSettings
from .rundir import RunDir

# What config.json's "spec" (how the command line named model and data) must hold.
SPEC_TYPES = dict(model=(str,), dataset=(str, type(None)), data=(str, type(None)),
                  data_dir=(str, type(None)), model_file=(str, type(None)),
                  val_split=(int, float), dtype=(str,), seed=(int,))


class Rebuilt(NamedTuple):
    model: object
    data: object
    optimizer: object
    settings: TrainSettings
    spec: dict


def read_spec(run: RunDir, record, from_python_hint):
    """config.json's spec, checked; a run started from Python has none: say what to
    do instead (``from_python_hint``)."""
    spec = record.get("spec")
    if spec is None:
        raise UsageError(f"{run} was started from Python, not the command line; "
                         f"{from_python_hint}")
    bad = [k for k, types in SPEC_TYPES.items()
           if not isinstance(spec, dict) or not isinstance(spec.get(k), types)
           or isinstance(spec.get(k), bool)]
    if not bad and not (0 <= spec["val_split"] < 1 and spec["seed"] >= 0
                        and spec["dtype"] in ("float32", "float64")):
        bad = ["val_split, seed or dtype"]
    if bad:
        raise PartrainError(f"{run.file('config.json')} is corrupt (spec: bad {', '.join(bad)})")
    return spec


def check_named_model(run, spec, given):
    """Refuse to import the model's code unless the caller named it.

    config.json is only text in a folder that may come from anyone; importing the file
    or module it names would run their code. Naming the same ``model`` again is the
    consent the run was started with, needs no new option, and runs nothing the caller
    did not type: the simplest rule that keeps resume from running a stranger's code.
    A preset is partrain's own code and needs nothing."""
    recorded = spec["model"]
    if recorded in PRESETS:
        if given is not None and given != recorded:
            raise UsageError(f"`resume` continues {run} with its own model {recorded}; "
                             f"drop `model` {given}")
        return
    where, func = recorded.rsplit(":", 1) if ":" in recorded else (recorded, "")
    named = f"{spec['model_file']}:{func}" if spec.get("model_file") else recorded
    if given is None:
        raise UsageError(f"{run} was trained with a model from {named}; resuming it runs "
                         "that code again, so name it yourself: add `model` "
                         f"{named} (only if you trust that code)")
    g_where, g_func = given.rsplit(":", 1) if ":" in given else (given, "")
    if spec.get("model_file"):
        same = g_where.endswith(".py") and g_func == func and \
            str(Path(g_where).resolve()) == spec["model_file"]
    else:
        same = given == recorded
    if not same:
        raise UsageError(f"`resume` continues {run} with its own model {named}; "
                         f"`model` {given} is another one")


def open_spec_data(spec, dtype=None):
    """The data a spec names, split as the run split it."""
    return open_data(dataset=spec.get("dataset"), data_file=spec.get("data"),
                     data_dir=spec.get("data_dir"), dtype=dtype or spec["dtype"],
                     validation_split=spec.get("val_split") or 0.0, seed=spec.get("seed", 0))


def rebuild(run: RunDir, model=None) -> Rebuilt:
    """Everything needed to continue the run in ``run``, as config.json records it
    (``settings.steps`` is the recorded total; ``settings.out`` is the run).

    model: the ``model`` the caller named again (None: not named). A preset is rebuilt
    from partrain's own code; a model from a file or module is code that config.json
    only names, so it is imported again only when the caller names that same model
    (see :func:`check_named_model`)."""
    record = run.read_config()
    spec = read_spec(run, record, "resume it with `partrain.fit(..., out=..., resume=True)`")
    check_named_model(run, spec, model)
    try:
        recorded = dict(record["settings"])
        opt_record = dict(record["optimizer"])
        data = open_spec_data(spec)
        model_spec = spec["model"]
        if spec.get("model_file"):
            model_spec = f"{spec['model_file']}:{model_spec.rsplit(':', 1)[1]}"
        model = make_model(model_spec, input_shape=data.input_shape,
                           num_classes=data.num_classes, seed=spec["seed"], dtype=spec["dtype"])
        optimizer = OPTIMIZERS[opt_record.pop("name")](**opt_record)
        names = {f.name for f in dataclasses.fields(TrainSettings)}
        settings = TrainSettings(**{k: v for k, v in recorded.items() if k in names})
        settings.epochs = None                  # the recorded steps count
        settings.resolved(len(data.train[0]))   # every recorded value checked here
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise PartrainError(f"{run.file('config.json')} is corrupt "
                            f"({type(exc).__name__}: {exc})") from None
    settings.out, settings.overwrite = str(run), True
    return Rebuilt(model, data, optimizer, settings, spec)
