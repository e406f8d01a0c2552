"""The training loop: a model, data and an optimizer in; a trained model and a
:class:`History` out (as cs231n's ``Solver(model, data)``).

A step is two phases. The *gradient* phase changes no state, so a stop request or a
failing worker there loses nothing: the run stops at the previous step boundary. The
*commit* phase (optimizer update, history row, evaluation, best parameters, periodic
checkpoint) runs with stop requests held, so it is never cut in half. A checkpoint is
therefore always taken at a step boundary and resumes to the same bits.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import psutil

from .. import signals
from ..data.augment import parse as parse_augmentation
from ..engine import make_engine
from ..errors import DivergenceError, Interrupted, PartrainError, UsageError
from ..machine import machine_info
from ..run.rundir import RunDir
from .settings import TrainSettings

# A loss this many times its first value (or 1, if larger) counts as divergence even
# while it is finite: 1e32 is not training. Stated in `partrain train --help`.
DIVERGENCE_FACTOR = 1e4


@dataclass
class History:
    """What a run did. ``rows``: one dict per step (``step``, ``epoch``, ``loss``, ``lr``,
    timings, and ``train_acc``/``val_acc``/``test_acc`` and losses on evaluation steps);
    ``evals``: the evaluation rows only; ``metrics``: the summary written to
    metrics.json; ``out``: the run directory or None. ``history["loss"]`` is the
    per-step loss list, ``history["val_acc"]`` the per-evaluation list."""

    rows: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    out: str | None = None

    def __getitem__(self, key):
        rows = self.rows if key in ("step", "epoch", "loss", "lr", "seconds") else self.evals
        return [r.get(key) for r in rows]

    def __len__(self):
        return len(self.rows)


class Sampler:
    """Which samples each step uses: a function of (seed, epoch, step in epoch) only,
    so every backend, worker count and resumed run sees the same batches.

    An epoch is ceil(n / batch_size) steps whatever the order. ``order``:

    * ``"shuffle"`` (default): a new permutation every epoch, cut into batches; every
      sample once per epoch.
    * ``"ordered"``: the samples as stored, batch i = [i B, (i + 1) B) every epoch, as
      seed 004 walks its 8000 images. The same batches every epoch: with data stored
      sorted by class a batch can hold one class only.
    * ``"replacement"``: each step draws B indices uniformly with replacement, each step
      from its own stream, as seed 001's cs231n Solver does (``np.random.choice(n, B)``;
      it counts n // B steps an epoch, the same where B divides n). Some samples are
      seen twice in an epoch, others not at all.
    """

    ORDERS = ("shuffle", "ordered", "replacement")

    def __init__(self, n, batch_size, seed, order="shuffle"):
        if order not in self.ORDERS:
            raise UsageError(f"batch order must be one of {', '.join(self.ORDERS)}, "
                             f"got {order!r}")
        self.n, self.batch_size, self.seed, self.order = n, batch_size, seed, order
        self.steps_per_epoch = -(-n // batch_size)
        self._epoch, self._perm = None, None

    def batch(self, step):
        """step: 0-based global step -> (epoch, indices)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if self.order == "replacement":
            # Three numbers: never the stream of a permutation ([seed, epoch]).
            rng = np.random.default_rng([self.seed, epoch, i])
            return epoch, rng.integers(0, self.n, size=self.batch_size)
        if self.batch_size >= self.n:
            return epoch, np.arange(self.n)
        if self.order == "ordered":
            return epoch, np.arange(i * self.batch_size, min((i + 1) * self.batch_size, self.n))
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return epoch, self._perm[i * self.batch_size : (i + 1) * self.batch_size]


class Trainer:
    """Train ``model`` on ``data`` (:class:`partrain.data.container.Data`) with ``optimizer``.

    ``record``: extra facts for config.json (how the CLI named the model and data, so
    ``--resume`` can rebuild them).
    """

    def __init__(self, model, data, optimizer, settings: TrainSettings | None = None,
                 record=None):
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
            raise UsageError(f"momentum reset needs an optimizer with reset_state(); "
                             f"{type(optimizer).__name__} has none")
        self.total_steps = s.steps
        self.record = record or {}
        self.history, self.evals = [], []
        self.best = dict(metric="val_acc", value=None, step=None, flat=None)
        self.resumed_from = None
        self.run_dir = RunDir(s.out) if s.out else None
        self.base_lr = optimizer.lr   # before any decay or checkpoint restores a later lr
        self.fingerprints = self._fingerprints()

    def _fingerprints(self):
        m = self.model
        arch = json.dumps([m.summary(), [(k, list(sh)) for k, _, _, sh, _ in m.layout],
                           [type(layer).__qualname__ for layer in m.layers], str(m.dtype)])
        settings = json.dumps([self.settings.result_settings(),
                               self.optimizer.hyperparameters()], sort_keys=True)
        return dict(settings=_sha(settings), model=_sha(arch), data=self.data.fingerprint())

    # -- resume -------------------------------------------------------------------
    def resume(self):
        """Load the run directory's checkpoint (checked against this run's settings,
        model and data) and continue from it when run() is called."""
        if self.run_dir is None:
            raise UsageError("resume needs the run directory (out)")
        self.run_dir.remove_stale_temporaries()
        self.history, self.evals, best = self.run_dir.load_checkpoint(
            model=self.model, optimizer=self.optimizer, fingerprints=self.fingerprints,
            total_steps=self.total_steps)
        self.best.update(best)
        self.resumed_from = len(self.history)
        return self

    # -- the loop ---------------------------------------------------------------
    def run(self):
        """Train; returns a :class:`History` (None in processes that only serve a
        coordinator, such as MPI ranks other than 0)."""
        with signals.deferred():
            return self._run()

    def _run(self):
        s = self.settings
        engine = make_engine(self.model, self.data.splits(), s.chunk_size, backend=s.backend,
                             workers=s.workers, max_batch=s.batch_size, reduction=s.reduction)
        self.engine = engine
        if not engine.is_coordinator:
            with engine:
                engine.serve()
            return None
        if self.run_dir is not None and self.resumed_from is None:
            self.run_dir.create(s.overwrite)
            self.run_dir.write_config(self.config_record())
            self.run_dir.write_model_architecture(self.model)
        stopped = None
        psutil.cpu_percent(percpu=True)   # start the busy-time window
        t_start = time.perf_counter()
        try:
            engine.start()
            self._loop(engine)
        except (Interrupted, PartrainError) as exc:
            stopped = exc
        finally:
            self.train_seconds = time.perf_counter() - t_start
            self.cpu_busy = psutil.cpu_percent(percpu=True)
            self.worker_rss = engine.peak_rss()
            with signals.held():
                engine.close()
        with signals.held():
            # After divergence the last good checkpoint stays; every other stop is at a
            # step boundary, so its checkpoint resumes exactly.
            if self.run_dir is not None and (s.checkpoint_every or stopped is not None) \
                    and not isinstance(stopped, DivergenceError):
                self.save_checkpoint()
            history = self.finish(stopped)
        if stopped is not None:
            raise stopped
        signals.check()   # a stop asked for while the outputs were written
        return history

    def _loop(self, engine):
        from tqdm import tqdm

        s, model, opt = self.settings, self.model, self.optimizer
        bar = tqdm(total=self.total_steps, initial=len(self.history), disable=not s.progress,
                   unit="step", dynamic_ncols=True, file=sys.stderr, leave=False)
        base_lr = self.base_lr
        try:
            for step in range(len(self.history), self.total_steps):
                signals.check()
                t0 = time.perf_counter()
                epoch, idx = self.sampler.batch(step)
                loss, grad = engine.gradient(idx, self.augmentation, key=(s.seed, step))
                loss = model.add_weight_decay(loss, grad, opt.weight_decay)
                self._check_divergence(step, loss, grad)
                with signals.held():                          # the commit
                    opt.lr = base_lr * s.lr_decay ** epoch
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
                    if self.run_dir and s.checkpoint_every and (step + 1) % s.checkpoint_every == 0:
                        self.save_checkpoint()
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update()
        finally:
            bar.close()

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

    # -- outputs ----------------------------------------------------------------
    def save_checkpoint(self):
        self.run_dir.save_checkpoint(model=self.model, optimizer=self.optimizer,
                                     history=self.history, evals=self.evals, best=self.best,
                                     fingerprints=self.fingerprints)

    def config_record(self):
        m, d = self.model, self.data
        return dict(
            settings=self.settings.as_dict(), optimizer=self.optimizer.hyperparameters(),
            model=dict(name=m.name, num_params=m.num_params, input_shape=m.input_shape,
                       num_classes=m.num_classes, dtype=str(m.dtype),
                       layers=m.summary().splitlines()),
            data=dict(name=d.name, class_names=d.class_names, num_classes=d.num_classes,
                      **{f"n_{k}": len(v[0]) for k, v in d.splits().items()}),
            derived=dict(total_steps=self.total_steps,
                         steps_per_epoch=self.sampler.steps_per_epoch),
            fingerprints=self.fingerprints, machine=machine_info(), command=sys.argv,
            **self.record)

    def finish(self, stopped=None):
        step_secs = [r["seconds"] for r in self.history]
        last_eval = self.evals[-1] if self.evals else {}
        coord_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        metrics = dict(
            model=self.model.name, data=self.data.name, steps=len(self.history),
            total_steps=self.total_steps,
            completed=len(self.history) == self.total_steps and stopped is None,
            stopped_by=str(stopped) if stopped else None,
            evaluated_at_step=last_eval.get("step"),
            **{k: v for k, v in last_eval.items() if k != "step"},
            best_val_acc=self.best["value"], best_step=self.best["step"],
            total_seconds=self.train_seconds,
            seconds_per_step_median=_median(step_secs),
            worker_seconds_median=_median([r["worker_seconds"] for r in self.history]),
            overhead_seconds_median=_median([r["overhead_seconds"] for r in self.history]),
            eval_seconds_median=_median([e["eval_seconds"] for e in self.evals]),
            backend=self.engine.name, workers=self.engine.workers,
            chunk_size=self.settings.chunk_size,
            cpu_busy_percent_per_core=self.cpu_busy,
            peak_rss_mib=dict(coordinator=round(coord_rss / 2**20, 1),
                              workers=[round(r / 2**20, 1) for r in self.worker_rss]),
            worker_replacements=self.engine.replacements,
        )
        if self.run_dir is not None:
            self.run_dir.write_outputs(self.model, self.history, self.evals, self.best, metrics)
        return History(self.history, self.evals, metrics,
                       str(self.run_dir) if self.run_dir else None)


def _median(values):
    return float(np.median(values)) if values else None


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


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
