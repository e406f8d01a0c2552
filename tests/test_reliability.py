"""Reliability: what the real command line does when it is stopped, killed, starved or
fed damaged files.

Every test runs ``python -m partrain.cli`` in a subprocess and checks the same contract:

* the exit status (0, 1 runtime error, 2 usage, 128 + signal number on a stop);
* stderr: no traceback, no Python warning, and exactly the expected number of *final*
  ``partrain:`` lines (one for an error or a stop, none for a success, whose summary goes
  to stdout). Lines that are not final are allowed: the run banner
  ("partrain: MODEL (N parameters) on ..."), the one "SIGx received; stopping" notice and
  "worker N sent nothing ...; replacing it";
* nothing in ``/dev/shm/partrain-*`` and no worker process left behind (workers are found
  by their command line, which names the coordinator's pid);
* where a run is resumed: the result is byte-identical to an uninterrupted run of the same
  settings (every dataset of model.h5 including ``best/``, history.csv except the timing
  columns, and the non-timing entries of metrics.json).

The checks themselves are partrain.testing's, shared with scripts/stress/fault_inject.py.
Random signal times come from ``PARTRAIN_FAULT_SEED`` (default fixed), and the chosen
times are in every assertion message.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest

from partrain.testing import (BANNER, CLI, REPLACED, CLIProcess, alive, checkpoint_step,
                              final_lines, h5_arrays, history_rows, leftover_problems,
                              output_problems, result_differences, shm_entries, temporaries,
                              wait_for)

RUN_FILES = ("config.json", "model.pkl", "history.csv", "model.h5", "metrics.json",
             "curves.png", "checkpoint.h5")
SEED = int(os.environ.get("PARTRAIN_FAULT_SEED", "20240501"))

# A tiny Adam run (69 parameters) on two worker processes: ~40 ms steps because every step
# writes a checkpoint, evaluations every 3 steps, a validation split for best/.
SIGNAL_RUN = ["--model", "digits123", "--steps", "30", "--batch-size", "8", "--optimizer",
              "adam", "--lr", "0.05", "--eval-every", "3", "--checkpoint-every", "1",
              "--val-split", "0.1", "--workers", "2"]
# Serial (no worker processes), fast: the base of the damaged-file cases.
SERIAL_RUN = ["--model", "digits123", "--steps", "12", "--batch-size", "8", "--optimizer",
              "momentum", "--lr", "0.5", "--eval-every", "3", "--checkpoint-every", "4",
              "--val-split", "0.1", "--workers", "1", "--seed", "3"]


# ----------------------------------------------------------------------------
# Helpers: assertions over partrain.testing's checks
# ----------------------------------------------------------------------------

def check_clean_exit(rc, stdout, stderr, expected_rc, finals=1, what=""):
    """The exit contract: status, no traceback, no warning, the right final lines.
    Returns the first final line (None if there is none)."""
    context = f"\n{what}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    expected = expected_rc if isinstance(expected_rc, (tuple, list, set)) else (expected_rc,)
    assert rc in expected, f"exit status {rc}, expected {expected_rc}{context}"
    problems = output_problems(stdout, stderr, finals)
    assert not problems, f"{'; '.join(problems)}{context}"
    found = final_lines(stderr)
    return found[0] if found else None


def assert_no_leftovers(*coordinator_pids, wait=5.0):
    """No /dev/shm/partrain-* and, within ``wait`` s, no worker of these coordinators."""
    problems = leftover_problems(coordinator_pids, grace=wait)
    assert not problems, "; ".join(problems)


def assert_same_results(run, reference, what=""):
    """model.h5 (all datasets, best/ included), history.csv (no timing columns) and the
    result entries of metrics.json are identical to the reference run's."""
    problems = result_differences(run, reference)
    assert not problems, f"{'; '.join(problems)} {what}"


def assert_run_files_load(run):
    """Every output of a run exists whole: JSON parses, HDF5 opens, PNG has its magic,
    and partrain.load_run rebuilds the model."""
    import partrain

    run = Path(run)
    for name in RUN_FILES:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, f"{name} missing"
    json.loads((run / "config.json").read_text())
    json.loads((run / "metrics.json").read_text())
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h5_arrays(run / "model.h5")
    h5_arrays(run / "checkpoint.h5")
    model, history = partrain.load_run(run)
    assert np.isfinite(model.flat).all() and len(history) > 0
    assert not temporaries(run), f"temporary files left: {temporaries(run)}"


def run_cli(args, cwd, timeout=120):
    t0 = time.monotonic()
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


@pytest.fixture
def started():
    """Start CLI processes; any still running (and workers we stopped) are killed after."""
    procs, stopped = [], []

    def start(args, cwd, new_session=False):
        s = CLIProcess(args, cwd, new_session)
        procs.append(s)
        return s

    start.stopped = stopped   # psutil.Process objects of workers a test SIGSTOPped
    yield start
    for p in stopped:
        with contextlib.suppress(psutil.Error):
            p.kill()   # psutil checks the creation time: never a recycled pid
    for s in procs:
        s.kill()


_REFERENCES = {}


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """reference(args) -> (run dir, seconds from the run's config.json to its exit) of an
    uninterrupted run with these settings, computed once per session."""

    def get(args):
        key = tuple(args)
        if key not in _REFERENCES:
            cwd = tmp_path_factory.mktemp("reference")
            s = CLIProcess(["train", *args, "--out", "ref"], cwd)
            assert wait_for(lambda: (cwd / "ref" / "config.json").exists(), 60, 0.005, s.proc)
            t_config = time.monotonic()
            rc, out, err = s.wait()
            check_clean_exit(rc, out, err, 0, finals=0, what="reference run")
            _REFERENCES[key] = (cwd / "ref", time.monotonic() - t_config)
        return _REFERENCES[key]

    return get


def resume_and_compare(run, ref_dir, cwd, what):
    """--resume the run; it must finish (exit 0), clean, byte-identical to the reference."""
    rc, out, err, _ = run_cli(["train", "--resume", run], cwd)
    check_clean_exit(rc, out, err, 0, finals=0, what=f"resume after {what}")
    assert not temporaries(run), f"temporary files left after resume: {temporaries(run)}"
    assert_same_results(run, ref_dir, what)


# ----------------------------------------------------------------------------
# 1. A stop request inside a step (gradient, optimizer update, evaluation, checkpoint)
#    is deferred to the step boundary; the checkpoint resumes to the same bits.
# ----------------------------------------------------------------------------

@pytest.mark.slow
def test_signals_at_random_moments_are_deferred_and_resume_is_byte_identical(
        tmp_path, started, reference):
    ref_dir, duration = reference(SIGNAL_RUN)
    rng = random.Random(SEED)
    for i, signum in enumerate((signal.SIGINT, signal.SIGTERM)):
        run = tmp_path / f"run{i}"
        s = started(["train", *SIGNAL_RUN, "--out", run], tmp_path)
        # config.json is written inside the deferred block: the handlers are installed.
        assert wait_for(lambda: (run / "config.json").exists(), 60, 0.002, s.proc)
        delay = rng.uniform(0.0, duration)
        time.sleep(delay)
        what = f"{signum.name} {delay:.3f} s after config.json (seed {SEED})"
        s.signal(signum)
        rc, out, err = s.wait()
        assert_no_leftovers(s.pid)
        if rc in (0, -signum):
            # Only acceptable when the signal came after the run was over: all outputs
            # written (the handlers are restored once the run returns; a SIGTERM then
            # ends the process by its default action, which a shell also reports as 143).
            assert delay > duration / 2, f"exit status {rc} for a signal mid-run: {what}"
            check_clean_exit(rc, out, err, rc, finals=0, what=what)
            assert_same_results(run, ref_dir, what)
            continue
        line = check_clean_exit(rc, out, err, 128 + signum, what=what)
        assert line.startswith(f"partrain: stopped by {signum.name}"), line
        if (run / "checkpoint.h5").exists():
            assert "--resume" in line
            resume_and_compare(run, ref_dir, tmp_path, what)
        else:   # stopped before the first step ended: nothing to continue from
            assert not history_rows(run / "history.csv"), what


# ----------------------------------------------------------------------------
# 2. Stop requests are never dropped, and a stop never leaves half-written outputs.
# ----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("moment", ["checkpoint-write", "final-outputs"])
def test_stop_during_writes_exits_128_plus_signal_with_usable_outputs(
        moment, tmp_path, started, reference):
    """checkpoint-write: SIGHUP (must act like SIGTERM: 129) the moment a checkpoint's
    temporary file appears mid-run. final-outputs: SIGINT the moment the finished run
    starts writing history.csv, then a second SIGINT 0.1 s later; neither may cut the
    outputs short. Both: every run file loads, and --resume ends byte-identical."""
    ref_dir, _ = reference(SIGNAL_RUN)
    run = tmp_path / "run"
    s = started(["train", *SIGNAL_RUN, "--out", run], tmp_path)
    if moment == "checkpoint-write":
        signals = [signal.SIGHUP]
        assert wait_for(lambda: checkpoint_step(run) >= 5, 60, 0.005, s.proc)
        hit = wait_for(lambda: any(n.startswith(".checkpoint.h5.") for n in temporaries(run)),
                       30, 0.0002, s.proc)
    else:
        signals = [signal.SIGINT, signal.SIGINT]
        hit = wait_for(lambda: (run / "history.csv").exists(), 60, 0.0002, s.proc)
    assert hit, f"never saw the {moment}"
    s.signal(signals[0])
    if len(signals) > 1:
        time.sleep(0.1)
        assert s.signal(signals[1]), "the run ended within 0.1 s of the first signal"
    rc, out, err = s.wait()
    assert_no_leftovers(s.pid)
    line = check_clean_exit(rc, out, err, 128 + signals[0], what=moment)
    assert line.startswith(f"partrain: stopped by {signals[0].name}") and "--resume" in line
    assert_run_files_load(run)
    if moment == "final-outputs":   # the stop came after the last step: nothing lost
        assert checkpoint_step(run) == len(history_rows(ref_dir / "history.csv"))
    resume_and_compare(run, ref_dir, tmp_path, moment)


# Start-up got faster (workers and the CLI import less): a stop 0.25 s in could find the
# run already started, so every delay lies within the first 0.2 s.
@pytest.mark.parametrize("signum,delay", [(signal.SIGINT, 0.1), (signal.SIGTERM, 0.12),
                                          (signal.SIGHUP, 0.15), (signal.SIGINT, 0.2)],
                         ids=["SIGINT-0.1s", "SIGTERM-0.12s", "SIGHUP-0.15s", "SIGINT-0.2s"])
def test_stop_during_startup_exits_128_plus_signal_quietly(signum, delay, tmp_path, started):
    """Before the run starts (imports, data, model) a stop has nothing to save: exit
    128 + signal with no traceback and at most the one "stopped by" line. (Before a
    concurrent fix, a Ctrl-C while partrain was being imported printed a KeyboardInterrupt
    traceback and exited -2, and a SIGTERM or SIGHUP before the run ended the process by
    its default action, -15/-1, with no line.)"""
    run = tmp_path / "r"
    s = started(["train", "--model", "digits123", "--workers", "1", "--out", run], tmp_path)
    time.sleep(delay)
    # Should the run have started already (a fast machine), the same promise holds for
    # a stop at its first steps: exit 128 + signal, no traceback, one final line.
    s.signal(signum)
    rc, out, err = s.wait()
    what = f"{signum.name} {delay} s after start"
    check_clean_exit(rc, out, err, 128 + signum, finals=(0, 1), what=what)
    for line in final_lines(err):
        assert line.startswith(f"partrain: stopped by {signum.name}"), line


# ----------------------------------------------------------------------------
# 3. A hung worker is detected (HANG_FLOOR, 10 s), killed and replaced; same bits.
# ----------------------------------------------------------------------------

@pytest.mark.slow
def test_stopped_worker_is_replaced_and_run_ends_byte_identical(tmp_path, started, reference):
    ref_dir, _ = reference(SIGNAL_RUN)
    run = tmp_path / "run"
    s = started(["train", *SIGNAL_RUN, "--out", run], tmp_path)
    # Steps of a few ms: after step 10 every message kind (gradient, reduce, evaluate) has
    # been timed, so the limit is max(HANG_FLOOR, 20 x a few ms) = 10 s, not HANG_FIRST;
    # 20 steps remain, and the next message to the stopped worker hangs.
    assert wait_for(lambda: checkpoint_step(run) >= 10, 60, 0.005, s.proc)
    workers = s.workers()
    assert len(workers) == 2, workers
    victim = workers[random.Random(SEED).randrange(2)]
    victim.suspend()   # SIGSTOP
    started.stopped.append(victim)
    t_stop = time.monotonic()
    rc, out, err = s.wait(timeout=90)
    elapsed = time.monotonic() - t_stop
    check_clean_exit(rc, out, err, 0, finals=0, what="SIGSTOP of a worker")
    assert elapsed < 60, f"the run took {elapsed:.0f} s after the worker was stopped"
    assert any(REPLACED.match(ln) for ln in err.splitlines()), err
    assert not victim.is_running() or victim.status() == psutil.STATUS_ZOMBIE
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["worker_replacements"] >= 1
    assert_no_leftovers(s.pid)
    assert_same_results(run, ref_dir, "worker stopped and replaced")


# ----------------------------------------------------------------------------
# 4. SIGKILL of the whole process group: nothing left behind; workers die with it.
# ----------------------------------------------------------------------------

def test_sigkill_of_process_group_leaves_no_shared_memory_or_workers(tmp_path, started):
    run = tmp_path / "run"
    s = started(["train", *SIGNAL_RUN, "--out", run], tmp_path, new_session=True)
    assert wait_for(lambda: checkpoint_step(run) >= 2, 60, 0.005, s.proc), "no checkpoint"
    workers = s.workers()
    assert len(workers) == 2, f"workers of {s.pid}: {workers}"
    os.killpg(s.pid, signal.SIGKILL)
    rc, out, err = s.wait()
    assert rc == -signal.SIGKILL, f"exit status {rc}\n{err}"
    # Workers sit in their own session (a terminal's Ctrl-C reaches only the coordinator):
    # the group kill misses them, PR_SET_PDEATHSIG must end them.
    assert_no_leftovers(s.pid, wait=5.0)
    # PDEATHSIG's SIGKILL is asynchronous: a loaded machine may take a moment to end them.
    assert wait_for(lambda: not alive(workers), 5.0), f"alive: {alive(workers)}"


# ----------------------------------------------------------------------------
# 5. Shared memory that cannot be had is one error, not a SIGBUS later.
# ----------------------------------------------------------------------------

# A child process that asks for a 4 TiB shared array: it prints the one-line
# PartrainError and exits 0, or exits 3 when no error came.
ASK_FOR_4_TIB = ("import sys\n"
                 "from partrain.engine.shared_memory import SharedArray\n"
                 "from partrain.errors import PartrainError\n"
                 "try:\n"
                 "    SharedArray((2**40,), 'float32', 'test')\n"
                 "except PartrainError as exc:\n"
                 "    print('PartrainError:', exc)\n"
                 "    sys.exit(0)\n"
                 "print('no error')\n"
                 "sys.exit(3)\n")


def test_huge_shared_array_raises_partrain_error(tmp_path):
    # NOT run unguarded: an anonymous memfd lives on the kernel's internal tmpfs mount,
    # which has no size limit, so posix_fallocate(4 TiB) would allocate page after page
    # until the machine runs out of memory (OOM killer) before it fails. RLIMIT_FSIZE makes
    # the same request fail at once (EFBIG), which exercises SharedArray's error path.
    code = ("import resource, signal\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 30, 1 << 30))\n" + ASK_FOR_4_TIB)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("PartrainError:") and "shared memory" in proc.stdout, \
        proc.stdout
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not shm_entries()


def test_shared_array_larger_than_memory_is_refused_before_allocating(tmp_path):
    # Bounded: the child is SIGKILLed as soon as its memfd holds 64 MiB, or the machine's
    # available memory fell by 512 MiB, or after 20 s, whichever comes first.
    available = psutil.virtual_memory().available
    proc = subprocess.Popen([sys.executable, "-c", ASK_FOR_4_TIB], stdout=subprocess.PIPE,
                            text=True, cwd=tmp_path)
    held, t0 = 0, time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - t0 < 20:
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{proc.pid}/fd"):
                    path = f"/proc/{proc.pid}/fd/{fd}"
                    if "memfd:partrain-test" in os.readlink(path):
                        held = max(held, os.stat(path).st_blocks * 512)
            if held > 64 * 2**20 or available - psutil.virtual_memory().available > 2**29:
                break
            time.sleep(0.0005)
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate(timeout=30)[0]
    assert held <= 64 * 2**20, f"the 4 TiB request was being allocated ({held / 2**20:.0f} MiB held)"
    assert out.startswith("PartrainError: test needs") and "shared memory" in out, out


# ----------------------------------------------------------------------------
# 6-10. One-line refusals, run through the CLI concurrently (each is ~1 s of imports).
# ----------------------------------------------------------------------------

def _corrupt_h5(name, edit):
    def apply(run):
        with h5py.File(run / name, "r+") as f:
            edit(f)
    return apply


def _replace(key, value):
    def edit(f):
        del f[key]
        f[key] = value
    return edit


def _set_attr(key, value):
    def edit(f):
        f.attrs[key] = value
    return edit


def _map_json_attr(key, fn):
    def edit(f):
        f.attrs[key] = json.dumps(fn(json.loads(f.attrs[key])))
    return edit


def _delete(key):
    def edit(f):
        del f[key]
    return edit


def _config(mutate):
    def apply(run):
        record = json.loads((run / "config.json").read_text())
        mutate(record)
        (run / "config.json").write_text(json.dumps(record))
    return apply


def _replace_with_dir(name):
    def apply(run):
        (run / name).unlink()
        (run / name).mkdir()
    return apply


def _truncate(name, size):
    def apply(run):
        with open(run / name, "r+b") as f:
            f.truncate(size)
    return apply


P = 69   # digits123's parameter count
RESUME = ["train", "--resume", "{run}", "--steps", "16"]
EVAL = ["eval", "--run", "{run}", "--workers", "1"]

# id: (damage to a copy of the finished SERIAL_RUN directory, command, exit status,
#      text the one line must hold, xfail reason or None)
DAMAGED = {
    # corrupt checkpoints
    "ckpt-params-shape-1": (_corrupt_h5("checkpoint.h5", _replace("params", np.zeros(1, np.float32))),
                            RESUME, 1, "params has shape (1,)", None),
    "ckpt-params-float64": (_corrupt_h5("checkpoint.h5", _replace("params", np.zeros(P))),
                            RESUME, 1, "params is float64, expected float32", None),
    "ckpt-params-nan": (_corrupt_h5("checkpoint.h5", _replace("params", np.full(P, np.nan, np.float32))),
                        RESUME, 1, "NaN", None),
    "ckpt-velocity-wrong-shape": (_corrupt_h5("checkpoint.h5", _replace("optimizer/velocity", np.zeros(5, np.float32))),
                                  RESUME, 1, "optimizer/velocity has shape (5,)", None),
    "ckpt-velocity-missing": (_corrupt_h5("checkpoint.h5", _delete("optimizer/velocity")),
                              RESUME, 1, "velocity", None),
    "ckpt-optimizer-group-missing": (_corrupt_h5("checkpoint.h5", _delete("optimizer")),
                                     RESUME, 1, "optimizer", None),
    "ckpt-history-not-json": (_corrupt_h5("checkpoint.h5", _set_attr("history", "not json [")),
                              RESUME, 1, "'history' is not valid JSON", None),
    "ckpt-history-loss-string": (_corrupt_h5("checkpoint.h5", _map_json_attr(
        "history", lambda rows: [dict(r, loss="abc") for r in rows])), RESUME, 1, "history", None),
    "ckpt-history-row-without-seconds": (_corrupt_h5("checkpoint.h5", _map_json_attr(
        "history", lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows])),
        RESUME, 1, "history", None),
    "ckpt-best-value-string": (_corrupt_h5("checkpoint.h5", _set_attr(
        "best", json.dumps({"metric": "val_acc", "value": "x", "step": 3}))), RESUME, 1, "best", None),
    "ckpt-truncated": (_truncate("checkpoint.h5", 1000), RESUME, 1, "unreadable", None),
    "ckpt-is-a-directory": (_replace_with_dir("checkpoint.h5"), RESUME, 2, "no checkpoint", None),
    # corrupt config.json
    "config-not-json-resume": (lambda run: (run / "config.json").write_text("{nope"),
                               RESUME, 1, "config.json is corrupt", None),
    "config-not-json-eval": (lambda run: (run / "config.json").write_text("{nope"),
                             EVAL, 1, "config.json is corrupt", None),
    "config-settings-a-list": (_config(lambda c: c.__setitem__("settings", [1])),
                               RESUME, 1, "config.json is corrupt", None),
    "config-batch-size-string": (_config(lambda c: c["settings"].__setitem__("batch_size", "x")),
                                 RESUME, 1, "config.json is corrupt", None),
    "config-optimizer-unknown": (_config(lambda c: c["optimizer"].__setitem__("name", "foo")),
                                 RESUME, 1, "config.json is corrupt", None),
    "config-steps-string": (_config(lambda c: c["settings"].__setitem__("steps", "12")),
                            RESUME, (1, 2), "steps", None),
    "config-seed-string-eval": (_config(lambda c: c["spec"].__setitem__("seed", "x")),
                                EVAL, 1, "config.json", None),
    "config-data-dir-int-eval": (_config(lambda c: c["spec"].__setitem__("data_dir", 7)),
                                 EVAL, 1, "config.json", None),
    # damaged model.h5 for eval
    "model-h5-nan-eval": (_corrupt_h5("model.h5", _replace("c1.W", np.full((3, 1, 3, 3), np.nan, np.float32))),
                          EVAL, 1, "NaN", None),
    "model-h5-best-inf-eval": (_corrupt_h5("model.h5", _replace("best/f2.b", np.full(3, np.inf, np.float32))),
                               EVAL + ["--best"], 1, "NaN or infinite", None),
    "model-h5-truncated-eval": (_truncate("model.h5", 500), EVAL, 1, "unreadable", None),
    "model-h5-is-a-directory-eval": (_replace_with_dir("model.h5"), EVAL, 2, "no model.h5", None),
}

# id: (command, exit status, text the one line must hold, xfail reason or None); {run} is a
# copy of the finished SERIAL_RUN (seed 3), {tmp} a scratch folder.
REFUSED = {
    **{f"resume-conflicting{flag}": (["train", "--resume", "{run}", flag, value], 2, flag, None)
       for flag, value in [("--lr", "0.1"), ("--seed", "1"), ("--model", "lenet5"),
                           ("--batch-size", "4"), ("--overwrite", None)]},
    "resume-conflicting--seed-0": (["train", "--resume", "{run}", "--seed", "0", "--steps", "16"],
                                   2, "--seed", None),
    "resume-shorter-steps": (["train", "--resume", "{run}", "--steps", "5"], 2,
                             "cannot shorten", None),
    "data-string-pixels": (["train", "--model", "digits123", "--data", "{tmp}/str.npz",
                            "--workers", "1", "--out", "{tmp}/o1"], (1, 2), "pixels", None),
    "data-fractional-labels": (["train", "--model", "digits123", "--data", "{tmp}/frac.npz",
                                "--workers", "1", "--out", "{tmp}/o2"], (1, 2), "whole", None),
    "data-nan-labels": (["train", "--model", "digits123", "--data", "{tmp}/nan.npz",
                         "--workers", "1", "--out", "{tmp}/o3"], (1, 2), "finite", None),
    "seed-negative": (["train", "--model", "digits123", "--seed", "-1", "--out", "{tmp}/o4"],
                      2, "--seed", None),
    "diverging-run": (["train", "--model", "lenet5", "--dataset", "digits32", "--epochs", "1",
                       "--lr", "1e6", "--batch-size", "64", "--workers", "1",
                       "--out", "{tmp}/o5"], 1, "diverged", None),
    "workers-100000": (["train", "--model", "digits123", "--workers", "100000",
                        "--out", "{tmp}/o6"], 2, "--workers 100000", None),
}


def _fill(args, **where):
    return [str(a).format(**where) for a in args if a is not None]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished SERIAL_RUN (momentum, seed 3, val split, checkpoint at step 12)."""
    cwd = tmp_path_factory.mktemp("base")
    rc, out, err, _ = run_cli(["train", *SERIAL_RUN, "--out", cwd / "base"], cwd)
    check_clean_exit(rc, out, err, 0, finals=0, what="base run")
    return cwd / "base"


@pytest.fixture(scope="module")
def one_line_outcomes(base_run, tmp_path_factory):
    """Run every DAMAGED and REFUSED case at once (4 at a time): {id: (rc, out, err, dir)}."""
    root = tmp_path_factory.mktemp("one-line")
    rng = np.random.default_rng(0)
    X = rng.random((40, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    np.savez(root / "str.npz", X=X.astype(str), y=y)
    np.savez(root / "frac.npz", X=X, y=y + 0.7)
    np.savez(root / "nan.npz", X=X, y=np.where(np.arange(40) == 3, np.nan, y))
    jobs = {}
    for case, (damage, command, *_rest) in DAMAGED.items():
        run = root / case
        shutil.copytree(base_run, run)
        damage(run)
        jobs[case] = (_fill(command, run=run, tmp=root), run)
    for case, (command, *_rest) in REFUSED.items():
        run = root / case
        shutil.copytree(base_run, run)
        jobs[case] = (_fill(command, run=run, tmp=root), run)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = {case: pool.submit(run_cli, args, root) for case, (args, _) in jobs.items()}
        return {case: (*f.result()[:3], jobs[case][1]) for case, f in futures.items()}


def _cases(table):
    return [pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=spec[-1]))
            if spec[-1] else case for case, spec in table.items()]


def assert_refused_with_one_line(case, outcome, expected_rc, text):
    """The case's command exited ``expected_rc``, cleanly, its one line holding ``text``,
    leaving nothing behind. Returns the case's run directory."""
    rc, out, err, run = outcome
    line = check_clean_exit(rc, out, err, expected_rc, what=case)
    assert text in line, line
    assert_no_leftovers()
    return run


@pytest.mark.parametrize("case", _cases(DAMAGED))
def test_damaged_file_is_refused_with_one_line(case, one_line_outcomes, base_run):
    """7. Corrupt checkpoints, config.json and model.h5: one line, exit 1 (2 where the
    file is missing); the damaged file is left as it was for the user to inspect."""
    _, command, expected_rc, text, _ = DAMAGED[case]
    run = assert_refused_with_one_line(case, one_line_outcomes[case], expected_rc, text)
    if command is RESUME:   # a refused resume changes nothing in the run directory
        assert h5_arrays(run / "model.h5") == h5_arrays(base_run / "model.h5")


@pytest.mark.parametrize("case", _cases(REFUSED))
def test_bad_request_is_refused_with_one_line(case, one_line_outcomes, base_run):
    """6, 8, 9, 10: conflicting or shortening --resume flags, malformed --data, a negative
    seed, a diverging run, an absurd worker count."""
    _, expected_rc, text, _ = REFUSED[case]
    run = assert_refused_with_one_line(case, one_line_outcomes[case], expected_rc, text)
    if case.startswith("resume-"):   # a refused resume changes nothing in the run directory
        assert h5_arrays(run / "checkpoint.h5") == h5_arrays(base_run / "checkpoint.h5")
        assert history_rows(run / "history.csv") == history_rows(base_run / "history.csv")
    if case == "workers-100000":   # refused before any run directory or worker exists
        assert not (run.parent / "o6").exists()


# ----------------------------------------------------------------------------
# 6. Runs do not mix.
# ----------------------------------------------------------------------------

def test_overwrite_removes_the_previous_runs_files(tmp_path, base_run):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    (run / ".checkpoint.h5.stale.tmp").write_bytes(b"junk")
    args = ["train", "--model", "digits123", "--steps", "2", "--workers", "1", "--out", run]
    rc, out, err, _ = run_cli(args, tmp_path)
    line = check_clean_exit(rc, out, err, 2, what="existing --out without --overwrite")
    assert "--overwrite" in line
    rc, out, err, _ = run_cli(args + ["--overwrite"], tmp_path)
    check_clean_exit(rc, out, err, 0, finals=0, what="--overwrite")
    assert not (run / "checkpoint.h5").exists(), "the old run's checkpoint survived --overwrite"
    assert not temporaries(run)
    assert json.loads((run / "metrics.json").read_text())["steps"] == 2
    with h5py.File(run / "model.h5") as f:
        assert "best" not in f and int(f.attrs["step"]) == 2   # no val split in the new run
    assert len(history_rows(run / "history.csv")) == 2
    rc, out, err, _ = run_cli(["train", "--resume", run], tmp_path)
    line = check_clean_exit(rc, out, err, 2, what="resume of the overwritten run")
    assert "no checkpoint" in line


def test_checkpoint_from_another_configuration_is_refused(tmp_path, base_run):
    other = tmp_path / "other"
    args = [*SERIAL_RUN, "--out", other]
    args[args.index("--seed") + 1] = "4"
    rc, out, err, _ = run_cli(["train", *args, "--steps", "4"], tmp_path)
    check_clean_exit(rc, out, err, 0, finals=0, what="seed-4 run")
    before = h5_arrays(other / "model.h5")
    shutil.copy(base_run / "checkpoint.h5", other / "checkpoint.h5")   # seed 3's
    rc, out, err, _ = run_cli(["train", "--resume", other, "--steps", "16"], tmp_path)
    line = check_clean_exit(rc, out, err, 2, what="foreign checkpoint")
    assert "belongs to a run with different settings" in line, line
    assert h5_arrays(other / "model.h5") == before


def test_steps_flag_is_not_ignored_for_an_epochs_preset(tmp_path, started):
    """A flag the user gave is never silently dropped: lenet5's preset names epochs (20),
    yet --steps 2 must mean 2 steps (it once meant 1620)."""
    s = started(["train", "--model", "lenet5", "--dataset", "digits32", "--steps", "2",
                 "--workers", "1", "--out", tmp_path / "run"], tmp_path)
    banner = []

    def read_banner():
        text = s.err_path.read_text() if s.err_path.exists() else ""
        banner[:] = [ln for ln in text.splitlines() if BANNER.match(ln)]
        return bool(banner)

    assert wait_for(read_banner, 60, 0.01, s.proc)
    s.kill()   # the banner is all this test needs
    assert " 2 steps of batch" in banner[0], banner[0]


# ----------------------------------------------------------------------------
# 10. SIGKILL during a checkpoint write: the temporary is removed by the resume.
# ----------------------------------------------------------------------------

def test_sigkill_during_checkpoint_write_leaves_no_tmp_after_resume(tmp_path, started, reference):
    ref_dir, _ = reference(SIGNAL_RUN)
    run = tmp_path / "run"
    s = started(["train", *SIGNAL_RUN, "--out", run], tmp_path, new_session=True)
    assert wait_for(lambda: checkpoint_step(run) >= 3, 60, 0.005, s.proc)
    hit = wait_for(lambda: any(n.startswith(".checkpoint.h5.") for n in temporaries(run)),
                   30, 0.0002, s.proc)
    assert hit, "never saw a checkpoint being written"
    os.killpg(s.pid, signal.SIGKILL)
    assert s.wait()[0] == -signal.SIGKILL
    assert_no_leftovers(s.pid)
    if not temporaries(run):   # the rename won the race: leave a temporary as a kill would
        (run / ".checkpoint.h5.x1y2z3.tmp").write_bytes(b"\x89HDF half")
    assert checkpoint_step(run) >= 3   # the previous checkpoint is whole
    resume_and_compare(run, ref_dir, tmp_path, "SIGKILL during a checkpoint write")
