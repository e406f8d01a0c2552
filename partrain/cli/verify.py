"""``partrain verify``: does this model keep partrain's bits? Every layer is called
twice on the same input and stream (:func:`partrain.train.verify.layer_determinism`),
then a few steps are trained serially, on 2 and N worker processes and, where MPI is
installed, on 2 MPI ranks, and every parameter is compared byte for byte."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import log
from ..errors import PartrainError

STEPS = 4   # enough for momentum and the chunk order to matter, quick for any model


def cmd_verify(args):
    from ..machine import physical_cores
    from ..train.trainer import Trainer
    from ..train.verify import compare_trainings, layer_determinism
    from .train import resolve

    steps = args.steps or STEPS
    model, data, _, settings, spec = resolve(args)
    X, y = data.train
    n = max(3, args.workers if isinstance(args.workers, int) else physical_cores())
    log.result(f"partrain: verify {spec['model']} on {data.name}: {steps} steps of batch "
               f"{settings.resolved(len(X)).batch_size}, seed {spec['seed']}")
    chunk = settings.resolved(len(X)).chunk_size
    layers = layer_determinism(model, X[:chunk], y[:chunk], key=(spec["seed"], 1))
    log.result("  every layer repeats itself under the same stream: "
               + ("yes" if layers is None else "NO"))

    def make_trainer(callbacks, **changes):
        m, d, opt, s, _ = resolve(args, data)
        s.steps, s.epochs, s.out, s.progress, s.verbose = steps, None, None, False, False
        for k, v in changes.items():
            setattr(s, k, v)
        return Trainer(m, d, opt, s, callbacks=callbacks)

    engines = {"serial": dict(backend="serial", workers=1),
               "2 worker processes": dict(backend="process", workers=2),
               f"{n} worker processes": dict(backend="process", workers=n)}
    reference, differences = compare_trainings(make_trainer, engines)
    mpi = _mpi_final_params(args, steps, model)
    if mpi is not None:
        differences["2 MPI ranks"] = _final_difference(model, reference[-1], mpi)
    for label, diff in differences.items():
        when = "after the last step" if "MPI" in label else "at every step"
        log.result(f"  serial vs {label}: " + (
            f"same bits {when} ({model.num_params:,} parameters)" if diff is None else
            f"DIFFERENT: {diff[1]} first differs " + (f"after step {diff[0]}" if diff[0]
                                                      else "after the last step")))
    if mpi is None:
        log.result("  MPI: not tried (mpi4py and mpiexec not found)")
    failed = [f"{label} ({diff[1]}" + (f" at step {diff[0]})" if diff[0] else ")")
              for label, diff in differences.items() if diff is not None]
    if layers or failed:
        raise PartrainError("verify: " + (layers or "the bits differ on " + ", ".join(failed)
                                          + "; the layers repeat themselves, so look for "
                                          "state shared between chunks or calls"))
    log.result("partrain: verify: the same bits on every engine tried")
    return 0


def _mpi_final_params(args, steps, model):
    """Final parameters {name: bytes} of the same training on 2 MPI ranks (``partrain
    train`` under mpiexec), or None where MPI is not installed."""
    from .parser import as_flags, flag_options, train_parser

    beside = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(beside) if beside.exists() else shutil.which("mpiexec")
    if mpiexec is None or importlib.util.find_spec("mpi4py") is None:
        return None
    actions = {a.dest: a for a in train_parser()._actions if a.option_strings}
    given = {k: v for k, v in vars(args).items() if k in actions and v is not None
             and k not in ("steps", "epochs", "workers", "backend", "out", "progress",
                           "verbose", "overwrite", "resume")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "run")
        cmd = [mpiexec, "-n", "2", sys.executable, "-m", "partrain.cli", "train",
               *as_flags(flag_options(actions), given), "--steps", str(steps),
               "--out", str(out), "--no-progress", "--quiet"]
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if r.returncode != 0:
            lines = r.stderr.strip().splitlines()
            raise PartrainError(f"verify: the MPI run failed: {lines[-1] if lines else r.returncode}")
        import h5py

        with h5py.File(out / "model.h5", "r") as f:
            return {slot.key: f[slot.key][()].tobytes() for slot in model.layout}


def _final_difference(model, reference_flat, params):
    views = model.views(reference_flat)
    for slot in model.layout:
        if views[slot.key].tobytes() != params[slot.key]:
            return None, slot.key   # MPI keeps only the last step's parameters
    return None
