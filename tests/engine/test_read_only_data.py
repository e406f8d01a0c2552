"""Layers see the training data read-only, on every backend (issue 20, round 3): a first
layer computing ``x *= 1.5`` on a full batch used to scale the shared training set
itself, so every later step (and a resumed run) trained on other data. Now it is one
line naming the layer and saying that layers must not modify their input in place."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import partrain
from partrain.engine import make_engine
from partrain.errors import PartrainError
from partrain.nn import Dense, Flatten, Layer, Sequential, SoftmaxCrossEntropy

HINT = "layers must not modify their input in place"


class InPlace(Layer):
    def forward(self, x):
        x *= 1.5
        return x, None

    def backward(self, dy, cache):
        return 1.5 * dy, {}


def model():
    return Sequential([InPlace(), Flatten(), Dense(16, 3)], SoftmaxCrossEntropy(),
                      input_shape=(1, 4, 4), seed=0)


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((24, 1, 4, 4)).astype(np.float32), np.arange(24) % 3


def one_line(exc):
    text = str(exc)
    assert "\n" not in text and "layer inplace0 (InPlace).forward" in text and HINT in text, text


@pytest.mark.parametrize("backend, workers", [("serial", 1), ("process", 2)])
def test_a_full_batch_fit_refuses_a_layer_writing_its_input(backend, workers):
    X, y = data()
    before = X.copy()
    with pytest.raises(PartrainError) as err:
        partrain.fit(model(), X, y, steps=2, batch_size="full", chunk_size=8,
                     backend=backend, workers=workers, progress=False, verbose=False)
    one_line(err.value)
    assert X.tobytes() == before.tobytes()


@pytest.mark.parametrize("backend, workers", [("serial", 1), ("process", 2)])
def test_gathered_chunks_and_evaluations_are_read_only_too(backend, workers):
    X, y = data()
    before = X.copy()
    engine = make_engine(model(), {"train": (X, y)}, 4, backend=backend, workers=workers)
    with engine:
        for run in (lambda: engine.gradient(np.array([5, 0, 17, 3])),   # a gathered copy
                    lambda: engine.evaluate("train")):
            with pytest.raises(PartrainError) as err:
                run()
            one_line(err.value)
    assert X.tobytes() == before.tobytes()


MPI_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import partrain
    from partrain.errors import PartrainError
    from partrain.nn import Dense, Flatten, Layer

    class InPlace(Layer):
        def forward(self, x):
            x *= 1.5
            return x, None
        def backward(self, dy, cache):
            return 1.5 * dy, {}

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((24, 1, 4, 4)).astype(np.float32), np.arange(24) % 3
    before = X.copy()
    model = partrain.Sequential([InPlace(), Flatten(), Dense(16, 3)],
                                partrain.SoftmaxCrossEntropy(), seed=0)
    try:
        partrain.fit(model, X, y, steps=2, batch_size="full", progress=False, verbose=False)
    except PartrainError as exc:
        ok = "InPlace" in str(exc) and "modify their input in place" in str(exc)
        # one write per rank: the two ranks' lines may interleave between writes
        sys.stdout.write(f"refused {ok and X.tobytes() == before.tobytes()}\\n")
''')


def test_mpi_ranks_refuse_it_too(tmp_path):
    script = tmp_path / "inplace.py"
    script.write_text(MPI_SCRIPT)
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    r = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script)], capture_output=True,
                       text=True, timeout=120)
    assert r.stdout.count("refused True") == 2, (r.stdout, r.stderr)
