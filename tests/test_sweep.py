"""`partrain sweep` and `partrain.sweep`: candidates in parallel with joblib, each the
same bits as the same run alone; a stopped sweep resumes without running anything
twice; the choice is made on validation only."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import partrain
from partrain.cli import main
from partrain.testing import h5_arrays, wait_for

CLI = [sys.executable, "-m", "partrain.cli"]
BASE = ["--model", "lenet5", "--dataset", "digits32", "--batch-size", "32", "--eval-every", "10",
        "--val-split", "0.2"]


def sweep(out, *extra, steps=20, **kw):
    return subprocess.run([*CLI, "sweep", *BASE, "--steps", str(steps), "--grid", "lr=0.01,0.05",
                           "--seeds", "0,1", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300, **kw)


def summary(out):
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_each_candidate_is_the_same_run_as_alone_and_the_choice_is_on_validation(tmp_path):
    r = sweep(tmp_path / "sw", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    rows = summary(tmp_path / "sw")
    assert [row["status"] for row in rows] == ["done"] * 4
    best = max(rows, key=lambda row: float(row["best_val_acc"]))
    assert f"best on validation: {best['candidate']}" in r.stdout
    assert "(best)" in (tmp_path / "sw" / "summary.md").read_text()
    assert (tmp_path / "sw" / "curves.png").stat().st_size > 0
    alone = subprocess.run([*CLI, "train", *BASE, "--steps", "20", "--lr", "0.05", "--seed", "1",
                            "--workers", "2", "--out", str(tmp_path / "alone"), "--no-progress"],
                           capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr
    assert h5_arrays(tmp_path / "sw" / "03-lr=0.05-seed1" / "model.h5") == \
        h5_arrays(tmp_path / "alone" / "model.h5")


@pytest.mark.slow
def test_a_stopped_sweep_resumes_without_running_a_finished_candidate_twice(tmp_path):
    reference = tmp_path / "whole"
    assert sweep(reference, "--jobs", "1", steps=120).returncode == 0
    out = tmp_path / "stopped"
    proc = subprocess.Popen([*CLI, "sweep", *BASE, "--steps", "120", "--grid", "lr=0.01,0.05",
                             "--seeds", "0,1", "--out", str(out), "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    states = out / "states.json"
    wait_for(lambda: states.is_file() and json.loads(states.read_text()), 120, proc=proc)
    time.sleep(0.3)   # into the next candidates' steps
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same sweep again to go on" in err.strip().splitlines()[-1]
    finished = {row["candidate"]: (out / row["candidate"] / "metrics.json").stat().st_mtime_ns
                for row in summary(out) if row["status"] == "done"}
    stopped = [row["candidate"] for row in summary(out) if row["status"].startswith("stopped")]
    assert finished and len(finished) < 4
    again = sweep(out, "--jobs", "2", steps=120)
    assert again.returncode == 0, again.stderr
    assert f"{len(finished)} finished before, {len(stopped)} to resume" in again.stderr
    for name, mtime in finished.items():   # not run again
        assert (out / name / "metrics.json").stat().st_mtime_ns == mtime
        assert name not in again.stderr
    for row in summary(reference):
        name = row["candidate"]
        assert h5_arrays(out / name / "model.h5") == h5_arrays(reference / name / "model.h5"), name


@pytest.mark.parametrize("args, message", [
    (["--grid", "lx=1,2"], "expected NAME=V1,V2"),
    (["--grid", "lr=abc"], "argument --lr: expected a number"),
    (["--grid", "quiet=1"], "is a switch"),
    (["--variant", "--optimizer adamx"], "invalid choice: 'adamx'"),
    (["--variant", "--seed 3"], "belong to the whole sweep"),
    (["--seeds", "3-1"], "expected seeds such as"),
])
def test_bad_sweep_flags_are_one_line_before_anything_runs(tmp_path, capsys, args, message):
    code = main(["sweep", *BASE, "--out", str(tmp_path / "sw"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and err[-1].startswith("partrain: error:")
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("args, message", [
    (["--data", "/no/such.npz"], "no such file"),
    (["--model", "/no/such/net.py:build"], "file not found"),
])
def test_data_or_model_that_cannot_open_is_one_line_before_any_run(tmp_path, capsys, args,
                                                                    message, monkeypatch):
    monkeypatch.chdir(tmp_path)   # no --out: not even the default folder is made
    code = main(["sweep", "--grid", "lr=0.1,0.2", "--steps", "2", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2) and len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []


def test_an_empty_out_is_refused(capsys):
    assert main(["sweep", "--steps", "2", "--out", ""]) == 2
    assert "--out must not be empty" in capsys.readouterr().err


def test_a_folder_holding_another_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", *BASE, "--steps", "2", "--seeds", "0", "--out", str(out)]) == 0
    code = main(["sweep", *BASE, "--steps", "2", "--seeds", "1", "--out", str(out)])
    assert code == 2 and "holds another sweep" in capsys.readouterr().err


class Halve(partrain.Layer):   # a layer of the user's own: travels by value (cloudpickle)
    def forward(self, x):
        return 0.5 * x, None

    def backward(self, dy, cache):
        return 0.5 * dy, {}


def build(seed):
    from partrain.nn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU

    return partrain.Sequential([Halve(), Conv2D(1, 4, 3), ReLU(), MaxPool2D(2), Flatten(),
                                Dropout(0.2), Dense(36, 3)], partrain.SoftmaxCrossEntropy(),
                               seed=seed)


def test_the_python_api_sweeps_a_users_own_layers_to_the_same_bits_as_fit(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 1, 8, 8)).astype(np.float32)
    y = (X[:, 0, 0, 0] > 0).astype(int) + (X[:, 0, 1, 1] > 0)
    kw = dict(steps=12, batch_size=20, validation_split=0.2)
    result = partrain.sweep(build, X, y, grid={"lr": [0.01, 0.1]}, seeds=[0, 1], jobs=2,
                            out=tmp_path / "sw", **kw)
    assert result.ran == 4 and result.best is not None
    assert result.best["best_val_acc"] == max(r["best_val_acc"] for r in result.rows)
    model = build(seed=1)
    partrain.fit(model, X, y, lr=0.1, seed=1, workers=1, verbose=False, progress=False, **kw)
    params = h5_arrays(tmp_path / "sw" / "03-lr=0.1-seed1" / "model.h5")
    assert all(params[k][2] == model.params[k].tobytes() for k in model.params)
    again = partrain.sweep(build, X, y, grid={"lr": [0.01, 0.1]}, seeds=[0, 1],
                           out=tmp_path / "sw", **kw)
    assert (again.ran, again.kept) == (0, 4)
