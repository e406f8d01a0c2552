"""A training run with its run directory: the trainer, and a callback that records
every committed step and the end in ``settings.out``.

    run = TrainingRun(model, data, optimizer, settings)   # settings.out: where
    run.resume()          # optional: continue its checkpoint
    history = run.run()

The command line and ``partrain.fit`` both train through this class.
"""

from __future__ import annotations

from ..errors import DivergenceError, Interrupted, UsageError
from ..train.callbacks import Callback
from ..train.settings import TrainSettings
from ..train.trainer import Trainer
from . import checkpoint
from .record import config_record
from .rundir import CHECKPOINT, RunDir


class TrainingRun:
    """A :class:`Trainer` whose run, when ``settings.out`` is set, is written there.

    record: extra facts for config.json. callbacks: more callbacks for the trainer.
    """

    def __init__(self, model, data, optimizer, settings: TrainSettings | None = None,
                 record=None, callbacks=()):
        settings = settings or TrainSettings()
        self.trainer = t = Trainer(model, data, optimizer, settings, callbacks=callbacks)
        self.fingerprints = checkpoint.fingerprints_of(t.model, t.data, t.settings, t.optimizer)
        self.run_dir = RunDir(settings.out) if settings.out else None
        if self.run_dir:
            # First: a step's checkpoint is written before any other callback sees it.
            t.callbacks.insert(0, RunRecorder(self.run_dir, self.fingerprints, record))

    # The trainer's view of the run, for callers that report on it.
    model = property(lambda self: self.trainer.model)
    data = property(lambda self: self.trainer.data)
    optimizer = property(lambda self: self.trainer.optimizer)
    settings = property(lambda self: self.trainer.settings)
    total_steps = property(lambda self: self.trainer.total_steps)
    resumed_from = property(lambda self: self.trainer.resumed_from)
    engine = property(lambda self: self.trainer.engine)

    def resume(self):
        """Load the run directory's checkpoint (checked against this run's settings,
        model and data); run() then continues from it."""
        if self.run_dir is None:
            raise UsageError("`resume` needs the run directory `out`")
        self.run_dir.remove_stale_temporaries()
        t = self.trainer
        history, evals, best = checkpoint.load(
            self.run_dir.file(CHECKPOINT), model=t.model, optimizer=t.optimizer,
            fingerprints=self.fingerprints, total_steps=t.total_steps)
        t.restore(history, evals, best)
        return self

    def run(self):
        """Train; returns the :class:`partrain.train.history.History`."""
        try:
            return self.trainer.run()
        except Interrupted as stop:
            if self.run_dir is None or not self.run_dir.file(CHECKPOINT).is_file():
                raise
            # Say where the run is and how to go on; the frames of the loop and the
            # engine below this point tell a user nothing.
            stop.args = (f"{stop.args[0]}: stopped after step {len(self.trainer.history)}; "
                         f"the checkpoint is in {self.run_dir}, and the same call with "
                         "`resume=True` continues it",)
            raise stop.with_traceback(None) from None


class RunRecorder(Callback):
    """Writes a run directory: config.json and model.pkl at the start, checkpoint.h5
    every ``checkpoint_every`` steps and on a stop, and every output at the end."""

    def __init__(self, run_dir: RunDir, fingerprints, record=None):
        self.run_dir, self.fingerprints, self.record = run_dir, fingerprints, record

    def on_train_begin(self, trainer):
        self.run_dir.lock()
        try:
            if trainer.resumed_from is None:
                self.run_dir.create(trainer.settings.overwrite)
                self.run_dir.write_config(config_record(trainer, self.fingerprints,
                                                        self.record))
                self.run_dir.write_model_architecture(trainer.model)
        except BaseException:
            self.run_dir.unlock()
            raise

    def on_step_end(self, trainer, row):
        every = trainer.settings.checkpoint_every
        if every and row["step"] % every == 0:
            self.save_checkpoint(trainer)

    def on_train_end(self, trainer, history, stopped):
        # After divergence the last good checkpoint stays; every other stop is at a
        # step boundary, so its checkpoint resumes exactly.
        if (trainer.settings.checkpoint_every or stopped is not None) \
                and not isinstance(stopped, DivergenceError):
            self.save_checkpoint(trainer)
        try:
            self.run_dir.write_outputs(trainer.model, trainer.history, trainer.evals,
                                       trainer.best, history.metrics)
        finally:
            self.run_dir.unlock()

    def save_checkpoint(self, trainer):
        checkpoint.save(self.run_dir.file(CHECKPOINT), model=trainer.model,
                        optimizer=trainer.optimizer, history=trainer.history,
                        evals=trainer.evals, best=trainer.best,
                        fingerprints=self.fingerprints)
