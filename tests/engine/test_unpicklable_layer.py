"""A user's layer holding a lock, an open file or a generator cannot be pickled for the
worker processes (issue 20, round 3): one line naming the layer and what cannot be
pickled, suggesting the serial backend; on the serial backend it trains."""

import threading

import numpy as np
import pytest

import partrain
from partrain.errors import UsageError
from partrain.nn import Dense, Flatten, Layer


class Holding(Layer):
    def __init__(self, thing):
        super().__init__()
        self.thing = thing

    def forward(self, x):
        return x, None

    def backward(self, dy, cache):
        return dy, {}


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((32, 1, 4, 4)).astype(np.float32), np.arange(32) % 3


def model(thing):
    return partrain.Sequential([Flatten(), ("holder", Holding(thing)), Dense(16, 3)],
                               partrain.SoftmaxCrossEntropy(), seed=0)


THINGS = {"lock": lambda tmp: threading.Lock(),
          "file": lambda tmp: open(tmp / "log.txt", "w"),
          "generator": lambda tmp: (i for i in range(3))}


@pytest.mark.parametrize("kind", THINGS)
def test_worker_processes_refuse_it_in_one_line_naming_the_layer(kind, tmp_path):
    X, y = data()
    with pytest.raises(UsageError) as err:
        partrain.fit(model(THINGS[kind](tmp_path)), X, y, steps=1, workers=2,
                     backend="process", progress=False, verbose=False)
    text = str(err.value)
    assert "\n" not in text and text.startswith("layer holder (Holding) holds something "
                                                "pickle cannot copy ("), text
    assert 'backend="serial"' in text and "workers=1" in text


def test_the_serial_backend_trains_it_and_says_model_pkl_is_not_written(tmp_path, caplog):
    X, y = data()
    out = tmp_path / "run"
    partrain.fit(model(threading.Lock()), X, y, steps=2, workers=1, out=out,
                 progress=False, verbose=False)
    assert (out / "model.h5").is_file() and not (out / "model.pkl").exists()
    assert any("model.pkl not written: layer holder (Holding)" in r.getMessage()
               for r in caplog.records)
