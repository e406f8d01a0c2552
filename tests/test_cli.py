"""The command line: listings, a real training run, and one-line errors for bad input."""

import json
import subprocess
import sys

import h5py
import pytest

from partrain.cli import main


def run_cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "partrain.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


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
    for name in ("config.json", "history.csv", "model.h5", "metrics.json", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,loss,lr,seconds,worker_seconds,overhead_seconds")
    assert len(rows) == 31
    losses = [float(r.split(",")[2]) for r in rows[1:]]
    assert losses[-1] < losses[0]
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["lr"] == 19.2 and config["machine"]["logical_cores"] >= 1
    metrics = json.loads((out / "metrics.json").read_text())
    with h5py.File(out / "model.h5") as f:
        assert set(f.keys()) >= {"c1.W", "c1.b", "f2.W", "f2.b"}
    capsys.readouterr()
    assert main(["eval", "--run", str(out), "--split", "train"]) == 0
    assert f"accuracy {metrics['train_acc']:.4f}" in capsys.readouterr().out


@pytest.mark.slow
def test_lenet5_cat_on_real_data_loss_falls(tmp_path, shared_data):
    code, out, err = run_cli("train", "--model", "lenet5-cat", "--dataset", "catvnoncat",
                             "--data-dir", str(shared_data / "catvnoncat"), "--steps", "8",
                             "--out", str(tmp_path / "cat"), "--no-progress")
    assert code == 0, err
    losses = [float(r.split(",")[2]) for r in
              (tmp_path / "cat" / "history.csv").read_text().splitlines()[1:]]
    assert len(losses) == 8 and losses[-1] < losses[0]


BAD = [
    (["train", "--model", "alexnet"], 2, "invalid choice: 'alexnet'"),
    (["train", "--lr", "fast"], 2, "expected a number"),
    (["train", "--steps", "0"], 2, "expected a positive integer"),
    (["train", "--batch-size", "-3"], 2, "expected a positive integer"),
    (["train", "--workers", "0"], 2, "expected a positive integer"),
    (["train", "--chunk-size", "0"], 2, "expected a positive integer"),
    (["train", "--lr", "-0.1"], 2, "--lr must be a positive number"),
    (["train", "--optimizer", "lbfgs"], 2, "invalid choice: 'lbfgs'"),
    (["train", "--steps", "3", "--epochs", "2"], 2, "not allowed with argument"),
    (["train", "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
    (["train", "--dataset", "catvnoncat", "--data-dir", "/no/such/dir"], 1,
     "data directory not found: /no/such/dir"),
    (["train", "--model", "lenet5-cat", "--dataset", "digits"], 2, "2-class"),
    (["eval", "--run", "/no/such/run"], 1, "not a run directory"),
]


@pytest.mark.parametrize("args,code,message", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_input_is_one_line_and_nonzero(args, code, message, capsys):
    assert main(args) == code
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_existing_output_directory_is_refused_unless_overwrite(tmp_path, capsys):
    args = ["train", "--model", "digits123", "--steps", "2", "--workers", "1",
            "--out", str(tmp_path), "--no-progress"]
    (tmp_path / "keep.txt").write_text("mine")
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_unwritable_output_directory(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["train", "--model", "digits123", "--steps", "2", "--workers", "1",
                     "--out", str(locked / "run"), "--no-progress"])
    finally:
        locked.chmod(0o700)
    import os
    if os.geteuid() == 0:   # root writes anywhere: nothing to refuse
        assert code == 0
    else:
        assert code == 1 and "cannot write" in capsys.readouterr().err


def test_diverging_run_stops_with_one_line(tmp_path, capsys):
    code = main(["train", "--model", "convnet3", "--dataset", "digits", "--steps", "30",
                 "--lr", "1e12", "--workers", "1", "--out", str(tmp_path / "d"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged at step" in err
    assert len([l for l in err.splitlines() if "error" in l]) == 1 and "Warning" not in err
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert metrics["completed"] is False and "diverged" in metrics["stopped_by"]


def test_more_workers_than_cores_is_a_warning_not_an_error(tmp_path, capsys):
    import os
    many = (os.cpu_count() or 1) + 1
    assert main(["train", "--model", "digits123", "--steps", "2", "--workers", str(many),
                 "--out", str(tmp_path / "w"), "--no-progress"]) == 0
    assert "warning" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_143(tmp_path):
    import signal
    import time
    out = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, "-m", "partrain.cli", "train", "--model", "lenet5",
                             "--dataset", "digits32", "--epochs", "50", "--workers", "2",
                             "--out", str(out), "--no-progress"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "config.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    assert (out / "checkpoint.h5").exists() and (out / "model.h5").exists()
