"""Writing a run's files: every file appears whole or not at all.

Each writer writes a temporary file in the destination folder, flushes and fsyncs it,
then renames it over the target (rename is atomic on POSIX within one filesystem), so
a crash, a full disk or a kill never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success fsync it and rename it over
    ``path``; on failure remove it. The file gets the user's umask like any new file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; outputs follow the umask
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)   # make the rename itself durable
        finally:
            os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
