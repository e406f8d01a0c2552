"""The Python API: train your own numpy network on your own arrays, on every core.

    import partrain
    history = partrain.fit(model, X, y, epochs=3, validation_split=0.1, out="runs/x")
    labels = partrain.predict(model, X_new)
    model, history = partrain.load_run("runs/x")
    result = partrain.sweep(build, X, y, grid={"lr": [0.01, 0.03]}, seeds=[0, 1],
                            validation_split=0.1, out="sweeps/x")

Defaults are the command line's: every physical core, chunks of 8, momentum 0.9,
lr 0.01, batch 32, one epoch. Scripts need no ``if __name__ == "__main__":`` guard:
workers never re-run your script (see partrain/engine/process.py).
"""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np

from . import log
from .data import as_data, hold_out_validation
from .data.checks import as_images
from .errors import UsageError
from .nn.optim import Optimizer
from .run.rundir import METRICS, RunDir
from .run.training import TrainingRun
from .train.callbacks import accuracies
from .train.history import History
from .train.settings import OptimizerSettings, TrainSettings

_SETTINGS = {f.name: f for cls in (TrainSettings, OptimizerSettings)
             for f in dataclasses.fields(cls)}


def fit(model, X, y=None, *, validation_data=None, validation_split=0.0, test_data=None,
        resume=False, callbacks=(), **settings):
    """Train ``model`` in place, data-parallel, and return its :class:`History`.

    model: a :class:`partrain.Sequential` (layers may be your own classes).
    X: images (N, C, H, W) or (N, H, W, C) or (N, H, W), uint8 (scaled by 1/255) or
       float; y: (N,) integer labels. Or X may be a :class:`partrain.Data`, or the path
       of a .npz/.h5 file or an image folder (then y is None; see partrain.data.files).
    validation_data: (Xv, yv), or validation_split: the fraction of X held out (chosen
       by ``seed``); it selects the best parameters (model.h5 "best/"). test_data:
       (Xt, yt), reported only.
    resume: continue the checkpoint in ``out`` (same model, data, settings).
    callbacks: :class:`partrain.train.callbacks.Callback` objects.
    settings: any field of :class:`partrain.TrainSettings` (epochs, steps, batch_size,
       seed, workers, out, overwrite, augment, ...) and of
       :class:`partrain.train.settings.OptimizerSettings` (optimizer, lr, momentum,
       weight_decay); ``optimizer`` may also be an Optimizer object.
    Returns the same History in every process of an MPI job.
    """
    from .engine.shared_memory import ensure_standard_fds

    ensure_standard_fds()   # before the data, the run directory or an engine is opened
    unknown = sorted(settings.keys() - _SETTINGS.keys())
    if unknown:
        raise UsageError(f"fit() got unknown settings {', '.join(unknown)}; it takes "
                         f"{', '.join(_SETTINGS)}")
    data = as_data(X, y, validation_data, test_data, dtype=model.dtype)
    seed = settings.get("seed", 0)
    if validation_split:
        data = hold_out_validation(data, validation_split, seed)
    loop = {k: v for k, v in settings.items() if k in _fields(TrainSettings)}
    if loop.get("out") is not None:
        loop["out"] = str(loop["out"])
    update = {k: v for k, v in settings.items() if k in _fields(OptimizerSettings)}
    optimizer = update.get("optimizer")
    if not isinstance(optimizer, Optimizer):
        optimizer = OptimizerSettings(**update).build()
    run = TrainingRun(model, data, optimizer, TrainSettings(**loop), callbacks=callbacks)
    if resume:
        run.resume()
    history = run.run()
    if run.settings.verbose:
        m = history.metrics
        log.info(f"{m['steps']} steps in {m['total_seconds']:.1f} s on {m['workers']} "
                 f"worker{'s' * (m['workers'] > 1)}; {accuracies(m)}"
                 + (f"; outputs in {history.out}" if history.out else ""))
    return history


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls)}


def _signature():
    """fit's signature as help() and editors show it: every setting a keyword."""
    sig = inspect.signature(fit)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
               for name, f in _SETTINGS.items()]
    return sig.replace(parameters=params)


fit.__signature__ = _signature()


def predict_scores(model, X, workers="auto"):
    """The model's output scores (N, K) for images X, computed on every core.

    X: images as :func:`fit` takes them, or the path (or a list of paths) of image
    files, folders of images or .npz files with an array X, read in path order (see
    partrain.data.files.load_unlabelled)."""
    from .engine import forward_scores

    if isinstance(X, (str, bytes)) or hasattr(X, "__fspath__") or (
            isinstance(X, (list, tuple)) and X and all(
                isinstance(x, str) or hasattr(x, "__fspath__") for x in X)):
        from .data.files import load_unlabelled

        X = load_unlabelled(X, dtype=model.dtype)[0]
    X = np.ascontiguousarray(as_images(X, "images"), dtype=model.dtype)
    model.check_input(X.shape[1:])
    return forward_scores(model, X, workers=workers)[0]


def predict(model, X, workers="auto"):
    """Predicted labels (N,) for images X."""
    return model.loss.predict_labels(predict_scores(model, X, workers))


def predict_proba(model, X, workers="auto"):
    """Class probabilities (N, num_classes) for images X."""
    return model.loss.probabilities(predict_scores(model, X, workers))


def load_run(path, best=False, allow_pickle=False):
    """(model, history) of a finished run directory: the model with the parameters of
    model.h5 (``best=True``: the best-by-validation ones).

    A model of partrain's own layers is rebuilt from config.json: nothing in the run
    directory runs. A model with classes of your own can only come back from model.pkl,
    and unpickling runs whatever code it holds: that needs ``allow_pickle=True``, to be
    given only for run directories you trust (as numpy's ``np.load``).
    """
    run = RunDir(path)
    model = run.read_params(run.read_model(allow_pickle=allow_pickle), best=best)
    rows = run.read_history()
    evals = [{k: v for k, v in r.items() if k == "step" or "_acc" in k or "_loss" in k
              or k == "eval_seconds"} for r in rows if r.get("train_acc") is not None]
    try:
        metrics = json.loads(run.file(METRICS).read_text())
    except (OSError, ValueError):
        metrics = {}
    return model, History(rows, evals, metrics, str(path))


def sweep(build, X, y=None, *, grid=None, variants=None, seeds=(0,), out, jobs="auto",
          workers="auto", overwrite=False, validation_data=None, validation_split=0.0,
          test_data=None, **settings):
    """Train every candidate (each of ``variants`` x every combination of ``grid`` x
    each seed) as an independent :func:`fit` into ``out/<candidate>/``, in parallel
    across the cores (joblib), and choose the best on validation only.

    build: a function returning a fresh model; it may take ``seed`` (each candidate's).
    grid: {setting: [values]}; variants: [{setting: value}, ...]; settings: what every
       candidate shares (any :func:`fit` setting). ``seeds``: each candidate's seeds.
    jobs, workers: runs at a time and workers per run (see partrain.sweeps.runner).
    Calling it again with the same candidates and ``out`` keeps finished candidates and
    resumes stopped ones. Returns a :class:`partrain.sweeps.SweepResult` (``best`` is its
    row chosen on validation; summary.csv, summary.md and curves.png are in ``out``).
    """
    from .sweeps import expand, run_sweep

    if not callable(build) or hasattr(build, "loss_sum_and_grads"):
        raise UsageError("sweep() takes a function that builds a fresh model (each "
                         "candidate starts from its own seed), not a model")
    candidates = expand(grid, variants, seeds)
    for c in candidates:
        unknown = sorted(dict(c.settings).keys() - _SETTINGS.keys())
        if unknown or {"seed", "out", "workers", "resume"} & dict(c.settings).keys():
            raise UsageError(f"sweep candidate {c.label()}: "
                             f"{', '.join(unknown) or 'seed, out, workers, resume'} cannot "
                             f"vary; a sweep may vary {', '.join(_SETTINGS)}")
    data = as_data(X, y, validation_data, test_data, dtype=_built(build, seeds[0]).dtype)
    job = FitJob(build, data, validation_split, settings)
    return run_sweep(candidates, job, str(out), jobs=jobs, workers=workers,
                     overwrite=overwrite, record=dict(settings={k: str(v) for k, v in
                                                                settings.items()}))


class FitJob:
    """One sweep candidate as :func:`fit` trains it (picklable, for joblib's workers)."""

    def __init__(self, build, data, validation_split, settings):
        self.build, self.data = build, data
        self.validation_split, self.settings = validation_split, settings

    def __call__(self, candidate, run_dir, resume, workers):
        import sys
        from pathlib import Path

        from .errors import PartrainError

        settings = {**self.settings, **dict(candidate.settings), "seed": candidate.seed,
                    "out": run_dir, "workers": workers, "progress": False,
                    "overwrite": not resume and Path(run_dir).is_dir()}
        try:
            fit(_built(self.build, candidate.seed), self.data, resume=resume,
                validation_split=self.validation_split, **settings)
        except PartrainError as exc:
            print(f"partrain: error: {exc}", file=sys.stderr)
            return exc.exit_code
        return 0


def _built(build, seed):
    """build(seed=seed) when it takes a seed, else build(); it must return a model."""
    try:
        takes_seed = "seed" in inspect.signature(build).parameters
    except (TypeError, ValueError):
        takes_seed = False
    model = build(seed=seed) if takes_seed else build()
    if not hasattr(model, "loss_sum_and_grads"):
        raise UsageError(f"sweep(): build() returned {type(model).__name__}, not a "
                         "partrain.Sequential")
    return model
