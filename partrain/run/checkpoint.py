"""checkpoint.h5: everything needed to continue a run bit for bit, written atomically
and checked in full when read back.

A checkpoint belongs to one run: it carries fingerprints of the result settings, the
model's architecture and the data, and is only resumed where all three match.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from . import files
from ..errors import PartrainError, UsageError
from .rundir import HISTORY_FIELDS, read_array

CHECKPOINT_FORMAT = 2


def fingerprints_of(model, data, settings, optimizer):
    """sha256 of the result settings, of the architecture, and of the data's bytes."""
    arch = json.dumps([model.summary(), [(slot.key, list(slot.shape)) for slot in model.layout],
                       [type(layer).__qualname__ for layer in model.layers], str(model.dtype)])
    result = json.dumps([settings.result_settings(), optimizer.hyperparameters()],
                        sort_keys=True)
    out = dict(settings=_sha(result), model=_sha(arch), data=data.fingerprint())
    code = model.code_fingerprint() if hasattr(model, "code_fingerprint") else {}
    if code:   # only for classes of your own: checkpoints of presets stay as they were
        out["model_code"] = code
    return out


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def save(path, *, model, optimizer, history, evals, best, fingerprints):
    """Write checkpoint.h5 atomically:

    /params, /best_params (if any), /optimizer/<state arrays>; attributes: format,
    step, lr, fingerprints (JSON), history and evaluations (JSON), best (JSON).
    The sampler needs no state: a step's batch is a function of (seed, step).
    """
    import h5py

    with files.atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("params", data=model.flat)
            if best.get("flat") is not None:
                f.create_dataset("best_params", data=best["flat"])
            g = f.create_group("optimizer")
            for key, value in optimizer.state_dict().items():
                if key != "lr":
                    g.create_dataset(key, data=value)
            f.attrs.update(
                format=CHECKPOINT_FORMAT, step=len(history), lr=optimizer.lr,
                fingerprints=json.dumps(fingerprints), history=json.dumps(history),
                evals=json.dumps(evals),
                best=json.dumps({k: v for k, v in best.items() if k != "flat"}))

def load(path, *, model, optimizer, fingerprints, total_steps):
    """Read and check checkpoint.h5 against this run, then restore the model's
    parameters and the optimizer's state. Returns (history, evals, best)."""
    import h5py

    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}; `resume` needs a run directory "
                         "written with `checkpoint_every` (or stopped by Ctrl-C)")
    try:
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
            if int(a.get("format", -1)) != CHECKPOINT_FORMAT:
                raise PartrainError(f"checkpoint {path} has format {a.get('format')}, "
                                    f"this partrain reads format {CHECKPOINT_FORMAT}")
            _check_fingerprints(_json_attr(a, "fingerprints", dict, path), fingerprints, path,
                                model)
            history = _json_attr(a, "history", list, path)
            evals = _json_attr(a, "evals", list, path)
            best = _json_attr(a, "best", dict, path)
            step = a.get("step")
            if not isinstance(step, (int, np.integer)) or not 0 <= step <= total_steps \
                    or step != len(history):
                raise PartrainError(f"checkpoint {path}: step {step!r} does not match its "
                                    f"{len(history)} history rows and {total_steps} steps")
            lr = a.get("lr")
            if not isinstance(lr, (float, np.floating)) or not math.isfinite(lr) or lr <= 0:
                raise PartrainError(f"checkpoint {path}: learning rate {lr!r} is invalid")
            P = model.num_params
            params = read_array(f, "params", (P,), model.dtype, path)
            best_flat = (read_array(f, "best_params", (P,), model.dtype, path)
                         if "best_params" in f else None)
            state = {"lr": float(lr)}
            expected = optimizer.state_shapes(P)
            present = set(f["optimizer"]) if "optimizer" in f else set()
            missing = sorted(set(expected) - present)
            if step > 0 and missing:   # a rule keeps all of its state from step 1 on
                raise PartrainError(f"checkpoint {path}: optimizer state "
                                    f"{', '.join(missing)} is missing")
            for key in present:
                if key not in expected:
                    raise PartrainError(f"checkpoint {path}: unexpected optimizer state "
                                        f"{key!r} for {optimizer.name}")
                shape, kind = expected[key]
                dtype = model.dtype if kind == "f" else np.dtype(np.int64)
                state[key] = read_array(f, f"optimizer/{key}", shape, dtype, path)
                if kind == "i" and (state[key] < 0).any():
                    raise PartrainError(f"checkpoint {path}: optimizer/{key} is negative")
    except (UsageError, PartrainError):
        raise
    except Exception as exc:
        raise PartrainError(f"checkpoint {path} is unreadable "
                            f"({type(exc).__name__}: {exc})") from None
    _check_rows(history, path, "history", STEP_FIELDS)
    _check_rows(evals, path, "evaluations", ("step", "eval_seconds"))
    _check_best(best, path, len(history))
    model.flat[...] = params
    optimizer.load_state_dict(state)
    best["flat"] = best_flat
    return history, evals, best


def _json_attr(attrs, key, kind, path):
    try:
        value = json.loads(attrs[key])
    except KeyError:
        raise PartrainError(f"checkpoint {path}: missing {key!r}") from None
    except (TypeError, ValueError) as exc:
        raise PartrainError(f"checkpoint {path}: {key!r} is not valid JSON ({exc})") from None
    if not isinstance(value, kind):
        raise PartrainError(f"checkpoint {path}: {key!r} is not a {kind.__name__}")
    return value


STEP_FIELDS = ("step", "epoch", "loss", "lr", "seconds", "worker_seconds", "overhead_seconds")


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_rows(rows, path, what, required):
    """Every row a dict of numbers (None where a split was not evaluated), with the
    required keys, steps counting up."""
    last = 0
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or any(k not in row for k in required):
            raise PartrainError(f"checkpoint {path}: {what} row {i} is malformed "
                                f"(needs {', '.join(required)})")
        for k, v in row.items():
            if k not in HISTORY_FIELDS or not (v is None or _is_number(v)):
                raise PartrainError(f"checkpoint {path}: {what} row {i} has a bad {k!r}")
        if not isinstance(row["step"], int) or row["step"] <= last:
            raise PartrainError(f"checkpoint {path}: {what} row {i} has step {row['step']!r}")
        last = row["step"]


def _check_best(best, path, steps):
    ok = (isinstance(best.get("metric", "val_acc"), str)
          and (best.get("value") is None or _is_number(best["value"]))
          and (best.get("step") is None or (isinstance(best["step"], int)
                                           and 0 < best["step"] <= steps))
          and set(best) <= {"metric", "value", "step"})
    if not ok:
        raise PartrainError(f"checkpoint {path}: 'best' is malformed")


# Fingerprints added after checkpoints already existed: not checked against a
# checkpoint written before them, so those still resume.
LATER_FINGERPRINTS = ("model_code",)


def _check_fingerprints(saved, current, path, model=None):
    differ = [k for k in current if saved.get(k) != current[k]
              and not (k in LATER_FINGERPRINTS and k not in saved)]
    if differ == ["model_code"]:
        old, new = saved["model_code"], current["model_code"]
        old = old if isinstance(old, dict) else {}
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        raise UsageError(f"the code of model {getattr(model, 'name', '?')!r} changed since "
                         f"checkpoint {path} was written (class {', '.join(changed)}); "
                         "resuming would go on with other code than trained it: start a "
                         "new run (another `out`) instead")
    if differ:
        raise UsageError(f"checkpoint {path} belongs to a run with different "
                         f"{' and '.join(differ)}; start a new run (another `out`) instead")
