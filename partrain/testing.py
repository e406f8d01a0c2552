"""Helpers for partrain's own tests and for its stress and benchmark scripts.

Installed with the package, as joblib ships ``joblib.testing``, so that ``scripts/``
can use them as well as ``tests/``. Importing this module costs numpy and psutil only:
never pytest (the package does not depend on it), and the rest of partrain, h5py
included, only when a helper that needs it is called.

* trainers from names: :func:`data_for`, :func:`make_trainer`, :func:`interrupt_at`;
  a user's own layer: :class:`Scale`;
* gradients: :func:`numeric_grad` (central differences), :func:`rel_error`,
  :func:`sample_coords`;
* processes and shared memory: :func:`worker_processes`, :func:`alive`,
  :func:`shm_entries`, :func:`memfd_links`;
* the command line: :class:`CLIProcess`, :func:`wait_for`, :func:`final_lines`,
  :func:`output_problems`, :func:`leftover_problems`;
* MPI: :func:`abort_after_output` (does a rank's last line survive MPI_Abort?);
* run directories: :func:`checkpoint_step`, :func:`temporaries`, :func:`h5_arrays`,
  :func:`history_rows`, :func:`result_differences`.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

# Central differences in float64, shared with partrain.gradcheck.
from partrain.nn.gradcheck import numeric_grad, rel_error, sample_coords  # noqa: F401

# ----------------------------------------------------------------------------
# Trainers from names
# ----------------------------------------------------------------------------

_DATA = {}


def data_for(dataset, data_dir=None, dtype="float32", val_split=0.0, seed=0):
    """A :class:`partrain.data.container.Data` for a named dataset (cached per arguments)."""
    from partrain.data import open_data

    key = (dataset, str(data_dir), dtype, val_split, seed)
    if key not in _DATA:
        _DATA[key] = open_data(dataset=dataset, data_dir=data_dir, dtype=dtype,
                               validation_split=val_split, seed=seed)
    return _DATA[key]


def make_trainer(out=None, *, model="lenet5", dataset="digits32", data_dir=None,
                 dtype="float32", val_split=0.0, optimizer="momentum", lr=0.01, momentum=0.9,
                 weight_decay=0.0, seed=0, limit=None, **settings):
    """A TrainingRun (a trainer writing ``out``) for a preset (or ``MODULE:FUNCTION``,
    e.g. ``partrain.testing:dropout_net``) on a named dataset;
    ``settings`` go to TrainSettings. ``limit``: keep only the first ``limit`` samples
    of every split (faster tests)."""
    from partrain.data import Data
    from partrain.names import make_model
    from partrain.nn.optim import make_optimizer
    from partrain.run.training import TrainingRun
    from partrain.train.settings import TrainSettings

    data = data_for(dataset, data_dir, dtype, val_split, seed)
    if limit is not None:
        data = Data(**{k: (X[:limit], y[:limit]) for k, (X, y) in data.splits().items()},
                    num_classes=data.num_classes, name=data.name)
    m = make_model(model, seed=seed, dtype=dtype, input_shape=data.input_shape,
                   num_classes=data.num_classes)
    opt = make_optimizer(optimizer, lr, momentum=momentum, weight_decay=weight_decay)
    settings.setdefault("progress", False)
    s = TrainSettings(out=None if out is None else str(out), seed=seed, **settings)
    return TrainingRun(m, data, opt, s)


def dropout_net(input_shape, num_classes, seed=0, dtype="float32", rate=0.3):
    """A small convnet with dropout before and inside its classifier: every random draw
    it makes must be the same on any worker count (``--model partrain.testing:dropout_net``)."""
    from partrain.nn import (Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential,
                             SoftmaxCrossEntropy)

    c, h, w = input_shape
    layers = [("c1", Conv2D(c, 4, 5)), ("r1", ReLU()), ("p1", MaxPool2D(2)),
              ("d0", Dropout(rate)), ("flat", Flatten()),
              ("f1", Dense(4 * ((h - 4) // 2) * ((w - 4) // 2), 32)), ("r2", ReLU()),
              ("d1", Dropout(rate)), ("out", Dense(32, num_classes))]
    return Sequential(layers, SoftmaxCrossEntropy(), input_shape, seed=seed, dtype=dtype,
                      name="dropout_net")


def interrupt_at(stop_step):
    """A replacement for the trainer's ``make_engine`` whose engines raise
    :class:`partrain.errors.Interrupted` (as a deferred SIGINT does) when asked for the
    gradient of step ``stop_step`` (counting from 1): nothing of that step is done yet.

        monkeypatch.setattr(partrain.train.trainer, "make_engine", interrupt_at(7))
    """
    from partrain.engine import make_engine
    from partrain.errors import Interrupted

    def make_interrupted_engine(*args, **kwargs):
        engine = make_engine(*args, **kwargs)
        gradient, calls = engine.gradient, [0]

        def interrupted_gradient(indices, *args, **kwargs):
            calls[0] += 1
            if calls[0] == stop_step:
                raise Interrupted(signal.SIGINT)
            return gradient(indices, *args, **kwargs)

        engine.gradient = interrupted_gradient
        return engine

    return make_interrupted_engine


# ----------------------------------------------------------------------------
# A user's own layer
# ----------------------------------------------------------------------------

def __getattr__(name):
    # Scale subclasses Layer, and importing partrain.nn costs half a second (scipy): the
    # class is made on first use, so that importing this module stays cheap.
    if name != "Scale":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from partrain.nn.layer import Layer

    class Scale(Layer):
        """A user's layer declared the simple way, initial values in ``self.params``:
        one learned factor per channel, ``s = linspace(0.5, 1.5, channels)``.
        x: (N, channels, H, W) -> y = s[c] * x[:, c]: same shape."""

        decay = ("s",)

        def __init__(self, channels):
            super().__init__()
            self.params = {"s": np.linspace(0.5, 1.5, channels)}

        def forward(self, x):
            return x * self.params["s"][None, :, None, None], x

        def backward(self, dy, x):
            ds = (dy * x).sum(axis=(0, 2, 3))
            return dy * self.params["s"][None, :, None, None], {"s": ds}

    Scale.__qualname__ = "Scale"   # pickle finds it by name, as any module-level class
    globals()["Scale"] = Scale
    return Scale


# ----------------------------------------------------------------------------
# Processes and shared memory
# ----------------------------------------------------------------------------

def worker_processes(coordinator=None):
    """Live partrain worker processes (zombies count as gone) of ``coordinator`` (a pid;
    default: this process) and of the processes it started.

    A worker's command line ends with its coordinator's pid (see
    partrain.engine.process), which finds also the workers that outlived it."""
    root = os.getpid() if coordinator is None else coordinator
    coordinators = {str(root)}
    with contextlib.suppress(psutil.Error):
        coordinators |= {str(p.pid) for p in psutil.Process(root).children(recursive=True)}
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if (cmd and cmd[-1] in coordinators and any("worker_main" in c for c in cmd)
                and p.info["status"] != psutil.STATUS_ZOMBIE):
            found.append(p)
    return found


def alive(processes):
    """The pids among ``processes`` (pids or psutil.Process objects) that still run;
    zombies count as gone, and so does a Process object whose pid was reused."""
    live = []
    for p in processes:
        try:
            process = p if isinstance(p, psutil.Process) else psutil.Process(p)
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                live.append(process.pid)
        except psutil.Error:
            pass
    return live


def shm_entries():
    """partrain's entries in /dev/shm: there must never be any (memfd is anonymous)."""
    return sorted(glob.glob("/dev/shm/partrain-*"))


def memfd_links(pid=None):
    """The partrain memfd descriptors open in process ``pid`` (default: this one)."""
    fd_dir = f"/proc/{pid or os.getpid()}/fd"
    links = []
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("/memfd:partrain-"):
            links.append(target)
    return links


# ----------------------------------------------------------------------------
# The command line, and what it may print
# ----------------------------------------------------------------------------

CLI = (sys.executable, "-m", "partrain.cli")

# stderr lines that are not the final word: the run banner, the one stop notice, a
# replaced worker, a warning. The final lines are errors and "stopped by ...".
BANNER = re.compile(r"^partrain: \S+ \([\d,]+ parameters\) on ")
NOTICE = re.compile(r"^partrain: SIG[A-Z]+ received; stopping")
REPLACED = re.compile(r"^partrain: worker \d+ sent nothing for .*; replacing it$")
WARNING_LINE = re.compile(r"^partrain: warning: ")
EVALUATION_LINE = re.compile(r"^partrain: step \d+/\d+ \(epoch \d+\): loss ")
PY_WARNING = re.compile(r"\b\w*Warning\b")


class CLIProcess:
    """``python -m partrain.cli ARGS`` started in the background in ``cwd``, stdout and
    stderr into files there (a pipe nobody reads could block it).

    ``new_session``: its own session and process group, so that os.killpg reaches it
    and only it. ``env``: its environment (default: this process's)."""

    def __init__(self, args, cwd, new_session=False, env=None):
        cwd = Path(cwd)
        stamp = time.monotonic_ns()
        self.out_path, self.err_path = cwd / f".stdout-{stamp}", cwd / f".stderr-{stamp}"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([*CLI, *map(str, args)], stdout=out, stderr=err,
                                         cwd=cwd, start_new_session=new_session, env=env)
        self.pid, self.t0, self.new_session = self.proc.pid, time.monotonic(), new_session

    def alive(self):
        """Running and not yet a zombie (a signal to it can still be acted on)."""
        return self.proc.poll() is None and bool(alive([self.pid]))

    def signal(self, signum):
        """Send ``signum`` if it is alive; whether it was sent."""
        if self.alive():
            os.kill(self.pid, signum)
            return True
        return False

    def workers(self):
        return worker_processes(self.pid)

    def wait(self, timeout=120):
        """(exit status, stdout, stderr) once it exits; killed, and
        subprocess.TimeoutExpired raised, if it runs past ``timeout`` seconds."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        out, err = self.out_path.read_text(), self.err_path.read_text()
        self.out_path.unlink()
        self.err_path.unlink()
        return rc, out, err

    def kill(self):
        """SIGKILL it, with its process group if it has its own session, if it runs."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                if self.new_session:
                    os.killpg(self.pid, signal.SIGKILL)
                else:
                    os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(10)


def wait_for(predicate, timeout, interval=0.0005, proc=None):
    """Poll until predicate() is true; False on timeout (seconds), or when ``proc`` (a
    subprocess.Popen) exited first and predicate() is still false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(predicate())
        time.sleep(interval)
    return False


def abort_after_output(lines=3000, wait=True, timeout=60):
    """Run ``mpiexec -n 2`` where rank 0 writes ``lines`` lines of 100 bytes to stderr,
    then "the reason", then ends the job as partrain does (``_abort_quietly``); with
    ``wait=False``, without waiting for the launcher to read the pipe first. Returns
    True when the job's stderr still ends with the reason."""
    code = (
        "import sys\n"
        "from partrain.engine import mpi\n"
        f"if not {wait!r}:\n"
        "    mpi._wait_until_read = lambda fds: None\n"
        "comm = mpi.world()\n"
        "if comm.Get_rank() == 0:\n"
        f"    sys.stderr.write(('x' * 99 + '\\n') * {int(lines)})\n"
        "    sys.stderr.write('the reason\\n')\n"
        "    mpi._abort_quietly(comm, 1)\n"
        "comm.Barrier()\n")
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    job = subprocess.run([mpiexec, "-n", "2", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=timeout)
    return job.returncode != 0 and job.stderr.endswith("the reason\n")


def final_lines(stderr):
    """The final ``partrain:`` lines of ``stderr``: errors and "stopped by" (not the
    banner, the stop notice, replacement, warning or per-evaluation lines)."""
    return [ln for ln in stderr.splitlines() if ln.startswith("partrain:")
            and not (BANNER.match(ln) or NOTICE.match(ln) or REPLACED.match(ln)
                     or WARNING_LINE.match(ln) or EVALUATION_LINE.match(ln))]


def output_problems(stdout, stderr, finals=1):
    """How the output breaks the command line's contract (empty list: it keeps it): a
    traceback, a Python warning, a stderr line not from partrain, more than one stop
    notice, or a number of final lines not in ``finals`` (a number or a tuple of them)."""
    problems = []
    if "Traceback" in stdout + stderr:
        last = [ln for ln in stderr.splitlines() if ln.strip()][-1:]
        problems.append(f"a traceback ({last[0] if last else ''})")
    if PY_WARNING.search(stderr):
        problems.append("a Python warning on stderr")
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    stray = [ln for ln in lines if not ln.startswith("partrain:")]
    if stray and "Traceback" not in stderr:
        problems.append(f"lines on stderr not from partrain: {stray[:2]}")
    if len([ln for ln in lines if NOTICE.match(ln)]) > 1:
        problems.append("more than one stop notice")
    found = final_lines(stderr)
    if len(found) not in (finals if isinstance(finals, tuple) else (finals,)):
        problems.append(f"{len(found)} final partrain: lines, expected {finals}: {found[:3]}")
    return problems


def leftover_problems(coordinators=(), grace=5.0):
    """What a run left behind (empty list: nothing): entries in /dev/shm, and workers of
    the ``coordinators`` (pids) still alive ``grace`` seconds from now."""
    deadline = time.monotonic() + grace
    while True:
        orphans = [p.pid for pid in coordinators for p in worker_processes(pid)]
        if not orphans or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    problems = []
    if orphans:
        problems.append(f"orphan worker processes {orphans}")
    if shm_entries():
        problems.append(f"shared memory left in /dev/shm: {shm_entries()[:3]}")
    return problems


# ----------------------------------------------------------------------------
# Run directories
# ----------------------------------------------------------------------------

# history.csv columns that are timings, different in every run.
TIMING_COLUMNS = {"seconds", "worker_seconds", "overhead_seconds", "eval_seconds"}
# metrics.json entries that are results, the same in every run of the same settings.
RESULT_METRICS = ("steps", "total_steps", "completed", "evaluated_at_step", "train_loss",
                  "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "best_val_acc",
                  "best_step")


def checkpoint_step(run):
    """The step of ``run``'s checkpoint.h5; -1 if there is none (or none whole yet)."""
    import h5py

    try:
        with h5py.File(Path(run) / "checkpoint.h5", "r") as f:
            return int(f.attrs["step"])
    except Exception:   # absent, or replaced while we opened it
        return -1


def temporaries(run):
    """The names of the temporary files in ``run`` (a write under way, or cut short)."""
    return sorted(p.name for p in Path(run).glob(".*.tmp"))


def h5_arrays(path):
    """{dataset name: (dtype, shape, bytes)} for every dataset in the HDF5 file."""
    import h5py

    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = (obj.dtype.str, obj.shape, np.asarray(obj[()]).tobytes())

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def history_rows(path):
    """The rows of a history.csv as dicts of strings, without the timing columns."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS}
                for row in csv.DictReader(f)]


def result_differences(run, reference):
    """How ``run``'s results differ from ``reference``'s (empty list: byte-identical):
    every dataset of model.h5 (best/ included), history.csv without its timing columns,
    and the RESULT_METRICS entries of metrics.json."""
    run, reference = Path(run), Path(reference)
    try:
        a, b = h5_arrays(run / "model.h5"), h5_arrays(reference / "model.h5")
        ha, hb = history_rows(run / "history.csv"), history_rows(reference / "history.csv")
        ma = json.loads((run / "metrics.json").read_text())
        mb = json.loads((reference / "metrics.json").read_text())
    except Exception as exc:
        return [f"outputs unreadable: {type(exc).__name__}: {exc}"]
    problems = []
    if sorted(a) != sorted(b):
        problems.append(f"model.h5 datasets differ: {sorted(a)} vs {sorted(b)}")
    else:
        differ = [k for k in a if a[k] != b[k]]
        if differ:
            problems.append(f"model.h5 datasets not byte-identical: {differ[:4]}")
    if len(ha) != len(hb):
        problems.append(f"history has {len(ha)} rows, the reference {len(hb)}")
    bad = [i for i, (x, y) in enumerate(zip(ha, hb)) if x != y]
    if bad:
        problems.append(f"history rows differ from row {bad[0]}: {ha[bad[0]]} vs {hb[bad[0]]}")
    differ = [k for k in RESULT_METRICS if ma.get(k) != mb.get(k)]
    if differ:
        problems.append(f"metrics differ: {[(k, ma.get(k), mb.get(k)) for k in differ]}")
    return problems
