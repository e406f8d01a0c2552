"""Checkpoints and resume: an interrupted run, resumed, ends with the same bytes."""

import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from partrain.checkpoint import FILENAME
from partrain.cli import main
from partrain.errors import UsageError
from partrain.trainer import Interrupted, TrainConfig, Trainer

SETTINGS = dict(model="lenet5", dataset="digits32", steps=12, batch_size=64, dtype="float32",
                optimizer="adam", lr=0.002, eval_every=4, progress=False)


def uninterrupted(tmp_path, **kw):
    trainer = Trainer(TrainConfig(out=str(tmp_path / "whole"), **{**SETTINGS, **kw}))
    trainer.run()
    return trainer.model.flat.tobytes()


def interrupt_at(trainer, stop_step):
    """Make the engine raise Interrupted (as the SIGINT handler does) at a given step."""
    from partrain import engine as engine_pkg
    real_make = engine_pkg.make_engine

    def patched_make(*args, **kwargs):
        e = real_make(*args, **kwargs)
        real_gradient = e.gradient

        def gradient(indices):
            if e.step_id + 1 == stop_step:
                raise Interrupted(signal.SIGINT)
            return real_gradient(indices)

        e.gradient = gradient
        return e

    return patched_make


@pytest.mark.parametrize("workers", [1, 2])
def test_resume_after_interrupt_is_bitwise_identical(tmp_path, workers, monkeypatch):
    kw = dict(workers=workers, backend="process" if workers > 1 else "serial")
    reference = uninterrupted(tmp_path, **kw)
    import partrain.trainer as trainer_mod
    for stop in (1, 5, 10):
        out = tmp_path / f"stop{stop}"
        trainer = Trainer(TrainConfig(out=str(out), checkpoint_every=3, **{**SETTINGS, **kw}))
        monkeypatch.setattr(trainer_mod, "make_engine", interrupt_at(trainer, stop))
        with pytest.raises(Interrupted):
            trainer.run()
        monkeypatch.undo()
        with h5py.File(out / FILENAME) as f:
            assert f.attrs["step"] == stop - 1
        resumed = Trainer.resume(out)
        resumed.run()
        assert resumed.model.flat.tobytes() == reference, f"stopped at step {stop}"
        assert len(resumed.history) == SETTINGS["steps"]


def test_resume_may_change_the_worker_count(tmp_path, monkeypatch):
    reference = uninterrupted(tmp_path, workers=1, backend="serial")
    import partrain.trainer as trainer_mod
    out = tmp_path / "switch"
    trainer = Trainer(TrainConfig(out=str(out), workers=1, backend="serial", **SETTINGS))
    monkeypatch.setattr(trainer_mod, "make_engine", interrupt_at(trainer, 7))
    with pytest.raises(Interrupted):
        trainer.run()
    monkeypatch.undo()
    resumed = Trainer.resume(out, workers=2, backend="process")
    resumed.run()
    assert resumed.model.flat.tobytes() == reference


@pytest.mark.slow
def test_sigkill_of_coordinator_loses_only_steps_since_checkpoint(tmp_path):
    args = ["--model", "lenet5", "--dataset", "digits32", "--epochs", "4", "--batch-size", "32",
            "--workers", "2", "--no-progress", "--checkpoint-every", "10"]
    assert main(["train", *args, "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "partrain.cli", "train", *args,
                             "--out", str(out)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / FILENAME).exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.7)   # somewhere between two checkpoints
    proc.kill()
    proc.wait()
    with h5py.File(out / FILENAME) as f:   # readable: never torn
        step = int(f.attrs["step"])
    assert 10 <= step < 180 and step % 10 == 0
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    with h5py.File(tmp_path / "whole" / "model.h5") as a, h5py.File(out / "model.h5") as b:
        for key in a:
            if isinstance(a[key], h5py.Dataset):
                assert a[key][()].tobytes() == b[key][()].tobytes(), key


def test_resume_refuses_a_checkpoint_from_another_preset(tmp_path, capsys):
    base = ["train", "--steps", "2", "--workers", "1", "--no-progress", "--checkpoint-every", "1"]
    assert main(base + ["--model", "digits123", "--out", str(tmp_path / "a")]) == 0
    assert main(base + ["--model", "convnet3", "--dataset", "digits", "--out", str(tmp_path / "b")]) == 0
    (tmp_path / "b" / FILENAME).write_bytes((tmp_path / "a" / FILENAME).read_bytes())
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint is for digits123" in err and len(err.strip().splitlines()) == 1


def test_resume_without_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / FILENAME).write_bytes(b"garbage" * 10)
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert "unreadable" in capsys.readouterr().err
