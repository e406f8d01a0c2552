"""The MPI backend: same bytes as serial and the process backend, for any rank count.

Runs real `mpiexec` jobs (mpi4py + mpich are test dependencies, so these run in CI).
One job uses MPIR_CVAR_NOLOCAL=1, which makes MPICH use its network path between the
ranks of one host, as between hosts.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest

BIN = Path(sys.executable).parent
MPIEXEC = str(BIN / "mpiexec")
PARTRAIN = [sys.executable, "-m", "partrain.cli"]
RUN = ["train", "--model", "lenet5", "--dataset", "digits32", "--batch-size", "64",
       "--optimizer", "adam", "--lr", "0.002", "--val-split", "0.1", "--eval-every", "4",
       "--no-progress"]


def mpiexec(n, args, env=None, **kw):
    return subprocess.run([MPIEXEC, "-n", str(n), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kw)


def local(args, **kw):
    return subprocess.run(PARTRAIN + args, capture_output=True, text=True, timeout=300, **kw)


def params(run_dir):
    """Every dataset of model.h5 (final and best/) as bytes."""
    out = {}
    with h5py.File(Path(run_dir) / "model.h5", "r") as f:
        f.visititems(lambda k, v: out.__setitem__(k, v[()].tobytes())
                     if isinstance(v, h5py.Dataset) else None)
    return out


def history(run_dir):
    """history.csv without its timing columns."""
    import csv

    timing = {"seconds", "worker_seconds", "overhead_seconds", "eval_seconds"}
    with open(Path(run_dir) / "history.csv") as f:
        return [{k: v for k, v in row.items() if k not in timing} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same 12 steps on the serial backend."""
    out = tmp_path_factory.mktemp("mpi") / "serial"
    r = local(RUN + ["--steps", "12", "--workers", "1", "--out", str(out)])
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("n, env", [(2, {}), (3, {"MPIR_CVAR_NOLOCAL": "1"})],
                         ids=["2-ranks", "3-ranks-network-path"])
def test_preset_is_byte_identical_to_serial_and_process(tmp_path, reference, n, env):
    r = mpiexec(n, PARTRAIN + RUN + ["--steps", "12", "--out", str(tmp_path / "mpi")], env)
    assert r.returncode == 0, r.stderr
    assert params(tmp_path / "mpi") == params(reference)
    assert history(tmp_path / "mpi") == history(reference)
    metrics = (tmp_path / "mpi" / "metrics.json").read_text()
    assert '"backend": "mpi"' in metrics and f'"workers": {n}' in metrics
    if n == 2:
        p = local(RUN + ["--steps", "12", "--workers", "2", "--backend", "process",
                         "--out", str(tmp_path / "process")])
        assert p.returncode == 0, p.stderr
        assert params(tmp_path / "process") == params(reference)


USER_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import partrain
    from partrain.nn import Layer, Conv2D, Flatten, Dense

    class LeakyReLU(Layer):   # defined in __main__, so workers must get it by value
        def __init__(self, slope=0.1):
            super().__init__()
            self.slope = slope
        def forward(self, x):
            return np.where(x > 0, x, self.slope * x), x
        def backward(self, dy, x):
            return np.where(x > 0, dy, self.slope * dy), {}

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(120, 8, 8, 1), dtype=np.uint8)   # NHWC uint8
    y = (X.reshape(120, -1).mean(axis=1) > 127).astype(int) + 2 * (X[:, 0, 0, 0] > 127)
    model = partrain.Sequential([Conv2D(1, 4, 3), LeakyReLU(), Flatten(), Dense(144, 4)],
                                partrain.SoftmaxCrossEntropy(), seed=1)
    partrain.fit(model, X, y, steps=10, batch_size=40, optimizer="adam", lr=0.01,
                 workers=sys.argv[2] if sys.argv[2] == "auto" else int(sys.argv[2]),
                 out=sys.argv[1], progress=False)
''')


def test_user_defined_model_is_byte_identical(tmp_path):
    script = tmp_path / "mine.py"
    script.write_text(USER_SCRIPT)
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "serial"), "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = mpiexec(2, [sys.executable, str(script), str(tmp_path / "mpi"), "auto"])
    assert m.returncode == 0, m.stderr
    assert params(tmp_path / "mpi") == params(tmp_path / "serial")


def _rank_process(rank, parent):
    """The partrain process of MPI rank ``rank`` among mpiexec's descendants."""
    for p in psutil.Process(parent).children(recursive=True):
        try:
            if "partrain.cli" in " ".join(p.cmdline()) and p.environ().get("PMI_RANK") == str(rank):
                return p
        except psutil.Error:
            continue
    return None


def _wait_for(path, timeout=60):
    t0 = time.time()
    while not Path(path).exists():
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_rank_ends_the_job_and_resume_gives_the_same_bytes(tmp_path):
    args = RUN + ["--steps", "40", "--checkpoint-every", "5"]
    ref = local(args + ["--workers", "1", "--out", str(tmp_path / "ref")])
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    job = subprocess.Popen([MPIEXEC, "-n", "2", *PARTRAIN, *args, "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(out / "checkpoint.h5")
    victim = _rank_process(1, job.pid)
    assert victim is not None
    victim.kill()
    _, err = job.communicate(timeout=60)
    assert job.returncode != 0   # MPI ends the whole job when a rank dies
    # Resume with another rank count, then with another backend: the same bytes.
    r = mpiexec(3, PARTRAIN + ["train", "--resume", str(out), "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert params(out) == params(tmp_path / "ref")
    assert history(out) == history(tmp_path / "ref")


def test_ctrl_c_to_mpiexec_checkpoints_and_resumes_exactly(tmp_path):
    args = RUN + ["--steps", "150"]
    out = tmp_path / "int"
    job = subprocess.Popen([MPIEXEC, "-n", "2", *PARTRAIN, *args, "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(out / "config.json")
    time.sleep(1.0)
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    assert "resume with: partrain train --resume" in err
    assert "Traceback" not in err
    r = local(["train", "--resume", str(out), "--workers", "1", "--no-progress"])
    assert r.returncode == 0, r.stderr
    ref = local(args + ["--workers", "1", "--out", str(tmp_path / "ref")])
    assert ref.returncode == 0
    assert params(out) == params(tmp_path / "ref")


def test_workers_flag_must_match_the_rank_count(tmp_path):
    r = mpiexec(2, PARTRAIN + RUN + ["--steps", "2", "--workers", "3",
                                     "--out", str(tmp_path / "x")])
    assert r.returncode != 0
    assert "does not match mpiexec -n 2" in r.stderr
    assert "Traceback" not in r.stderr


def test_allreduce_mode_is_close_to_serial_and_refused_elsewhere(tmp_path, reference):
    r = mpiexec(2, PARTRAIN + RUN + ["--steps", "12", "--reduction", "allreduce",
                                     "--out", str(tmp_path / "fast")])
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "fast" / "model.h5") as fast, \
            h5py.File(reference / "model.h5") as ref:
        for key in ("c1.W", "out.W"):
            np.testing.assert_allclose(fast[key][()], ref[key][()], rtol=1e-3, atol=1e-5)
    local_run = local(RUN + ["--steps", "2", "--workers", "2", "--reduction", "allreduce",
                             "--out", str(tmp_path / "local")])
    assert local_run.returncode == 2
    assert "adds gradients ordered, not --reduction allreduce" in local_run.stderr
