"""The training loop: a model, data and an optimizer in; a trained model and a
:class:`History` out (as cs231n's ``Solver(model, data)``).

A step is two phases. The *gradient* phase changes no state, so a stop request or a
failing worker there loses nothing: the run stops at the previous step boundary. The
*commit* phase (optimizer update, history row, evaluation, best parameters, the
callbacks' work such as a periodic checkpoint) runs with stop requests held, so it is
never cut in half. A checkpoint is therefore always taken at a step boundary and
resumes to the same bits.

Where outputs go is not the trainer's business: callbacks (``partrain.run`` writes
the run directory through one) see every committed step and the end.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .. import signals
from ..data.augment import parse as parse_augmentation
from ..engine import make_engine
from ..errors import DivergenceError, Interrupted, PartrainError, UsageError
from . import schedule
from .callbacks import EvaluationLog, ProgressBar
from .history import History
from .sampler import Sampler
from .settings import TrainSettings
from .usage import ResourceUsage

# A loss this many times its first value (or 1, if larger) counts as divergence even
# while it is finite: 1e32 is not training. Stated in `partrain train --help`.
DIVERGENCE_FACTOR = 1e4


class Trainer:
    """Train ``model`` on ``data`` (:class:`partrain.data.Data`) with ``optimizer``.

    callbacks: :class:`partrain.train.callbacks.Callback` objects; a progress bar is
    added when ``settings.progress`` is true.
    """

    def __init__(self, model, data, optimizer, settings: TrainSettings | None = None,
                 callbacks=()):
        self.model, self.optimizer = model, optimizer
        settings = settings or TrainSettings()
        X, y = data.train
        model.check_input(X.shape[1:])
        self.data = _checked_for_model(data, model)
        self.settings = s = settings.resolved(len(X))
        self.sampler = Sampler(len(X), s.batch_size, s.seed, s.batch_order)
        self.augmentation = parse_augmentation(s.augment)
        if self.augmentation:
            self.augmentation.check(model.input_shape)
        if s.momentum_reset == "epoch" and not callable(getattr(optimizer, "reset_state", None)):
            raise UsageError(f"`momentum_reset` needs an optimizer with reset_state(); "
                             f"{type(optimizer).__name__} has none")
        self.schedule = schedule.parse(s.lr_schedule)
        if s.early_stopping and data.val is None:
            raise UsageError("`early_stopping` watches the validation accuracy: hold out "
                             "a validation split with `validation_split`")
        self.total_steps = s.steps
        self.callbacks = [*callbacks, *([ProgressBar()] if s.progress else []),
                          *([EvaluationLog()] if s.verbose else [])]
        self.history, self.evals = [], []
        self.best = dict(metric="val_acc", value=None, step=None, flat=None)
        self.resumed_from = None
        self.base_lr = optimizer.lr   # before any decay or checkpoint restores a later lr
        self.engine = None

    def restore(self, history, evals, best):
        """Continue after a checkpoint: its history rows, evaluations and best record
        (the model's parameters and the optimizer's state are restored by the caller)."""
        self.history, self.evals = history, evals
        self.best.update(best)
        self.resumed_from = len(history)
        return self

    # -- the loop ---------------------------------------------------------------
    def run(self):
        """Train; returns a :class:`History` (in every process of an MPI job)."""
        with signals.deferred():
            s = self.settings
            engine = make_engine(self.model, self.data.splits(), s.chunk_size,
                                 backend=s.backend, workers=s.workers,
                                 max_batch=s.batch_size, reduction=s.reduction)
            return engine.run(self._train)

    def _train(self, engine):
        self.engine = engine
        for callback in self.callbacks:
            callback.on_train_begin(self)
        stopped = None
        usage = ResourceUsage().start()
        try:
            self._loop(engine)
        except (Interrupted, PartrainError) as exc:
            stopped = exc
        finally:
            self.usage = usage.stop(engine.peak_rss())
        with signals.held():
            history = self._history(stopped)
            for callback in self.callbacks:
                callback.on_train_end(self, history, stopped)
        if stopped is not None:
            raise stopped
        signals.check()   # a stop asked for while the outputs were written
        return history

    def _loop(self, engine):
        s, model, opt = self.settings, self.model, self.optimizer
        for step in range(len(self.history), self.total_steps):
            if self.stopped_early():
                return
            signals.check()
            t0 = time.perf_counter()
            epoch, idx = self.sampler.batch(step)
            loss, grad = engine.gradient(idx, self.augmentation, key=(s.seed, step),
                                         what=f"step {step + 1}")
            loss = model.add_weight_decay(loss, grad, opt.weight_decay)
            self._check_divergence(step, loss, grad)
            with signals.held():                          # the commit
                opt.lr = self.base_lr * s.lr_decay ** epoch * schedule.lr_factor(
                    self.schedule, s.warmup_steps, step, epoch, self.total_steps, self.evals)
                if s.momentum_reset == "epoch" and step % self.sampler.steps_per_epoch == 0:
                    # A function of the step number, so a run resumed at an epoch
                    # boundary resets exactly where the uninterrupted one does.
                    opt.reset_state()
                opt.step(model.flat, grad)
                st = engine.stats
                row = dict(step=step + 1, epoch=epoch, loss=loss, lr=opt.lr,
                           seconds=time.perf_counter() - t0,
                           worker_seconds=st.worker_compute, overhead_seconds=st.overhead)
                self.history.append(row)
                if (step + 1) % s.eval_every == 0 or step + 1 == self.total_steps:
                    self._evaluate(row)
                for callback in self.callbacks:
                    callback.on_step_end(self, row)
                if (step + 1) % self.sampler.steps_per_epoch == 0 or step + 1 == self.total_steps:
                    for callback in self.callbacks:
                        callback.on_epoch_end(self, epoch, row)

    def stopped_early(self):
        """True once the validation accuracy has not improved for ``early_stopping``
        evaluations: a function of the evaluations, so a resumed run stops where the
        uninterrupted one did."""
        patience = self.settings.early_stopping
        return bool(patience) and schedule.evaluations_since_best(self.evals) >= patience

    def _check_divergence(self, step, loss, grad):
        first = self.history[0]["loss"] if self.history else loss
        what = None
        if not math.isfinite(loss):
            what = f"loss is {loss}"
        elif not np.isfinite(grad).all():
            what = "the gradient holds NaN or inf"
        elif loss > DIVERGENCE_FACTOR * max(first, 1.0):
            what = f"loss {loss:.3g} is over {DIVERGENCE_FACTOR:g}x its first value {first:.3g}"
        if what:
            raise DivergenceError(f"training diverged at step {step + 1}: {what}; "
                                  "lower the learning rate or check the data")

    def _evaluate(self, row):
        t0 = time.perf_counter()
        result = dict(step=row["step"])
        for split in self.data.splits():
            loss, acc = self.engine.evaluate(split)
            result[f"{split}_loss"], result[f"{split}_acc"] = loss, acc
        result["eval_seconds"] = time.perf_counter() - t0
        row.update(result)
        self.evals.append(result)
        val = result.get("val_acc")
        if val is not None and (self.best["value"] is None or val > self.best["value"]):
            self.best.update(value=val, step=row["step"], flat=self.model.flat.copy())

    # -- the summary -------------------------------------------------------------
    def _history(self, stopped=None):
        last_eval = self.evals[-1] if self.evals else {}
        usage = self.usage.summary()
        metrics = dict(
            model=self.model.name, data=self.data.name, steps=len(self.history),
            total_steps=self.total_steps,
            completed=len(self.history) == self.total_steps and stopped is None,
            stopped_early=self.stopped_early(),
            stopped_by=str(stopped) if stopped else None,
            evaluated_at_step=last_eval.get("step"),
            **{k: v for k, v in last_eval.items() if k != "step"},
            best_val_acc=self.best["value"], best_step=self.best["step"],
            total_seconds=usage.pop("total_seconds"),
            seconds_per_step_median=_median([r["seconds"] for r in self.history]),
            worker_seconds_median=_median([r["worker_seconds"] for r in self.history]),
            overhead_seconds_median=_median([r["overhead_seconds"] for r in self.history]),
            eval_seconds_median=_median([e["eval_seconds"] for e in self.evals]),
            backend=self.engine.name, workers=self.engine.workers,
            chunk_size=self.settings.chunk_size, **usage,
            worker_replacements=self.engine.replacements,
        )
        return History(self.history, self.evals, metrics, self.settings.out)


def _median(values):
    return float(np.median(values)) if values else None


def _checked_for_model(data, model):
    """The data cast to the model's dtype, its labels checked against the model's
    classes (a 10-class dataset cannot train a 1-output sigmoid model)."""
    from ..data.container import Data

    out = {}
    for split, (X, y) in data.splits().items():
        if tuple(X.shape[1:]) != model.input_shape:
            raise UsageError(f"{split} images have shape {X.shape[1:]}, the model takes "
                             f"{model.input_shape}")
        if len(y) and (y.min() < 0 or y.max() >= model.num_classes):
            raise UsageError(f"{split} labels run to {int(y.max())}, but the model "
                             f"predicts {model.num_classes} classes")
        out[split] = (np.ascontiguousarray(X, dtype=model.dtype),
                      np.ascontiguousarray(y, dtype=np.int64))
    return Data(train=out["train"], val=out.get("val"), test=out.get("test"),
                num_classes=data.num_classes or model.num_classes, name=data.name,
                class_names=data.class_names)
