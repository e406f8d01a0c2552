"""``partrain train``: names from the flags resolved into a model, data, an optimizer and
settings (a preset's seed settings under the flags given), then one training run."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from .. import log
from ..errors import UsageError
from ..train.callbacks import Callback

# Where the run in progress writes, for the stop message.
CURRENT_RUN = {}


def cmd_train(args):
    from ..run.training import TrainingRun

    if args.resume:
        return run_training(*resumed_run(args))
    model, data, optimizer, settings, spec_record = resolve(args)
    name = f"{label_of(spec_record['model'])}-{data_label(data)}"
    settings.progress = args.progress is not False and sys.stderr.isatty()
    settings.out = args.out if args.out is not None else \
        new_run_directory(f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}")   # "" is refused
    return run_training(TrainingRun(model, data, optimizer, settings,
                                    record=dict(spec=spec_record)), spec_record)


def resolve(args, data=None):
    """The flags' (model, data, optimizer, settings, spec record) as ``partrain train``
    builds them; the spec record says how the flags named the model and data. ``data``:
    reuse data opened before from the same flags (the model and optimizer are new)."""
    from ..data import open_data
    from .parser import DEFAULT_DATASET, DEFAULT_MODEL
    from ..names import make_model
    from ..presets import PRESETS
    from ..train.settings import OptimizerSettings, TrainSettings

    spec = args.model or DEFAULT_MODEL
    dataset = args.dataset
    if dataset is None and args.data is None:
        dataset = PRESETS[spec].dataset if spec in PRESETS and args.model else DEFAULT_DATASET
    dtype, seed = args.dtype or "float32", args.seed or 0
    if data is None:
        data = open_data(dataset=dataset, data_file=args.data, data_dir=args.data_dir,
                         dtype=dtype, validation_split=args.val_split or 0.0, seed=seed)
    model = make_model(spec, input_shape=data.input_shape, num_classes=data.num_classes,
                       seed=seed, dtype=dtype)
    chosen = seed_settings(args, PRESETS[spec].train if spec in PRESETS else {})
    optimizer = OptimizerSettings(**{f.name: chosen[f.name] for f in
                                     dataclasses.fields(OptimizerSettings)}).build()
    settings = TrainSettings(**{f.name: chosen[f.name] for f in dataclasses.fields(TrainSettings)
                                if f.name in chosen})
    spec_record = dict(model=spec, dataset=None if args.data else dataset,
                       data=str(Path(args.data).resolve()) if args.data else None,
                       data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else None,
                       val_split=args.val_split or 0.0, dtype=dtype, seed=seed,
                       model_file=str(Path(spec.split(":")[0]).resolve())
                       if spec.split(":")[0].endswith(".py") else None)
    return model, data, optimizer, settings, spec_record


def label_of(spec):
    """"lenet5" for a preset, "net" for net.py:build or pkg.net:build."""
    from ..presets import PRESETS

    return spec if spec in PRESETS else Path(spec.split(":")[0]).stem


def seed_settings(args, preset):
    """{setting: value}: the defaults, under the preset's seed settings, under the flags
    given. A preset or flag that sets steps (or epochs) replaces the other one."""
    from ..train.settings import OptimizerSettings, TrainSettings, defaults

    chosen = defaults(TrainSettings, OptimizerSettings)
    chosen["epochs"] = 1
    given = {k: v for k, v in vars(args).items() if k in chosen and v is not None}
    for layer in (preset, given):
        if layer.keys() & {"steps", "epochs"}:
            chosen["steps"] = chosen["epochs"] = None
        chosen.update(layer)
    return chosen


def new_run_directory(base):
    """``base``, or ``base-2``, ``base-3``...: the first that this process creates itself
    (mkdir fails on an existing folder), so two runs started in the same second never
    share a default directory."""
    for n in range(1, 10_000):
        path = Path(base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir(parents=True)
            return str(path)
        except FileExistsError:
            continue
        except OSError:
            return str(path)   # unwritable: RunDir.create says so in one line
    raise UsageError(f"no free run directory name next to {base}; pass `out`")


def data_label(data):
    return Path(str(data.name)).stem if data.name else "data"


def resumed_run(args):
    """The run in ``args.resume``, rebuilt from its config.json with its checkpoint
    loaded; refuse flags that would change the result."""
    from ..run.resume import rebuild
    from ..run.rundir import RunDir
    from ..run.training import TrainingRun
    from .parser import resume_flags, resume_settings

    # `is`, not ==: --seed 0 or --momentum 0 is given too (0 == False in Python).
    # --model is checked by rebuild: naming a model file again is how a resume agrees
    # to run its code.
    allowed = {"resume", "steps", "epochs", "command", "model"} | \
        {f.name for f in resume_settings()}
    conflicting = sorted(f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                         if k not in allowed and v is not None and v is not False)
    if conflicting:
        raise UsageError(f"--resume continues a run with its own settings; drop "
                         f"{', '.join(conflicting)} (only {', '.join(resume_flags())} and "
                         "a longer --steps/--epochs)")
    model, data, optimizer, settings, spec = rebuild(RunDir(args.resume), args.model)
    done_steps = settings.steps
    if args.steps is not None or args.epochs is not None:
        settings.steps = args.steps
        if args.epochs is not None:
            settings.steps = args.epochs * -(-len(data.train[0]) // settings.batch_size)
        if settings.steps < done_steps:
            raise UsageError(f"--resume cannot shorten the run: it was set to {done_steps} "
                             f"steps, --steps/--epochs asks for {settings.steps}")
    for name in ("workers", "backend", "checkpoint_every"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    settings.progress = args.progress is not False and sys.stderr.isatty()
    return TrainingRun(model, data, optimizer, settings, record=dict(spec=spec)).resume(), spec


class StartLine(Callback):
    """The run's first line, once the engine has chosen its worker count.
    spec: how the flags named the model and data."""

    def __init__(self, spec):
        self.spec = spec

    def on_train_begin(self, trainer):
        s, opt, engine = trainer.settings, trainer.optimizer, trainer.engine
        sizes = " / ".join(f"{len(v[0])} {k}" for k, v in trainer.data.splits().items())
        resumed = f", resuming after step {trainer.resumed_from}" if trainer.resumed_from else ""
        auto = " (auto)" if s.workers in (None, "auto") else ""
        log.info(f"{self.spec['model']} ({trainer.model.num_params:,} parameters) on "
                 f"{trainer.data.name} ({sizes}), {trainer.total_steps} steps of batch "
                 f"{s.batch_size}, {opt.name} lr {trainer.base_lr:g}, {trainer.model.dtype}, "
                 f"{f'augment {s.augment}, ' if s.augment else ''}workers "
                 f"{engine.workers}{auto}{resumed}")


def run_training(run, spec):
    """Train ``run`` (a TrainingRun); ``spec``: how the flags named its model and data."""
    CURRENT_RUN["out"] = run.settings.out
    run.trainer.callbacks.insert(0, StartLine(spec))
    history = run.run()
    m = history.metrics
    accs = ", ".join(f"{k.split('_')[0]} accuracy {m[k]:.4f}" for k in
                     ("train_acc", "val_acc", "test_acc") if m.get(k) is not None)
    log.result(f"partrain: {m['steps']} steps in {m['total_seconds']:.1f} s "
               f"({m['seconds_per_step_median']:.4f} s/step median); {accs}; outputs in "
               f"{run.settings.out}")
    return 0
