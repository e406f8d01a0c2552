"""Sweeps: several settings x seeds trained as independent runs, in parallel across the
cores with joblib, each an ordinary run directory with the same bits as the same run
started alone; a summary that chooses on validation only.

    plan.py     the candidates: a grid and/or a list of settings, times seeds
    runner.py   running them with joblib (loky), stopping and resuming a sweep
    summary.py  summary.csv / summary.md / curves.png and the choice of the best
"""

from .plan import Candidate, expand
from .runner import SweepResult, run_sweep, share_cores

__all__ = ["Candidate", "expand", "SweepResult", "run_sweep", "share_cores"]
