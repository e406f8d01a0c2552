"""Resource limits (ulimit -u, ulimit -v) end a command with one honest line, or do not
get in its way: no BLAS thread is started that partrain would not use.

OpenBLAS starts a thread per core as numpy loads; when the process limit stops one, it
raises SIGINT in its own process, which read as "stopped by SIGINT". The command line
and every worker therefore load BLAS with one thread, and the workers are not started
past the process limit.
"""

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import partrain.engine.process as process
import partrain.machine as machine
from partrain.cli import main
from partrain.engine import make_engine
from partrain.errors import PartrainError
from partrain.presets import build_model
from partrain.testing import CLI, data_for, worker_processes

ROOT = Path(__file__).resolve().parents[1]
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _engine(workers=2):
    X, y = data_for("digits123").train
    return make_engine(build_model("digits123", seed=0), {"train": (X, y)}, 8,
                       backend="process", workers=workers)


def test_workers_load_blas_with_one_thread(monkeypatch):
    for name in BLAS_VARIABLES:
        monkeypatch.setenv(name, "4")   # even where the user asked for more
    with _engine() as engine:
        engine.gradient(np.arange(96))
        for pid in engine.worker_pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            for name in BLAS_VARIABLES:
                assert f"{name}=1".encode() in environ, (pid, name)
            assert len(os.listdir(f"/proc/{pid}/task")) == 1   # no idle BLAS threads


def test_the_command_line_loads_blas_with_one_thread():
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([*CLI, "info"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "(1 threads" in proc.stdout, proc.stdout


def test_too_low_a_process_limit_is_one_line_before_any_worker_starts(
        monkeypatch, tmp_path, capsys):
    # Linux does not hold root to RLIMIT_NPROC, so the limit and the user are simulated.
    real = resource.getrlimit
    monkeypatch.setattr(machine.resource, "getrlimit", lambda what: (
        (3, 3) if what == resource.RLIMIT_NPROC else real(what)))
    monkeypatch.setattr(machine.os, "getuid", lambda: os.geteuid() + 12345)
    monkeypatch.setattr(machine.psutil, "process_iter", lambda attrs: iter([]))
    code = main(["train", "--model", "digits123", "--steps", "2", "--workers", "4",
                 "--backend", "process", "--no-progress", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "partrain: error: the process limit (ulimit -u) is 3 and this user already runs 0 "
        "processes and threads: no room for 4 workers; raise the limit or use fewer "
        "--workers"), err
    assert worker_processes() == []


def test_the_process_limit_counts_this_users_threads_and_spares_root():
    room = machine.process_limit_room()
    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if os.getuid() == 0 or soft == resource.RLIM_INFINITY:
        assert room is None
    else:
        assert room[0] == soft and room[1] >= 1


def test_a_fork_refused_by_the_process_limit_is_one_line_and_leaves_no_worker(monkeypatch):
    real_popen = process.subprocess.Popen
    started = []

    def popen(*args, **kwargs):
        if started:
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(process.subprocess, "Popen", popen)
    engine = _engine()
    with pytest.raises(PartrainError, match=r"^cannot start worker 1: Resource temporarily "
                                            r"unavailable \(the process limit, ulimit -u, "
                                            r"is reached\)$"):
        engine.start()
    assert started and started[0].poll() is not None
    assert worker_processes() == []


def test_a_library_that_cannot_be_mapped_is_one_line(monkeypatch, capsys):
    """What ulimit -v does to a shared library loaded late (h5py's libhdf5)."""
    import partrain.cli.train as train

    def cmd_train(args):
        raise ImportError("libhdf5-9e18f0c6.so.320.0.0: failed to map segment from shared "
                          "object", name="h5py")

    monkeypatch.setattr(train, "cmd_train", cmd_train)
    assert main(["train", "--model", "digits123", "--steps", "1"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "partrain: error: out of memory while loading h5py (is the address-space limit, "
        "ulimit -v, too low?)"]


def test_a_run_under_a_250_mb_address_space_limit_finishes(tmp_path):
    """The reviewer's `ulimit -v 250000`: a run of two workers fits, or says one line."""
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    limit = 250_000 * 1024
    proc = subprocess.run(
        [*CLI, "train", "--model", "digits123", "--steps", "2", "--workers", "2",
         "--backend", "process", "--no-progress", "--out", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
