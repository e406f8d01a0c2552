"""The run directory: every file a run writes and reads back, in one place.

    config.json    every resolved setting, the model's layers, the data, fingerprints,
                   package versions and the machine
    model.pkl      the model pickled (cloudpickle), for models with classes of your own;
                   unpickling runs code, so it is read only with `allow_pickle`
                   (a model of partrain's own layers is rebuilt from config.json's
                   model.architecture instead: see architecture.py)
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

import csv
import json
import os
import pickle
from pathlib import Path

import numpy as np

from . import files
from ..errors import PartrainError, UsageError

CONFIG, MODEL_PKL, HISTORY, PARAMS, METRICS, CURVES, CHECKPOINT = (
    "config.json", "model.pkl", "history.csv", "model.h5", "metrics.json", "curves.png",
    "checkpoint.h5")
RUN_FILES = (CONFIG, MODEL_PKL, HISTORY, PARAMS, METRICS, CURVES, CHECKPOINT)
LOCK = ".partrain-lock"   # held (flock) by the process writing the run; see RunDir.lock

HISTORY_FIELDS = ["step", "epoch", "loss", "lr", "seconds", "worker_seconds",
                  "overhead_seconds", "eval_seconds", "train_loss", "train_acc",
                  "val_loss", "val_acc", "test_loss", "test_acc"]


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        self._lock_fd = None

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
            raise UsageError(f"`out` {p} exists and is not a directory")
        if p.is_dir() and any(f.name != LOCK for f in p.iterdir()):
            if not overwrite:
                raise UsageError(f"output directory {p} already exists; pass `overwrite=True` "
                                 "to replace it or choose another `out`")
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

    def lock(self):
        """Hold this run directory for this process (an exclusive ``flock`` on its
        .partrain-lock, made with the folder if need be) until :meth:`unlock` or the
        process ends, however it ends. Another process that asks is refused with one
        line naming the holder: two runs never write one directory."""
        import fcntl

        if self._lock_fd is not None:
            return self
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PartrainError(f"cannot write to output directory {self.path}: "
                                f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UsageError(f"run directory {self.path} is in use by process {holder}; "
                             "wait for it to end or choose another `out`") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        return self

    def unlock(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)   # closing the descriptor releases the flock
            self._lock_fd = None

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
        """model.pkl; a model that cannot be pickled (a layer holding a lock, an open
        file...) trains on the serial backend all the same, but has no model.pkl:
        say so, and go on."""
        import cloudpickle

        try:
            data = cloudpickle.dumps(model)
        except Exception as exc:
            from .. import log
            from ..engine.worker import unpicklable_part

            log.warn(f"{MODEL_PKL} not written: {unpicklable_part(model, exc)}")
            return
        with files.atomic_path(self.file(MODEL_PKL)) as tmp:
            Path(tmp).write_bytes(data)

    def read_model(self, allow_pickle=False):
        """The run's model, its parameters still to be read (:meth:`read_params`).

        A model of partrain's own layers is rebuilt from config.json (no code from the
        run directory runs); so is a preset named by an older run's command line. Any
        other model is only in model.pkl, and unpickling runs whatever code it names:
        that needs ``allow_pickle``, as numpy's ``np.load`` does."""
        record = self.read_config()
        arch = record["model"].get("architecture")
        if arch is not None:
            if not isinstance(arch, dict):
                raise PartrainError(f"{self.file(CONFIG)} is corrupt (model.architecture "
                                    "is not an object)")
            from .architecture import build

            return build(arch, self.file(CONFIG))
        preset = self._preset_of_older_run(record)
        if preset is not None:
            return preset
        if not allow_pickle:
            raise UsageError(
                f"the model of {self.path} has classes of its own (not only partrain's "
                f"layers), so it can only be rebuilt by unpickling {self.file(MODEL_PKL)}, "
                "which runs any code that file holds; pass `allow_pickle=True` only if "
                "you trust where this run directory came from")
        return self.read_model_architecture()

    def _preset_of_older_run(self, record):
        """A preset model, for a run directory written before config.json recorded the
        architecture: its command line named the preset, config.json the shapes."""
        spec, m = record.get("spec"), record["model"]
        if not isinstance(spec, dict) or spec.get("model_file") \
                or not isinstance(spec.get("model"), str):
            return None
        from ..presets import PRESETS, build_model

        if spec["model"] not in PRESETS:
            return None
        try:
            return build_model(spec["model"], seed=spec.get("seed", 0),
                               dtype=m.get("dtype", "float32"),
                               input_shape=tuple(m["input_shape"]),
                               num_classes=m["num_classes"])
        except (KeyError, TypeError, ValueError, UsageError) as exc:
            raise PartrainError(f"{self.file(CONFIG)} is corrupt (model: {exc})") from None

    def read_model_architecture(self):
        """The model as pickled at the start of the run (load_run then sets its
        parameters from model.h5). Unpickling runs code: only for runs you trust
        (:meth:`read_model` asks for ``allow_pickle`` first)."""
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

    def read_history(self):
        """history.csv as a list of rows ({column: int or float}); [] when absent."""
        try:
            with open(self.file(HISTORY), newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError:
            return []
        parsed = []
        for row in rows:
            out = {}
            for k, v in row.items():
                if v in ("", None):
                    continue
                try:
                    out[k] = int(v) if k in ("step", "epoch") else float(v)
                except ValueError:
                    out[k] = v
            parsed.append(out)
        return parsed

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
                for slot in model.layout:
                    values[slot.key] = read_array(f, prefix + slot.key, slot.shape,
                                                   model.dtype, path)
        except (UsageError, PartrainError):
            raise
        except Exception as exc:   # h5py raises OSError, KeyError, RuntimeError on bad bytes
            raise PartrainError(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None
        for key, value in values.items():
            model.params[key][...] = value
        return model


def read_array(f, key, shape, dtype, path):
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
