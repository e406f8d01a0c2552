"""The training loop: data -> model -> engine -> optimizer, and the run directory.

A run is described by a :class:`TrainConfig`; :func:`resolve` fills what the user left
out from the preset's seed settings, and :class:`Trainer` runs it and writes

    config.json   every resolved setting, package versions, the machine
    history.csv   one row per step: step, epoch, loss, lr, seconds, worker_seconds,
                  overhead_seconds, and train/test accuracy on evaluation steps
    model.h5      final parameters, one dataset per name at the root; best-by-test
                  parameters in the group "best" (as cs231n's Solver keeps them)
    metrics.json  final train/test loss and accuracy, timings, CPU busy %, peak memory
    curves.png    loss and accuracy curves
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from . import __version__
from .data import DATASETS, load_dataset
from .engine import make_engine
from .errors import DivergenceError, PartrainError, UsageError
from .models import PRESETS, build_model
from .optim import make_optimizer
from . import checkpoint, outputs

HISTORY_FIELDS = ["step", "epoch", "loss", "lr", "seconds", "worker_seconds",
                  "overhead_seconds", "train_acc", "test_acc"]


class Interrupted(Exception):
    """Raised from a SIGINT/SIGTERM handler so the run can stop cleanly."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class TrainConfig:
    model: str = "lenet5"
    dataset: str | None = None          # None: the preset's own dataset
    data_dir: str | None = None
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | str | None = None  # an int or "full"
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    lr_decay: float | None = None        # multiply lr by this after every epoch
    weight_decay: float | None = None
    dtype: str = "float32"
    seed: int = 0
    workers: int | str = 1               # an int or "auto" (physical cores)
    backend: str | None = None           # None: "process" when workers > 1, else "serial"
    chunk_size: int | None = None        # None: default_chunk_size(batch)
    eval_every: int | None = None        # steps between accuracy evaluations
    out: str | None = None
    overwrite: bool = False
    progress: bool = True
    checkpoint_every: int | None = None  # steps between checkpoints (also on Ctrl-C/TERM)


GLOBAL_DEFAULTS = dict(batch_size=64, optimizer="momentum", lr=0.01, momentum=0.9,
                       lr_decay=1.0, weight_decay=0.0)


def physical_cores():
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def default_chunk_size(batch):
    """8 samples per chunk, more for huge batches so the per-chunk slots stay ~256.
    It depends on the batch size only, never on the worker count (determinism)."""
    return max(8, -(-batch // 256))


def resolve(cfg: TrainConfig, n_train: int) -> TrainConfig:
    """Fill unset settings from the preset, then global defaults; validate the values."""
    if cfg.model not in PRESETS:
        raise UsageError(f"unknown model {cfg.model!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[cfg.model]
    if cfg.steps is not None and cfg.epochs is not None:
        raise UsageError("give --steps or --epochs, not both")
    c = dataclasses.replace(cfg)
    c.dataset = c.dataset or preset.dataset
    if c.steps is None and c.epochs is None:   # the seed's own length, else one epoch
        c.steps, c.epochs = preset.train.get("steps"), preset.train.get("epochs")
        if c.steps is None and c.epochs is None:
            c.epochs = 1
    for key, value in {**GLOBAL_DEFAULTS, **preset.train}.items():
        if key not in ("steps", "epochs") and getattr(c, key) is None:
            setattr(c, key, value)
    if c.batch_size == "full":
        c.batch_size = n_train
    for key in ("steps", "epochs", "batch_size", "chunk_size", "eval_every", "checkpoint_every"):
        value = getattr(c, key)
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise UsageError(f"--{key.replace('_', '-')} must be a positive integer, got {value}")
    c.batch_size = min(int(c.batch_size), n_train)
    if not (c.lr > 0 and math.isfinite(c.lr)):
        raise UsageError(f"--lr must be a positive number, got {c.lr}")
    if not 0 <= c.momentum < 1:
        raise UsageError(f"--momentum must lie in [0, 1), got {c.momentum}")
    if not 0 < c.lr_decay <= 1:
        raise UsageError(f"--lr-decay must lie in (0, 1], got {c.lr_decay}")
    if not c.weight_decay >= 0:
        raise UsageError(f"--weight-decay must be >= 0, got {c.weight_decay}")
    if c.workers == "auto":
        c.workers = physical_cores()
    if not isinstance(c.workers, (int, np.integer)) or c.workers < 1:
        raise UsageError(f"--workers must be a positive integer or auto, got {c.workers}")
    if c.workers > (os.cpu_count() or 1):
        print(f"partrain: warning: {c.workers} workers on {os.cpu_count()} logical cores; "
              "they will share cores", file=sys.stderr)
    c.backend = c.backend or ("process" if c.workers > 1 else "serial")
    if c.backend == "serial":
        c.workers = 1
    c.chunk_size = c.chunk_size or default_chunk_size(c.batch_size)
    return c


def machine_info():
    """What ran this: CPU counts, BLAS, memory, versions (config.json, `partrain info`)."""
    import h5py
    from threadpoolctl import threadpool_info

    blas = [dict(library=p.get("internal_api"), version=p.get("version"),
                 threads=p.get("num_threads"), architecture=p.get("architecture"))
            for p in threadpool_info() if p.get("user_api") == "blas"]
    return dict(
        hostname=platform.node(), platform=platform.platform(), processor=platform.machine(),
        physical_cores=physical_cores(), logical_cores=os.cpu_count(),
        memory_gib=round(psutil.virtual_memory().total / 2**30, 1), blas=blas,
        versions=dict(partrain=__version__, python=platform.python_version(),
                      numpy=np.__version__, h5py=h5py.__version__, psutil=psutil.__version__),
    )


class Sampler:
    """Which samples each step uses: a function of (seed, epoch, step in epoch) only,
    so every backend, worker count and resumed run sees the same batches."""

    def __init__(self, n, batch_size, seed):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.steps_per_epoch = -(-n // batch_size)
        self._epoch, self._perm = None, None

    def batch(self, step):
        """step: 0-based global step -> (epoch, indices)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if self.batch_size >= self.n:
            return epoch, np.arange(self.n)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return epoch, self._perm[i * self.batch_size : (i + 1) * self.batch_size]


def evaluate(model, X, y):
    """(mean data loss, accuracy) of the model on X, y; no weight decay."""
    with np.errstate(all="ignore"):   # a diverged model evaluates to nan, not warnings
        scores = model.predict(X)
        loss_sum, _ = model.loss(scores, y)
    return loss_sum / len(X), float(np.mean(model.loss.predict_labels(scores) == y))


def prepare_out_dir(out, overwrite):
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"output directory {out} already exists; pass --overwrite to "
                         "replace it or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".partrain-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise PartrainError(f"cannot write to output directory {out}: "
                            f"{exc.strerror or exc}") from None
    return out


class Trainer:
    @classmethod
    def resume(cls, run_dir, **overrides):
        """Continue the run in ``run_dir`` from its checkpoint. Only settings that cannot
        change the result (workers, backend, progress) may be overridden."""
        run_dir = Path(run_dir)
        ckpt = checkpoint.load(run_dir / checkpoint.FILENAME)
        try:   # the run's own record; the checkpoint must belong to it
            settings = json.loads((run_dir / "config.json").read_text())["settings"]
        except (OSError, ValueError, KeyError) as exc:
            raise PartrainError(f"{run_dir / 'config.json'} is missing or corrupt ({exc})") from None
        settings.update({k: v for k, v in overrides.items() if v is not None})
        settings.update(out=str(run_dir), overwrite=True)
        trainer = cls(TrainConfig(**settings))
        checkpoint.restore(ckpt, trainer.model, trainer.optimizer)
        trainer.history, trainer.evals = ckpt["history"], ckpt["evals"]
        trainer.best = dict(test_acc=ckpt["best_test_acc"], step=ckpt["best_step"],
                            flat=ckpt["best_flat"])
        trainer.resumed_from = ckpt["step"]
        return trainer

    def __init__(self, cfg: TrainConfig):
        self.requested = cfg
        self.resumed_from = None
        if cfg.model not in PRESETS:
            raise UsageError(f"unknown model {cfg.model!r}; choose one of: {', '.join(PRESETS)}")
        # The training set's size is needed to resolve "full" batches, so it loads first.
        X, y = load_dataset(cfg.dataset or PRESETS[cfg.model].dataset, "train",
                            cfg.data_dir, cfg.dtype)
        self.cfg = c = resolve(cfg, len(X))
        self.X, self.y = X, y
        self.X_test, self.y_test = load_dataset(c.dataset, "test", c.data_dir, c.dtype)
        ds = DATASETS[c.dataset]
        self.model = build_model(c.model, seed=c.seed, dtype=c.dtype, input_shape=X.shape[1:],
                                 num_classes=ds.num_classes, weight_decay=c.weight_decay)
        self.optimizer = make_optimizer(c.optimizer, c.lr, c.momentum)
        self.sampler = Sampler(len(X), c.batch_size, c.seed)
        self.total_steps = c.steps or c.epochs * self.sampler.steps_per_epoch
        self.eval_every = c.eval_every or (
            self.sampler.steps_per_epoch if self.sampler.steps_per_epoch > 1
            else max(1, self.total_steps // 20))
        self.history, self.evals = [], []
        self.best = dict(test_acc=-1.0, step=0, flat=None)
        self.out = None

    # -- the loop ---------------------------------------------------------------
    def run(self):
        c = self.cfg
        self.out = prepare_out_dir(c.out, c.overwrite) if c.out else None
        if self.out and self.resumed_from is None:
            outputs.write_json(self.out / "config.json", self.config_record())
        engine = make_engine(c.backend, self.model, self.X, self.y, c.chunk_size,
                             workers=c.workers, max_batch=c.batch_size)
        self.engine = engine
        stopped = None
        psutil.cpu_percent(percpu=True)   # start the busy-time window
        t_start = time.perf_counter()
        try:
            engine.start()
            self._loop(engine)
        except (Interrupted, PartrainError) as exc:
            # Divergence, a failing chunk, Ctrl-C: keep what was done so far. Only an
            # interrupt checkpoints: after divergence the last good checkpoint stays.
            stopped = exc
            if isinstance(exc, Interrupted):
                self.save_checkpoint()
        finally:
            self.train_seconds = time.perf_counter() - t_start
            self.cpu_busy = psutil.cpu_percent(percpu=True)
            self.worker_rss = engine.peak_rss() if hasattr(engine, "peak_rss") else []
            engine.close()
        self.metrics = self.finish(stopped)
        if stopped:
            raise stopped
        return self.metrics

    def _loop(self, engine):
        from tqdm import tqdm

        c, model, opt = self.cfg, self.model, self.optimizer
        bar = tqdm(total=self.total_steps, initial=len(self.history), disable=not c.progress,
                   unit="step", dynamic_ncols=True, file=sys.stderr, leave=False)
        try:
            for step in range(len(self.history), self.total_steps):
                t0 = time.perf_counter()
                epoch, idx = self.sampler.batch(step)
                opt.lr = c.lr * c.lr_decay ** epoch
                loss, grad = engine.gradient(idx)
                loss = model.add_weight_decay(loss, grad)
                if not math.isfinite(loss) or not np.isfinite(grad).all():
                    what = f"loss is {loss}" if not math.isfinite(loss) else "the gradient holds NaN/inf"
                    raise DivergenceError(f"training diverged at step {step + 1}: {what}; "
                                          "lower --lr or check the data")
                opt.step(model.flat, grad)
                s = engine.stats
                row = dict(step=step + 1, epoch=epoch, loss=loss, lr=opt.lr,
                           seconds=time.perf_counter() - t0, worker_seconds=s.worker_compute,
                           overhead_seconds=s.overhead)
                self.history.append(row)
                if (step + 1) % self.eval_every == 0 or step + 1 == self.total_steps:
                    self._evaluate(row)
                if c.checkpoint_every and (step + 1) % c.checkpoint_every == 0:
                    self.save_checkpoint()
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update()
        finally:
            bar.close()

    def _evaluate(self, row):
        _, train_acc = evaluate(self.model, self.X, self.y)
        _, test_acc = evaluate(self.model, self.X_test, self.y_test)
        row.update(train_acc=train_acc, test_acc=test_acc)
        self.evals.append(dict(step=row["step"], train_acc=train_acc, test_acc=test_acc))
        if test_acc > self.best["test_acc"]:
            self.best = dict(test_acc=test_acc, step=row["step"], flat=self.model.flat.copy())

    # -- outputs ----------------------------------------------------------------
    def save_checkpoint(self):
        if self.out is None:
            return
        # Block Ctrl-C/TERM while writing: the rename is atomic anyway, but a signal
        # mid-write would lose this checkpoint for nothing.
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            checkpoint.save(self.out / checkpoint.FILENAME, model=self.model,
                            optimizer=self.optimizer, step=len(self.history),
                            history=self.history, evals=self.evals, best=self.best,
                            config=dataclasses.asdict(self.cfg))
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def config_record(self):
        return dict(settings=dataclasses.asdict(self.cfg), requested=dataclasses.asdict(self.requested),
                    model=dict(name=self.model.name, num_params=self.model.num_params,
                               input_shape=self.model.input_shape,
                               num_classes=self.model.num_classes,
                               layers=self.model.summary().splitlines()),
                    derived=dict(total_steps=self.total_steps,
                                 steps_per_epoch=self.sampler.steps_per_epoch,
                                 eval_every=self.eval_every, n_train=len(self.X),
                                 n_test=len(self.X_test)),
                    machine=machine_info(), command=sys.argv)

    def finish(self, stopped=None):
        train_loss, train_acc = evaluate(self.model, self.X, self.y)
        test_loss, test_acc = evaluate(self.model, self.X_test, self.y_test)
        step_secs = [r["seconds"] for r in self.history]
        coord_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        metrics = dict(
            model=self.model.name, dataset=self.cfg.dataset, steps=len(self.history),
            completed=len(self.history) == self.total_steps and stopped is None,
            stopped_by=str(stopped) if stopped else None,
            train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc,
            best_test_acc=self.best["test_acc"], best_step=self.best["step"],
            total_seconds=self.train_seconds,
            seconds_per_step_median=float(np.median(step_secs)) if step_secs else None,
            worker_seconds_median=float(np.median([r["worker_seconds"] for r in self.history]))
            if step_secs else None,
            overhead_seconds_median=float(np.median([r["overhead_seconds"] for r in self.history]))
            if step_secs else None,
            backend=self.cfg.backend, workers=self.cfg.workers, chunk_size=self.cfg.chunk_size,
            cpu_busy_percent_per_core=self.cpu_busy,
            peak_rss_mib=dict(coordinator=round(coord_rss / 2**20, 1),
                              workers=[round(r / 2**20, 1) for r in self.worker_rss]),
            worker_replacements=getattr(self.engine, "replacements", 0),
        )
        if self.out:
            o = self.out
            outputs.write_csv(o / "history.csv", self.history, HISTORY_FIELDS)
            groups = {"best": self.model.views(self.best["flat"])} if self.best["flat"] is not None else {}
            outputs.write_params_h5(o / "model.h5", self.model.params, groups,
                                    attrs=dict(model=self.model.name, step=len(self.history),
                                               dtype=str(self.model.dtype)))
            outputs.write_json(o / "metrics.json", metrics)
            outputs.plot_curves(o / "curves.png", self.history, self.evals)
        return metrics
