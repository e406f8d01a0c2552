"""Replacing a dead worker when the replacement dies too.

A worker that dies during its own start (or between saying it is ready and receiving
the task it replaces) is one more failure of the step being computed: the step is
retried under the same rule as any other death (up to RETRIES_PER_MESSAGE
replacements), and then the run writes its checkpoint and stops with one line, never
"Broken pipe".
"""

import os
import signal
from contextlib import contextmanager

import numpy as np
import pytest

import partrain.engine.process as process
from partrain.cli import main
from partrain.engine import make_engine
from partrain.errors import WorkerError
from partrain.presets import build_model
from partrain.testing import alive, checkpoint_step, data_for, final_lines, worker_processes

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _kill(proc):
    os.kill(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait(timeout=10)


def replacements_die(monkeypatch, when, how_many=None):
    """From now on, started workers die ``when`` ("before ready": during their start;
    "after ready": once ready, before any task reaches them). ``how_many``: only that
    many of them (then starts succeed again). Returns the list of pids killed."""
    real = process._WorkerProcess.wait_ready
    killed = []

    def wait_ready(self):
        if how_many is not None and len(killed) >= how_many:
            return real(self)
        if when == "before ready":
            _kill(self)
            killed.append(self.proc.pid)
            return real(self)
        real(self)
        _kill(self)
        killed.append(self.proc.pid)

    monkeypatch.setattr(process._WorkerProcess, "wait_ready", wait_ready)
    return killed


def serial_reference():
    X, y = data_for("digits123").train
    with make_engine(build_model("digits123", seed=0), {"train": (X, y)}, 8,
                     backend="serial") as serial:
        loss, grad = serial.gradient(np.arange(96))
        return X, y, loss, grad.copy()


@contextmanager
def engine_with_a_dead_worker(X, y, w):
    """2 worker processes after one step, worker ``w`` then killed."""
    with make_engine(build_model("digits123", seed=0), {"train": (X, y)}, 8,
                     backend="process", workers=2) as engine:
        engine.gradient(np.arange(96))
        _kill(engine.procs[w])
        yield engine


@pytest.mark.parametrize("when", ["before ready", "after ready"])
def test_replacements_that_die_at_start_count_as_failures_of_the_step(monkeypatch, when):
    X, y, _, _ = serial_reference()
    with engine_with_a_dead_worker(X, y, 0) as engine:
        killed = replacements_die(monkeypatch, when)
        with pytest.raises(WorkerError, match=r"^worker 0 died 4 times on step 2 \(gradient\); "
                                              r"giving up; last: .*"):
            engine.gradient(np.arange(96), what="step 2")
        assert len(killed) == process.RETRIES_PER_MESSAGE
    assert worker_processes() == [] and alive(killed) == []


@pytest.mark.parametrize("when", ["before ready", "after ready"])
def test_a_replacement_dying_at_start_is_replaced_again_with_the_same_bits(monkeypatch, when):
    X, y, ref_loss, ref = serial_reference()
    with engine_with_a_dead_worker(X, y, 1) as engine:
        killed = replacements_die(monkeypatch, when, how_many=2)
        loss, grad = engine.gradient(np.arange(96))
        assert len(killed) == 2 and engine.replacements == 1
        assert loss == ref_loss and grad.tobytes() == ref.tobytes()
        assert len(alive(engine.worker_pids)) == 2


def test_the_command_line_checkpoints_and_says_one_line(monkeypatch, tmp_path, capsys):
    """Worker 0 dies while step 3 is sent, then every replacement dies as it starts."""
    real_exchange = process.ProcessEngine._exchange
    exchanges = []

    def exchange(self, tasks):
        exchanges.append(next(iter(tasks.values())).what)
        if exchanges.count("step 3") == 1 and exchanges[-1] == "step 3":
            _kill(self.procs[0])
            replacements_die(monkeypatch, "after ready")
        return real_exchange(self, tasks)

    monkeypatch.setattr(process.ProcessEngine, "_exchange", exchange)
    out = tmp_path / "run"
    code = main(["train", "--model", "digits123", "--steps", "6", "--workers", "2",
                 "--backend", "process", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert len(final_lines(err)) == 1, err
    assert final_lines(err)[0].startswith("partrain: error: worker 0 died 4 times on step 3 "
                                          "(gradient); giving up; last: "), err
    assert "Broken pipe" not in err and "Traceback" not in err
    assert checkpoint_step(out) == 2
    assert worker_processes() == []
