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

# `partrain train` with no model or dataset: the classic LeNet-5 on the digits that
# ship inside scikit-learn, so a fresh machine trains without downloading anything.
DEFAULT_MODEL, DEFAULT_DATASET = "lenet5", "digits32"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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


def build_parser():
    from .data import DATASETS
    from .engine import BACKENDS
    from .models import PRESETS
    from .optim import OPTIMIZERS

    p = Parser(prog="partrain", description="Train hand-written numpy CNNs data-parallel "
               "on every CPU core.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a preset (defaults: LeNet-5 on the embedded digits)",
                       description="Train a model preset. Unset options take the preset's "
                       "seed settings (see 'partrain models').")
    t.add_argument("--model", choices=list(PRESETS), metavar="NAME",
                   help=f"preset: {', '.join(PRESETS)} (default {DEFAULT_MODEL})")
    t.add_argument("--dataset", choices=list(DATASETS), metavar="NAME",
                   help=f"dataset: {', '.join(DATASETS)} (default: the preset's)")
    t.add_argument("--data-dir", metavar="DIR", help="folder holding the dataset's files")
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
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--seed", type=int, default=0, metavar="N")
    t.add_argument("--workers", type=workers, default="auto", metavar="N|auto",
                   help="worker processes (default auto: one per physical core)")
    t.add_argument("--backend", choices=list(BACKENDS),
                   help="serial (one process) or process (default when workers > 1)")
    t.add_argument("--chunk-size", type=positive_int, metavar="K",
                   help="samples per chunk of the deterministic reduction (default 8)")
    t.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="steps between accuracy checks (default: every epoch)")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/MODEL-DATASET-TIME)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                   help="write checkpoint.h5 every N steps (always on Ctrl-C / SIGTERM)")
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run from its checkpoint (same settings; --workers may change)")

    e = sub.add_parser("eval", help="evaluate a finished run's model.h5")
    e.add_argument("--run", required=True, metavar="DIR", help="a run directory")
    e.add_argument("--split", choices=["train", "test"], default="test")
    e.add_argument("--best", action="store_true", help="use the best-by-test parameters")

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

def cmd_train(args):
    from .trainer import TrainConfig, Trainer

    if args.resume:
        return run_training(Trainer.resume(
            args.resume, workers=args.workers, backend=args.backend,
            progress=not args.no_progress and sys.stderr.isatty()))
    model = args.model or DEFAULT_MODEL
    dataset = args.dataset or (DEFAULT_DATASET if args.model is None else None)
    cfg = TrainConfig(
        model=model, dataset=dataset, data_dir=args.data_dir, steps=args.steps,
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, lr_decay=args.lr_decay, weight_decay=args.weight_decay,
        dtype=args.dtype, seed=args.seed, workers=args.workers, backend=args.backend,
        chunk_size=args.chunk_size, eval_every=args.eval_every, overwrite=args.overwrite,
        progress=not args.no_progress and sys.stderr.isatty(),
        checkpoint_every=args.checkpoint_every,
    )
    trainer = Trainer(cfg)
    c = trainer.cfg
    trainer.cfg.out = args.out or f"runs/{c.model}-{c.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    return run_training(trainer)


_CURRENT_RUN = {}   # where the run in progress writes, for the interrupt message


def run_training(trainer):
    c = trainer.cfg
    _CURRENT_RUN["out"] = c.out
    resumed = f", resuming after step {trainer.resumed_from}" if trainer.resumed_from else ""
    print(f"partrain: {c.model} ({trainer.model.num_params:,} parameters) on {c.dataset} "
          f"({len(trainer.X)} train / {len(trainer.X_test)} test), {trainer.total_steps} steps "
          f"of batch {c.batch_size}, {c.optimizer} lr {c.lr:g}, {c.dtype}, "
          f"{c.workers} worker{'s' if c.workers > 1 else ''} ({c.backend}){resumed}",
          file=sys.stderr)
    try:
        m = trainer.run()
    except PartrainError as exc:
        if trainer.out is None:
            raise
        raise type(exc)(f"{exc} (outputs so far are in {trainer.out})") from None
    print(f"partrain: {m['steps']} steps in {m['total_seconds']:.1f} s "
          f"({m['seconds_per_step_median']:.4f} s/step median); "
          f"train accuracy {m['train_acc']:.4f}, test accuracy {m['test_acc']:.4f}; "
          f"outputs in {trainer.out}")
    return 0


def cmd_eval(args):
    import numpy as np

    from .data import load_dataset
    from .models import build_model
    from .outputs import read_params_h5
    from .trainer import evaluate

    run = Path(args.run)
    try:
        record = json.loads((run / "config.json").read_text())
        s, m = record["settings"], record["model"]
    except FileNotFoundError:
        raise PartrainError(f"{run} is not a run directory (no config.json)") from None
    except (ValueError, KeyError) as exc:
        raise PartrainError(f"{run / 'config.json'} is corrupt ({exc})") from None
    X, y = load_dataset(s["dataset"], args.split, s["data_dir"], s["dtype"])
    model = build_model(s["model"], seed=s["seed"], dtype=s["dtype"],
                        input_shape=tuple(m["input_shape"]), num_classes=m["num_classes"])
    keys = list(model.params)
    prefix = "best/" if args.best else ""
    try:
        values = read_params_h5(run / "model.h5", [prefix + k for k in keys])
    except (OSError, KeyError) as exc:
        raise PartrainError(f"cannot read parameters from {run / 'model.h5'}: {exc}") from None
    for k in keys:
        value = values[prefix + k]
        if value.shape != model.params[k].shape:
            raise PartrainError(f"{run / 'model.h5'}: {k} has shape {value.shape}, "
                                f"the model needs {model.params[k].shape}")
        model.params[k][...] = value
    loss, acc = evaluate(model, X, y)
    print(f"{s['model']} on {s['dataset']} {args.split} ({len(X)} images): "
          f"loss {loss:.4f}, accuracy {acc:.4f}" + (" (best parameters)" if args.best else ""))
    return 0 if np.isfinite(loss) else 1


def cmd_models(args):
    from .models import PRESETS, build_model

    print(f"{'model':<12} {'parameters':>11}  {'input':<12} {'dataset':<11} source")
    for name, p in PRESETS.items():
        n = build_model(name).num_params
        shape = "x".join(map(str, p.input_shape))
        print(f"{name:<12} {n:>11,}  {shape:<12} {p.dataset:<11} {p.source}")
    return 0


def cmd_datasets(args):
    from .data import DATASETS, default_data_dir, files_found

    print(f"{'dataset':<11} {'files':<9} {'looked in':<28} description")
    for name, ds in DATASETS.items():
        folder = args.data_dir or default_data_dir(ds)
        if ds.folder is None:
            status, where = "embedded", "-"
        else:
            status = "found" if files_found(ds, folder) else "missing"
            where = str(folder)
        print(f"{name:<11} {status:<9} {where:<28} {ds.description}")
    return 0


def cmd_info(args):
    from .trainer import machine_info

    info = machine_info()
    print(f"cores: {info['physical_cores']} physical, {info['logical_cores']} logical; "
          f"memory {info['memory_gib']} GiB; {info['platform']}")
    for b in info["blas"] or [{"library": "none found"}]:
        print(f"BLAS: {b.get('library')} {b.get('version') or ''} "
              f"({b.get('threads')} threads, {b.get('architecture')})")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    return 0


def cmd_scale(args):
    from .models import PRESETS
    from .scaling import run_scaling
    from .trainer import physical_cores

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
    from .trainer import Interrupted

    def on_signal(signum, frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except PartrainError as exc:
        print(f"partrain: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        run = _CURRENT_RUN.get("out")
        hint = (f"; resume with: partrain train --resume {run}" if run else "")
        print(f"partrain: stopped by {exc}; outputs written so far are kept{hint}",
              file=sys.stderr)
        return 128 + exc.signum
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
