"""What a run did: the per-step rows, the evaluations and the final summary."""

from __future__ import annotations

from dataclasses import dataclass, field

# Keys of a step row; every other key (train_acc, val_loss, eval_seconds...) belongs to
# an evaluation row.
STEP_KEYS = ("step", "epoch", "loss", "lr", "seconds")


@dataclass
class History:
    """What a run did. ``rows``: one dict per step (``step``, ``epoch``, ``loss``, ``lr``,
    timings, and ``train_acc``/``val_acc``/``test_acc`` and losses on evaluation steps);
    ``evals``: the evaluation rows only; ``metrics``: the summary written to
    metrics.json; ``out``: the run directory or None. ``history["loss"]`` is the
    per-step loss list, ``history["val_acc"]`` the per-evaluation list."""

    rows: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    out: str | None = None

    def __getitem__(self, key):
        rows = self.rows if key in STEP_KEYS else self.evals
        return [r.get(key) for r in rows]

    def __len__(self):
        return len(self.rows)
