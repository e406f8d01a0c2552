"""Checkpoints, resume and the run directory: an interrupted run, resumed, ends with
the same bytes; everything read back is checked; best/ is chosen on validation only."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import psutil
import pytest

import partrain
from partrain.cli import main
from partrain.errors import Interrupted, UsageError
from partrain.presets import build_model
from partrain.run.rundir import CHECKPOINT
from partrain.testing import data_for, interrupt_at, make_trainer, shm_entries, worker_processes

SETTINGS = dict(model="lenet5", dataset="digits32", limit=256, steps=12, batch_size=32,
                dtype="float32", optimizer="adam", lr=0.002, eval_every=4)


def uninterrupted(tmp_path, **kw):
    trainer = make_trainer(tmp_path / "whole", **{**SETTINGS, **kw})
    trainer.run()
    return trainer.model.flat.tobytes()


def stop_run(monkeypatch, out, stop, **kw):
    import partrain.train.trainer as trainer_mod

    trainer = make_trainer(out, checkpoint_every=3, **{**SETTINGS, **kw})
    monkeypatch.setattr(trainer_mod, "make_engine", interrupt_at(stop))
    with pytest.raises(Interrupted):
        trainer.run()
    monkeypatch.undo()
    return trainer


@pytest.mark.parametrize("workers", [1, 2])
def test_resume_after_interrupt_is_bitwise_identical(tmp_path, workers, monkeypatch):
    kw = dict(workers=workers, backend="process" if workers > 1 else "serial")
    reference = uninterrupted(tmp_path, **kw)
    # Stops inside a checkpoint interval, the second one past an epoch boundary.
    for stop in ((5, 10) if workers == 1 else (10,)):
        out = tmp_path / f"stop{stop}"
        stop_run(monkeypatch, out, stop, **kw)
        with h5py.File(out / CHECKPOINT) as f:
            assert f.attrs["step"] == stop - 1   # checkpointed at the stop, not at step 3/9
        resumed = make_trainer(out, checkpoint_every=3, **{**SETTINGS, **kw}).resume()
        assert resumed.resumed_from == stop - 1
        history = resumed.run()
        assert resumed.model.flat.tobytes() == reference, f"stopped at step {stop}"
        assert len(history) == SETTINGS["steps"] and history["step"] == list(range(1, 13))
        assert history.metrics["completed"] is True
    assert worker_processes() == [] and shm_entries() == []


def test_resume_after_interrupt_at_the_first_step(tmp_path, monkeypatch):
    reference = uninterrupted(tmp_path, backend="serial")
    out = tmp_path / "stop1"
    stop_run(monkeypatch, out, 1, backend="serial")
    resumed = make_trainer(out, checkpoint_every=3, backend="serial", **SETTINGS).resume()
    resumed.run()
    assert resumed.model.flat.tobytes() == reference


def test_resume_may_change_the_worker_count(tmp_path, monkeypatch):
    reference = uninterrupted(tmp_path, workers=1, backend="serial")
    out = tmp_path / "switch"
    stop_run(monkeypatch, out, 7, workers=1, backend="serial")
    resumed = make_trainer(out, workers=2, backend="process", **SETTINGS).resume()
    resumed.run()
    assert resumed.model.flat.tobytes() == reference


def test_resume_refuses_other_settings_model_or_data(tmp_path, monkeypatch):
    out = tmp_path / "run"
    stop_run(monkeypatch, out, 5, backend="serial")
    for change, what in [(dict(batch_size=16), "settings"), (dict(seed=1), "settings"),
                         (dict(lr=0.01), "settings"), (dict(dtype="float64"), "model"),
                         (dict(limit=300), "data")]:
        trainer = make_trainer(out, backend="serial", **{**SETTINGS, **change})
        with pytest.raises(UsageError, match=f"belongs to a run with different .*{what}"):
            trainer.resume()


def test_a_real_signal_stops_at_a_step_boundary_and_resumes_to_the_same_bits(tmp_path, capsys):
    """SIGHUP (as when the terminal goes away) during an in-process CLI run: exit status
    129, a checkpoint at the step it stopped after, and a resume that ends where an
    uninterrupted run does."""
    args = ["train", "--model", "digits123", "--steps", "150", "--workers", "1",
            "--no-progress", "--eval-every", "50"]
    assert main(args + ["--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "hup"
    sent = []

    def hang_up():   # once the run has checkpointed, i.e. is well inside its loop
        deadline = time.time() + 60
        while time.time() < deadline:
            if (out / CHECKPOINT).exists():
                os.kill(os.getpid(), signal.SIGHUP)
                sent.append(True)
                return
            time.sleep(0.002)

    # Should the signal ever arrive outside the run, it must not end pytest.
    previous = signal.signal(signal.SIGHUP, lambda *_: None)
    try:
        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        code = main(args + ["--out", str(out), "--checkpoint-every", "10"])
        thread.join(timeout=5)
    finally:
        signal.signal(signal.SIGHUP, previous)
    err = capsys.readouterr().err
    assert sent and code == 129, err
    assert "stopped by SIGHUP" in err and f"--resume {out}" in err and "Traceback" not in err
    with h5py.File(out / CHECKPOINT) as f:
        step = int(f.attrs["step"])
    assert 10 <= step < 150
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["completed"] is False and metrics["steps"] == step
    assert "SIGHUP" in metrics["stopped_by"]
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    with h5py.File(tmp_path / "whole" / "model.h5") as a, h5py.File(out / "model.h5") as b:
        assert set(a) == set(b)
        for key in a:
            assert a[key][()].tobytes() == b[key][()].tobytes(), key


@pytest.mark.slow
def test_sigkill_of_coordinator_loses_only_steps_since_checkpoint(tmp_path):
    args = ["--model", "lenet5", "--dataset", "digits32", "--epochs", "4", "--batch-size", "32",
            "--workers", "2", "--no-progress", "--checkpoint-every", "10"]
    assert main(["train", *args, "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "partrain.cli", "train", *args,
                             "--out", str(out)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / CHECKPOINT).exists() and time.time() < deadline:
        time.sleep(0.05)
    workers = worker_processes(proc.pid)
    time.sleep(0.7)   # somewhere between two checkpoints
    proc.kill()
    proc.wait()
    _, still = psutil.wait_procs(workers, timeout=15)
    assert workers and not still, "workers outlived their coordinator"
    assert shm_entries() == []
    with h5py.File(out / CHECKPOINT) as f:   # readable: never torn
        step = int(f.attrs["step"])
    assert 10 <= step < 180 and step % 10 == 0
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    with h5py.File(tmp_path / "whole" / "model.h5") as a, h5py.File(out / "model.h5") as b:
        assert set(a) == set(b)
        for key in a:
            assert a[key][()].tobytes() == b[key][()].tobytes(), key


def _cli_run(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["train", "--model", "digits123", "--steps", "4", "--workers", "1",
                 "--no-progress", "--out", str(out), *extra]) == 0
    return out


def test_resume_refuses_a_checkpoint_from_another_preset(tmp_path, capsys):
    a = _cli_run(tmp_path, "a", "--checkpoint-every", "1")
    b = tmp_path / "b"
    assert main(["train", "--steps", "2", "--workers", "1", "--no-progress",
                 "--checkpoint-every", "1", "--model", "convnet3", "--dataset", "digits",
                 "--out", str(b)]) == 0
    (b / CHECKPOINT).write_bytes((a / CHECKPOINT).read_bytes())
    capsys.readouterr()
    assert main(["train", "--resume", str(b)]) == 2
    err = capsys.readouterr().err
    assert "belongs to a run with different" in err and "model" in err
    assert len(err.strip().splitlines()) == 1


def test_resume_without_checkpoint_is_one_line(tmp_path, capsys):
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    out = _cli_run(tmp_path, "done")   # no --checkpoint-every: no checkpoint
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and len(err.strip().splitlines()) == 1


def _damage(path, how):
    if how == "garbage":
        path.write_bytes(b"garbage" * 10)
        return
    with h5py.File(path, "r+") as f:
        if how == "nan":
            p = f["params"][()]
            p[3] = np.nan
            f["params"][...] = p
        elif how == "shape":
            p = f["params"][()]
            del f["params"]
            f.create_dataset("params", data=p[:-1])
        elif how == "dtype":
            p = f["params"][()]
            del f["params"]
            f.create_dataset("params", data=p.astype(np.float64))
        elif how == "history":
            f.attrs["history"] = "[{]"
        elif how == "step":
            f.attrs["step"] = 999
        elif how == "lr":
            f.attrs["lr"] = -1.0
        elif how == "format":
            f.attrs["format"] = 1


@pytest.mark.parametrize("how,message", [
    ("garbage", "unreadable"), ("nan", "NaN"), ("shape", "has shape"), ("dtype", "expected"),
    ("history", "not valid JSON"), ("step", "does not match"), ("lr", "learning rate"),
    ("format", "format"),
])
def test_damaged_checkpoint_is_one_line(tmp_path, capsys, how, message):
    out = _cli_run(tmp_path, "run", "--checkpoint-every", "2")
    _damage(out / CHECKPOINT, how)
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_resume_removes_stale_temporaries_and_may_extend_the_run(tmp_path, capsys):
    longer = _cli_run(tmp_path, "eight", "--steps", "8")
    out = _cli_run(tmp_path, "four", "--checkpoint-every", "2")
    stale = out / ".checkpoint.h5.abc123.tmp"   # as a SIGKILL mid-write leaves it
    stale.write_bytes(b"half")
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--steps", "2"]) == 2
    assert "cannot shorten" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--steps", "8", "--no-progress"]) == 0
    assert not stale.exists()
    with h5py.File(longer / "model.h5") as a, h5py.File(out / "model.h5") as b:
        for key in a:
            assert a[key][()].tobytes() == b[key][()].tobytes(), key
    assert len((out / "history.csv").read_text().splitlines()) == 9


# ----------------------------------------------------------------------------
# The Python API's run directory, and best/ chosen on validation only
# ----------------------------------------------------------------------------

def _fit(out, **kw):
    X, y = data_for("digits123").train
    model = build_model("digits123", seed=0)
    history = partrain.fit(model, X, y, steps=20, batch_size="full", optimizer="sgd",
                           lr=19.2, eval_every=2, workers=1, out=out, progress=False, **kw)
    return model, history


def test_fit_writes_a_run_that_load_run_reads_back(tmp_path):
    Xt, yt = data_for("digits123").test
    model, history = _fit(tmp_path / "run", test_data=(Xt, yt))
    assert len(history) == 20 and len(history["test_acc"]) == 10
    for name in ("config.json", "model.pkl", "history.csv", "model.h5", "metrics.json",
                 "curves.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    loaded, h = partrain.load_run(tmp_path / "run")
    assert loaded.flat.tobytes() == model.flat.tobytes()
    assert loaded.dtype == model.dtype and loaded.layer_names == model.layer_names
    np.testing.assert_array_equal(partrain.predict(loaded, Xt, workers=1),
                                  partrain.predict(model, Xt, workers=1))
    assert [r["loss"] for r in h.rows] == pytest.approx(history["loss"], rel=1e-12)
    assert h.metrics["test_acc"] == history.metrics["test_acc"]


def test_best_parameters_come_from_validation_never_from_test(tmp_path):
    Xt, yt = data_for("digits123").test
    # With a test split but no validation split: no best/ at all.
    _fit(tmp_path / "noval", test_data=(Xt, yt))
    with h5py.File(tmp_path / "noval" / "model.h5") as f:
        assert "best" not in f
    with pytest.raises(UsageError, match="no best parameters"):
        partrain.load_run(tmp_path / "noval", best=True)

    # With validation: best/ holds the parameters of the first evaluation with the
    # highest validation accuracy, whatever the test accuracy did.
    model, history = _fit(tmp_path / "val", test_data=(Xt, yt), validation_split=0.25)
    val = history["val_acc"]
    steps = [e["step"] for e in history.evals]
    assert len(val) == 10 and len(set(val)) > 1
    best = int(np.argmax(val))
    assert history.metrics["best_val_acc"] == val[best]
    assert history.metrics["best_step"] == steps[best]
    best_model, _ = partrain.load_run(tmp_path / "val", best=True)
    data = partrain.Data(train=data_for("digits123").train, name="x")
    from partrain.data.container import hold_out_validation
    Xv, yv = hold_out_validation(data, 0.25, 0).val
    acc = float(np.mean(partrain.predict(best_model, Xv, workers=1) == yv))
    assert acc == val[best]


def test_python_api_resume_continues_to_the_same_bits_and_best(tmp_path, monkeypatch):
    import partrain.train.trainer as trainer_mod

    X, y = data_for("digits123").train
    kw = dict(steps=10, batch_size=32, optimizer="adam", lr=0.01, workers=1, progress=False,
              validation_split=0.25, eval_every=2, checkpoint_every=4)
    reference = build_model("digits123")
    partrain.fit(reference, X, y, out=tmp_path / "ref", **kw)
    monkeypatch.setattr(trainer_mod, "make_engine", interrupt_at(6))
    with pytest.raises(Interrupted):
        partrain.fit(build_model("digits123"), X, y, out=tmp_path / "run", **kw)
    monkeypatch.undo()
    model = build_model("digits123")
    history = partrain.fit(model, X, y, out=tmp_path / "run", resume=True, **kw)
    assert model.flat.tobytes() == reference.flat.tobytes() and len(history) == 10
    with h5py.File(tmp_path / "ref" / "model.h5") as a, h5py.File(tmp_path / "run" / "model.h5") as b:
        assert set(a["best"]) == set(b["best"]) and len(a["best"]) == 4
        for key in a["best"]:
            assert a["best"][key][()].tobytes() == b["best"][key][()].tobytes(), key


def test_checkpoint_every_without_a_run_directory_is_no_crash():
    X, y = data_for("digits123").train
    try:
        history = partrain.fit(build_model("digits123"), X, y, steps=4, workers=1,
                               checkpoint_every=2, progress=False)
    except UsageError as exc:   # refusing it up front is as good as ignoring it
        assert "out" in str(exc)
    else:
        assert len(history) == 4
