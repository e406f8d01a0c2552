"""Writing a run's files: every file appears whole or not at all.

Each writer writes a temporary file in the destination folder, flushes and fsyncs it,
then renames it over the target (rename is atomic on POSIX within one filesystem), so
a crash, a full disk or a kill never leaves a half-written output behind.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import errno
import io
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import PartrainError
from ..log import warn


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success fsync it and rename it over
    ``path``; on failure remove it. The file gets the user's umask like any new file.

    An OSError while writing (a full disk, a quota, an I/O error), from Python or from
    HDF5, becomes one PartrainError line naming ``path`` and the reason."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; outputs follow the umask
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)   # make the rename itself durable
        finally:
            os.close(dir_fd)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            raise PartrainError(f"cannot write {path}: {_reason(exc)}") from exc
        raise


def _reason(exc):
    """What went wrong, in a few words: h5py's OSErrors carry the errno of the failed
    write but a message of several lines (time, buffer address, offsets)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return os.strerror(exc.errno).lower()
    if isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def write_text(path, text):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_csv(path, rows, fields):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    write_text(path, buf.getvalue())


def write_params_h5(path, params, groups=None, attrs=None):
    """Save ``params`` (dict name -> array) as one dataset per name at the root, plus
    optional ``groups`` ({group name: dict of arrays}) and root attributes."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in params.items():
                f.create_dataset(key, data=value)
            for gname, arrays in (groups or {}).items():
                g = f.create_group(gname)
                for key, value in arrays.items():
                    g.create_dataset(key, data=value)
            for key, value in (attrs or {}).items():
                f.attrs[key] = value


def plot_curves(path, history, evals):
    """Loss per step and train/test accuracy at each evaluation, as one PNG."""
    with _matplotlib_said() as plt:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.plot([r["step"] for r in history], [r["loss"] for r in history], lw=1)
        ax1.set(xlabel="step", ylabel="training loss (batch mean)", title="Loss")
        ax1.grid(alpha=0.3)
        if evals:
            steps = [e["step"] for e in evals]
            ax2.plot(steps, [e["train_acc"] for e in evals], "o-", label="train")
            if evals[0].get("test_acc") is not None:
                ax2.plot(steps, [e["test_acc"] for e in evals], "s-", label="test")
            ax2.legend()
        ax2.set(xlabel="step", ylabel="accuracy", title="Accuracy", ylim=(0, 1.02))
        ax2.grid(alpha=0.3)
        fig.tight_layout()
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=100)
        finally:
            plt.close(fig)


# What matplotlib logs that says nothing about the run (a first import in a fresh
# cache directory builds its font list).
_MATPLOTLIB_CHATTER = ("building the font cache",)


@contextlib.contextmanager
def _matplotlib_said():
    """Yield matplotlib.pyplot on the Agg backend. What matplotlib logs meanwhile (a
    bad matplotlibrc, an unwritable home) is not left on stderr as its own lines of
    several lines each: the first thing worth saying becomes one partrain warning."""
    said = []

    class Keep(logging.Handler):
        def emit(self, record):
            said.append(record)

    mpl_log = logging.getLogger("matplotlib")
    keep, propagate = Keep(logging.WARNING), mpl_log.propagate
    mpl_log.addHandler(keep)
    mpl_log.propagate = False
    try:
        if "matplotlib" not in sys.modules:
            _writable_matplotlib_dir()
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        yield plt
    finally:
        mpl_log.removeHandler(keep)
        mpl_log.propagate = propagate
        lines = [line for line in (_first_line(r) for r in said)
                 if line and not any(c in line for c in _MATPLOTLIB_CHATTER)]
        if lines:
            more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
            warn(f"matplotlib: {lines[0]}{more}")


def _first_line(record):
    try:
        text = record.getMessage()
    except Exception:   # a record whose arguments do not fit its format
        text = str(record.msg)
    return text.strip().split("\n")[0].strip()


def _writable_matplotlib_dir():
    """Point MPLCONFIGDIR at a temporary folder (removed at exit) when matplotlib's
    default configuration or cache folder cannot be written (HOME read-only, absent,
    or not a folder): matplotlib would do the same, with a warning of several lines."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = os.environ.get("HOME") or "~"
    if sys.platform.startswith(("linux", "freebsd")):
        bases = [os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"),
                 os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")]
        folders = [os.path.join(os.path.expanduser(b), "matplotlib") for b in bases]
    else:
        folders = [os.path.join(os.path.expanduser(home), ".matplotlib")]
    for folder in folders:
        try:
            os.makedirs(folder, exist_ok=True)
            usable = os.path.isdir(folder) and os.access(folder, os.W_OK)
        except OSError:
            usable = False
        if not usable:
            break
    else:
        return
    tmp = tempfile.mkdtemp(prefix="partrain-matplotlib-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    os.environ["MPLCONFIGDIR"] = tmp
