"""Learning-rate schedules and early stopping, as pure functions of the run so far.

The rate of a step, and whether to stop, depend only on the step, its epoch and the
evaluations before it. A resumed run has those in its checkpoint, so it computes the
very rates and the very stop an uninterrupted run does: there is no schedule state to
save and none to get wrong.

Schedules (``lr_schedule``, a spec string):

* ``"step:every=E,factor=F"``: the rate times F every E epochs;
* ``"cosine"``: from the rate down to 0 over the run, half a cosine;
* ``"plateau:patience=P,factor=F"``: the rate times F whenever the validation accuracy
  (training accuracy without a validation split) has not improved for P evaluations.

``warmup_steps=W`` ramps the rate linearly from rate/W up to the rate over the first W
steps, on top of any schedule; ``lr_decay`` (per epoch) multiplies as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError

SCHEDULES = ("step", "cosine", "plateau")
_DEFAULTS = {"step": dict(every=1, factor=0.5), "cosine": {},
             "plateau": dict(patience=3, factor=0.5)}


@dataclass(frozen=True)
class Schedule:
    kind: str
    every: int = 1
    factor: float = 0.5
    patience: int = 3

    def __str__(self):
        opts = {k: getattr(self, k) for k in _DEFAULTS[self.kind]}
        return self.kind + (":" + ",".join(f"{k}={v:g}" for k, v in opts.items()) if opts else "")


def parse(spec):
    """A spec such as "step:every=10,factor=0.5" (or None) -> Schedule or None."""
    if spec is None or isinstance(spec, Schedule):
        return spec
    kind, _, options = str(spec).partition(":")
    if kind not in SCHEDULES:
        raise UsageError(f"`lr_schedule` must be one of {', '.join(SCHEDULES)} (with options "
                         f"such as step:every=10,factor=0.5), got {spec!r}")
    values = dict(_DEFAULTS[kind])
    for part in filter(None, (p.strip() for p in options.split(","))):
        name, _, text = part.partition("=")
        if name not in values:
            raise UsageError(f"`lr_schedule` {kind} takes {', '.join(values) or 'no options'}, "
                             f"not {name!r}")
        try:
            value = float(text) if name == "factor" else int(text)
        except ValueError:
            value = None
        if value is None or value <= 0 or (name == "factor" and value > 1):
            raise UsageError(f"`lr_schedule` option {part!r}: expected a positive "
                             f"{'number up to 1' if name == 'factor' else 'integer'}")
        values[name] = value
    return Schedule(kind, **values)


def metric_of(evaluation):
    """What plateaus and early stopping watch: validation accuracy, else training."""
    value = evaluation.get("val_acc")
    return evaluation.get("train_acc") if value is None else value


def _since_best(evals):
    """For each evaluation in turn: how many evaluations ago the watched metric last
    improved (0: this one did)."""
    best, since = None, 0
    for e in evals:
        value = metric_of(e)
        if value is not None and (best is None or value > best):
            best, since = value, 0
        else:
            since += 1
        yield since


def evaluations_since_best(evals):
    """How many evaluations ago the watched metric last improved (0: the latest did)."""
    counts = list(_since_best(evals))
    return counts[-1] if counts else 0


def lr_factor(schedule, warmup_steps, step, epoch, total_steps, evals):
    """The factor on the base rate at 0-based ``step`` of ``epoch`` (before lr_decay),
    given the evaluations made before this step."""
    factor = 1.0
    if schedule is not None:
        if schedule.kind == "step":
            factor = schedule.factor ** (epoch // schedule.every)
        elif schedule.kind == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * step / total_steps))
        elif schedule.kind == "plateau":
            factor = schedule.factor ** _plateaus(evals, schedule.patience)
    if warmup_steps:
        factor *= min(1.0, (step + 1) / warmup_steps)
    return factor


def _plateaus(evals, patience):
    """How many times the metric went ``patience`` evaluations without improving (each
    cut starts the count again)."""
    count, stale = 0, 0
    for since in _since_best(evals):
        stale = 0 if since == 0 else stale + 1
        if stale == patience:
            count, stale = count + 1, 0
    return count
