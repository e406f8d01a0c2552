"""Small helpers shared by the test modules: build a trainer from names, find worker
processes, look for shared-memory leftovers."""

import glob
import os

import psutil

from partrain.names import open_data
from partrain.nn.optim import make_optimizer
from partrain.presets import build_model
from partrain.train.settings import TrainSettings
from partrain.data.container import Data
from partrain.train.trainer import Trainer

_DATA = {}


def data_for(dataset, data_dir=None, dtype="float32", val_split=0.0, seed=0):
    """A :class:`partrain.data.container.Data` for a named dataset (cached per arguments)."""
    key = (dataset, str(data_dir), dtype, val_split, seed)
    if key not in _DATA:
        _DATA[key] = open_data(dataset=dataset, data_dir=data_dir, dtype=dtype,
                               val_split=val_split, seed=seed)
    return _DATA[key]


def make_trainer(out=None, *, model="lenet5", dataset="digits32", data_dir=None,
                 dtype="float32", val_split=0.0, optimizer="momentum", lr=0.01, momentum=0.9,
                 weight_decay=0.0, seed=0, limit=None, **settings):
    """A Trainer for a preset on a named dataset; ``settings`` go to TrainSettings.
    ``limit``: keep only the first ``limit`` samples of every split (faster tests)."""
    data = data_for(dataset, data_dir, dtype, val_split, seed)
    if limit is not None:
        data = Data(**{k: (X[:limit], y[:limit]) for k, (X, y) in data.splits().items()},
                    num_classes=data.num_classes, name=data.name)
    m = build_model(model, seed=seed, dtype=dtype, input_shape=data.input_shape,
                    num_classes=data.num_classes)
    opt = make_optimizer(optimizer, lr, momentum=momentum, weight_decay=weight_decay)
    settings.setdefault("progress", False)
    s = TrainSettings(out=None if out is None else str(out), seed=seed, **settings)
    return Trainer(m, data, opt, s)


def shm_entries():
    """partrain's entries in /dev/shm: there must never be any (memfd is anonymous)."""
    return sorted(glob.glob("/dev/shm/partrain-*"))


def worker_processes(pid=None):
    """Live partrain worker processes started by ``pid`` (default: this process)."""
    try:
        kids = psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for k in kids:
        try:
            if "worker_main" in " ".join(k.cmdline()) and k.status() != psutil.STATUS_ZOMBIE:
                out.append(k)
        except psutil.NoSuchProcess:
            pass
    return out


def alive(pids):
    """The pids among ``pids`` that still run (zombies count as gone)."""
    live = []
    for p in pids:
        try:
            if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                live.append(p)
        except psutil.NoSuchProcess:
            pass
    return live


def memfd_links(pid=None):
    """The partrain memfd descriptors open in process ``pid`` (default: this one)."""
    fd_dir = f"/proc/{pid or os.getpid()}/fd"
    links = []
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("/memfd:partrain-"):
            links.append(target)
    return links
