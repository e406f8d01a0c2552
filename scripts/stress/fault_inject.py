#!/usr/bin/env python
"""Fault injection against the real ``partrain train`` command line.

Each trial starts one training run and injects one fault, chosen at random:

  sigint, sigterm, sighup  the signal at a moment uniform over the reference run's
                           duration (start to exit: imports, worker start, steps with
                           their updates, evaluations and checkpoint writes, final
                           outputs), re-anchored at the start of that phase in the trial
                           itself, since a shared machine makes runs faster or slower;
  double                   a stop signal at a random time, a second one 0.1 s later;
  kill_worker              SIGKILL of one worker process at a random time;
  kill_replacement         the same, then SIGKILL of its replacement as soon as it
                           appears (dying while it starts is one more failure of the
                           step: the run goes on, with the same bits);
  stop_worker              SIGSTOP of one worker after step 10 (so every message kind
                           has been timed and the hang limit is HANG_FLOOR, 10 s);
  killpg                   SIGKILL of the coordinator's whole process group (a
                           moment drawn like the signals').

After each trial it checks: the exit status is one the fault allows; stderr has no
traceback, no Python warning and at most the expected partrain lines; nothing is in
/dev/shm/partrain-*; no worker of the trial's coordinator outlives it (5 s grace); and,
when the run was stopped with a checkpoint, that ``--resume`` completes and ends
byte-identical to a reference run computed once at the start (every dataset of model.h5
including best/, history.csv without the timing columns, metrics' result entries).
A run stopped before its first checkpoint is restarted with --overwrite instead, which
must also end identical.

partrain/ is copied once at the start and every run (and its workers) imports the copy
(PYTHONPATH): others edit the working tree concurrently, and a trial running other code
than the reference would differ for that reason alone.

Outputs: OUT/summary.json (counts per fault kind, every trial, failure reasons) and
OUT/summary.md (a table and the exact command).

    python scripts/stress/fault_inject.py --trials 36 --seed 1 --out results/faults
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from partrain.testing import (REPLACED, CLIProcess, alive, checkpoint_step, final_lines,
                              history_rows, leftover_problems, output_problems,
                              result_differences, shm_entries, temporaries, wait_for)

# 60 steps of batch 16, an evaluation every 7 steps, a checkpoint every 5 (a few seconds).
DEFAULT_CONFIG = ("--model lenet5 --dataset digits32 --steps 60 --batch-size 16 --optimizer adam "
                  "--lr 0.001 --eval-every 7 --checkpoint-every 5 --val-split 0.1 --workers 2")
KINDS = {"sigint": 2, "sigterm": 2, "sighup": 1, "double": 2, "kill_worker": 2,
         "kill_replacement": 1,
         "stop_worker": 1, "killpg": 2}
STOP_SIGNALS = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sighup": signal.SIGHUP}
RUN_TIMEOUT = 180
CODE = {"env": None}   # the environment of every CLI run: PYTHONPATH at the frozen copy


def start(args, cwd):
    """A CLI run of the frozen code in its own session (so killpg reaches it and only it)."""
    return CLIProcess(args, cwd, new_session=True, env=CODE["env"])


def run_to_end(args, cwd):
    p = start(args, cwd)
    rc, out, err = p.wait(RUN_TIMEOUT)
    return p, rc, out, err


# ----------------------------------------------------------------------------
# Trials
# ----------------------------------------------------------------------------

def reference_run(config, work):
    """The uninterrupted run, timed: when config.json appears (the stop handlers are
    installed), when the workers are up and down, when step 10 is checkpointed, exit."""
    cwd = work / "reference"
    cwd.mkdir()
    p = start(["train", *config, "--out", "ref"], cwd)
    t = {}
    while p.alive():
        now = time.monotonic() - p.t0
        if "config_seconds" not in t and (cwd / "ref" / "config.json").exists():
            t["config_seconds"] = now
        if len(p.workers()) == 2:
            t.setdefault("workers_up_seconds", now)
            t["workers_down_seconds"] = now
        if "step10_seconds" not in t and checkpoint_step(cwd / "ref") >= 10:
            t["step10_seconds"] = now
        time.sleep(0.01)
    rc, out, err = p.wait(RUN_TIMEOUT)
    t["total_seconds"] = time.monotonic() - p.t0
    metrics = json.loads((cwd / "ref" / "metrics.json").read_text())
    t["total_steps"] = metrics["total_steps"]
    cfg = json.loads((cwd / "ref" / "config.json").read_text())
    t["checkpoint_every"] = cfg["settings"]["checkpoint_every"] or 5
    problems = output_problems(out, err, 0) + leftover_problems([p.pid])
    missing = {"config_seconds", "workers_up_seconds", "step10_seconds"} - set(t)
    if rc != 0 or problems or missing:
        sys.exit(f"fault_inject: the reference run failed (exit {rc}): {problems} "
                 f"{sorted(missing)}\n{err}")
    return cwd / "ref", {k: round(v, 3) if isinstance(v, float) else v for k, v in t.items()}


def continue_and_compare(run, ref, cwd, trial):
    """After a stop: --resume (checkpoint) or --overwrite restart (none); must match ref."""
    if (run / "checkpoint.h5").is_file():
        trial["recovery"] = "resume"
        p, rc, out, err = run_to_end(["train", "--resume", run], cwd)
    else:
        trial["recovery"] = "overwrite-restart"
        config = trial["config"]
        p, rc, out, err = run_to_end(["train", *config, "--out", run, "--overwrite"], cwd)
    reasons = []
    if rc != 0:
        reasons.append(f"{trial['recovery']} exited {rc}: {(final_lines(err) or [''])[-1]}")
    reasons += [f"{trial['recovery']}: {r}" for r in output_problems(out, err, 0)]
    reasons += [f"{trial['recovery']}: {r}" for r in leftover_problems([p.pid])]
    if temporaries(run):
        reasons.append(f"temporaries left after {trial['recovery']}: {temporaries(run)}")
    if rc == 0:
        reasons += [f"after {trial['recovery']}: {r}" for r in result_differences(run, ref)]
    return reasons


PHASES = ("startup", "worker-start", "steps", "final-outputs")


def draw_moment(rng, timing):
    """A moment uniform over the reference run's duration, as (phase, seconds into it).

    The machine is shared, so a trial runs faster or slower than the reference: the
    moment is re-anchored at the start of its phase in the trial itself (startup: the
    process start; worker-start: config.json written; steps: both workers up;
    final-outputs: the workers gone)."""
    bounds = [0.0, timing["config_seconds"], timing["workers_up_seconds"],
              timing["workers_down_seconds"], timing["total_seconds"]]
    u = rng.uniform(0.0, bounds[-1])
    i = max(i for i in range(4) if bounds[i] <= u)
    return PHASES[i], u - bounds[i]


def wait_for_moment(p, run, phase, offset):
    """Sleep until ``offset`` seconds into ``phase`` of this trial's run."""
    if phase == "worker-start":
        wait_for(lambda: (run / "config.json").exists(), RUN_TIMEOUT, 0.002, p.proc)
    elif phase == "steps":
        wait_for(lambda: len(p.workers()) == 2, RUN_TIMEOUT, 0.005, p.proc)
    elif phase == "final-outputs":
        wait_for(lambda: len(p.workers()) == 2, RUN_TIMEOUT, 0.005, p.proc)
        wait_for(lambda: not p.workers(), RUN_TIMEOUT, 0.005, p.proc)
    time.sleep(offset)
    return round(time.monotonic() - p.t0, 3)


def signal_trial(kind, rng, config, ref, timing, cwd, trial):
    run = cwd / "run"
    first = STOP_SIGNALS[kind] if kind in STOP_SIGNALS else rng.choice(list(STOP_SIGNALS.values()))
    second = rng.choice(list(STOP_SIGNALS.values())) if kind == "double" else None
    phase, offset = draw_moment(rng, timing)
    p = start(["train", *config, "--out", run], cwd)
    at = wait_for_moment(p, run, phase, offset)
    trial.update(signal=first.name, second=second.name if second else None, phase=phase,
                 offset=round(offset, 3), at=at)
    started_run = (run / "config.json").exists()   # the deferred handlers are installed
    delivered = p.signal(first)
    if second is not None and delivered:
        time.sleep(0.1)
        trial["second_delivered"] = p.signal(second)
    rc, out, err = p.wait(RUN_TIMEOUT)
    trial.update(rc=rc, delivered=delivered)
    reasons = leftover_problems([p.pid]) + state_after_stop(run, trial)
    complete = (run / "metrics.json").is_file() and not result_differences(run, ref)
    last = ([ln for ln in err.splitlines() if ln.strip()] or [""])[-1]
    if rc == 128 + first:
        trial["outcome"] = "stopped" if started_run else "stopped-before-run"
        # Before the run there is nothing to save: the one line may be left out.
        reasons += output_problems(out, err, 1 if started_run else (0, 1))
        line = (final_lines(err) or [""])[-1]
        if (line or started_run) and not line.startswith(f"partrain: stopped by {first.name}"):
            reasons.append(f"final line {line!r}")
        if run.is_dir() and (run / "config.json").exists():
            reasons += continue_and_compare(run, ref, cwd, trial)
    elif rc == -first and "Traceback" in err and "KeyboardInterrupt" in last:
        trial["outcome"] = "KeyboardInterrupt traceback (before main)"
        reasons.append(f"{first.name} {at:.2f} s after start, while Python imported "
                       f"partrain: KeyboardInterrupt traceback, exit {rc}")
    elif rc == -first and not started_run and not run.exists():
        # Before the run: the default action ended the process; nothing was written.
        # A shell reports this as 128 + signal too.
        trial["outcome"] = "killed-before-run (default action)"
        reasons += output_problems(out, err, 0)
    elif rc in (0, -first) and complete:
        # After the run: outputs whole; the handlers were already restored.
        trial["outcome"] = "after-run" if delivered else "after-exit"
        reasons += output_problems(out, err, 0)
    elif second is not None and rc == -second and last.startswith(
            f"partrain: stopped by {first.name}") and not run.exists():
        trial["outcome"] = "second signal killed the exiting process"
        reasons.append(f"{first.name} stopped the run before it began (one line, as it "
                       f"should), then {second.name} 0.1 s later ended the exiting process by "
                       f"its default action: exit {rc}, expected {128 + first}")
    else:
        trial["outcome"] = "unexpected"
        reasons.append(f"exit status {rc} (expected {128 + first}); started={started_run}, "
                       f"complete={complete}; last stderr line: {last!r}")
    return reasons


def state_after_stop(run, trial):
    """Record how far a stopped run got; a stop after a finished step must leave a
    checkpoint of exactly that many steps."""
    if not (run / "history.csv").is_file():
        return []
    rows = len(history_rows(run / "history.csv"))
    step = checkpoint_step(run)
    trial.update(steps_done=rows, checkpoint_step=step if step >= 0 else None)
    if rows and step != rows:
        return [f"history.csv has {rows} steps but the checkpoint holds step {step}"]
    return []


def worker_trial(kind, rng, config, ref, timing, cwd, trial):
    run = cwd / "run"
    p = start(["train", *config, "--out", run], cwd)
    # Aim by the run's own progress (machine load changes its speed): a checkpointed step
    # (every --checkpoint-every), then up to 0.3 s more. stop_worker waits for step 10, by
    # when every message kind has been timed and the hang limit is HANG_FLOOR.
    every, total = timing["checkpoint_every"], timing["total_steps"]
    lowest = 10 if kind == "stop_worker" else 0
    target = rng.choice(range(lowest, max(lowest + 1, total - every), every))
    trial["target_step"] = target
    if target == 0:
        wait_for(lambda: len(p.workers()) == 2, RUN_TIMEOUT, 0.002, p.proc)
    else:
        wait_for(lambda: checkpoint_step(run) >= target, RUN_TIMEOUT, 0.002, p.proc)
    time.sleep(rng.uniform(0.0, 0.3))
    workers = p.workers()
    trial["at"] = round(time.monotonic() - p.t0, 3)
    victim = rng.choice(workers) if workers else None
    if victim is not None:
        try:
            if kind == "stop_worker":
                victim.suspend()
            else:
                victim.kill()
            trial["victim"] = victim.pid
        except psutil.Error:
            victim = None
    t_fault = time.monotonic()
    if victim is not None and kind == "kill_replacement":
        trial["replacement_killed"] = kill_replacement(p, {w.pid for w in workers})
    rc, out, err = p.wait(RUN_TIMEOUT)
    trial.update(rc=rc, seconds_after_fault=round(time.monotonic() - t_fault, 1))
    if victim is not None and kind == "stop_worker":
        with contextlib.suppress(psutil.Error):   # never leave a stopped process behind
            if alive([victim]):
                victim.kill()
    reasons = leftover_problems([p.pid])
    reasons += output_problems(out, err, 0)
    if rc != 0:
        reasons.append(f"exit status {rc}: {(final_lines(err) or [''])[-1]}")
    else:
        reasons += result_differences(run, ref)
        metrics = json.loads((run / "metrics.json").read_text())
        trial["worker_replacements"] = metrics.get("worker_replacements")
        replaced = any(REPLACED.match(ln) for ln in err.splitlines())
        if kind == "stop_worker" and victim is not None:
            trial["outcome"] = "replaced" if replaced else "not-replaced (stopped during close)"
            if trial["seconds_after_fault"] > 60:
                reasons.append(f"took {trial['seconds_after_fault']} s after the SIGSTOP")
            if replaced and not metrics.get("worker_replacements"):
                reasons.append("a worker was replaced but metrics say 0 replacements")
        else:
            trial["outcome"] = ("replaced" if metrics.get("worker_replacements")
                                else "not-replaced (killed while starting or closing)")
    if victim is None:
        trial["outcome"] = "no worker alive at that moment"
    return reasons


def kill_replacement(p, before):
    """SIGKILL the first worker of ``p`` not among the pids ``before`` as soon as it
    appears (within 30 s); its pid, or None."""
    found = []

    def newcomer():
        found[:] = [w for w in p.workers() if w.pid not in before]
        return bool(found)

    if wait_for(newcomer, 30, 0.001, p.proc):
        with contextlib.suppress(psutil.Error):
            found[0].kill()
            return found[0].pid
    return None


def killpg_trial(kind, rng, config, ref, timing, cwd, trial):
    run = cwd / "run"
    phase, offset = draw_moment(rng, timing)
    p = start(["train", *config, "--out", run], cwd)
    at = wait_for_moment(p, run, phase, offset)
    trial.update(phase=phase, offset=round(offset, 3))
    workers = [w.pid for w in p.workers()]
    delivered = p.alive()
    if delivered:
        os.killpg(p.pid, signal.SIGKILL)
    rc, out, err = p.wait(RUN_TIMEOUT)
    trial.update(at=round(at, 3), rc=rc, workers_at_kill=len(workers),
                 temporaries_at_kill=temporaries(run),
                 checkpoint_step=checkpoint_step(run) if run.is_dir() else None)
    reasons = leftover_problems([p.pid])
    if rc == -signal.SIGKILL:
        trial["outcome"] = "killed"
        if "Traceback" in out + err:
            reasons.append("traceback on stderr")
        if run.is_dir() and (run / "config.json").exists():
            reasons += continue_and_compare(run, ref, cwd, trial)
    elif rc == 0:
        trial["outcome"] = "after-exit"
        reasons += output_problems(out, err, 0) + result_differences(run, ref)
    else:
        trial["outcome"] = "unexpected"
        reasons.append(f"exit status {rc}")
    return reasons


TRIALS = {"sigint": signal_trial, "sigterm": signal_trial, "sighup": signal_trial,
          "double": signal_trial, "kill_worker": worker_trial, "stop_worker": worker_trial,
          "kill_replacement": worker_trial,
          "killpg": killpg_trial}


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------

def package_digest(root):
    """sha256 over partrain/**/*.py under ``root`` (names and bytes)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((Path(root) / "partrain").rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def freeze_code(work):
    """Copy partrain/ as it is now and run every trial (and its workers) from the copy.

    Others edit partrain/ while this runs; a trial that ran other code than the reference
    would differ for that reason alone. Returns what the summary records."""
    repo = Path(__file__).resolve().parents[2]
    frozen = work / "code"
    shutil.copytree(repo / "partrain", frozen / "partrain",
                    ignore=shutil.ignore_patterns("__pycache__"))
    CODE["env"] = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(frozen)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:   # read-only git: which commit the copy started from
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30, cwd=repo).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "partrain"],
                                    capture_output=True, text=True, timeout=30,
                                    cwd=repo).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        head, dirty = None, None
    return dict(commit=head, uncommitted_changes=dirty, digest=package_digest(frozen),
                repo=repo, frozen=frozen)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=36)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="results/faults")
    ap.add_argument("--config", default=DEFAULT_CONFIG,
                    help="the partrain train flags of every run (default: %(default)s)")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="comma-separated fault kinds to draw from")
    ap.add_argument("--keep", action="store_true", help="keep every trial's run directory")
    args = ap.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        ap.error(f"unknown kinds {sorted(unknown)}; choose from {list(KINDS)}")
    config = shlex.split(args.config)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="partrain-faults-"))
    rng = random.Random(args.seed)
    command = " ".join(shlex.quote(a) for a in [sys.executable.rsplit("/", 1)[-1],
                                                 "scripts/stress/fault_inject.py",
                                                 *(argv or sys.argv[1:])])
    t_start = time.monotonic()
    code = freeze_code(work)
    if shm_entries():
        print("fault_inject: note: /dev/shm/partrain-* entries exist before the first trial",
              file=sys.stderr)
    ref, timing = reference_run(config, work)
    print(f"reference: {timing}", file=sys.stderr, flush=True)
    trials = []
    for i in range(args.trials):
        kind = rng.choices(kinds, weights=[KINDS[k] for k in kinds])[0]
        cwd = work / f"trial{i:03d}"
        cwd.mkdir()
        trial = dict(trial=i, kind=kind, config=config)
        t0 = time.monotonic()
        try:
            reasons = TRIALS[kind](kind, random.Random(rng.random()), config, ref, timing, cwd,
                                   trial)
        except subprocess.TimeoutExpired as exc:
            reasons = [f"no exit within {exc.timeout} s (killed)"]
        except Exception as exc:   # a bug in this script: record it, go on
            reasons = [f"fault_inject error: {type(exc).__name__}: {exc}"]
        trial.update(seconds=round(time.monotonic() - t0, 1), passed=not reasons,
                     reasons=reasons)
        trial.pop("config")
        trials.append(trial)
        if reasons:
            trial["kept"] = str(cwd)
        elif not args.keep:
            shutil.rmtree(cwd, ignore_errors=True)
        print(f"trial {i:3d} {kind:12s} {trial.get('outcome', ''):40s} rc={trial.get('rc')!s:5s} "
              f"{'PASS' if not reasons else 'FAIL ' + '; '.join(reasons)}", file=sys.stderr,
              flush=True)
    runtime = time.monotonic() - t_start
    summary = dict(
        command=command, config=" ".join(config), seed=args.seed, trials=len(trials),
        code=dict(commit=code["commit"], uncommitted_changes=code["uncommitted_changes"],
                  digest=code["digest"],
                  working_tree_changed_since=package_digest(code["repo"]) != code["digest"]),
        passed=sum(t["passed"] for t in trials), failed=sum(not t["passed"] for t in trials),
        runtime_seconds=round(runtime, 1), reference=timing,
        kinds={}, trial_log=trials, work_dir=str(work))
    for kind in kinds:
        ts = [t for t in trials if t["kind"] == kind]
        outcomes = {}
        for t in ts:
            outcomes[t.get("outcome", "?")] = outcomes.get(t.get("outcome", "?"), 0) + 1
        summary["kinds"][kind] = dict(
            trials=len(ts), passed=sum(t["passed"] for t in ts),
            failed=sum(not t["passed"] for t in ts), outcomes=outcomes,
            phases={ph: sum(1 for t in ts if t.get("phase") == ph) for ph in PHASES
                    if any(t.get("phase") == ph for t in ts)},
            recovered_identical={r: sum(1 for t in ts if t.get("recovery") == r and t["passed"])
                                 for r in ("resume", "overwrite-restart")},
            failures=[dict(trial=t["trial"], reasons=t["reasons"]) for t in ts if not t["passed"]])
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "summary.md").write_text(markdown(summary))
    if not any(not t["passed"] for t in trials) and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{summary['passed']}/{summary['trials']} trials passed in {runtime:.0f} s; "
          f"{out_dir / 'summary.md'}", file=sys.stderr)
    return 0 if summary["failed"] == 0 else 1


def markdown(s):
    lines = ["# Fault injection", "",
             f"Command: `{s['command']}`", "",
             f"Runs: `partrain train {s['config']}`", "",
             "Reference run (uninterrupted), seconds after start: " + ", ".join(
                 f"{k.replace('_seconds', '')} {v}" for k, v in s["reference"].items()
                 if k.endswith("_seconds"))
             + f". Seed {s['seed']}; total runtime {s['runtime_seconds']} s.", "",
             f"Code: partrain/ as it was at the start (commit {s['code']['commit']}"
             + (" plus uncommitted changes" if s['code']['uncommitted_changes'] else "")
             + f"; digest {s['code']['digest']}), frozen into a copy that every run and "
             "worker imported, since others edit partrain/ concurrently"
             + (" (the working tree has changed since)"
                if s['code']['working_tree_changed_since'] else "") + ".", "",
             "| fault | trials | passed | failed | aimed at (phase of the run) | outcomes "
             "| resumed / restarted, identical |",
             "|---|---:|---:|---:|---|---|---|"]
    for kind, k in s["kinds"].items():
        outcomes = ", ".join(f"{o}: {n}" for o, n in sorted(k["outcomes"].items()))
        rec = k["recovered_identical"]
        phases = ("a random checkpointed step, then up to 0.3 s" if kind.endswith("_worker")
                  else ", ".join(f"{ph}: {n}" for ph, n in k["phases"].items()))
        lines.append(f"| {kind} | {k['trials']} | {k['passed']} | {k['failed']} | {phases} | "
                     f"{outcomes} | {rec['resume']} / {rec['overwrite-restart']} |")
    lines.append(f"| **all** | {s['trials']} | {s['passed']} | {s['failed']} | | | |")
    failures = [(kind, f) for kind, k in s["kinds"].items() for f in k["failures"]]
    if failures:
        lines += ["", "## Failures", ""]
        for kind, f in failures:
            lines.append(f"- trial {f['trial']} ({kind}): " + "; ".join(f["reasons"]))
    lines += ["", "Checked after every trial: exit status allowed for the fault; no traceback, "
              "no Python warning and the expected number of final `partrain:` lines on stderr; "
              "no `/dev/shm/partrain-*`; no worker of the trial's coordinator alive 5 s later; "
              "a stopped or killed run is resumed (`--resume`, or `--overwrite` when it stopped "
              "before its first checkpoint) and must end byte-identical to the reference "
              "(model.h5 datasets incl. `best/`, history.csv without timing columns, result "
              "entries of metrics.json).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
