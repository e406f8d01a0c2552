"""The command line: listings, a real training run, your own model and data, and
one-line errors for bad input."""

import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from partrain.cli import main


def run_cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "partrain.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def history_losses(out):
    return [float(r.split(",")[2]) for r in (out / "history.csv").read_text().splitlines()[1:]]


def test_models_lists_presets_with_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "lenet5-cat" in out and "198,581" in out and "202,620" in out


def test_datasets_reports_embedded_and_found_files(capsys, shared_data):
    assert main(["datasets", "--data-dir", str(shared_data / "catvnoncat")]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("digits ") and "embedded" in line for line in out.splitlines())
    assert any(line.startswith("catvnoncat") and " found" in line for line in out.splitlines())


def test_info(capsys):
    assert main(["info"]) == 0
    assert "physical" in capsys.readouterr().out


def test_train_writes_the_run_directory_and_eval_reads_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "digits123", "--steps", "30", "--workers", "1",
                 "--out", str(out), "--no-progress"]) == 0
    for name in ("config.json", "model.pkl", "history.csv", "model.h5", "metrics.json",
                 "curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "checkpoint.h5").exists()   # only with --checkpoint-every or a stop
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,loss,lr,seconds,worker_seconds,overhead_seconds")
    assert len(rows) == 31
    losses = history_losses(out)
    assert losses[-1] < losses[0]
    config = json.loads((out / "config.json").read_text())
    assert config["optimizer"] == dict(config["optimizer"], name="sgd", lr=19.2)
    assert config["settings"]["steps"] == 30 and config["settings"]["batch_size"] == 96
    assert config["spec"]["model"] == "digits123" and config["spec"]["dataset"] == "digits123"
    assert config["machine"]["logical_cores"] >= 1
    assert set(config["fingerprints"]) == {"settings", "model", "data"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["completed"] is True and metrics["steps"] == 30
    assert metrics["best_val_acc"] is None   # no validation split: nothing chosen
    with h5py.File(out / "model.h5") as f:
        assert set(f.keys()) == {"c1.W", "c1.b", "f2.W", "f2.b"}   # no best/ without val
    capsys.readouterr()
    assert main(["eval", "--run", str(out), "--split", "train"]) == 0
    assert f"accuracy {metrics['train_acc']:.4f}" in capsys.readouterr().out
    assert main(["eval", "--run", str(out), "--split", "test", "--workers", "2"]) == 0
    assert f"accuracy {metrics['test_acc']:.4f}" in capsys.readouterr().out


def test_steps_and_epochs_override_the_presets_own(tmp_path):
    # convnet3's seed trains 5 epochs; digits123's 50 steps: either may be overridden.
    assert main(["train", "--model", "convnet3", "--dataset", "digits", "--steps", "3",
                 "--workers", "1", "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert len(history_losses(tmp_path / "a")) == 3
    assert main(["train", "--model", "digits123", "--epochs", "2", "--workers", "1",
                 "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert len(history_losses(tmp_path / "b")) == 2   # full batch: one step per epoch


def test_validation_split_chooses_best_and_eval_reads_it(tmp_path, capsys):
    out = tmp_path / "val"
    assert main(["train", "--model", "digits123", "--steps", "20", "--val-split", "0.25",
                 "--eval-every", "2", "--workers", "1", "--out", str(out),
                 "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["data"]["n_train"], config["data"]["n_val"]) == (72, 24)
    metrics = json.loads((out / "metrics.json").read_text())
    with h5py.File(out / "model.h5") as f:
        assert set(f["best"].keys()) == {"c1.W", "c1.b", "f2.W", "f2.b"}
    capsys.readouterr()
    assert main(["eval", "--run", str(out), "--split", "val", "--best"]) == 0
    line = capsys.readouterr().out
    assert f"accuracy {metrics['best_val_acc']:.4f}" in line and "best parameters" in line


NET = textwrap.dedent("""
    import numpy as np
    import partrain
    import partrain.nn as L


    class Square(L.Layer):
        # A layer of the user's own, defined in this file only.
        def forward(self, x):
            return x * x, x

        def backward(self, dy, x):
            return 2 * x * dy, {}


    def build(input_shape, num_classes, seed, dtype):
        c, h, w = input_shape
        return partrain.Sequential(
            [L.Conv2D(c, 4, 3), Square(), L.Flatten(),
             L.Dense(4 * (h - 2) * (w - 2), num_classes)],
            partrain.SoftmaxCrossEntropy(), input_shape=input_shape, seed=seed, dtype=dtype,
            name="mynet")
""")


def test_your_own_model_file_and_data_file_on_two_workers(tmp_path, capsys):
    """--model FILE.py:FUNCTION and --data FILE.npz, trained on worker processes (which
    cannot import the file: its classes travel by value), then evaluated from the run
    directory alone."""
    (tmp_path / "mynet.py").write_text(NET)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (120, 10, 10, 1), dtype=np.uint8)   # NHWC, uint8
    y = rng.integers(0, 3, 120)
    np.savez(tmp_path / "mine.npz", X=X, y=y)
    out = tmp_path / "run"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)   # relative paths, as a user types them
    try:
        code = main(["train", "--model", "../mynet.py:build", "--data", "../mine.npz",
                     "--val-split", "0.25", "--steps", "4", "--batch-size", "30",
                     "--workers", "2", "--backend", "process", "--lr", "0.01",
                     "--out", str(out), "--no-progress"])
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["name"] == "mynet" and config["model"]["input_shape"] == [1, 10, 10]
    assert (config["data"]["n_train"], config["data"]["n_val"]) == (90, 30)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["workers"] == 2 and metrics["backend"] == "process"
    assert len(history_losses(out)) == 4
    (tmp_path / "mynet.py").unlink()   # model.pkl holds the architecture by value
    # Its own layer class comes back only from model.pkl: an explicit --allow-pickle.
    assert main(["eval", "--run", str(out), "--split", "val", "--allow-pickle"]) == 0
    assert f"accuracy {metrics['val_acc']:.4f}" in capsys.readouterr().out


@pytest.mark.slow
def test_lenet5_cat_on_real_data_loss_falls(tmp_path, shared_data):
    code, out, err = run_cli("train", "--model", "lenet5-cat", "--dataset", "catvnoncat",
                             "--data-dir", str(shared_data / "catvnoncat"), "--steps", "8",
                             "--out", str(tmp_path / "cat"), "--no-progress")
    assert code == 0, err
    losses = history_losses(tmp_path / "cat")
    assert len(losses) == 8 and losses[-1] < losses[0]


BAD = [
    (["train", "--model", "alexnet"], 2, "unknown model 'alexnet'"),
    (["train", "--lr", "fast"], 2, "expected a number"),
    (["train", "--lr", "nan"], 2, "expected a finite number"),
    (["train", "--steps", "0"], 2, "expected a positive integer"),
    (["train", "--batch-size", "-3"], 2, "expected a positive integer"),
    (["train", "--workers", "0"], 2, "expected a positive integer"),
    (["train", "--chunk-size", "0"], 2, "expected a positive integer"),
    (["train", "--seed", "-1"], 2, "expected a non-negative integer"),
    (["train", "--val-split", "1.5"], 2, "expected a fraction between 0 and 1"),
    (["train", "--lr", "-0.1"], 2, "learning rate must be a positive number"),
    (["train", "--momentum", "1.5"], 2, "momentum must lie in [0, 1)"),
    (["train", "--weight-decay", "-1"], 2, "weight decay must be >= 0"),
    (["train", "--lr-decay", "0"], 2, "--lr-decay must lie in (0, 1]"),
    (["train", "--optimizer", "lbfgs"], 2, "invalid choice: 'lbfgs'"),
    (["train", "--steps", "3", "--epochs", "2"], 2, "not allowed with argument"),
    (["train", "--dataset", "mnist", "--data", "x.npz"], 2, "not allowed with argument"),
    (["train", "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
    (["train", "--dataset", "catvnoncat", "--data-dir", "/no/such/dir"], 1,
     "data directory not found: /no/such/dir"),
    (["train", "--data", "/no/such/file.npz"], 1, "/no/such/file.npz: no such file"),
    (["train", "--model", "lenet5-cat", "--dataset", "digits"], 2, "2-class"),
    (["train", "--model", "lenet5-cat", "--dataset", "digits123"], 2, "2-class"),
    (["train", "--model", "mnist-conv", "--dataset", "digits"], 2, "cannot take (1, 8, 8)"),
    (["train", "--model", "/no/such/net.py:build"], 2, "file not found"),
    (["train", "--model", "math:pi"], 2, "has no function 'pi'"),
    (["train", "--model", "no_such_module_xyz:build"], 2, "cannot import no_such_module_xyz"),
    (["eval", "--run", "/no/such/run"], 2, "not a run directory"),
    (["train", "--resume", "/no/such/run"], 2, "not a run directory"),
]


@pytest.mark.parametrize("args,code,message", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_input_is_one_line_and_nonzero(args, code, message, capsys, tmp_path):
    assert main(args + (["--out", str(tmp_path / "o")] if args[0] == "train"
                        and "--resume" not in args else [])) == code
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()   # nothing written for a refused run


def test_absurd_worker_count_is_one_line(capsys, tmp_path):
    many = 10 * (os.cpu_count() or 1)
    assert main(["train", "--model", "digits123", "--workers", str(many),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "per logical core" in err and len(err.strip().splitlines()) == 1, err


def test_bad_flags_on_a_run_directory_are_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "digits123", "--steps", "2", "--workers", "1",
                 "--checkpoint-every", "1", "--out", str(out), "--no-progress"]) == 0
    cases = [
        (["train", "--resume", str(out), "--lr", "0.1"], "drop --lr"),
        (["train", "--resume", str(out), "--model", "lenet5", "--seed", "3"], "drop --seed"),
        # --model may be given on resume (it names a model file's code again), but only
        # the run's own
        (["train", "--resume", str(out), "--model", "lenet5"], "drop --model lenet5"),
        (["train", "--resume", str(out), "--steps", "1"], "cannot shorten"),
        (["eval", "--run", str(out), "--split", "val"], "has no val split"),
        (["eval", "--run", str(out), "--best"], "no best parameters"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_resume_of_a_python_run_is_refused(tmp_path, capsys):
    import partrain
    from partrain.testing import data_for

    X, y = data_for("digits123").train
    partrain.fit(partrain.build_model("digits123"), X, y, steps=2, workers=1,
                 checkpoint_every=1, out=tmp_path / "py", progress=False)
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "py")]) == 2
    err = capsys.readouterr().err
    assert "started from Python" in err and len(err.strip().splitlines()) == 1


def test_existing_output_directory_is_refused_unless_overwrite(tmp_path, capsys):
    args = ["train", "--model", "digits123", "--steps", "2", "--workers", "1",
            "--out", str(tmp_path), "--no-progress"]
    (tmp_path / "keep.txt").write_text("mine")
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--checkpoint-every", "1"]) == 2
    assert main(args + ["--overwrite", "--checkpoint-every", "1"]) == 0
    assert (tmp_path / "checkpoint.h5").exists()
    # Overwriting removes the previous run's files: two runs never mix.
    assert main(args + ["--overwrite"]) == 0
    assert not (tmp_path / "checkpoint.h5").exists()
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_unwritable_output_directory(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["train", "--model", "digits123", "--steps", "2", "--workers", "1",
                     "--out", str(locked / "run"), "--no-progress"])
    finally:
        locked.chmod(0o700)
    if os.geteuid() == 0:   # root writes anywhere: nothing to refuse
        assert code == 0
    else:
        err = capsys.readouterr().err
        assert code == 1 and "cannot write" in err and len(err.strip().splitlines()) == 1


def test_diverging_run_stops_with_one_line(tmp_path, capsys):
    code = main(["train", "--model", "convnet3", "--dataset", "digits", "--steps", "30",
                 "--lr", "1e12", "--workers", "1", "--out", str(tmp_path / "d"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged at step" in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1
    assert "Warning" not in err and "Traceback" not in err
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert metrics["completed"] is False and "diverged" in metrics["stopped_by"]


def test_more_workers_than_cores_is_a_warning_not_an_error(tmp_path, capsys):
    many = (os.cpu_count() or 1) + 1
    assert main(["train", "--model", "digits123", "--steps", "2", "--workers", str(many),
                 "--out", str(tmp_path / "w"), "--no-progress"]) == 0
    assert "warning" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert metrics["workers"] == many


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_143(tmp_path):
    import signal
    import time

    from partrain.testing import alive, shm_entries, worker_processes

    out = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, "-m", "partrain.cli", "train", "--model", "lenet5",
                             "--dataset", "digits32", "--epochs", "50", "--workers", "2",
                             "--checkpoint-every", "5", "--out", str(out), "--no-progress"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.h5").exists() and time.time() < deadline:
        time.sleep(0.05)
    workers = [w.pid for w in worker_processes(proc.pid)]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    assert (out / "checkpoint.h5").exists() and (out / "model.h5").exists()
    assert len(workers) == 2 and alive(workers) == [] and shm_entries() == []
