"""Run outputs: the run directory, its files, checkpoints and resume."""
