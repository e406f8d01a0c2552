"""Your own network and your own data, from Python and from the command line.

Specification: a user-defined Layer subclass inside a custom stack trains on 2 and 3
worker processes byte-identically to serial; a model defined in `python -c` trains with
2 workers; `--model FILE.py:func` and `--data FILE.npz` work from the CLI; the
validation split depends on the seed only; runs load back with their history.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import partrain
from partrain.nn import Conv2D, Dense, Flatten, Layer, MaxPool2D
from partrain.testing import numeric_grad, rel_error


class Scale(Layer):
    """y = a * x (one learned scalar a). x: any shape -> y: same shape."""

    decay = ("a",)

    def __init__(self):
        super().__init__()
        self.params = {"a": np.array([1.5])}

    def forward(self, x):
        return self.params["a"][0] * x, x

    def backward(self, dy, x):
        return self.params["a"][0] * dy, {"a": np.array([np.sum(dy * x)])}


def small_net(dtype="float32"):
    return partrain.Sequential([Conv2D(1, 3, 3), Scale(), MaxPool2D(2), Flatten(),
                                Dense(3 * 3 * 3, 4)], partrain.SoftmaxCrossEntropy(),
                               input_shape=(1, 8, 8), seed=3, dtype=dtype)


def toy_data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 1, 8, 8))
    return X, rng.integers(0, 4, n)


def test_user_layer_gradient_matches_central_differences():
    model = small_net("float64")
    X, y = toy_data(6)
    _, grads = model.loss_and_grads(X, y)
    a = model.params["scale0.a"]
    numeric = numeric_grad(lambda: model.loss_and_grads(X, y)[0], a)
    assert rel_error(grads["scale0.a"], numeric) < 1e-7


def test_user_layer_starts_from_its_own_params_and_is_a_view_of_the_buffer():
    model = small_net()
    assert model.params["scale0.a"][0] == np.float32(1.5)
    assert np.shares_memory(model.layers[1].params["a"], model.flat)


@pytest.mark.parametrize("workers", [2, 3])
def test_custom_stack_on_workers_is_byte_identical_to_serial(workers):
    X, y = toy_data()
    runs = {}
    for w in (1, workers):
        model = small_net()
        partrain.fit(model, X, y, steps=6, batch_size=20, chunk_size=4, workers=w,
                     optimizer="adam", lr=0.01, progress=False)
        runs[w] = model.flat.copy()
    assert runs[1].tobytes() == runs[workers].tobytes()


def test_validation_split_depends_on_the_seed_not_the_workers(tmp_path):
    X, y = toy_data()
    vals = {}
    for w, seed in [(1, 0), (2, 0), (1, 1)]:
        h = partrain.fit(small_net(), X, y, steps=3, batch_size=30, workers=w, seed=seed,
                         validation_split=0.2, eval_every=3, progress=False,
                         out=str(tmp_path / f"{w}-{seed}"))
        vals[(w, seed)] = h["val_acc"]
        assert len(h["val_acc"]) == 1 and h.metrics["best_step"] == 3
    assert vals[(1, 0)] == vals[(2, 0)]
    # small_net has a layer class of its own: it comes back only from model.pkl
    model, history = partrain.load_run(tmp_path / "2-0", best=True, allow_pickle=True)
    assert history["val_acc"] == vals[(2, 0)]
    assert len(history) == 3


def test_fit_takes_nhwc_uint8_and_predicts_labels_and_probabilities():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)
    y = (X.mean(axis=(1, 2, 3)) > 127).astype(int)
    model = small_net()
    partrain.fit(model, X, y, steps=2, workers=1, progress=False)
    proba = partrain.predict_proba(model, X, workers=1)
    assert proba.shape == (40, 4) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    labels = partrain.predict(model, X, workers=2)   # 40 < one chunk: computed in-process
    assert np.array_equal(labels, proba.argmax(axis=1))


def test_a_model_defined_in_python_c_trains_on_two_workers():
    code = textwrap.dedent("""
        import numpy as np, partrain
        from partrain.nn import Layer, Flatten, Dense
        class Twice(Layer):
            def forward(self, x): return 2 * x, None
            def backward(self, dy, cache): return 2 * dy, {}
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((64, 1, 4, 4)), rng.integers(0, 3, 64)
        flats = []
        for w in (1, 2):
            m = partrain.Sequential([Twice(), Flatten(), Dense(16, 3)], partrain.SoftmaxCrossEntropy())
            h = partrain.fit(m, X, y, steps=4, batch_size=32, workers=w, progress=False)
            flats.append(m.flat.tobytes())
            print(h.metrics["backend"], h.metrics["workers"])
        print("same" if flats[0] == flats[1] else "different")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["serial", "1", "process", "2", "same"]


def test_cli_trains_a_model_file_on_an_npz_file(tmp_path):
    net = tmp_path / "net.py"
    net.write_text(textwrap.dedent("""
        import numpy as np
        import partrain
        from partrain.nn import Layer, Flatten, Dense

        class Halve(Layer):
            def forward(self, x): return x / 2, None
            def backward(self, dy, cache): return dy / 2, {}

        def build(input_shape, num_classes, seed, dtype):
            c, h, w = input_shape
            return partrain.Sequential([Halve(), Flatten(), Dense(c * h * w, num_classes)],
                                       partrain.SoftmaxCrossEntropy(), seed=seed, dtype=dtype)
    """))
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(100, 6, 6, 3), dtype=np.uint8)
    y = rng.integers(0, 3, 100)
    np.savez(tmp_path / "d.npz", X=X, y=y, X_test=X[:20], y_test=y[:20])
    cmd = [sys.executable, "-m", "partrain.cli", "train", "--model", f"{net}:build",
           "--data", str(tmp_path / "d.npz"), "--steps", "5", "--val-split", "0.2",
           "--no-progress"]
    outs = {}
    for w in ("1", "2"):
        out = tmp_path / f"run{w}"
        r = subprocess.run(cmd + ["--workers", w, "--out", str(out)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "val accuracy" in r.stdout and "test accuracy" in r.stdout
        outs[w] = partrain.load_run(out, allow_pickle=True)[0].flat.tobytes()
    assert outs["1"] == outs["2"]
    r = subprocess.run([sys.executable, "-m", "partrain.cli", "train", "--resume",
                        str(tmp_path / "run1"), "--steps", "8", "--no-progress",
                        "--model", f"{net}:build"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no checkpoint" in r.stderr


def test_cli_model_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def build():\n    return 42\n")
    for spec, words in [(f"{bad}:build", "not a partrain.Sequential"),
                        (f"{bad}:nope", "no function"),
                        (str(tmp_path / "missing.py") + ":build", "file not found"),
                        ("resnet", "unknown model")]:
        r = subprocess.run([sys.executable, "-m", "partrain.cli", "train", "--model", spec,
                            "--steps", "1", "--out", str(tmp_path / "o")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (spec, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
