"""The Python API: train your own numpy network on your own arrays, on every core.

    import partrain
    history = partrain.fit(model, X, y, epochs=3, validation_split=0.1, out="runs/x")
    labels = partrain.predict(model, X_new)
    model, history = partrain.load_run("runs/x")

Defaults are the command line's: every physical core, chunks of 8, momentum 0.9,
lr 0.01, batch 32, one epoch. Scripts need no ``if __name__ == "__main__":`` guard:
workers never re-run your script (see partrain/engine/process.py).
"""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np

from .data.datasets import as_images, as_labels
from .errors import UsageError
from .nn.optim import Optimizer, make_optimizer
from .run.rundir import HISTORY, METRICS, RunDir
from .train.settings import DEFAULT_TRAINING, TrainSettings
from .data.container import Data, hold_out_validation
from .train.trainer import History, Trainer


def fit(model, X, y=None, *, epochs=None, steps=None, batch_size=DEFAULT_TRAINING["batch_size"],
        optimizer=DEFAULT_TRAINING["optimizer"], lr=DEFAULT_TRAINING["lr"],
        momentum=DEFAULT_TRAINING["momentum"], weight_decay=0.0, lr_decay=1.0,
        validation_data=None, validation_split=0.0, test_data=None, seed=0, workers="auto",
        backend=None, chunk_size=None, eval_every=None, checkpoint_every=None, out=None,
        overwrite=False, resume=False, progress=True, batch_order="shuffle",
        momentum_reset="never", reduction="ordered", augment=None):
    """Train ``model`` in place, data-parallel, and return its :class:`History`.

    model: a :class:`partrain.Sequential` (layers may be your own classes).
    X: images (N, C, H, W) or (N, H, W, C) or (N, H, W), uint8 (scaled by 1/255) or
       float; y: (N,) integer labels. Or X may be a :class:`partrain.Data`, or the path
       of a .npz/.h5 file or an image folder (then y is None; see partrain.data.files).
    optimizer: a name (sgd, momentum, nesterov, rmsprop, adam) or an Optimizer object;
       ``lr``, ``momentum`` and ``weight_decay`` apply to a name.
    validation_data: (Xv, yv), or validation_split: the fraction of X held out (chosen
       by ``seed``); it selects the best parameters (model.h5 "best/"). test_data:
       (Xt, yt), reported only.
    out: a run directory for config, history, model.h5, metrics, curves, checkpoints;
       resume=True continues the checkpoint in ``out`` (same model, data, settings).
    batch_order ("shuffle", "ordered", "replacement"), momentum_reset ("never",
       "epoch"): the seeds' habits, see TrainSettings; reduction "allreduce" (MPI only):
       faster, but the bits then depend on the rank count.
    augment: random transforms of the training images, e.g. "flip,shift=2" (see
       partrain.data.augment); the same bits on any worker count.
    Returns None in MPI ranks other than 0 (they only serve rank 0).
    """
    data = as_data(X, y, validation_data, test_data, dtype=model.dtype)
    if validation_split:
        data = hold_out_validation(data, validation_split, seed)
    if not isinstance(optimizer, Optimizer):
        optimizer = make_optimizer(optimizer, lr, momentum=momentum, weight_decay=weight_decay)
    settings = TrainSettings(steps=steps, epochs=epochs, batch_size=batch_size, lr_decay=lr_decay,
                             seed=seed, chunk_size=chunk_size, workers=workers, backend=backend,
                             eval_every=eval_every, checkpoint_every=checkpoint_every,
                             progress=progress, out=None if out is None else str(out),
                             overwrite=overwrite, batch_order=batch_order,
                             momentum_reset=momentum_reset, reduction=reduction,
                             augment=augment)
    trainer = Trainer(model, data, optimizer, settings)
    if resume:
        trainer.resume()
    return trainer.run()


def as_data(X, y=None, validation_data=None, test_data=None, dtype="float32"):
    """A :class:`Data` from arrays (any accepted layout), a Data, or a file path."""
    if isinstance(X, Data):
        data = X
    elif isinstance(X, (str, bytes)) or hasattr(X, "__fspath__"):
        from .data.files import load_data_file

        f = load_data_file(X, dtype=dtype)
        data = Data(train=f.train, val=f.val, test=f.test, num_classes=f.num_classes,
                    name=str(X), class_names=f.class_names)
    else:
        if y is None:
            raise UsageError("fit(model, X, y): labels y are missing")
        data = Data(train=_pair(X, y, "training", dtype), name="arrays")
    if validation_data is not None:
        data = dataclasses.replace(data, val=_pair(*validation_data, "validation", dtype))
    if test_data is not None:
        data = dataclasses.replace(data, test=_pair(*test_data, "test", dtype))
    return data


def _pair(X, y, what, dtype):
    X = as_images(X, f"{what} images")
    y = as_labels(y, f"{what} labels")
    if len(X) != len(y):
        raise UsageError(f"{what} data: {len(X)} images but {len(y)} labels")
    return np.ascontiguousarray(X, dtype=dtype), y


def predict_scores(model, X, workers="auto"):
    """The model's output scores (N, K) for images X, computed on every core."""
    from .engine import make_engine
    from .engine.base import EVAL_CHUNK

    X = np.ascontiguousarray(as_images(X, "images"), dtype=model.dtype)
    model.check_input(X.shape[1:])
    small = workers == 1 or len(X) <= EVAL_CHUNK
    engine = make_engine(model, {"train": (X, np.zeros(len(X), np.int64))}, EVAL_CHUNK,
                         backend="serial" if small else "process", workers=workers)
    with engine:
        return engine.evaluate("train", want_scores=True)[2]


def predict(model, X, workers="auto"):
    """Predicted labels (N,) for images X."""
    return model.loss.predict_labels(predict_scores(model, X, workers))


def predict_proba(model, X, workers="auto"):
    """Class probabilities (N, num_classes) for images X."""
    return model.loss.probabilities(predict_scores(model, X, workers))


def load_run(path, best=False):
    """(model, history) of a finished run directory: the model rebuilt from model.pkl
    with the parameters of model.h5 (``best=True``: the best-by-validation ones).

    model.pkl is a pickle: it runs code when loaded, so only load runs you trust.
    """
    run = RunDir(path)
    model = run.read_params(run.read_model_architecture(), best=best)
    rows = _read_history(run.file(HISTORY))
    evals = [{k: v for k, v in r.items() if k == "step" or "_acc" in k or "_loss" in k
              or k == "eval_seconds"} for r in rows if r.get("train_acc") is not None]
    try:
        metrics = json.loads(run.file(METRICS).read_text())
    except (OSError, ValueError):
        metrics = {}
    return model, History(rows, evals, metrics, str(path))


def _read_history(path):
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    parsed = []
    for row in rows:
        out = {}
        for k, v in row.items():
            if v in ("", None):
                continue
            try:
                out[k] = int(v) if k in ("step", "epoch") else float(v)
            except ValueError:
                out[k] = v
        parsed.append(out)
    return parsed
