"""The run directory: every file a run writes and reads back, in one place.

    config.json    every resolved setting, the model's layers, the data, fingerprints,
                   package versions and the machine
    model.pkl      the model's architecture (cloudpickle), so load_run needs no code
    history.csv    one row per step; evaluations on their steps
    model.h5       final parameters, one dataset per name; best-by-validation
                   parameters in the group "best"
    metrics.json   final losses and accuracies, timings, CPU busy %, peak memory
    curves.png     loss and accuracy curves
    checkpoint.h5  everything needed to continue bit for bit (see save_checkpoint)

Every file is written to a temporary name, fsynced and renamed (files.atomic_path),
so none is ever half written; a temporary left by a SIGKILL is removed by the next run.
Everything read back is checked (names, shapes, dtypes, finiteness, types) before use:
a damaged file is one clear error, never a traceback or silently wrong training.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np

from . import files
from ..errors import PartrainError, UsageError

CONFIG, MODEL_PKL, HISTORY, PARAMS, METRICS, CURVES, CHECKPOINT = (
    "config.json", "model.pkl", "history.csv", "model.h5", "metrics.json", "curves.png",
    "checkpoint.h5")
RUN_FILES = (CONFIG, MODEL_PKL, HISTORY, PARAMS, METRICS, CURVES, CHECKPOINT)
CHECKPOINT_FORMAT = 2

HISTORY_FIELDS = ["step", "epoch", "loss", "lr", "seconds", "worker_seconds",
                  "overhead_seconds", "eval_seconds", "train_loss", "train_acc",
                  "val_loss", "val_acc", "test_loss", "test_acc"]


class RunDir:
    def __init__(self, path):
        self.path = Path(path)

    def __str__(self):
        return str(self.path)

    def file(self, name):
        return self.path / name

    # -- creating ---------------------------------------------------------------
    def create(self, overwrite=False):
        """Make the directory for a new run. With ``overwrite``, the previous run's
        files are removed first, so two runs can never mix."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise UsageError(f"--out {p} exists and is not a directory")
        if p.is_dir() and any(p.iterdir()):
            if not overwrite:
                raise UsageError(f"output directory {p} already exists; pass --overwrite to "
                                 "replace it or choose another --out")
            for name in RUN_FILES:
                (p / name).unlink(missing_ok=True)
        self.remove_stale_temporaries()
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / ".partrain-write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise PartrainError(f"cannot write to output directory {p}: "
                                f"{exc.strerror or exc}") from None
        return self

    def remove_stale_temporaries(self):
        """Temporaries of our own atomic writes (".<file>.<random>.tmp") survive only a
        SIGKILL mid-write; they are never valid, so the next run removes them."""
        if self.path.is_dir():
            for name in RUN_FILES:
                for tmp in self.path.glob(f".{name}.*.tmp"):
                    tmp.unlink(missing_ok=True)

    # -- config and architecture ---------------------------------------------------
    def write_config(self, record):
        files.write_json(self.file(CONFIG), record)

    def read_config(self):
        path = self.file(CONFIG)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"{self.path} is not a run directory (no {CONFIG})") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise PartrainError(f"{path} is corrupt ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get("settings"), dict) \
                or not isinstance(record.get("model"), dict):
            raise PartrainError(f"{path} is corrupt (no 'settings' and 'model' objects)")
        return record

    def write_model_architecture(self, model):
        import cloudpickle

        data = cloudpickle.dumps(model)
        with files.atomic_path(self.file(MODEL_PKL)) as tmp:
            Path(tmp).write_bytes(data)

    def read_model_architecture(self):
        """The model as pickled at the start of the run (load_run then sets its
        parameters from model.h5). Unpickling runs code: only load runs you trust."""
        import cloudpickle   # noqa: F401  (models pickled by value need it)

        path = self.file(MODEL_PKL)
        try:
            model = pickle.loads(path.read_bytes())
        except FileNotFoundError:
            raise UsageError(f"{self.path} has no {MODEL_PKL}") from None
        except Exception as exc:   # a class that no longer imports, a damaged file...
            raise PartrainError(f"cannot rebuild the model from {path}: "
                                f"{type(exc).__name__}: {exc}") from None
        if not hasattr(model, "flat") or not hasattr(model, "layout"):
            raise PartrainError(f"{path} does not hold a partrain model")
        return model

    # -- final outputs ------------------------------------------------------------
    def write_outputs(self, model, history, evals, best, metrics):
        files.write_csv(self.file(HISTORY), history, HISTORY_FIELDS)
        groups = {"best": model.views(best["flat"])} if best.get("flat") is not None else {}
        files.write_params_h5(self.file(PARAMS), model.params, groups,
                                attrs=dict(model=model.name, step=len(history),
                                           dtype=str(model.dtype)))
        files.write_json(self.file(METRICS), metrics)
        files.plot_curves(self.file(CURVES), history, evals)

    def read_params(self, model, best=False):
        """Parameters from model.h5 into ``model``, each checked against the model."""
        import h5py

        path = self.file(PARAMS)
        prefix = "best/" if best else ""
        if not path.is_file():
            raise UsageError(f"{self.path} has no {PARAMS} (did the run finish?)")
        try:
            with h5py.File(path, "r") as f:
                if best and "best" not in f:
                    raise UsageError(f"{path} has no best parameters (the run had no "
                                     "validation split)")
                values = {}
                for key, shape, _, _, _ in _layout(model):
                    values[key] = _read_array(f, prefix + key, shape, model.dtype, path)
        except (UsageError, PartrainError):
            raise
        except Exception as exc:   # h5py raises OSError, KeyError, RuntimeError on bad bytes
            raise PartrainError(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None
        for key, value in values.items():
            model.params[key][...] = value
        return model

    # -- checkpoint -----------------------------------------------------------------
    def save_checkpoint(self, *, model, optimizer, history, evals, best, fingerprints):
        """Write checkpoint.h5 atomically:

        /params, /best_params (if any), /optimizer/<state arrays>; attributes: format,
        step, lr, fingerprints (JSON), history and evaluations (JSON), best (JSON).
        The sampler needs no state: a step's batch is a function of (seed, step).
        """
        import h5py

        with files.atomic_path(self.file(CHECKPOINT)) as tmp:
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

    def load_checkpoint(self, *, model, optimizer, fingerprints, total_steps):
        """Read and check checkpoint.h5 against this run, then restore the model's
        parameters and the optimizer's state. Returns (history, evals, best)."""
        import h5py

        path = self.file(CHECKPOINT)
        if not path.is_file():
            raise UsageError(f"no checkpoint at {path}; --resume needs a run directory "
                             "written with --checkpoint-every (or stopped by Ctrl-C)")
        try:
            with h5py.File(path, "r") as f:
                a = dict(f.attrs)
                if int(a.get("format", -1)) != CHECKPOINT_FORMAT:
                    raise PartrainError(f"checkpoint {path} has format {a.get('format')}, "
                                        f"this partrain reads format {CHECKPOINT_FORMAT}")
                _check_fingerprints(_json_attr(a, "fingerprints", dict, path), fingerprints, path)
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
                params = _read_array(f, "params", (P,), model.dtype, path)
                best_flat = (_read_array(f, "best_params", (P,), model.dtype, path)
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
                    state[key] = _read_array(f, f"optimizer/{key}", shape, dtype, path)
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


def _layout(model):
    return [(key, shape, i, pname, off) for key, i, pname, shape, off in model.layout]


def _read_array(f, key, shape, dtype, path):
    """f[key] if it has exactly ``shape`` and ``dtype`` and only finite values."""
    import h5py

    if key not in f or not isinstance(f[key], h5py.Dataset):
        raise PartrainError(f"{path}: missing array {key!r}")
    ds = f[key]
    if tuple(ds.shape) != tuple(shape):
        raise PartrainError(f"{path}: {key} has shape {tuple(ds.shape)}, expected {tuple(shape)}")
    if ds.dtype != np.dtype(dtype):
        raise PartrainError(f"{path}: {key} is {ds.dtype}, expected {np.dtype(dtype)}")
    value = ds[()]
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise PartrainError(f"{path}: {key} holds NaN or infinite values")
    return np.asarray(value)


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


def _check_fingerprints(saved, current, path):
    differ = [k for k in current if saved.get(k) != current[k]]
    if differ:
        raise UsageError(f"checkpoint {path} belongs to a run with different "
                         f"{' and '.join(differ)}; start a new run (another --out) instead")
