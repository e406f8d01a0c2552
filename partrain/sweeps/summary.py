"""A sweep's summary: one row per candidate (summary.csv, summary.md), one plot of every
candidate's validation curve (curves.png), and the choice of the best candidate.

The choice looks at validation only: the highest best-step validation accuracy, ties to
the candidate listed first. Test accuracy is reported, never compared.
"""

from __future__ import annotations

import json

from ..run import files
from ..run.rundir import METRICS, RunDir

COLUMNS = ["candidate", "settings", "seed", "status", "steps", "best_val_acc", "best_step",
           "val_acc", "test_acc", "train_acc", "seconds"]


def candidate_row(out, candidate, state):
    """The summary row of one candidate, from its run directory."""
    run = RunDir(out / candidate.name)
    try:
        metrics = json.loads(run.file(METRICS).read_text())
    except (OSError, ValueError):
        metrics = {}
    if metrics and not metrics.get("stopped_by"):
        status = "done"
    elif state and 0 < state.get("code", 0) < 128:
        status = "failed: " + state.get("last_line", "").removeprefix("partrain: ")
    elif run.file("checkpoint.h5").is_file():
        status = "stopped (checkpoint kept)"
    else:
        status = "not run"
    return dict(candidate=candidate.name, settings=candidate.label(), seed=candidate.seed,
                status=status, steps=metrics.get("steps"),
                best_val_acc=metrics.get("best_val_acc"), best_step=metrics.get("best_step"),
                val_acc=metrics.get("val_acc"), test_acc=metrics.get("test_acc"),
                train_acc=metrics.get("train_acc"), seconds=metrics.get("total_seconds"))


def choose(rows):
    """The finished row with the highest validation accuracy, or None without any."""
    scored = [(r["best_val_acc"], -i) for i, r in enumerate(rows)
              if r["status"] == "done" and r["best_val_acc"] is not None]
    return rows[-max(scored)[1]] if scored else None


def by_settings(rows):
    """[(settings label, mean best validation accuracy over its finished seeds, seeds)],
    in candidate order: what a setting is worth, seed luck averaged out."""
    groups = {}
    for r in rows:
        if r["status"] == "done" and r["best_val_acc"] is not None:
            groups.setdefault(r["settings"], []).append(r["best_val_acc"])
    return [(label, sum(v) / len(v), len(v)) for label, v in groups.items()]


def write_summary(out, candidates, states):
    """Write summary.csv, summary.md and curves.png into ``out``; return (rows, best)."""
    rows = [candidate_row(out, c, states.get(c.name)) for c in candidates]
    best = choose(rows)
    files.write_csv(out / "summary.csv", rows, COLUMNS)
    files.write_text(out / "summary.md", markdown(rows, best))
    plot_validation(out / "curves.png", out, candidates)
    return rows, best


def _cell(value):
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(rows, best):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        mark = " **(best)**" if r is best else ""
        lines.append("| " + " | ".join(_cell(r[c]) + (mark if c == "candidate" else "")
                                       for c in COLUMNS) + " |")
    if best is None:
        chosen = ("No candidate was chosen: none finished with a validation split "
                  "(give `validation_split`).")
    else:
        chosen = (f"Best on validation: **{best['candidate']}** ({best['settings']}, seed "
                  f"{best['seed']}): validation accuracy {best['best_val_acc']:.4f} at step "
                  f"{best['best_step']}" + (f"; its test accuracy at the last step, {best['test_acc']:.4f}, is "
                                            "reported, never used to choose"
                                            if best["test_acc"] is not None else "") + ".")
    means = by_settings(rows)
    if means and len(means) < len(rows):   # several seeds per setting: average them
        top = max(range(len(means)), key=lambda i: (means[i][1], -i))
        lines += ["", "| settings | mean best validation accuracy | seeds |", "|---|---|---|"]
        lines += [f"| {label}{' **(best)**' if i == top else ''} | {mean:.4f} | {n} |"
                  for i, (label, mean, n) in enumerate(means)]
        chosen += (f" Best settings on validation, averaged over seeds: **{means[top][0]}** "
                   f"({means[top][1]:.4f}).")
    return "\n".join(lines + ["", chosen, ""])


def plot_validation(path, out, candidates):
    """Validation accuracy against step for every candidate (training loss where a run
    has no validation split)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ylabel = "validation accuracy"
    for c in candidates:
        rows = RunDir(out / c.name).read_history()
        evals = [r for r in rows if "val_acc" in r]
        if evals:
            ax.plot([r["step"] for r in evals], [r["val_acc"] for r in evals], lw=1,
                    label=f"{c.name}")
        elif rows:
            ylabel = "validation accuracy (training loss where there is no validation)"
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1, ls="--",
                    label=f"{c.name} (loss)")
    ax.set(xlabel="step", ylabel=ylabel, title=f"Sweep: {len(candidates)} candidates")
    ax.grid(alpha=0.3)
    if len(candidates) <= 24:
        ax.legend(fontsize=6)
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
