"""Every training setting, declared once: name, type, default, choices and help.

:class:`TrainSettings` (how the loop runs) and :class:`OptimizerSettings` (which update
rule) are dataclasses whose fields carry their help text, choices and how a command
line spells their values (``metadata``). The trainer reads them, ``partrain.fit`` takes
them as keywords, and the command line builds its flags from them, so adding a setting
is one field here. Their defaults are the command line's (every core, float32 models,
chunks of 8); a preset brings its seed's values for the settings it names.

Messages name settings in their Python spelling inside backticks (`batch_size`); the
command line rewrites those into its flag spellings (--batch-size).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ..engine import BACKENDS, REDUCTIONS, check_worker_count
from ..errors import UsageError
from ..nn.optim import OPTIMIZERS

# The choices of TrainSettings.batch_order and .momentum_reset (see their help).
BATCH_ORDERS = ("shuffle", "ordered", "replacement")
MOMENTUM_RESETS = ("never", "epoch")


def setting(default, help, *, choices=None, text=None, metavar=None, group="training",
            result=True, flag=None):
    """A dataclass field declaring one setting.

    help: one line for ``--help`` and the docs. choices: the allowed values.
    text: how a command line reads the value (a function str -> value raising
    ValueError), one of the readers below; None for choices and switches.
    group: the ``--help`` section. result: False for settings that change only how
    fast or where a run goes, never its parameters or history (they may change on
    resume). flag: a command-line switch's spelling when it is not ``--name``.
    """
    return field(default=default, metadata=dict(
        help=help, choices=choices, text=text, metavar=metavar, group=group, result=result,
        flag=flag))


# -- readers of command-line text: str -> value, or ValueError("expected ...") --------

def _number(text, convert, expected):
    try:
        return convert(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected {expected}") from None


def positive_int(text):
    value = _number(text, int, "a positive integer")
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


def nonnegative_int(text):
    value = _number(text, int, "a non-negative integer")
    if value < 0:
        raise ValueError("expected a non-negative integer")
    return value


def finite_number(text):
    value = _number(text, float, "a number")
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def int_or(word):
    """A reader of a positive integer or the word ``word`` ("full", "auto")."""
    def read(text):
        return word if text == word else positive_int(text)
    read.__name__ = f"positive_int_or_{word}"
    return read


@dataclass
class TrainSettings:
    """How to run the loop. Which model, data and optimizer is not here: those are
    objects handed to the trainer."""

    steps: int | None = setting(
        None, "optimizer steps (or give epochs)", text=positive_int, metavar="N",
        group="length")
    epochs: int | None = setting(
        None, "passes over the training data (default 1)", text=positive_int, metavar="N",
        group="length")
    batch_size: int | str = setting(
        32, "samples per step, or full", text=int_or("full"), metavar="N|full")
    lr_decay: float = setting(
        1.0, "multiply the learning rate by this after every epoch", text=finite_number,
        metavar="F")
    seed: int = setting(0, "which samples each step uses (and the model's initial values)",
                        text=nonnegative_int, metavar="N")
    lr_schedule: str | None = setting(
        None, "step:every=E,factor=F (the rate times F every E epochs), cosine (down to 0 "
        "over the run) or plateau:patience=P,factor=F (times F after P evaluations without "
        "a better validation accuracy)", metavar="SPEC")
    warmup_steps: int | None = setting(
        None, "ramp the learning rate up linearly over the first N steps", text=positive_int,
        metavar="N")
    early_stopping: int | None = setting(
        None, "stop when the validation accuracy has not improved for N evaluations "
        "(best/ keeps the best parameters)", text=positive_int, metavar="N")
    augment: str | None = setting(
        None, "random transforms of the training images each step: flip (mirror "
        "left-right) and/or shift=K (move up to K pixels), e.g. flip,shift=2; the same on "
        "any worker count", metavar="SPEC")
    batch_order: str = setting(
        "shuffle", "how batches are drawn: shuffle (a new permutation each epoch), ordered "
        "(stored order, as seed 004) or replacement (each batch drawn with replacement, as "
        "seed 001's cs231n Solver)", choices=BATCH_ORDERS, group="seed reproduction")
    momentum_reset: str = setting(
        "never", "epoch: zero the optimizer's momentum at each epoch's start, as seed 004",
        choices=MOMENTUM_RESETS, group="seed reproduction")
    chunk_size: int | None = setting(
        None, "samples per chunk of the deterministic reduction (default 8; the bits "
        "depend on it, never on the worker count)", text=positive_int, metavar="K",
        group="speed")
    workers: int | str = setting(
        "auto", "worker processes (auto: one per physical core; under mpiexec, one per "
        "rank)", text=int_or("auto"), metavar="N|auto", group="speed", result=False)
    backend: str | None = setting(
        None, "serial, process (default for several workers) or mpi (default under "
        "mpiexec)", choices=tuple(BACKENDS), group="speed", result=False)
    reduction: str = setting(
        "ordered", "how chunk gradients are added: ordered (the same bits on any worker "
        "count) or allreduce (mpi only: one MPI_Allreduce, faster, but the bits depend on "
        "the rank count)", choices=REDUCTIONS, group="speed")
    eval_every: int | None = setting(
        None, "steps between evaluations (default: every epoch)", text=positive_int,
        metavar="N", group="outputs")
    checkpoint_every: int | None = setting(
        None, "write checkpoint.h5 every N steps (always on a stop)", text=positive_int,
        metavar="N", group="outputs", result=False)
    progress: bool = setting(True, "no progress bar", group="outputs", result=False,
                             flag="--no-progress")
    verbose: bool = setting(True, "no line per evaluation (loss and accuracies)",
                            group="outputs", result=False, flag="--quiet")
    out: str | None = setting(None, "run directory", metavar="DIR", group="outputs",
                              result=False)
    overwrite: bool = setting(False, "replace an existing run directory (its previous "
                              "files are removed)", group="outputs", result=False)

    def resolved(self, n_train):
        """A copy with every None filled and every value checked (``n_train``: size of
        the training split, for "full" batches and epochs)."""
        s = dataclasses.replace(self)
        if s.steps is not None and s.epochs is not None:
            raise UsageError("give `steps` or `epochs`, not both")
        if s.steps is None and s.epochs is None:
            s.epochs = 1
        if s.batch_size == "full":
            s.batch_size = n_train
        for key in ("steps", "epochs", "batch_size", "chunk_size", "eval_every",
                    "checkpoint_every", "warmup_steps", "early_stopping"):
            _positive_int(key, getattr(s, key), optional=True)
        if s.out is not None and str(s.out) == "":
            # Path("") is the working directory: never write a run there by accident.
            raise UsageError("`out` must not be empty")
        if isinstance(s.seed, bool) or not isinstance(s.seed, (int, np.integer)) or s.seed < 0:
            raise UsageError(f"`seed` must be a non-negative integer, got {s.seed!r}")
        for f in dataclasses.fields(s):
            choices = f.metadata["choices"]
            value = getattr(s, f.name)
            if choices and value is not None and value not in choices:
                raise UsageError(f"`{f.name}` must be one of {', '.join(choices)}, "
                                 f"got {value!r}")
        if not (isinstance(s.lr_decay, (int, float)) and math.isfinite(s.lr_decay)
                and 0 < s.lr_decay <= 1):
            raise UsageError(f"`lr_decay` must lie in (0, 1], got {s.lr_decay!r}")
        from ..data.augment import parse
        from .schedule import parse as parse_schedule

        augmentation = parse(s.augment)
        s.augment = str(augmentation) if augmentation else None   # one spelling per choice
        schedule = parse_schedule(s.lr_schedule)
        s.lr_schedule = str(schedule) if schedule else None

        check_worker_count(s.workers)
        s.batch_size = min(int(s.batch_size), n_train)
        s.chunk_size = s.chunk_size or default_chunk_size(s.batch_size)
        steps_per_epoch = -(-n_train // s.batch_size)
        if s.steps is None:
            s.steps = s.epochs * steps_per_epoch
        if s.eval_every is None:
            s.eval_every = steps_per_epoch if steps_per_epoch > 1 else max(1, s.steps // 20)
        return s

    # Result settings added after checkpoints already existed: left out of the
    # fingerprint while unset, so those checkpoints still resume.
    LATER_FIELDS = ("augment", "lr_schedule", "warmup_steps", "early_stopping")

    def result_settings(self):
        """The settings that change the parameters or the history (the fingerprint of
        a checkpoint); the others change only how fast, or where outputs go."""
        return {f.name: getattr(self, f.name) for f in result_fields(TrainSettings)
                if f.name != "steps" and f.name != "epochs"
                and not (f.name in self.LATER_FIELDS and getattr(self, f.name) is None)}

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclass
class OptimizerSettings:
    """Which update rule, with which hyperparameters (see partrain.nn.optim)."""

    optimizer: str = setting("momentum", "update rule", choices=tuple(OPTIMIZERS))
    lr: float = setting(0.01, "learning rate", text=finite_number, metavar="F")
    momentum: float = setting(0.9, "for momentum and nesterov", text=finite_number,
                              metavar="F")
    weight_decay: float = setting(0.0, "L2 strength on weights", text=finite_number,
                                  metavar="F")

    def build(self):
        from ..nn.optim import make_optimizer

        return make_optimizer(self.optimizer, self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay)


def result_fields(cls):
    """The fields of a settings class that change a run's result."""
    return [f for f in dataclasses.fields(cls) if f.metadata["result"]]


def defaults(*classes):
    """{name: default} of every field of the given settings classes."""
    return {f.name: f.default for cls in classes for f in dataclasses.fields(cls)}


def _positive_int(key, value, optional=False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"`{key}` must be a positive integer, got {value!r}")


def default_chunk_size(batch):
    """8 samples per chunk, more for huge batches so the per-chunk slots stay ~256.
    It depends on the batch size only, never on the worker count (determinism)."""
    return max(8, -(-batch // 256))
