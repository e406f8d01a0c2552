"""How many workers a run gets: the user's count checked against the machine, or the
backend's default for ``"auto"``."""

from __future__ import annotations

import os

import numpy as np

from ..errors import UsageError
from ..log import warn

# More workers than this many per logical core only thrash; a typo like
# workers=100000 must not fork-bomb the machine.
MAX_WORKERS_PER_CORE = 4


def check_worker_count(requested):
    """Refuse a worker count that is not "auto"/None or a sane positive integer."""
    if requested in (None, "auto"):
        return
    if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)) or requested < 1:
        raise UsageError(f"`workers` must be a positive integer or auto, got {requested!r}")
    cores = os.cpu_count() or 1
    if requested > MAX_WORKERS_PER_CORE * cores:
        raise UsageError(f"`workers` {requested} is more than {MAX_WORKERS_PER_CORE} per "
                         f"logical core ({cores} here); use `workers` auto")


def resolve_workers(requested, default):
    """A worker count from an int or "auto" (``default``), bounded by the machine."""
    check_worker_count(requested)
    if requested in (None, "auto"):
        return default
    cores = os.cpu_count() or 1
    if requested > cores:
        warn(f"{requested} workers on {cores} logical cores; they will share cores")
    return int(requested)
