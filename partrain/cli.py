"""The ``partrain`` command line.

Every problem the user can fix ends as one line on stderr and a non-zero exit status
(2 for usage errors, 1 for runtime errors, 128 + signal number when interrupted);
tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from .errors import PartrainError, UsageError


def _stop_before_start(signum, frame):
    # While the command line itself is imported, a stop is a quiet exit, never an
    # import-time KeyboardInterrupt traceback; main() installs its own handler.
    raise SystemExit(128 + signum)


if sys.argv and Path(sys.argv[0]).name in ("partrain", "cli.py", "__main__.py"):
    for _signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(_signal, _stop_before_start)

# `partrain train` with no model or dataset: the classic LeNet-5 on the digits that
# ship inside scikit-learn, so a fresh machine trains without downloading anything.
DEFAULT_MODEL, DEFAULT_DATASET = "lenet5", "digits32"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def int_at_least(minimum, what):
    """An argparse type: an integer >= minimum, else one line naming what was expected."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value
    return parse


positive_int = int_at_least(1, "positive")
nonnegative_int = int_at_least(0, "non-negative")


def batch_size(text):
    return "full" if text == "full" else positive_int(text)


def workers(text):
    return "auto" if text == "auto" else positive_int(text)


def number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def fraction(text):
    value = number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


TRAIN_HELP = """\
Train a model: a preset (see 'partrain models'), or your own network with
--model FILE.py:FUNCTION or MODULE:FUNCTION (a function returning a partrain.Sequential;
it may take input_shape, num_classes, seed, dtype). Data: a named dataset (--dataset) or
your own file (--data: .npz/.h5 with X, y and optional X_test, y_test, X_val, y_val, or a
folder with one sub-folder of images per class). Unset options take the preset's seed
settings.

Stopping: Ctrl-C, SIGTERM or SIGHUP stop the run at the end of the current step and
write a checkpoint and all outputs (exit status 128 + signal); --resume RUN_DIR goes on
with the same bits. The loss counts as diverged when it is NaN/inf or over %(factor)gx
its first value: the run stops with exit status 1 and keeps its last good checkpoint.
A worker that dies, or stays silent for 20x the slowest recent answer (at least 10 s),
is killed and replaced and its work recomputed; after 3 failures on one step the run
checkpoints and stops with exit status 1.
"""


def build_parser():
    from .data.datasets import DATASETS
    from .engine import BACKENDS
    from .nn.optim import OPTIMIZERS
    from .presets import PRESETS
    from .train.trainer import DIVERGENCE_FACTOR

    p = Parser(prog="partrain", description="Train hand-written numpy CNNs data-parallel "
               "on every CPU core.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a preset or your own network on a dataset or your data",
                       description=TRAIN_HELP % dict(factor=DIVERGENCE_FACTOR),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--model", metavar="SPEC",
                   help=f"preset ({', '.join(PRESETS)}; default {DEFAULT_MODEL}) or "
                   "FILE.py:FUNCTION or MODULE:FUNCTION")
    source = t.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=list(DATASETS), metavar="NAME",
                        help=f"dataset: {', '.join(DATASETS)} (default: the preset's)")
    source.add_argument("--data", metavar="FILE", help="your data: .npz, .h5 or an image folder")
    t.add_argument("--data-dir", metavar="DIR", help="folder holding the named dataset's files")
    t.add_argument("--val-split", type=fraction, metavar="F",
                   help="hold out this fraction of the training set to choose best/ (by seed)")
    limit = t.add_mutually_exclusive_group()
    limit.add_argument("--steps", type=positive_int, metavar="N", help="optimizer steps")
    limit.add_argument("--epochs", type=positive_int, metavar="N", help="passes over the data")
    t.add_argument("--batch-size", type=batch_size, metavar="N|full")
    t.add_argument("--optimizer", choices=list(OPTIMIZERS), metavar="NAME",
                   help=", ".join(OPTIMIZERS))
    t.add_argument("--lr", type=number, metavar="F", help="learning rate")
    t.add_argument("--momentum", type=number, metavar="F", help="for momentum and nesterov")
    t.add_argument("--lr-decay", type=number, metavar="F", help="lr factor after each epoch")
    t.add_argument("--weight-decay", type=number, metavar="F", help="L2 strength on weights")
    t.add_argument("--batch-order", choices=["shuffle", "ordered", "replacement"],
                   help="how batches are drawn: shuffle (default: a new permutation each "
                   "epoch), ordered (stored order, as seed 004) or replacement (each batch "
                   "drawn with replacement, as seed 001's cs231n Solver)")
    t.add_argument("--momentum-reset", choices=["never", "epoch"],
                   help="epoch: zero the optimizer's momentum at each epoch's start, as "
                   "seed 004 (default never)")
    t.add_argument("--augment", metavar="SPEC",
                   help="random transforms of the training images each step: flip "
                   "(mirror left-right) and/or shift=K (move up to K pixels), e.g. "
                   "flip,shift=2; the same on any worker count")
    t.add_argument("--dtype", choices=["float32", "float64"], help="default float32")
    t.add_argument("--seed", type=nonnegative_int, metavar="N", help="default 0")
    t.add_argument("--workers", type=workers, metavar="N|auto",
                   help="worker processes (default auto: one per physical core; under "
                   "mpiexec, one per rank)")
    t.add_argument("--backend", choices=list(BACKENDS),
                   help="serial, process (default for several workers) or mpi (default "
                   "under mpiexec)")
    t.add_argument("--reduction", choices=["ordered", "allreduce"],
                   help="how chunk gradients are added: ordered (default; the same bits on "
                   "any worker count) or allreduce (mpi only: one MPI_Allreduce, faster, but "
                   "the bits depend on the rank count)")
    t.add_argument("--chunk-size", type=positive_int, metavar="K",
                   help="samples per chunk of the deterministic reduction (default 8)")
    t.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="steps between evaluations (default: every epoch)")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/MODEL-DATA-TIME)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out (its previous files are removed)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                   help="write checkpoint.h5 every N steps (always on a stop)")
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run from its checkpoint; only --workers, --backend, "
                   "--checkpoint-every, --no-progress and a longer --steps/--epochs may be given")

    e = sub.add_parser("eval", help="evaluate a finished run's model.h5")
    e.add_argument("--run", required=True, metavar="DIR", help="a run directory")
    e.add_argument("--split", choices=["train", "val", "test"], default="test")
    e.add_argument("--best", action="store_true", help="use the best-by-validation parameters")
    e.add_argument("--workers", type=workers, default="auto", metavar="N|auto")

    sub.add_parser("models", help="list the presets with parameter counts")
    d = sub.add_parser("datasets", help="list datasets and whether their files were found")
    d.add_argument("--data-dir", metavar="DIR", help="also look in this folder")
    sub.add_parser("info", help="cores, BLAS, memory and versions of this machine")

    sc = sub.add_parser("scale", help="time steps against worker count; write CSV, PNG, table",
                        description="Scaling experiment: every configuration timed in one run, "
                        "interleaved, medians over rounds; baselines: multi-threaded BLAS in "
                        "one process and PyTorch CPU (when installed).")
    sc.add_argument("--model", choices=list(PRESETS), default="lenet5-cat", metavar="NAME")
    sc.add_argument("--dataset", choices=list(DATASETS), metavar="NAME")
    sc.add_argument("--data-dir", metavar="DIR")
    sc.add_argument("--workers", type=int_list, metavar="LIST",
                    help="comma-separated worker counts (default 1..physical cores)")
    sc.add_argument("--batch-sizes", default="full", metavar="LIST", type=batch_list,
                    help="comma-separated batch sizes or 'full' (default full)")
    sc.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    sc.add_argument("--chunk-size", type=positive_int, metavar="K")
    sc.add_argument("--rounds", type=positive_int, default=5, metavar="N")
    sc.add_argument("--steps", type=positive_int, default=3, metavar="N",
                    help="timed steps per configuration and round")
    sc.add_argument("--no-baselines", action="store_true")
    sc.add_argument("--name", metavar="NAME", help="output file stem (default MODEL-DTYPE)")
    sc.add_argument("--out", default="results/scaling", metavar="DIR")
    return p


def int_list(text):
    return [positive_int(part) for part in text.split(",")]


def batch_list(text):
    return [batch_size(part) for part in text.split(",")]


# ----------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------

# Flags --resume accepts: they change how fast a run goes, not its result.
RESUME_FLAGS = ("workers", "backend", "checkpoint_every", "no_progress", "steps", "epochs",
                "resume")


def cmd_train(args):
    from .nn.optim import make_optimizer
    from .presets import PRESETS
    from .train.settings import DEFAULT_TRAINING, TrainSettings
    from .train.trainer import Trainer

    if args.resume:
        return run_training(*resume_trainer(args))
    spec = args.model or DEFAULT_MODEL
    dataset = args.dataset
    if dataset is None and args.data is None:
        dataset = PRESETS[spec].dataset if spec in PRESETS and args.model else DEFAULT_DATASET
    dtype, seed = args.dtype or "float32", args.seed or 0
    data = open_data(dataset=dataset, data_file=args.data, data_dir=args.data_dir, dtype=dtype,
                     val_split=args.val_split or 0.0, seed=seed)
    model = make_model(spec, input_shape=data.input_shape, num_classes=data.num_classes,
                       seed=seed, dtype=dtype)
    preset_settings = PRESETS[spec].train if spec in PRESETS else {}
    seed_settings = dict(DEFAULT_TRAINING)
    if preset_settings.keys() & {"steps", "epochs"}:
        seed_settings.pop("epochs")
    seed_settings.update(preset_settings)
    given = {k: getattr(args, k) for k in {*seed_settings, "steps", "epochs"}
             if getattr(args, k, None) is not None}
    if given.keys() & {"steps", "epochs"}:
        seed_settings.pop("steps", None)
        seed_settings.pop("epochs", None)
    t = {**seed_settings, **given}
    optimizer = make_optimizer(t["optimizer"], t["lr"], momentum=t["momentum"],
                               weight_decay=t["weight_decay"])
    name = f"{spec if spec in PRESETS else Path(spec.split(':')[0]).stem}-{data_label(data)}"
    settings = TrainSettings(
        steps=t.get("steps"), epochs=t.get("epochs"), batch_size=t["batch_size"],
        lr_decay=t["lr_decay"], seed=seed, chunk_size=args.chunk_size, workers=args.workers
        or "auto", backend=args.backend, eval_every=args.eval_every,
        batch_order=t["batch_order"], momentum_reset=t["momentum_reset"], augment=args.augment,
        reduction=args.reduction or "ordered", checkpoint_every=args.checkpoint_every, progress=not args.no_progress
        and sys.stderr.isatty(), overwrite=args.overwrite,
        out=args.out or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    spec_record = dict(model=spec, dataset=None if args.data else dataset,
                       data=str(Path(args.data).resolve()) if args.data else None,
                       data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else None,
                       val_split=args.val_split or 0.0, dtype=dtype, seed=seed,
                       model_file=str(Path(spec.split(":")[0]).resolve())
                       if spec.split(":")[0].endswith(".py") else None)
    return run_training(Trainer(model, data, optimizer, settings, record=dict(spec=spec_record)),
                        spec_record)


def data_label(data):
    return Path(str(data.name)).stem if data.name else "data"


def open_data(**kw):
    from .names import open_data as _open

    return _open(**kw)


def make_model(spec, **kw):
    from .names import make_model as _make

    return _make(spec, **kw)


def resume_trainer(args):
    """Rebuild a run from its config.json and load its checkpoint; refuse flags that
    would change the result."""
    from .nn.optim import OPTIMIZERS
    from .run.rundir import RunDir
    from .train.settings import TrainSettings
    from .train.trainer import Trainer

    run = RunDir(args.resume)
    record = run.read_config()
    spec = checked_spec(record, run, "resume it with partrain.fit(..., out=..., resume=True)")
    # `is`, not ==: --seed 0 or --momentum 0 is given too (0 == False in Python).
    conflicting = sorted(f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                         if k not in RESUME_FLAGS and k != "command"
                         and v is not None and v is not False)
    if conflicting:
        raise UsageError(f"--resume continues a run with its own settings; drop "
                         f"{', '.join(conflicting)} (only --workers, --backend, "
                         "--checkpoint-every, --no-progress and a longer --steps/--epochs)")
    try:
        s = dict(record["settings"])
        opt_record = dict(record["optimizer"])
        data = open_data(dataset=spec.get("dataset"), data_file=spec.get("data"),
                         data_dir=spec.get("data_dir"), dtype=spec["dtype"],
                         val_split=spec.get("val_split") or 0.0, seed=spec["seed"])
        model_spec = spec["model"]
        if spec.get("model_file"):
            model_spec = f"{spec['model_file']}:{model_spec.rsplit(':', 1)[1]}"
        model = make_model(model_spec, input_shape=data.input_shape,
                           num_classes=data.num_classes, seed=spec["seed"], dtype=spec["dtype"])
        cls = OPTIMIZERS[opt_record.pop("name")]
        optimizer = cls(**opt_record)
        settings = TrainSettings(**{k: v for k, v in s.items() if k in TrainSettings.__dataclass_fields__})
        settings.epochs = None                  # the recorded steps count
        settings.resolved(len(data.train[0]))   # every recorded value checked here
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise PartrainError(f"{run.file('config.json')} is corrupt ({type(exc).__name__}: {exc})") from None
    done_steps = settings.steps
    if args.steps is not None or args.epochs is not None:
        settings.steps = args.steps
        if args.epochs is not None:
            settings.steps = args.epochs * -(-len(data.train[0]) // settings.batch_size)
        if settings.steps < done_steps:
            raise UsageError(f"--resume cannot shorten the run: it was set to {done_steps} "
                             f"steps, --steps/--epochs asks for {settings.steps}")
    settings.out, settings.overwrite = str(run), True
    settings.workers = args.workers or settings.workers
    settings.backend = args.backend or settings.backend
    settings.checkpoint_every = args.checkpoint_every or settings.checkpoint_every
    settings.progress = not args.no_progress and sys.stderr.isatty()
    trainer = Trainer(model, data, optimizer, settings, record=dict(spec=spec))
    trainer.resume()
    return trainer, spec


_CURRENT_RUN = {}   # where the run in progress writes, for the stop message


def run_training(trainer, spec):
    s = trainer.settings
    _CURRENT_RUN["out"] = s.out
    resumed = f", resuming after step {trainer.resumed_from}" if trainer.resumed_from else ""
    n = {k: len(v[0]) for k, v in trainer.data.splits().items()}
    sizes = " / ".join(f"{v} {k}" for k, v in n.items())
    opt = trainer.optimizer
    from .engine import is_main_process

    if is_main_process():
        print(f"partrain: {spec['model']} ({trainer.model.num_params:,} parameters) on "
              f"{trainer.data.name} ({sizes}), {trainer.total_steps} steps of batch "
              f"{s.batch_size}, {opt.name} lr {trainer.base_lr:g}, {trainer.model.dtype}, "
              f"{f'augment {s.augment}, ' if s.augment else ''}workers {s.workers}{resumed}", file=sys.stderr)
    history = trainer.run()
    if history is None:   # an MPI rank that only served rank 0
        return 0
    m = history.metrics
    accs = ", ".join(f"{k.split('_')[0]} accuracy {m[k]:.4f}" for k in
                     ("train_acc", "val_acc", "test_acc") if m.get(k) is not None)
    print(f"partrain: {m['steps']} steps in {m['total_seconds']:.1f} s "
          f"({m['seconds_per_step_median']:.4f} s/step median); {accs}; outputs in {s.out}")
    return 0


# What config.json's "spec" (how the command line named model and data) must hold.
SPEC_TYPES = dict(model=(str,), dataset=(str, type(None)), data=(str, type(None)),
                  data_dir=(str, type(None)), model_file=(str, type(None)),
                  val_split=(int, float), dtype=(str,), seed=(int,))


def checked_spec(record, run, from_python_hint):
    spec = record.get("spec")
    if spec is None:
        raise UsageError(f"{run} was started from Python, not the command line; "
                         f"{from_python_hint}")
    bad = [k for k, types in SPEC_TYPES.items()
           if not isinstance(spec, dict) or not isinstance(spec.get(k), types)
           or isinstance(spec.get(k), bool)]
    if not bad and not (0 <= spec["val_split"] < 1 and spec["seed"] >= 0
                        and spec["dtype"] in ("float32", "float64")):
        bad = ["val_split, seed or dtype"]
    if bad:
        raise PartrainError(f"{run.file('config.json')} is corrupt (spec: bad {', '.join(bad)})")
    return spec


def cmd_eval(args):
    import numpy as np

    from .engine import make_engine
    from .engine.base import EVAL_CHUNK
    from .run.rundir import RunDir

    run = RunDir(args.run)
    record = run.read_config()
    spec = checked_spec(record, run, "evaluate it with partrain.load_run")
    model = run.read_params(run.read_model_architecture(), best=args.best)
    data = open_data(dataset=spec.get("dataset"), data_file=spec.get("data"),
                     data_dir=spec.get("data_dir"), dtype=str(model.dtype),
                     val_split=spec.get("val_split") or 0.0, seed=spec.get("seed", 0))
    splits = data.splits()
    if args.split not in splits:
        raise UsageError(f"{run} has no {args.split} split (it has {', '.join(splits)})")
    X, y = splits[args.split]
    model.check_input(X.shape[1:])
    with make_engine(model, {"train": (X, y)}, EVAL_CHUNK, workers=args.workers,
                     backend="serial" if len(X) <= EVAL_CHUNK else None) as engine:
        loss, acc = engine.evaluate("train")
    if not np.isfinite(loss):
        raise PartrainError(f"{run}: the model's loss on {args.split} is {loss} (its "
                            "parameters diverged)")
    print(f"{model.name} on {data.name} {args.split} ({len(X)} images): "
          f"loss {loss:.4f}, accuracy {acc:.4f}" + (" (best parameters)" if args.best else ""))
    return 0


def cmd_models(args):
    from .presets import PRESETS, build_model

    width = max(map(len, PRESETS)) + 1
    dwidth = max(len(p.dataset) for p in PRESETS.values()) + 1
    print(f"{'model':<{width}} {'parameters':>11}  {'input':<9} {'dataset':<{dwidth}} source")
    for name, p in PRESETS.items():
        n = build_model(name).num_params
        shape = "x".join(map(str, p.input_shape))
        print(f"{name:<{width}} {n:>11,}  {shape:<9} {p.dataset:<{dwidth}} {p.source}")
    return 0


def cmd_datasets(args):
    from .data.datasets import DATASETS, default_data_dir, files_found

    rows = []
    for name, ds in DATASETS.items():
        folder = args.data_dir or default_data_dir(ds)
        if ds.folder is None:
            status, where = "embedded", "-"
        else:
            status = "found" if files_found(ds, folder) else "missing"
            where = str(folder)
        rows.append((name, status, where, ds.description))
    w0, w2 = (max(len(r[i]) for r in rows) + 1 for i in (0, 2))
    print(f"{'dataset':<{w0}} {'files':<9} {'looked in':<{w2}} description")
    for name, status, where, description in rows:
        print(f"{name:<{w0}} {status:<9} {where:<{w2}} {description}")
    return 0


def cmd_info(args):
    from .machine import machine_info

    info = machine_info()
    print(f"cores: {info['physical_cores']} physical, {info['logical_cores']} logical; "
          f"memory {info['memory_gib']} GiB; {info['platform']}")
    for b in info["blas"] or [{"library": "none found"}]:
        print(f"BLAS: {b.get('library')} {b.get('version') or ''} "
              f"({b.get('threads')} threads, {b.get('architecture')})")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    return 0


def cmd_scale(args):
    from .machine import physical_cores
    from .presets import PRESETS
    from .bench.scaling import run_scaling

    workers = args.workers or list(range(1, physical_cores() + 1))
    result = run_scaling(args.model, args.dataset or PRESETS[args.model].dataset, args.data_dir,
                         workers=workers, batch_sizes=args.batch_sizes, dtype=args.dtype,
                         chunk_size=args.chunk_size, rounds=args.rounds, steps=args.steps,
                         baselines=not args.no_baselines, name=args.name, out=args.out,
                         log=lambda msg: print(msg, file=sys.stderr))
    print((Path(args.out) / f"{result['name']}.md").read_text())
    return 0


COMMANDS = dict(train=cmd_train, eval=cmd_eval, models=cmd_models, datasets=cmd_datasets,
                info=cmd_info, scale=cmd_scale)


def main(argv=None):
    """Run one command; a process that fails ends the processes that wait for it."""
    from .engine import end_process

    code = _main(argv)
    end_process(code)
    return code


def _main(argv=None):
    import warnings

    from .errors import Interrupted

    # One clear line per problem, never a raw warning before it.
    warnings.simplefilter("ignore")

    def stop_before_the_run(signum, frame):   # nothing to save yet: say so and stop
        raise Interrupted(signum)

    old = {s: signal.signal(s, stop_before_the_run)
           for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return _run_command(argv)
    finally:
        for s, handler in old.items():
            # The process itself (argv from the command line) is now exiting with its
            # status decided: a late signal must not turn that into a default-action
            # death. Called from Python (argv given), the caller's handlers come back.
            signal.signal(s, signal.SIG_IGN if argv is None else handler)


def _run_command(argv):
    from .errors import Interrupted

    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except PartrainError as exc:
        print(f"partrain: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        run = _CURRENT_RUN.get("out")
        hint = (f"; outputs and a checkpoint are in {run}; resume with: "
                f"partrain train --resume {run}" if run and Path(run, "checkpoint.h5").is_file()
                else "")
        print(f"partrain: stopped by {signal.Signals(signum).name}{hint}", file=sys.stderr)
        return 128 + signum
    except MemoryError:
        print("partrain: error: out of memory; use a smaller --batch-size or fewer --workers",
              file=sys.stderr)
        return 1
    except OSError as exc:   # disk full, permission denied... while writing outputs
        print(f"partrain: error: {exc.strerror or exc}"
              + (f": {exc.filename}" if getattr(exc, "filename", None) else ""), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
