"""``partrain sweep``: the flags turned into candidates (each a ``partrain train`` flag
set and a seed), run by :mod:`partrain.sweeps`, and the summary printed."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from .. import log
from ..errors import UsageError
from .parser import as_flags, flag_options, train_parser

# Flags that belong to the sweep as a whole, not to a candidate's run.
SWEEP_ONLY = ("grid", "variant", "seeds", "jobs", "out", "overwrite", "workers", "seed",
              "progress", "command")


def cmd_sweep(args):
    from ..sweeps import expand, run_sweep
    from .parser import DEFAULT_MODEL
    from .train import resolve

    train = train_parser()
    actions = {a.dest: a for a in train._actions if a.option_strings}
    base = {k: v for k, v in vars(args).items()
            if k in actions and k not in SWEEP_ONLY and v is not None}
    grid = dict(_grid_entry(text, train, actions) for text in args.grid)
    variants = [_variant(text, train, actions) for text in args.variant] or None
    candidates = expand(grid, variants, args.seeds)
    if "val_split" not in base and "data" not in base and not any(
            "val_split" in dict(c.settings) for c in candidates):
        base["val_split"] = 0.1
    if args.out == "":
        raise UsageError("`out` must not be empty: name the sweep's folder or leave it out")
    job = CommandLineJob(base, actions)
    opened = set()
    for c in candidates:   # every candidate's flags parse before anything runs
        args_c = _parse(train, ["--out", "x", "--seed", str(c.seed), *as_flags(
            job.options, {**base, **dict(c.settings)})])
        # ...and its model and data open: a bad path or model is one line, not a
        # failed run per candidate.
        what = tuple(getattr(args_c, k) for k in ("model", "dataset", "data", "data_dir",
                                                 "dtype"))
        if what not in opened:
            resolve(args_c)
            opened.add(what)
    if base.get("val_split") == 0.1 and args.val_split is None:
        log.info("holding out 0.1 of the training set for validation, which chooses the "
                 "best candidate (--val-split)")
    out = args.out or _default_folder(base.get("model") or DEFAULT_MODEL)
    t0 = time.perf_counter()
    result = run_sweep(candidates, job, out, jobs=args.jobs,
                       workers=args.workers if args.workers is not None else "auto",
                       overwrite=bool(args.overwrite),
                       record=dict(command=["partrain", "sweep", *_argv_of(args)]))
    log.result((Path(out) / "summary.md").read_text().rstrip())
    best = result.best
    log.result(f"partrain: sweep of {len(candidates)} candidates in "
               f"{time.perf_counter() - t0:.1f} s ({result.ran} run now, {result.kept} kept); "
               + (f"best on validation: {best['candidate']}; " if best else "")
               + f"outputs in {out}")
    failed = [r for r in result.rows if r["status"].startswith("failed")]
    return 1 if failed and len(failed) == len(result.rows) else 0


class CommandLineJob:
    """Trains one candidate as ``partrain train`` would with its flags: the same code,
    so the same bits as that command run alone. Picklable, for joblib's workers."""

    def __init__(self, base, actions):
        self.base = base
        self.options = flag_options(actions)

    def __call__(self, candidate, run_dir, resume, workers):
        from . import _main

        if resume:
            argv = ["train", "--resume", run_dir]
            model = {**self.base, **dict(candidate.settings)}.get("model")
            if model and ":" in model:   # resume imports a model file only when named again
                argv += ["--model", model]
        else:
            flags = as_flags(self.options, {**self.base, **dict(candidate.settings)})
            argv = ["train", *flags, "--seed", str(candidate.seed), "--out", run_dir]
            if Path(run_dir).is_dir():   # begun, stopped before its first checkpoint
                argv.append("--overwrite")
        return _main([*argv, "--workers", str(workers), "--no-progress"])


def _parse(train, argv):
    try:
        return train.parse_args(argv)
    except UsageError as exc:
        raise UsageError(str(exc).replace("'partrain train --help'",
                                          "'partrain sweep --help'")) from None


def _grid_entry(text, train, actions):
    name, eq, values = text.partition("=")
    option = "--" + name.strip().lstrip("-").replace("_", "-")
    dest = next((d for d, a in actions.items() if option in a.option_strings or d == name),
                None)
    if not eq or not values or dest is None or dest in SWEEP_ONLY + ("resume",):
        raise UsageError(f"--grid {text!r}: expected NAME=V1,V2,... where NAME is a training "
                         "flag such as lr or batch-size")
    if flag_options(actions)[dest][1] != "value":
        raise UsageError(f"--grid {text!r}: {option} is a switch; use two --variant instead")
    parsed = [getattr(_parse(train, [actions[dest].option_strings[-1], v.strip()]), dest)
              for v in values.split(",")]
    return dest, parsed


def _variant(text, train, actions):
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"--variant {text!r}: {exc}") from None
    given = {k: v for k, v in vars(_parse(train, argv)).items() if v is not None}
    bad = sorted(set(given) & set(SWEEP_ONLY + ("resume",)))
    if bad:
        raise UsageError(f"--variant {text!r} sets {', '.join(bad)}, which belong to the "
                         "whole sweep; give them outside --variant")
    return given


def _default_folder(model):
    from .train import label_of, new_run_directory

    return new_run_directory(f"sweeps/{label_of(model)}-{time.strftime('%Y%m%d-%H%M%S')}")


def _argv_of(args):
    return [f"{k}={v}" for k, v in sorted(vars(args).items()) if v not in (None, [], False)]
