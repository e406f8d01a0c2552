"""Benchmarks shipped with the package: `partrain scale` and its PyTorch baseline."""
