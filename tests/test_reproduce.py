"""Short versions of the seed experiments (scripts/experiments/reproduce.py): each
catches a change that breaks what a preset learns, and the same experiment run twice
gives the same history and parameters.
"""

import subprocess

import numpy as np
import pytest

from partrain.testing import CLI, h5_arrays, history_rows


def train(tmp_path, name, *flags):
    out = tmp_path / name
    r = subprocess.run([*CLI, "train", "--no-progress", "--out", str(out), *flags],
                       capture_output=True, text=True, timeout=300)
    return r, out


def last_eval(out):
    rows = [r for r in history_rows(out / "history.csv") if r["train_acc"]]
    return {k: float(v) for k, v in rows[-1].items() if v and k.endswith("_acc")}


def test_the_same_experiment_twice_gives_the_same_history_and_parameters(tmp_path):
    flags = ["--model", "lenet5", "--dataset", "digits32", "--steps", "30", "--val-split",
             "0.1", "--eval-every", "10", "--optimizer", "adam", "--lr", "1e-3",
             "--augment", "shift=2"]
    (a, out_a), (b, out_b) = train(tmp_path, "a", *flags), train(tmp_path, "b", *flags)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert history_rows(out_a / "history.csv") == history_rows(out_b / "history.csv")
    a, b = h5_arrays(out_a / "model.h5"), h5_arrays(out_b / "model.h5")
    assert "best/c1.W" in a
    for k in a:
        assert a[k] == b[k], k


def test_seed_003_reaches_full_training_accuracy(tmp_path):
    r, out = train(tmp_path, "d", "--model", "digits123", "--steps", "500", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert last_eval(out)["train_acc"] >= 0.98


def test_classic_lenet5_learns_within_its_first_epoch(tmp_path):
    r, out = train(tmp_path, "l", "--model", "lenet5", "--dataset", "digits32", "--epochs", "1",
                   "--eval-every", "15")
    assert r.returncode == 0, r.stderr
    first = next(row for row in history_rows(out / "history.csv") if row["test_acc"])
    assert float(first["test_acc"]) > 0.5   # no plateau at chance (0.1) for 15 steps
    assert last_eval(out)["test_acc"] > 0.8


@pytest.mark.slow
def test_seed_004_short_run_learns_and_its_seed_algorithm_too(tmp_path, shared_data):
    # One of the seed's three epochs (mnist-conv: 0.84 test here); chance is 0.1.
    for model, floor in [("mnist-conv", 0.75), ("mnist-conv-seed", 0.6)]:
        r, out = train(tmp_path, model, "--model", model, "--dataset", "mnist",
                       "--data-dir", str(shared_data / "mnist"), "--epochs", "1")
        assert r.returncode == 0, r.stderr
        assert last_eval(out)["test_acc"] > floor, model


@pytest.mark.slow
def test_seed_000_learns_and_its_seed_algorithm_does_not(tmp_path, shared_data):
    data = ["--dataset", "catvnoncat", "--data-dir", str(shared_data / "catvnoncat")]
    r, out = train(tmp_path, "cat", "--model", "lenet5-cat", *data, "--optimizer", "adam",
                   "--lr", "3e-4", "--steps", "40", "--eval-every", "40")
    assert r.returncode == 0, r.stderr
    assert last_eval(out)["train_acc"] > 0.8
    # The seed's backward makes the loss grow until it is NaN (step 166-195 in float64
    # with its lr; a larger lr gets there sooner), answering one class for every image.
    r, out = train(tmp_path, "seed", "--model", "lenet5-cat-seed", *data, "--lr", "0.3",
                   "--steps", "200", "--eval-every", "5", "--dtype", "float64")
    assert r.returncode == 1 and "diverged" in r.stderr
    assert any(np.isclose(last_eval(out)["train_acc"], k / 209) for k in (137, 72))
