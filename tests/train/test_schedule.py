"""Learning-rate schedules and early stopping: pure functions of the run so far, so a
resumed run ends byte-identical to an uninterrupted one."""

import math

import numpy as np
import pytest

from partrain.errors import Interrupted, UsageError
from partrain.nn.optim import Momentum
from partrain.presets import build_model
from partrain.run.training import TrainingRun
from partrain.testing import data_for, interrupt_at
from partrain.train.schedule import evaluations_since_best, lr_factor, parse
from partrain.train.settings import TrainSettings


def test_specs_parse_to_one_spelling_and_bad_ones_name_the_setting():
    assert str(parse("step:every=2")) == "step:every=2,factor=0.5"
    assert str(parse("cosine")) == "cosine"
    assert str(parse("plateau:factor=0.1,patience=2")) == "plateau:patience=2,factor=0.1"
    for bad in ("linear", "step:every=0", "step:factor=2", "cosine:every=3", "step:every=x"):
        with pytest.raises(UsageError, match="`lr_schedule`"):
            parse(bad)


def test_factors():
    step = parse("step:every=2,factor=0.1")
    assert [lr_factor(step, None, 0, e, 100, []) for e in (0, 1, 2, 4)] == pytest.approx(
        [1, 1, 0.1, 0.01])
    cosine = parse("cosine")
    assert lr_factor(cosine, None, 0, 0, 10, []) == 1
    assert lr_factor(cosine, None, 5, 0, 10, []) == pytest.approx(0.5)
    assert lr_factor(None, 4, 0, 0, 10, []) == 0.25 and lr_factor(None, 4, 9, 0, 10, []) == 1
    plateau = parse("plateau:patience=2,factor=0.5")
    evals = [dict(val_acc=a) for a in (0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7, 0.7)]
    assert [lr_factor(plateau, None, 0, 0, 9, evals[:n]) for n in (2, 4, 6, 8)] == [1, 0.5, 0.5, 0.25]
    assert evaluations_since_best(evals) == 3
    assert math.isclose(lr_factor(step, 2, 0, 2, 100, []), 0.05)


def run(out=None, **settings):
    data = data_for("digits123", val_split=0.25)
    model = build_model("digits123", seed=1, dtype="float64")
    s = TrainSettings(workers=1, backend="serial", progress=False, verbose=False,
                      batch_size=8, eval_every=3, out=None if out is None else str(out),
                      **settings)
    return TrainingRun(model, data, Momentum(0.5, momentum=0.9), s)


KW = dict(steps=150, lr_schedule="plateau:patience=2,factor=0.5", early_stopping=4,
          warmup_steps=5)


def test_early_stopping_ends_the_run_when_validation_stops_improving():
    whole = run(**KW)
    history = whole.run()
    assert len(history) < 150 and history.metrics["stopped_early"]
    assert evaluations_since_best(history.evals) == 4
    assert history.metrics["best_val_acc"] == max(history["val_acc"])
    assert len(set(history["lr"])) > 3   # warm-up and at least one plateau cut


def test_a_resumed_run_with_a_schedule_and_early_stopping_ends_byte_identical(
        tmp_path, monkeypatch):
    import partrain.train.trainer as trainer_module

    whole = run(**KW)
    reference = whole.run()
    stop_at = len(reference) - 5
    monkeypatch.setattr(trainer_module, "make_engine", interrupt_at(stop_at))
    with pytest.raises(Interrupted):
        run(tmp_path / "r", **KW).run()
    monkeypatch.undo()
    resumed = run(tmp_path / "r", **KW).resume()
    history = resumed.run()
    assert resumed.model.flat.tobytes() == whole.model.flat.tobytes()
    assert history["lr"] == reference["lr"] and len(history) == len(reference)


def test_early_stopping_needs_a_validation_split():
    data = data_for("digits123")
    with pytest.raises(UsageError, match="`early_stopping` watches the validation"):
        TrainingRun(build_model("digits123"), data, Momentum(0.1),
                    TrainSettings(early_stopping=2, progress=False))


def test_no_schedule_leaves_old_fingerprints_alone():
    assert not {"lr_schedule", "warmup_steps", "early_stopping"} & set(
        TrainSettings().result_settings())
    assert "lr_schedule" in TrainSettings(lr_schedule="cosine").result_settings()
    assert np.isfinite(lr_factor(None, None, 3, 0, 10, []))
