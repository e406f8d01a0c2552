"""Reading a run directory runs none of its code (issue 20, round 3): a model of
partrain's own layers comes back from config.json's JSON record, never from model.pkl;
a model with classes of its own needs `allow_pickle` (--allow-pickle); --resume of a run
whose model comes from a file imports that file only when --model names it again."""

import json
import pickle

import numpy as np
import pytest

import partrain
from partrain.cli import main
from partrain.errors import UsageError
from partrain.nn import Dense, Flatten, Layer


class _Payload:
    """Unpickling it creates ``marker``: stands for any code a model.pkl can run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant(run, marker):
    (run / "model.pkl").write_bytes(pickle.dumps(_Payload(marker)))


class Doubler(Layer):
    def forward(self, x):
        return 2 * x, None

    def backward(self, dy, cache):
        return 2 * dy, {}


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, n)


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("preset")
    X, y = _data()
    np.savez(root / "d.npz", X=X, y=y, X_test=X[:6], y_test=y[:6])
    run = root / "run"
    assert main(["train", "--model", "digits123", "--data", str(root / "d.npz"), "--steps",
                 "2", "--workers", "1", "--no-progress", "--quiet", "--out", str(run)]) == 0
    return root, run


def test_a_preset_run_evals_predicts_and_loads_without_unpickling(preset_run, tmp_path,
                                                                  capsys):
    root, run = preset_run
    arch = json.loads((run / "config.json").read_text())["model"]["architecture"]
    assert [layer["cls"] for layer in arch["layers"]] == \
        ["Conv2D", "Sigmoid", "MaxPool2D", "Flatten", "Dense", "Sigmoid"]
    reference, _ = partrain.load_run(run)
    marker = tmp_path / "pwned"
    plant(run, marker)
    capsys.readouterr()
    assert main(["eval", str(run), "--workers", "1"]) == 0
    assert main(["predict", str(run), str(root / "d.npz"), "--workers", "1"]) == 0
    model, _ = partrain.load_run(run)
    assert not marker.exists()
    assert model.flat.tobytes() == reference.flat.tobytes()
    assert [type(a) for a in model.layers] == [type(b) for b in reference.layers]


def test_an_older_preset_run_without_the_record_still_loads_without_unpickling(
        preset_run, tmp_path):
    root, run = preset_run
    old = tmp_path / "old"
    old.mkdir()
    for f in ("config.json", "model.h5", "history.csv"):
        (old / f).write_bytes((run / f).read_bytes())
    config = json.loads((old / "config.json").read_text())
    del config["model"]["architecture"]
    (old / "config.json").write_text(json.dumps(config))
    plant(old, tmp_path / "pwned")
    assert main(["eval", str(old), "--workers", "1"]) == 0
    assert not (tmp_path / "pwned").exists()


@pytest.fixture(scope="module")
def own_layer_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("own") / "run"
    X, y = _data()
    model = partrain.Sequential([Doubler(), Flatten(), Dense(36, 3)],
                                partrain.SoftmaxCrossEntropy(), seed=0)
    partrain.fit(model, X, y, steps=2, workers=1, out=out, progress=False, verbose=False)
    return out


def test_a_model_with_its_own_classes_needs_allow_pickle(own_layer_run, tmp_path, capsys):
    run = own_layer_run
    assert json.loads((run / "config.json").read_text())["model"]["architecture"] is None
    with pytest.raises(UsageError, match="allow_pickle=True"):
        partrain.load_run(run)
    model, _ = partrain.load_run(run, allow_pickle=True)
    assert type(model.layers[0]).__name__ == "Doubler"
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(_npz(tmp_path)), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("partrain: error: ") and "--allow-pickle" in err[0]
    assert main(["eval", str(run), "--data", str(_npz(tmp_path)), "--workers", "1",
                 "--allow-pickle"]) == 0
    assert main(["predict", str(run), str(_npz(tmp_path)), "--workers", "1",
                 "--allow-pickle"]) == 0


def test_a_planted_pickle_is_not_run_without_allow_pickle(own_layer_run, tmp_path, capsys):
    run = tmp_path / "copy"
    run.mkdir()
    for f in ("config.json", "model.h5"):
        (run / f).write_bytes((own_layer_run / f).read_bytes())
    marker = tmp_path / "pwned"
    plant(run, marker)
    with pytest.raises(UsageError):
        partrain.load_run(run)
    assert main(["eval", str(run), "--data", str(_npz(tmp_path)), "--workers", "1"]) == 2
    assert main(["predict", str(run), str(_npz(tmp_path)), "--workers", "1"]) == 2
    assert not marker.exists()


def _npz(tmp_path):
    path = tmp_path / "new.npz"
    if not path.exists():
        X, y = _data(12, seed=1)
        np.savez(path, X=X, y=y, X_test=X, y_test=y)
    return path


NET = """
import pathlib
import partrain
from partrain.nn import Dense, Flatten
pathlib.Path(__file__).with_name("imported").touch()   # any code the file runs

def build(input_shape, num_classes, seed, dtype):
    return partrain.Sequential([Flatten(), Dense(36, num_classes)],
                               partrain.SoftmaxCrossEntropy(), seed=seed, dtype=dtype)
"""


def test_resume_imports_a_model_file_only_when_named_again(tmp_path, capsys):
    (tmp_path / "net.py").write_text(NET)
    np.savez(tmp_path / "d.npz", X=_data()[0], y=_data()[1])
    run = tmp_path / "run"
    assert main(["train", "--model", f"{tmp_path / 'net.py'}:build", "--data",
                 str(tmp_path / "d.npz"), "--steps", "2", "--checkpoint-every", "1",
                 "--workers", "1", "--no-progress", "--quiet", "--out", str(run)]) == 0
    (tmp_path / "imported").unlink()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--model {tmp_path / 'net.py'}:build" in err[0], err
    assert not (tmp_path / "imported").exists()
    (tmp_path / "other.py").write_text(NET)
    assert main(["train", "--resume", str(run), "--steps", "3", "--no-progress",
                 "--model", f"{tmp_path / 'other.py'}:build"]) == 2
    assert "another one" in capsys.readouterr().err
    assert not (tmp_path / "imported").exists()
    assert main(["train", "--resume", str(run), "--steps", "3", "--no-progress", "--quiet",
                 "--model", f"{tmp_path / 'net.py'}:build"]) == 0
    assert (tmp_path / "imported").exists()
