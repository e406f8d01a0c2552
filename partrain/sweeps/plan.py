"""The candidates of a sweep: every combination of a grid's values, times every listed
variant, times every seed. A candidate is a set of settings and a seed; its name is its
run directory's name inside the sweep folder."""

from __future__ import annotations

import itertools
import re
from typing import NamedTuple

from ..errors import UsageError


class Candidate(NamedTuple):
    """settings: ((setting name, value), ...) that this candidate sets, in the order
    given; seed: its ``seed``; name: its run directory inside the sweep folder."""

    name: str
    settings: tuple
    seed: int

    def label(self):
        """"lr=0.01 batch_size=64", or "(base settings)"."""
        return " ".join(f"{k}={v}" for k, v in self.settings) or "(base settings)"


def expand(grid=None, variants=None, seeds=(0,)):
    """Candidates for ``variants`` (a list of {setting: value}; default one empty) x the
    grid ({setting: [values]}, every combination) x ``seeds``, in that nesting order.

    A grid setting also set by a variant overrides the variant's value.
    """
    grid = dict(grid or {})
    variants = [dict(v) for v in (variants or [{}])]
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise UsageError("a sweep needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"`seeds` lists a seed twice: {seeds}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise UsageError(f"grid values of {name!r} must be a list, got {values!r}")
        if not list(values):
            raise UsageError(f"the grid gives no values for {name!r}")
    combos = list(itertools.product(*[[(k, v) for v in vals] for k, vals in grid.items()]))
    candidates = []
    for variant in variants:
        for combo in combos:
            settings = {**variant, **dict(combo)}
            for seed in seeds:
                settings_items = tuple(settings.items())
                index = len(candidates)
                candidates.append(Candidate(directory_name(index, settings_items, seed),
                                            settings_items, seed))
    if len({c.settings + (("seed", c.seed),) for c in candidates}) != len(candidates):
        raise UsageError("two candidates of the sweep would be the same run; list each "
                         "setting once")
    return candidates


def directory_name(index, settings, seed):
    """"03-lr=0.01-batch_size=64-seed1": the index keeps names unique and sorted."""
    parts = [f"{index:02d}", *(f"{k}={v}" for k, v in settings), f"seed{seed}"]
    name = "-".join(parts)
    name = re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)
    return name[:120]
