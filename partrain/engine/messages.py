"""What the coordinator and its workers say to each other, as named tuples.

Every task carries ``seq``, the coordinator's message counter: a reply is matched to
the task it answers by (kind, seq), so a late answer from a worker that was given up on
is never mistaken for a fresh one. ``what`` says, for error messages, what the task
was part of ("step 12", "evaluation of test").
"""

from __future__ import annotations

from typing import NamedTuple


class GradientTask(NamedTuple):
    """Forward and backward on training chunks; each chunk's gradient sum goes to
    ``slots[chunk]``; the reply holds each chunk's loss sum.

    chunks: [(chunk index, sample indices (k,) int64), ...].
    key: the trainer's (seed, step): with the chunk index it keys every random draw of
    the chunk (augmentation, and layers through partrain.nn.training_rng).
    augment: None or an augmentation: each chunk's images are transformed first
    (partrain.data.augment).
    """

    seq: int
    what: str
    chunks: list
    key: tuple
    augment: object

    kind = "gradient"


class ReduceTask(NamedTuple):
    """``grad[lo:hi]`` = the sum of slots[:n_chunks, lo:hi] / batch (backends whose
    slots are shared memory)."""

    seq: int
    what: str
    n_chunks: int
    batch: int
    lo: int
    hi: int

    kind = "reduce"


class EvaluateTask(NamedTuple):
    """Forward only on ``split[lo:hi]`` for each chunk; the reply holds each chunk's
    (loss sum, correct count, scores or None)."""

    seq: int
    what: str
    split: str
    chunks: list          # [(chunk index, lo, hi), ...]
    want_scores: bool

    kind = "evaluate"


class Reply(NamedTuple):
    """A finished task: ``results`` is {chunk index: result} (empty for a reduction)."""

    kind: str
    seq: int
    seconds: float        # time the worker spent on the task
    peak_rss: int         # the worker's peak resident bytes so far
    results: dict


class Failure(NamedTuple):
    """A task whose model code raised: ``where`` names the chunk, ``detail`` the
    exception in one line, ``traceback`` the whole of it, as text."""

    kind: str
    seq: int
    what: str
    where: str
    detail: str
    traceback: str


class Stop(NamedTuple):
    """Tells a worker process to exit."""

    kind = "stop"
