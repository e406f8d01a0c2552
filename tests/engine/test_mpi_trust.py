"""MPI runs you can trust: a launcher whose MPI is not mpi4py's, a backend forced under
mpiexec, a rank that falls silent, ranks reading different data, eval under mpiexec.

The launcher checks set the launcher's variables in a plain subprocess (no mpiexec):
that is what a process sees when mpiexec comes from one MPI and mpi4py loads another.
The others start real ``mpiexec`` jobs.
"""

import os
import signal
import subprocess
import sys
import time
import textwrap
from pathlib import Path

import numpy as np
import psutil
import pytest

from partrain.testing import abort_after_output, final_lines, output_problems, wait_for

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
CLI = [sys.executable, "-m", "partrain.cli"]
TINY = ["train", "--model", "digits123", "--steps", "2", "--no-progress"]
LAUNCHER = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
            "PMIX_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


def without_launcher(**env):
    base = {k: v for k, v in os.environ.items() if k not in LAUNCHER}
    return {**base, **env}


def cli(args, env, timeout=120):
    return subprocess.run(CLI + args, capture_output=True, text=True, env=env,
                          timeout=timeout)


# -- 1. the launcher and the MPI library disagree ----------------------------------------

@pytest.mark.parametrize("var, says", [("PMI_SIZE", "4 processes (PMI_SIZE=4)"),
                                       ("OMPI_COMM_WORLD_SIZE",
                                        "4 processes (OMPI_COMM_WORLD_SIZE=4)"),
                                       ("MPI_LOCALNRANKS", "at least 4 processes")])
def test_launcher_of_another_mpi_is_one_line_not_four_runs(tmp_path, var, says):
    r = cli(TINY + ["--out", str(tmp_path / "run")], without_launcher(**{var: "4"}))
    assert r.returncode == 1
    assert output_problems(r.stdout, r.stderr) == []
    line, = final_lines(r.stderr)
    assert says in line and "MPI library mpi4py loaded" in line and "sees 1" in line
    assert "MPI4PY_LIBMPI" in line
    assert not (tmp_path / "run").exists()


def test_every_other_process_of_the_job_stays_quiet(tmp_path):
    r = cli(TINY + ["--out", str(tmp_path / "run")],
            without_launcher(PMI_SIZE="4", PMI_RANK="2"))
    assert r.returncode == 1
    assert r.stderr.strip() == ""   # process 0 of the job says it, once


@pytest.mark.parametrize("backend", ["process", "serial"])
def test_forced_local_backend_under_mpiexec_is_refused(tmp_path, backend):
    r = cli(TINY + ["--backend", backend, "--out", str(tmp_path / "run")],
            without_launcher(PMI_SIZE="2", PMI_RANK="0"))
    assert r.returncode == 2
    assert output_problems(r.stdout, r.stderr) == []
    line, = final_lines(r.stderr)
    assert f"--backend {backend} under mpiexec (PMI_SIZE=2)" in line
    assert "same --out" in line
    assert not (tmp_path / "run").exists()


def test_forced_local_backend_under_mpiexec_is_refused_in_python():
    code = ("import numpy as np, partrain\n"
            "from partrain.errors import UsageError\n"
            "m = partrain.build_model('digits123')\n"
            "X = np.zeros((8, *m.input_shape), np.float32); y = np.zeros(8, int)\n"
            "try:\n"
            "    partrain.fit(m, X, y, steps=1, backend='process', progress=False)\n"
            "except UsageError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=without_launcher(OMPI_COMM_WORLD_SIZE="3"), timeout=120)
    assert "`backend='process'` under mpiexec (OMPI_COMM_WORLD_SIZE=3)" in r.stdout, r.stderr


# -- 2. a silent rank ---------------------------------------------------------------------

# The rank processes with the process backend's hang floor lowered, as its own tests do.
HANG_FLOOR_3S = ("import sys; from partrain.engine import base; base.HANG_FLOOR = 3.0; "
                 "from partrain.cli import main; sys.exit(main(sys.argv[1:]))")


def _rank_process(rank, parent):
    for p in psutil.Process(parent).children(recursive=True):
        try:
            if p.cmdline()[:2] == [sys.executable, "-c"] and \
                    p.environ().get("PMI_RANK") == str(rank):
                return p
        except psutil.Error:
            continue
    return None


def test_stopped_rank_is_named_and_the_job_ends_with_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    job = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-c", HANG_FLOOR_3S,
                            "train", "--model", "lenet5", "--dataset", "digits32",
                            "--batch-size", "64", "--steps", "100000", "--checkpoint-every",
                            "5", "--no-progress", "--quiet", "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    try:
        assert wait_for(lambda: (out / "checkpoint.h5").exists(), 120, 0.05, job)
        victim = _rank_process(1, job.pid)
        assert victim is not None
        victim.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        stdout, stderr = job.communicate(timeout=60)
        assert time.monotonic() - t0 < 30   # 3 s limit, 2 s of pings, the outputs
        # MPI_Abort ends the stopped rank too.
        assert wait_for(lambda: not _alive(victim), 10, 0.05)
    finally:
        if job.poll() is None:
            job.kill()
        if victim is not None and victim.is_running():
            victim.kill()
    assert job.returncode == 1
    assert output_problems(stdout, stderr) == []
    line, = final_lines(stderr)
    assert "rank 1 sent nothing for" in line and "ending the MPI job" in line
    assert (out / "checkpoint.h5").exists() and (out / "metrics.json").exists()


def _alive(p):
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- 3. ranks reading different data ------------------------------------------------------

def test_ranks_with_different_data_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.savez(tmp_path / f"{name}.npz", X=rng.integers(0, 256, (40, 6, 6), np.uint8),
                 y=np.arange(40) % 3)
    common = ["--model", "digits123", "--steps", "2", "--no-progress",
              "--out", str(tmp_path / "run")]
    r = subprocess.run([MPIEXEC, "-n", "1", *CLI, "train", "--data", str(tmp_path / "a.npz"),
                        *common, ":", "-n", "1", *CLI, "train", "--data",
                        str(tmp_path / "b.npz"), *common],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert output_problems(r.stdout, r.stderr) == []
    line, = final_lines(r.stderr)
    assert "rank 1 read different data from rank 0" in line
    # The same file on both ranks trains.
    same = subprocess.run([MPIEXEC, "-n", "2", *CLI, "train", "--data",
                           str(tmp_path / "a.npz"), *common[:-1], str(tmp_path / "ok")],
                          capture_output=True, text=True, timeout=120)
    assert same.returncode == 0, same.stderr


# -- 4. eval under mpiexec ------------------------------------------------------------------

def test_eval_under_mpiexec_gives_the_local_line(tmp_path):
    run = tmp_path / "run"
    r = cli(["train", "--model", "lenet5", "--dataset", "digits32", "--steps", "2",
             "--no-progress", "--quiet", "--out", str(run)], without_launcher())
    assert r.returncode == 0, r.stderr
    here = cli(["eval", str(run)], without_launcher())
    assert here.returncode == 0, here.stderr
    m = subprocess.run([MPIEXEC, "-n", "2", *CLI, "eval", str(run)], capture_output=True,
                       text=True, timeout=120)
    assert m.returncode == 0, m.stderr
    assert output_problems(m.stdout, m.stderr, finals=0) == []
    assert m.stdout == here.stdout   # the same loss and accuracy, said once


# -- 5. MPICH's shared memory after a kill -------------------------------------------------

def _mpich_segments(process):
    """The /dev/shm/mpich_shm_* files ``process`` maps (" (deleted)" once unlinked)."""
    with open(f"/proc/{process.pid}/maps") as maps:
        return {line.split(maxsplit=5)[5].strip() for line in maps
                if "/dev/shm/mpich_shm_" in line}


def test_a_killed_rank_leaves_no_mpich_segment(tmp_path):
    out = tmp_path / "run"
    job = subprocess.Popen([MPIEXEC, "-n", "2", *CLI, "train", "--model", "lenet5",
                            "--dataset", "digits32", "--steps", "100000",
                            "--checkpoint-every", "5", "--no-progress", "--quiet",
                            "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (out / "checkpoint.h5").exists(), 120, 0.05, job)
        ranks = [p for p in psutil.Process(job.pid).children(recursive=True)
                 if p.cmdline()[:1] == [sys.executable]]
        segments = set().union(*(_mpich_segments(p) for p in ranks))
        assert segments   # MPICH shares memory between the ranks of one host
        ranks[-1].kill()
        job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    for name in segments:
        assert not Path(name.removesuffix(" (deleted)")).exists(), name


# -- 6. a /dev/shm too small for MPI --------------------------------------------------------

def test_too_small_dev_shm_is_one_line_before_mpi_starts(tmp_path):
    # As a 1 MiB tmpfs on /dev/shm reads (MPI_Init would die of SIGBUS, exit 7).
    code = ("import sys; from partrain.engine import mpi; "
            "mpi.free_shared_memory = lambda: 1 << 20; "
            "from partrain.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, *TINY, "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=120,
                       env=without_launcher(PMI_SIZE="2", PMI_RANK="0", MPI_LOCALNRANKS="2"))
    assert r.returncode == 1
    assert output_problems(r.stdout, r.stderr) == []
    line, = final_lines(r.stderr)
    assert "/dev/shm has 1.0 MiB free" in line and "2 ranks on this host" in line


RANK0_LEAVES_MID_STEP = textwrap.dedent('''
    import sys
    import numpy as np
    from partrain.engine import make_engine
    from partrain.engine.mpi import MPIEngine
    from partrain.presets import build_model
    from partrain.testing import data_for

    reduce = MPIEngine._ordered_reduce

    def broken_on_rank0(self, *args):   # a bug in rank 0 while the others reduce
        if self.rank == 0:
            raise RuntimeError("rank 0 broke inside a step")
        return reduce(self, *args)

    MPIEngine._ordered_reduce = broken_on_rank0
    X, y = data_for("digits32").train
    engine = make_engine(build_model("lenet5"), {"train": (X[:64], y[:64])}, 8,
                         backend="mpi", max_batch=64)
    engine.run(lambda e: e.gradient(np.arange(64)))
''')


def test_rank0_failing_inside_a_step_ends_the_job_instead_of_hanging():
    """The other ranks are inside the step's collectives, where no end message can reach
    them: the job must end by MPI_Abort, not wait in MPI_Finalize forever."""
    job = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", RANK0_LEAVES_MID_STEP],
                         capture_output=True, text=True, timeout=60)
    assert job.returncode != 0
    assert "rank 0 broke inside a step" in job.stderr


# -- 8. an abort keeps the reason: the launcher reads the rank's output first --------------

def test_abort_waits_until_the_launcher_has_read_the_pipe():
    """MPICH's launcher drops what it had not read from a rank's pipe when MPI_Abort
    ends the job, and the reason is the last thing written: the abort waits for it."""
    import fcntl
    import termios
    import threading

    from partrain.engine.mpi import _wait_until_read

    r, w = os.pipe()
    try:
        os.write(w, b"x" * 4096 + b"the reason\n")
        got = []
        reader = threading.Timer(0.3, lambda: got.append(os.read(r, 1 << 16)))
        reader.start()
        _wait_until_read((w,), limit=60)
        unread = int.from_bytes(fcntl.ioctl(w, termios.FIONREAD, bytes(4)), sys.byteorder)
        reader.join()
        assert unread == 0   # it returned only once the reader (0.3 s late) had read it all
        assert got[0].endswith(b"the reason\n")
    finally:
        os.close(r)
        os.close(w)


def test_a_rank_that_aborts_after_much_output_keeps_its_last_line():
    # Without the wait this failed about 1 run in 10 (scripts/stress/abort_output.py).
    assert abort_after_output(lines=3000)


def test_abort_waits_at_most_its_limit_and_never_for_files(tmp_path):
    from partrain.engine.mpi import _wait_until_read

    r, w = os.pipe()   # nobody reads it
    try:
        os.write(w, b"unread")
        t0 = time.monotonic()
        _wait_until_read((w,), limit=0.2)   # returns (the test would hang otherwise)...
        assert time.monotonic() - t0 >= 0.2      # ...and only once its limit is spent
    finally:
        os.close(r)
        os.close(w)
    with open(tmp_path / "log", "w") as f:
        f.write("x" * 100)
        f.flush()
        t0 = time.monotonic()
        _wait_until_read((f.fileno(),), limit=60)
        assert time.monotonic() - t0 < 30   # a file: no wait, not the 60 s limit
