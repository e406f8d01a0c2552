"""`partrain verify`: passes a deterministic model (dropout included) on serial, process
and MPI engines; catches a layer drawing from np.random or an unseeded generator, and
says why (partrain/cli/verify.py, partrain/train/verify.py)."""

import numpy as np
import pytest

from partrain.cli import main
from partrain.nn import Dense, Flatten, Layer, Sequential, SoftmaxCrossEntropy
from partrain.train.verify import first_difference, layer_determinism

NOISY = '''
import numpy as np
import partrain
from partrain.nn import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU

class GlobalNoise(Layer):
    def forward(self, x):
        mask = (np.random.rand(*x.shape) > 0.3).astype(x.dtype)
        return x * mask, mask

    def backward(self, dy, mask):
        return dy * mask, {}

def build(input_shape, num_classes, seed=0):
    c, h, w = input_shape
    return partrain.Sequential([("c1", Conv2D(c, 4, 5)), ("r1", ReLU()), ("p1", MaxPool2D(2)),
                                ("noise", GlobalNoise()), ("flat", Flatten()),
                                ("out", Dense(4 * ((h - 4) // 2) * ((w - 4) // 2), num_classes))],
                               partrain.SoftmaxCrossEntropy(), input_shape, seed=seed)
'''


@pytest.mark.slow
def test_a_dropout_network_passes_on_every_engine_mpi_included(capsys):
    code = main(["verify", "--model", "partrain.testing:dropout_net", "--dataset", "digits32",
                 "--batch-size", "40"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "every layer repeats itself under the same stream: yes" in out
    for engine in ("2 worker processes", "3 worker processes", "2 MPI ranks"):
        assert f"serial vs {engine}: same bits" in out
    assert "the same bits on every engine tried" in out


def test_a_layer_drawing_from_np_random_is_caught_and_named(tmp_path, capsys, monkeypatch):
    (tmp_path / "noisy.py").write_text(NOISY)
    monkeypatch.chdir(tmp_path)
    code = main(["verify", "--model", "noisy.py:build", "--steps", "2", "--workers", "3"])
    captured = capsys.readouterr()
    assert code == 1
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("partrain: error: verify: layer noise (GlobalNoise)")
    assert "np.random" in last and "training_rng()" in last
    assert "serial vs 2 worker processes: DIFFERENT: c1.W first differs after step 1" \
        in captured.out


class Clocked(Layer):
    """State kept between calls: the second call differs from the first."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls, self.calls

    def backward(self, dy, cache):
        return dy * cache, {}


def test_layer_determinism_names_state_kept_between_calls():
    model = Sequential([("flat", Flatten()), ("odd", Clocked()), ("out", Dense(16, 3))],
                       SoftmaxCrossEntropy(), (1, 4, 4))
    X, y = np.ones((2, 1, 4, 4), np.float32), np.array([0, 1])
    reason = layer_determinism(model, X, y)
    assert reason.startswith("layer odd (Clocked) is not deterministic in forward")
    assert "state kept between calls" in reason
    model = Sequential([("flat", Flatten()), ("out", Dense(16, 3))], SoftmaxCrossEntropy(),
                       (1, 4, 4))
    assert layer_determinism(model, X, y) is None


def test_first_difference_names_the_step_and_the_array():
    model = Sequential([("flat", Flatten()), ("out", Dense(4, 2))], SoftmaxCrossEntropy(),
                       (1, 2, 2))
    steps = [np.zeros(model.num_params, np.float32) for _ in range(3)]
    other = [s.copy() for s in steps]
    assert first_difference(model, steps, other) is None
    other[1][-1] = 1e-30   # the bias, at the second step
    assert first_difference(model, steps, other) == (2, "out.b")
