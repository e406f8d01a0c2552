"""How many workers: the user's count checked, or "auto" chosen by a cost model that
never starts more workers than a step has chunks."""

import numpy as np
import pytest

from partrain.engine import make_engine
from partrain.engine.worker_count import (MESSAGE_SECONDS, auto_workers, chunk_seconds,
                                          predicted_step_seconds)
from partrain.errors import UsageError
from partrain.presets import build_model
from partrain.testing import data_for


@pytest.mark.parametrize("chunks", [1, 2, 3, 4, 13, 27, 100])
@pytest.mark.parametrize("seconds", [1e-6, 1e-4, 3e-3, 0.2])
def test_auto_never_exceeds_the_chunks_or_the_cores_and_is_the_predicted_best(chunks, seconds):
    w = auto_workers(16, chunks, seconds)
    assert 1 <= w <= min(16, chunks)
    best = min(predicted_step_seconds(k, chunks, seconds) for k in range(1, min(16, chunks) + 1))
    assert predicted_step_seconds(w, chunks, seconds) == best


def test_auto_follows_the_chunk_granularity():
    # The 16-core measurements the model was drawn from: lenet5 b32 (4 chunks of ~3 ms)
    # is fastest on 4 workers, mnist-conv b100 (13 chunks of ~2 ms) on 13.
    assert auto_workers(16, 4, 3e-3) == 4
    assert auto_workers(16, 13, 2.1e-3) == 13
    assert auto_workers(16, 27, 6.9e-3) == 14      # 2 chunks each, as on 16
    assert auto_workers(16, 8, MESSAGE_SECONDS / 10) == 1   # chunks too cheap to share


def test_an_auto_engine_has_at_most_as_many_workers_as_chunks():
    X, y = data_for("digits32").train
    model = build_model("lenet5", input_shape=X.shape[1:], num_classes=10)
    for batch, most in ((8, 1), (16, 2), (1437, None)):
        engine = make_engine(model, {"train": (X, y)}, 8, max_batch=batch)
        assert 1 <= engine.workers <= (most or engine.workers)
        assert (engine.name == "serial") == (engine.workers == 1)


def test_chunk_seconds_is_positive_and_changes_nothing():
    X, y = data_for("digits32").train
    model = build_model("lenet5", input_shape=X.shape[1:], num_classes=10)
    before = model.flat.copy()
    seconds = chunk_seconds(model, X, y, 8)
    assert np.isfinite(seconds) and seconds > 0
    assert model.flat.tobytes() == before.tobytes()


def test_a_bad_count_is_refused_by_name():
    X, y = np.zeros((8, 1, 4, 4), np.float32), np.zeros(8, np.int64)
    with pytest.raises(UsageError, match="`workers` must be a positive integer"):
        make_engine(build_model("digits123"), {"train": (X, y)}, 8, workers=0)
