"""A network with dropout keeps partrain's promise: the same bits on the serial engine,
on 1, 2 and 3 worker processes, on MPI ranks and after a resume (the masks are drawn
from the stream of (seed, step, chunk), partrain/nn/randomness.py)."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

import partrain.nn.dropout
from partrain.errors import Interrupted
from partrain.testing import interrupt_at, make_trainer

MODEL = "partrain.testing:dropout_net"
SETTINGS = dict(model=MODEL, dataset="digits32", limit=256, steps=8, batch_size=40,
                dtype="float32", optimizer="momentum", lr=0.05)


def final_bytes(out=None, **kw):
    trainer = make_trainer(out, **{**SETTINGS, **kw})
    trainer.run()
    return trainer.model.flat.tobytes()


@pytest.fixture(scope="module")
def serial():
    return final_bytes(backend="serial")


def test_dropout_is_really_drawn_in_training(serial, monkeypatch):
    monkeypatch.setattr(partrain.nn.dropout, "training_rng", lambda: None)
    assert final_bytes(backend="serial") != serial


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_same_bits_on_any_number_of_worker_processes(serial, workers):
    assert final_bytes(backend="process", workers=workers) == serial


def test_same_bits_after_a_stop_and_resume(tmp_path, serial, monkeypatch):
    import partrain.train.trainer as trainer_mod

    out = tmp_path / "stopped"
    trainer = make_trainer(out, checkpoint_every=3, backend="serial", **SETTINGS)
    monkeypatch.setattr(trainer_mod, "make_engine", interrupt_at(6))
    with pytest.raises(Interrupted):
        trainer.run()
    monkeypatch.undo()
    resumed = make_trainer(out, checkpoint_every=3, backend="process", workers=2,
                           **SETTINGS).resume()
    assert resumed.resumed_from == 5
    resumed.run()
    assert resumed.model.flat.tobytes() == serial


def test_same_bits_on_mpi_ranks(tmp_path):
    args = ["train", "--model", MODEL, "--dataset", "digits32", "--steps", "6",
            "--batch-size", "40", "--lr", "0.05", "--no-progress"]
    runner = [sys.executable, "-m", "partrain.cli"]
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    outs = {}
    for name, prefix, extra in [("serial", [], ["--workers", "1"]),
                                ("mpi", [mpiexec, "-n", "3"], [])]:
        outs[name] = tmp_path / name
        r = subprocess.run([*prefix, *runner, *args, *extra, "--out", str(outs[name])],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ))
        assert r.returncode == 0, r.stderr
    arrays = []
    for out in outs.values():
        with h5py.File(out / "model.h5") as f:
            arrays.append({k: f[k][()].tobytes() for k in f if isinstance(f[k], h5py.Dataset)})
    assert arrays[0] and arrays[0] == arrays[1]


def test_a_dropout_run_reads_back_without_pickle(tmp_path):
    import partrain

    trainer = make_trainer(tmp_path / "run", backend="serial", **{**SETTINGS, "steps": 2})
    trainer.run()
    model, _ = partrain.load_run(tmp_path / "run")   # no allow_pickle: rebuilt from JSON
    assert [type(layer).__name__ for layer in model.layers].count("Dropout") == 2
    assert model.flat.tobytes() == trainer.model.flat.tobytes()
