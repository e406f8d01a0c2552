"""Running a sweep's candidates with joblib, stopping it, and resuming it.

Each candidate is an independent training run in its own directory, run by a
``train_one(candidate, run_dir, resume, workers) -> exit status`` callable (the command
line's runs ``partrain train``, the Python API's runs ``fit``) in a worker of joblib's
loky backend: workers are reused from candidate to candidate, a worker that dies is an
error naming it, and cloudpickle carries models defined in a notebook.

Sharing the cores: separate runs need no coordination, so they scale better than
workers inside one run; a sweep therefore runs ``min(candidates, cores)`` candidates at
once with one worker each, and gives each run ``cores // parallel runs`` workers only
when there are fewer candidates than cores (``jobs`` and ``workers`` override both).
Worker counts never change a run's bits, so the choice is only about speed.

Stopping: Ctrl-C, SIGTERM or SIGHUP reaches every running candidate, which stops at the
end of its step and writes its checkpoint, as a run alone does; candidates not begun are
not begun. Running the same sweep again into the same folder keeps every finished
candidate (its metrics.json is there), resumes the stopped ones from their checkpoints
and starts the rest: nothing is run twice.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import NamedTuple

from .. import log
from ..errors import Interrupted, UsageError
from ..run.rundir import METRICS, RunDir
from .summary import write_summary

PLAN, STATES, STOP_FILE = "sweep.json", "states.json", ".stop-requested"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SweepResult(NamedTuple):
    """out: the sweep folder; rows: one summary row per candidate (see summary.py);
    best: the row chosen on validation, or None; ran / kept: candidates run now /
    finished before; stopped_by: the signal number that stopped it, or None."""

    out: str
    rows: list
    best: dict | None
    ran: int
    kept: int
    stopped_by: int | None


def share_cores(n_candidates, jobs="auto", workers="auto", cores=None):
    """(parallel runs, workers per run) for ``n_candidates`` on ``cores`` cores."""
    from ..machine import physical_cores

    cores = cores or physical_cores()
    for name, value in (("jobs", jobs), ("workers", workers)):
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int)
                                or value < 1):
            raise UsageError(f"`{name}` must be a positive number or 'auto', got {value!r}")
    if jobs == "auto":
        per_run = 1 if workers == "auto" else workers
        jobs = max(1, min(n_candidates, cores // per_run))
    if workers == "auto":
        workers = max(1, cores // jobs) if jobs < cores else 1
    return jobs, workers


def run_sweep(candidates, train_one, out, *, jobs="auto", workers="auto", overwrite=False,
              record=None):
    """Run (or go on with) the sweep of ``candidates`` in the folder ``out``.

    record: what else to keep in sweep.json (the command, the base settings).
    Returns a :class:`SweepResult`; raises :class:`partrain.errors.Interrupted` after
    writing the summary of what finished when the sweep was stopped.
    """
    folder = RunDir(out)
    folder.lock()   # one process per sweep folder, as per run directory
    try:
        _check_plan(Path(out), candidates, overwrite, record)
        return _run(Path(out), candidates, train_one, jobs, workers)
    finally:
        folder.unlock()


def _check_plan(out, candidates, overwrite, record):
    plan = dict(candidates=[dict(name=c.name, settings=[[k, str(v)] for k, v in c.settings],
                                 seed=c.seed) for c in candidates], record=record or {})
    path = out / PLAN
    if path.is_file():
        old = _read_json(path)
        if old is None or old.get("candidates") != plan["candidates"]:
            if not overwrite:
                raise UsageError(f"{out} holds another sweep (its {PLAN} lists other "
                                 "candidates); pass `overwrite=True` to replace it or "
                                 "choose another `out`")
    elif out.is_dir() and any(p.name not in (".partrain-lock",) for p in out.iterdir()) \
            and not overwrite:
        raise UsageError(f"output directory {out} already exists and holds no sweep; pass "
                         "`overwrite=True` to use it anyway or choose another `out`")
    if overwrite:   # every candidate, old or new, starts again
        import shutil

        old = _read_json(path) or {}
        for name in {c["name"] for c in old.get("candidates", []) + plan["candidates"]}:
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (STATES, "summary.csv", "summary.md", "curves.png"):
            (out / name).unlink(missing_ok=True)
    _write_json(path, plan)


def _run(out, candidates, train_one, jobs, workers):
    from joblib import Parallel, delayed

    states = _read_json(out / STATES) or {}
    todo, kept = [], 0
    for c in candidates:
        state = candidate_state(out / c.name, states.get(c.name))
        if state in ("done", "failed"):
            kept += 1
        else:
            todo.append((c, state == "resume"))
    jobs, workers = share_cores(len(todo) or 1, jobs, workers)
    log.info(f"sweep of {len(candidates)} candidates in {out}: {kept} finished before, "
             f"{sum(r for _, r in todo)} to resume, {sum(not r for _, r in todo)} to run"
             + (f"; {jobs} at a time, {workers} worker{'s' * (workers > 1)} each"
                if todo else ""))
    stop_file = out / STOP_FILE
    stop_file.unlink(missing_ok=True)
    stop = _StopRequests(stop_file)
    ran = 0
    try:
        with stop:
            tasks = (delayed(_candidate_job)(train_one, c, str(out / c.name), resume, workers,
                                             str(stop_file), os.getpid()) for c, resume in todo)
            for result in Parallel(n_jobs=jobs, backend="loky",
                                   return_as="generator_unordered")(tasks):
                if result["code"] is None:   # not begun: the sweep was stopping
                    continue
                ran += 1
                states[result["name"]] = {k: result[k] for k in ("code", "seconds", "last_line")}
                _write_json(out / STATES, states)
                _say_outcome(result, candidate_state(out / result["name"], None), ran,
                             len(todo))
                if result["code"] > 128:   # the candidate itself was stopped
                    stop.request(result["code"] - 128)
    except Exception as exc:   # a loky worker died (killed, out of memory...)
        if stop.signum is None:
            raise UsageError(f"sweep in {out}: {type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                             "; run the same sweep again to go on") from None
    finally:
        stop_file.unlink(missing_ok=True)
        rows, best = write_summary(out, candidates, states)
    if stop.signum is not None:
        stopped = Interrupted(stop.signum)
        stopped.hint = (f"; finished candidates and the checkpoints of stopped ones are in "
                        f"{out}: run the same sweep again to go on")
        raise stopped
    return SweepResult(str(out), rows, best, ran, kept, None)


def candidate_state(run_dir, recorded):
    """"done" (metrics.json of a run that ended by itself), "failed" (ended with an
    error in an earlier go), "resume" (a checkpoint of a stopped run), or "new"."""
    metrics = _read_json(run_dir / METRICS)
    if metrics is not None and not metrics.get("stopped_by"):
        return "done"
    if recorded and 0 < recorded.get("code", 0) < 128 and run_dir.is_dir():
        return "failed"
    if (run_dir / "checkpoint.h5").is_file():
        return "resume"
    return "new"


def _candidate_job(train_one, candidate, run_dir, resume, workers, stop_file, parent_pid):
    """Runs in a joblib worker: one candidate, its output captured; never raises."""
    if os.path.exists(stop_file):
        return dict(name=candidate.name, code=None)
    captured = io.StringIO()
    t0 = time.perf_counter()
    try:
        with redirect_stderr(captured), redirect_stdout(io.StringIO()):
            code = train_one(candidate, run_dir, resume, workers)
    except KeyboardInterrupt as exc:
        code = 128 + int(getattr(exc, "signum", signal.SIGINT))
    except BaseException as exc:   # a worker never dies of one candidate's error
        code = 1
        captured.write(f"partrain: error: {type(exc).__name__}: {exc}\n")
    finally:
        if os.getpid() != parent_pid and threading.current_thread() is threading.main_thread():
            # Between candidates a loky worker has nothing to stop: a Ctrl-C meant for
            # the running candidates must not kill it (the sweep would call that a crash).
            for s in STOP_SIGNALS:
                signal.signal(s, signal.SIG_IGN)
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    return dict(name=candidate.name, code=int(code or 0), seconds=time.perf_counter() - t0,
                last_line=lines[-1] if lines else "")


def _say_outcome(result, state, n, total):
    code = result["code"]
    if state == "done":   # a stop that came after its last step changes nothing
        how = "done"
    elif code > 128:
        how = f"stopped by {signal.Signals(code - 128).name}" + (
            ", checkpoint kept" if state == "resume" else " before its first step")
    else:
        how = f"failed: {result['last_line'].removeprefix('partrain: ')}"
    log.info(f"[{n}/{total}] {result['name']}: {how} ({result['seconds']:.1f} s)")


class _StopRequests:
    """While a sweep runs, a stop signal is passed on to the running candidates (which
    stop at the end of their step and checkpoint) and no further candidate begins."""

    def __init__(self, stop_file):
        self.stop_file, self.signum, self.old = stop_file, None, {}

    def request(self, signum):
        if self.signum is None:
            self.signum = signum
            log.info(f"stopping the sweep ({signal.Signals(signum).name}): running "
                     "candidates stop at the end of their step and keep a checkpoint")
        self.stop_file.touch()

    def _handler(self, signum, frame):
        self.request(signum)
        import psutil

        # A terminal's Ctrl-C reaches them already; `kill PID` reaches only us. SIGHUP
        # is passed on as SIGTERM: loky's resource tracker ignores SIGINT and SIGTERM only.
        passed = signal.SIGTERM if signum == signal.SIGHUP else signum
        for child in psutil.Process().children():
            try:
                child.send_signal(passed)
            except psutil.Error:
                pass

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, self._handler) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self.old.items():
            signal.signal(s, handler)


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _write_json(path, value):
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)
