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
        """The column ``key``: per step for step keys, per evaluation otherwise."""
        rows = self.rows if key in STEP_KEYS else self.evals
        if not any(key in r for r in rows):
            raise KeyError(f"{key!r}: the history has {', '.join(self.keys()) or 'no columns'}")
        return [r.get(key) for r in rows]

    def keys(self):
        """The columns this history holds, step columns first."""
        seen = {}
        for r in [*self.rows[:1], *self.evals[:1]]:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def columns(self):
        """{column: [value per step]}, None where a step has no value (evaluation
        columns off evaluation steps): ``pandas.DataFrame(history.columns())``."""
        names = self.keys()
        return {name: [row.get(name) for row in self.rows] for name in names}

    def to_csv(self, path):
        """Write :meth:`columns` as CSV, one row per step (empty where None)."""
        import csv

        columns = self.columns()
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for values in zip(*columns.values()):
                writer.writerow(["" if v is None else v for v in values])

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        last = self.evals[-1] if self.evals else {}
        accs = ", ".join(f"{k} {last[k]:.4f}" for k in ("train_acc", "val_acc", "test_acc")
                         if last.get(k) is not None)
        loss = f", last loss {self.rows[-1]['loss']:.4f}" if self.rows else ""
        return (f"History({len(self.rows)} steps, {len(self.evals)} evaluations{loss}"
                f"{', ' + accs if accs else ''}{', out=' + repr(self.out) if self.out else ''})")
