"""Checkpoints: everything a run needs to continue bit for bit, in one HDF5 file.

The file is written atomically (temporary file, fsync, rename over the old one), so a
kill at any moment leaves either the previous checkpoint or the new one, never a torn
file. Contents:

    /params          the flat parameter vector (P,)
    /best_params     best-by-test parameters so far (absent before the first evaluation)
    /optimizer/*     optimizer state arrays (velocity, moments, step counter)
    attrs            step, optimizer lr, best test accuracy and step, model name,
                     config (JSON), history and evaluations (JSON)

The sampler needs no state: a step's batch is a function of (seed, epoch, step).
"""

from __future__ import annotations

import json

import numpy as np

from .errors import PartrainError, UsageError
from .outputs import atomic_path

FILENAME = "checkpoint.h5"
FORMAT = 1


def save(path, *, model, optimizer, step, history, evals, best, config):
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("params", data=model.flat)
            if best["flat"] is not None:
                f.create_dataset("best_params", data=best["flat"])
            g = f.create_group("optimizer")
            state = optimizer.state_dict()
            for key, value in state.items():
                if key != "lr":
                    g.create_dataset(key, data=value)
            f.attrs.update(format=FORMAT, model=model.name, num_params=model.num_params,
                           step=step, lr=state["lr"], best_test_acc=best["test_acc"],
                           best_step=best["step"], config=json.dumps(config),
                           history=json.dumps(history), evals=json.dumps(evals))


def load(path):
    """Read a checkpoint into plain Python/numpy values; one clear error if unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
            return dict(
                model=str(a["model"]), num_params=int(a["num_params"]), step=int(a["step"]),
                params=f["params"][()],
                best_flat=f["best_params"][()] if "best_params" in f else None,
                best_test_acc=float(a["best_test_acc"]), best_step=int(a["best_step"]),
                optimizer={"lr": float(a["lr"]), **{k: v[()] for k, v in f["optimizer"].items()}},
                config=json.loads(a["config"]), history=json.loads(a["history"]),
                evals=json.loads(a["evals"]))
    except FileNotFoundError:
        raise UsageError(f"no checkpoint at {path}; --resume needs a run directory written "
                         "with --checkpoint-every (or stopped by Ctrl-C)") from None
    except (OSError, KeyError, ValueError) as exc:
        raise PartrainError(f"checkpoint {path} is unreadable ({exc})") from None


def restore(ckpt, model, optimizer):
    """Put a loaded checkpoint's parameters and optimizer state into live objects."""
    if ckpt["model"] != model.name or ckpt["num_params"] != model.num_params:
        raise UsageError(f"checkpoint is for {ckpt['model']} ({ckpt['num_params']:,} "
                         f"parameters), not {model.name} ({model.num_params:,})")
    if ckpt["params"].dtype != model.dtype:
        raise UsageError(f"checkpoint holds {ckpt['params'].dtype} parameters, "
                         f"the run asks for {model.dtype}")
    model.flat[...] = ckpt["params"]
    optimizer.load_state_dict({k: np.array(v) for k, v in ckpt["optimizer"].items()})
