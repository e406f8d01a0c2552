"""Hooks into the training loop, and the progress bar and log built on them.

A callback sees the run begin, every committed step, every epoch's end, and the end.
``on_step_end`` and ``on_epoch_end`` run inside the commit, with stop requests held:
what they write (a checkpoint) is never cut in half, and they must not wait on anything
slow. A callback that changes the run must do so as a function of the run's history
(as partrain's schedules do, see :mod:`.schedule`), or a resumed run will differ.
"""

from __future__ import annotations

import sys
import time

from .. import log


class Callback:
    """Base class: override the hooks you need."""

    def on_train_begin(self, trainer):
        """Before the first step (after a resume, the first step still to run)."""

    def on_step_end(self, trainer, row):
        """After step ``row["step"]`` was committed; ``row`` holds its loss, lr,
        timings, and the evaluation results when it was an evaluation step."""

    def on_epoch_end(self, trainer, epoch, row):
        """After the last step of ``epoch`` (0-based) was committed; ``row`` is that
        step's row."""

    def on_train_end(self, trainer, history, stopped):
        """After the last step, or a stop: ``stopped`` is the exception that stopped
        the run (it is raised after every callback ran), or None."""


def accuracies(values):
    """"train_acc 0.9000, val_acc 0.8800" of a history row or metrics (those present)."""
    return ", ".join(f"{k} {values[k]:.4f}" for k in ("train_acc", "val_acc", "test_acc")
                     if values.get(k) is not None)


def summary(row):
    """"loss 0.1234, train_acc 0.9000, val_acc 0.8800" of a history row."""
    return ", ".join(filter(None, [f"loss {row['loss']:.4f}", accuracies(row)]))


def _bar_class():
    """tqdm's widget in a Jupyter kernel with ipywidgets, its text bar on a terminal,
    else None: a text bar written to a file or a notebook's stream is a trail of '\\r'
    fragments, and the evaluation lines already say how the run goes."""
    if "IPython" in sys.modules:
        try:
            shell = sys.modules["IPython"].get_ipython()
            if shell is not None and "IPKernelApp" in shell.config:
                import ipywidgets  # noqa: F401  (the widget needs it)
                from tqdm.notebook import tqdm

                return tqdm
        except Exception:   # no ipywidgets, an odd shell: no widget
            pass
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm
    return None


class ProgressBar(Callback):
    """A tqdm bar (a widget in Jupyter): steps, rate, time left, the epoch, the latest
    loss and validation accuracy. Nothing where neither fits (see _bar_class)."""

    def on_train_begin(self, trainer):
        bar = _bar_class()
        self.bar = None if bar is None else bar(
            total=trainer.total_steps, initial=len(trainer.history), unit="step",
            dynamic_ncols=True, file=sys.stderr, leave=False)
        self.val = None

    def on_step_end(self, trainer, row):
        if self.bar is None:
            return
        self.val = row.get("val_acc", self.val)
        postfix = dict(epoch=row["epoch"], loss=f"{row['loss']:.4f}")
        if self.val is not None:
            postfix["val_acc"] = f"{self.val:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update()

    def on_train_end(self, trainer, history, stopped):
        if self.bar is not None:
            self.bar.close()


class EvaluationLog(Callback):
    """One log line per evaluation (by default every epoch), through partrain's logger:
    the same in a terminal, a notebook or a file, where a bar leaves nothing. Its loss
    is the mean of the steps' losses since the previous line. In a long epoch a line
    also comes every ``every_seconds`` between evaluations."""

    def __init__(self, every_seconds=60.0):
        self.every_seconds = every_seconds

    def on_train_begin(self, trainer):
        self.since = len(trainer.history)
        self.last_line = time.monotonic()

    def on_step_end(self, trainer, row):
        evaluated = "train_acc" in row
        if not evaluated and time.monotonic() - self.last_line < self.every_seconds:
            return
        losses = [r["loss"] for r in trainer.history[self.since:]]
        self.since, self.last_line = len(trainer.history), time.monotonic()
        log.info(f"step {row['step']}/{trainer.total_steps} (epoch {row['epoch'] + 1}): "
                 f"{summary(dict(row, loss=sum(losses) / len(losses)))}")
