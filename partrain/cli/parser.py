"""The command line's grammar: every command and flag.

The training flags are built from the settings' declarations
(:mod:`partrain.train.settings`): a setting added there is a flag here, with its help,
choices and value reader. Only what names things (model, data, where to write) and the
commands' own options are declared in this module.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..errors import UsageError
from ..train.settings import (OptimizerSettings, TrainSettings, finite_number, int_or,
                              nonnegative_int, positive_int)

# `partrain train` with no model or dataset: the classic LeNet-5 on the digits that
# ship inside scikit-learn, so a fresh machine trains without downloading anything.
DEFAULT_MODEL, DEFAULT_DATASET = "lenet5", "digits32"

# Python parameters whose flag is not simply --name-with-dashes.
FLAG_NAMES = {"validation_split": "--val-split", "data_file": "--data"}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def reader(read):
    """An argparse type from a settings reader: its ValueError becomes argparse's
    one-line "invalid value" message."""
    def parse(text):
        try:
            return read(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc}, got {text!r}") from None
    parse.__name__ = read.__name__
    return parse


def fraction(text):
    value = finite_number(text)
    if not 0 < value < 1:
        raise ValueError("expected a fraction between 0 and 1")
    return value


def flag_of(field):
    return field.metadata["flag"] or FLAG_NAMES.get(field.name) or \
        "--" + field.name.replace("_", "-")


# --help groups whose flags are alternatives: --steps or --epochs.
EXCLUSIVE_GROUPS = ("length",)


def add_setting_flags(parser, classes, groups):
    """One flag per field of the settings classes, in the field's --help group."""
    for cls in classes:
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if meta["group"] not in groups:
                group = parser.add_argument_group(meta["group"])
                if meta["group"] in EXCLUSIVE_GROUPS:
                    group = group.add_mutually_exclusive_group()
                groups[meta["group"]] = group
            group = groups[meta["group"]]
            kw = dict(dest=f.name, help=meta["help"], default=None)
            if f.type in (bool, "bool"):
                kw["action"] = "store_false" if f.default else "store_true"
            else:
                if meta["choices"]:
                    kw["choices"] = list(meta["choices"])
                if meta["text"]:
                    kw["type"] = reader(meta["text"])
                kw["metavar"] = meta["metavar"]
            group.add_argument(flag_of(f), **kw)


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


TRAIN_EXAMPLES = """\
examples:
  partrain train                                   LeNet-5 on the built-in digits
  partrain train --model mnist-conv --data-dir ../shared/data/mnist --epochs 10
  partrain train --model net.py:build --data photos/ --val-split 0.1 --early-stopping 3
  partrain train --lr-schedule cosine --warmup-steps 100 --augment flip,shift=2
  partrain train --resume runs/lenet5-digits32-20261130-180333
"""


def add_training_flags(parser):
    """The model, data and settings flags of ``train`` (and of ``sweep``, whose
    candidates are ``train`` runs); returns the help groups by name."""
    from ..data.datasets import DATASETS
    from ..nn.sequential import DTYPES
    from ..presets import PRESETS

    what = parser.add_argument_group("model and data")
    what.add_argument("--model", metavar="SPEC",
                      help=f"preset ({', '.join(PRESETS)}; default {DEFAULT_MODEL}) or "
                      "FILE.py:FUNCTION or MODULE:FUNCTION")
    source = what.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=list(DATASETS), metavar="NAME",
                        help=f"dataset: {', '.join(DATASETS)} (default: the preset's)")
    source.add_argument("--data", metavar="FILE", help="your data: .npz, .h5 or an image folder")
    what.add_argument("--data-dir", metavar="DIR", help="folder holding the named dataset's files")
    what.add_argument("--val-split", type=reader(fraction), metavar="F",
                      help="hold out this fraction of the training set to choose best/ (by seed)")
    what.add_argument("--dtype", choices=list(DTYPES), help="default float32")
    groups = {"model and data": what}
    add_setting_flags(parser, (TrainSettings, OptimizerSettings), groups)
    return groups


SWEEP_HELP = """\
Train several candidates (a --grid of flag values and/or a list of --variant flag sets,
each with every one of --seeds) as independent runs, in parallel across the cores, each
an ordinary run directory inside --out with the same bits as the same 'partrain train'
alone. Every other flag is shared by all candidates. The summary (summary.md,
summary.csv, curves.png in --out) chooses the best on validation only (--val-split,
0.1 when not given with a named dataset); test accuracy is reported, never compared.

Ctrl-C, SIGTERM or SIGHUP stop the running candidates at the end of their step, with
checkpoints; the same command again goes on: finished candidates are kept, stopped
ones resume, nothing runs twice.
"""

SWEEP_EXAMPLES = """\
examples:
  partrain sweep --grid lr=0.01,0.03,0.1 --seeds 0-2 --steps 200 --out sweeps/lr
  partrain sweep --model mnist-conv --data-dir ../shared/data/mnist --epochs 2 \\
      --variant '--optimizer adam --lr 1e-3' --variant '--optimizer momentum --lr 0.01'
"""


def seed_list(text):
    """"0,1,2" or "0-4" (inclusive) -> [ints]."""
    seeds = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if dash and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi):
            seeds += range(int(lo), int(hi) + 1)
        elif part.strip().isdigit():
            seeds.append(int(part))
        else:
            raise ValueError("expected seeds such as 0,1,2 or 0-4")
    return seeds


ALLOW_PICKLE_HELP = ("rebuild a model with classes of your own from the run's model.pkl; "
                     "unpickling runs any code the file holds, so only for runs you trust")


def build_parser():
    from ..data.datasets import DATASETS
    from ..nn.sequential import DTYPES
    from ..presets import PRESETS
    from ..train.trainer import DIVERGENCE_FACTOR

    p = Parser(prog="partrain", description="Train hand-written numpy CNNs data-parallel "
               "on every CPU core.")
    from .. import __version__

    p.add_argument("--version", action="version", version=f"partrain {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a preset or your own network on a dataset or your data",
                       description=TRAIN_HELP % dict(factor=DIVERGENCE_FACTOR),
                       epilog=TRAIN_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = add_training_flags(t)
    groups["outputs"].add_argument(
        "--resume", metavar="RUN_DIR",
        help="continue a run from its checkpoint; only " + ", ".join(resume_flags()) +
        " and a longer --steps/--epochs may be given, and --model naming the run's own "
        "model again (a model from a file or module is imported only then)")

    sw = sub.add_parser("sweep", help="train several settings x seeds in parallel; choose on "
                        "validation", description=SWEEP_HELP, epilog=SWEEP_EXAMPLES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_flags(sw)
    grid = sw.add_argument_group("the sweep")
    grid.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                      help="try each value of a training flag (repeat for a grid of "
                      "every combination), e.g. --grid lr=0.01,0.03 --grid batch-size=32,64")
    grid.add_argument("--variant", action="append", default=[], metavar="'FLAGS'",
                      help="one candidate's training flags, quoted (repeat for a list), e.g. "
                      "--variant '--optimizer adam --lr 1e-3'")
    grid.add_argument("--seeds", type=reader(seed_list), default=[0], metavar="LIST",
                      help="seeds of every candidate: 0,1,2 or 0-4 (default 0)")
    grid.add_argument("--jobs", type=reader(int_or("auto")), default="auto", metavar="N|auto",
                      help="runs at a time (default: one per core, fewer when there are "
                      "fewer candidates); --workers sets each run's workers")

    v = sub.add_parser("verify", help="check that a model keeps the bits on every engine",
                       description="Check that a model (a preset, or your own with --model "
                       "FILE.py:FUNCTION) keeps partrain's promise: every layer is called "
                       "twice on the same input and random stream, then a few steps "
                       f"(--steps, default 4) are trained serially, on 2 and N worker "
                       "processes (--workers N, default the physical cores, at least 3) and "
                       "on 2 MPI ranks where MPI is installed, and every parameter is "
                       "compared byte for byte after every step. Exit status 1 names the "
                       "first array that differs and, for a layer that does not repeat "
                       "itself, why.", epilog="examples:\n  partrain verify --model "
                       "mynet.py:build --data mine.npz\n  partrain verify --model lenet5",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_flags(v)

    e = sub.add_parser("eval", help="evaluate a finished run's model.h5, on its data or yours",
                       epilog="examples:\n  partrain eval runs/lenet5-digits32-20261130-180333"
                       "\n  partrain eval runs/mine --data new.npz --split test",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("run_dir", nargs="?", metavar="RUN", help="a run directory")
    e.add_argument("--run", metavar="DIR", help="the same, as an option")
    e.add_argument("--data", metavar="FILE", help="evaluate on this .npz/.h5 file or image "
                   "folder (with labels) instead of the run's own data")
    e.add_argument("--split", choices=["train", "val", "test"], default="test")
    e.add_argument("--best", action="store_true", help="use the best-by-validation parameters")
    e.add_argument("--allow-pickle", action="store_true",
                   help=ALLOW_PICKLE_HELP)
    e.add_argument("--workers", type=reader(int_or("auto")), default="auto", metavar="N|auto")

    pr = sub.add_parser("predict", help="label new images with a finished run's model (CSV)",
                        epilog="examples:\n  partrain predict runs/mine photos/ > labels.csv"
                        "\n  partrain predict runs/mine a.png b.png new.npz --out labels.csv",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("run_dir", metavar="RUN", help="a run directory")
    pr.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="image files, folders of images, or .npz files with an array X")
    pr.add_argument("--out", metavar="FILE.csv", help="write the CSV here (default stdout)")
    pr.add_argument("--best", action="store_true", help="use the best-by-validation parameters")
    pr.add_argument("--allow-pickle", action="store_true",
                   help=ALLOW_PICKLE_HELP)
    pr.add_argument("--workers", type=reader(int_or("auto")), default="auto", metavar="N|auto")

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
    sc.add_argument("--workers", type=list_of(positive_int), metavar="LIST",
                    help="comma-separated worker counts (default 1..physical cores)")
    sc.add_argument("--batch-sizes", default=["full"], metavar="LIST",
                    type=list_of(int_or("full")),
                    help="comma-separated batch sizes or 'full' (default full)")
    sc.add_argument("--dtype", choices=list(DTYPES), default="float32")
    sc.add_argument("--chunk-size", type=reader(positive_int), metavar="K")
    sc.add_argument("--rounds", type=reader(positive_int), default=5, metavar="N")
    sc.add_argument("--steps", type=reader(positive_int), default=3, metavar="N",
                    help="timed steps per configuration and round")
    sc.add_argument("--no-baselines", action="store_true")
    sc.add_argument("--name", metavar="NAME", help="output file stem (default MODEL-DTYPE)")
    sc.add_argument("--out", metavar="DIR", help="where to write (default: a new folder "
                    "under ~/.cache/partrain/scale, never inside your working directory)")
    sc.add_argument("--overwrite", action="store_true",
                    help="replace files of the same name in --out")
    return p


def train_parser():
    """The ``train`` command's own parser (a sweep's and verify's candidates are
    ``train`` runs)."""
    sub = next(a for a in build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def flag_options(actions):
    """{dest: (option string, kind)} of a parser's optional actions; kind "on" for a
    switch that sets True, "off" for one that sets False, else "value"."""
    kinds = {argparse._StoreTrueAction: "on", argparse._StoreFalseAction: "off"}
    return {dest: (a.option_strings[-1], kinds.get(type(a), "value"))
            for dest, a in actions.items() if a.option_strings}


def as_flags(options, settings):
    """{dest: value} -> the argv that sets them (``options`` from :func:`flag_options`)."""
    argv = []
    for dest, value in settings.items():
        option, kind = options[dest]
        if kind == "on":
            argv += [option] if value else []
        elif kind == "off":
            argv += [option] if value is False else []
        else:
            argv += [option, str(value)]
    return argv


def list_of(read):
    return reader(lambda text: [read(part) for part in text.split(",")])


def resume_settings():
    """The settings --resume may change: those that do not change the result (the
    run directory itself excepted)."""
    return [f for f in dataclasses.fields(TrainSettings)
            if not f.metadata["result"] and f.name not in ("out", "overwrite")]


def resume_flags():
    return [flag_of(f) for f in resume_settings()]


# Spelling ------------------------------------------------------------------------------

def flag_spelling(message):
    """Rewrite the Python spellings a message quotes in backticks into flags:
    `name` -> --name, `name=True` -> --name, `progress=False` -> --no-progress,
    `name=value` -> --name value. Anything else in backticks is left as it is."""
    import re

    switches = {f.name: f for cls in (TrainSettings, OptimizerSettings)
                for f in dataclasses.fields(cls)}

    def flag(name):
        if name in switches:
            return flag_of(switches[name])
        return FLAG_NAMES.get(name) or "--" + name.replace("_", "-")

    def rewrite(m):
        name, value = m.group(1), m.group(2)
        if value is None or value == "True":
            return flag(name)
        if value == "False" and name in switches and switches[name].metadata["flag"]:
            return flag(name)
        return f"{flag(name)} {value.strip(chr(39) + chr(34))}"

    return re.sub(r"`([a-z][a-z0-9_]*)(?:=([^`\s]*))?`", rewrite, message)
