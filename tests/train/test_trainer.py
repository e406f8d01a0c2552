"""The loop and its commit protocol: callbacks see every committed step, stops keep
what was committed, divergence stops the run with one line."""

import numpy as np
import pytest

from partrain.errors import DivergenceError, Interrupted
from partrain.nn.optim import Momentum, SGD
from partrain.presets import build_model
from partrain.testing import data_for, interrupt_at
from partrain.train.callbacks import Callback
from partrain.train.history import History
from partrain.train.settings import TrainSettings
from partrain.train.trainer import Trainer


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, trainer):
        self.events.append(("begin", len(trainer.history)))

    def on_step_end(self, trainer, row):
        self.events.append(("step", row["step"], "train_acc" in row))

    def on_train_end(self, trainer, history, stopped):
        self.events.append(("end", len(history), type(stopped).__name__))


def trainer(optimizer=None, callbacks=(), **settings):
    data = data_for("digits123")
    model = build_model("digits123", seed=0, dtype="float64")
    s = TrainSettings(workers=1, backend="serial", progress=False, batch_size=16, **settings)
    return Trainer(model, data, optimizer or Momentum(0.1, momentum=0.9), s,
                   callbacks=callbacks)


def test_callbacks_see_begin_every_committed_step_and_the_end():
    rec = Recorder()
    history = trainer(callbacks=[rec], steps=4, eval_every=2).run()
    assert isinstance(history, History) and len(history) == 4
    assert rec.events == [("begin", 0), ("step", 1, False), ("step", 2, True),
                          ("step", 3, False), ("step", 4, True), ("end", 4, "NoneType")]


def test_a_stop_ends_after_the_last_committed_step_and_callbacks_see_it(monkeypatch):
    import partrain.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "make_engine", interrupt_at(3))
    rec = Recorder()
    t = trainer(callbacks=[rec], steps=6)
    with pytest.raises(Interrupted):
        t.run()
    assert len(t.history) == 2 and rec.events[-1] == ("end", 2, "Interrupted")


class Poisoning(SGD):
    """An update that leaves NaN in the weights: the next step's loss is NaN."""

    def step(self, w, g):
        w[0] = np.nan


def test_divergence_is_one_clear_error_naming_the_step():
    t = trainer(optimizer=Poisoning(0.1), steps=5)
    with pytest.raises(DivergenceError, match=r"^training diverged at step 2: loss is nan"):
        t.run()
    assert len(t.history) == 1


def test_restore_continues_from_a_later_step_to_the_same_bits():
    whole = trainer(steps=6)
    whole.run()
    first = trainer(steps=3)
    first.run()
    rest = trainer(steps=6)
    rest.model.flat[...] = first.model.flat
    rest.optimizer.load_state_dict(first.optimizer.state_dict())
    rest.restore(list(first.history), list(first.evals), dict(first.best))
    history = rest.run()
    assert rest.resumed_from == 3 and len(history) == 6
    assert rest.model.flat.tobytes() == whole.model.flat.tobytes()


def test_best_parameters_follow_the_validation_accuracy():
    data = data_for("digits123", val_split=0.25)
    model = build_model("digits123", seed=0, dtype="float64")
    s = TrainSettings(workers=1, backend="serial", progress=False, batch_size=16, steps=8,
                      eval_every=2)
    t = Trainer(model, data, Momentum(0.1, momentum=0.9), s)
    history = t.run()
    best = max(history["val_acc"])
    assert t.best["value"] == best and t.best["step"] in history["step"]
    assert t.best["flat"].shape == model.flat.shape and np.isfinite(t.best["flat"]).all()


def test_the_log_has_a_line_per_evaluation_and_one_every_n_seconds_between(caplog):
    import logging

    from partrain.train.callbacks import EvaluationLog

    with caplog.at_level(logging.INFO, logger="partrain"):
        trainer(callbacks=[EvaluationLog()], steps=6, eval_every=3, verbose=False).run()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [m for m in lines if m.startswith("step ")] and len(lines) == 2
    assert lines[0].startswith("step 3/6 (epoch 1): loss ") and "train_acc" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="partrain"):
        trainer(callbacks=[EvaluationLog(every_seconds=0)], steps=6, eval_every=3,
                verbose=False).run()
    assert len(caplog.records) == 6   # long epochs: a line however far the evaluation
