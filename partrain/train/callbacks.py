"""Hooks into the training loop, and the progress bar built on them.

A callback sees the run begin, every committed step, and the end. ``on_step_end`` runs
inside the commit, with stop requests held: what it writes (a checkpoint) is never cut
in half, and it must not wait on anything slow.
"""

from __future__ import annotations

import sys


class Callback:
    """Base class: override the hooks you need."""

    def on_train_begin(self, trainer):
        """Before the first step (after a resume, the first step still to run)."""

    def on_step_end(self, trainer, row):
        """After step ``row["step"]`` was committed; ``row`` holds its loss, lr,
        timings, and the evaluation results when it was an evaluation step."""

    def on_train_end(self, trainer, history, stopped):
        """After the last step, or a stop: ``stopped`` is the exception that stopped
        the run (it is raised after every callback ran), or None."""


class ProgressBar(Callback):
    """A tqdm bar on stderr: steps, rate, time left, and the latest loss."""

    def on_train_begin(self, trainer):
        from tqdm import tqdm

        self.bar = tqdm(total=trainer.total_steps, initial=len(trainer.history), unit="step",
                        dynamic_ncols=True, file=sys.stderr, leave=False)

    def on_step_end(self, trainer, row):
        self.bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
        self.bar.update()

    def on_train_end(self, trainer, history, stopped):
        self.bar.close()
