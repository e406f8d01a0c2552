"""After a stopped fit, the same Python process goes on working (issue 19's first bug),
and the stop is a KeyboardInterrupt to `except KeyboardInterrupt:`."""

import os
import signal
import traceback

import numpy as np
import pytest

import partrain
from partrain.train.callbacks import Callback


class CtrlCAtStep(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, row):
        if row["step"] == self.step:
            os.kill(os.getpid(), signal.SIGINT)   # as a Ctrl-C in a notebook would


def test_predict_works_after_an_interrupted_fit(tmp_path):
    model = partrain.build_model("digits123", dtype="float64")
    data = partrain.load_dataset("digits123", "train")
    X, y = data
    with pytest.raises(KeyboardInterrupt) as stop:
        partrain.fit(model, X, y, steps=20, workers=1, progress=False, out=tmp_path / "run",
                     callbacks=[CtrlCAtStep(3)])
    # One short message saying how to go on, not the loop's and engine's frames.
    assert "stopped after step 3" in str(stop.value) and "`resume=True`" in str(stop.value)
    assert len(traceback.extract_tb(stop.value.__traceback__)) <= 3
    for _ in range(3):
        labels = partrain.predict(model, X[:10], workers=1)
        assert labels.shape == (10,)
    scores = partrain.predict_scores(model, X)
    assert np.isfinite(scores).all()
    # And the run resumes where it stopped.
    history = partrain.fit(model, X, y, steps=20, workers=1, progress=False,
                           out=tmp_path / "run", resume=True)
    assert len(history) == 20 and history.rows[0]["step"] == 1
