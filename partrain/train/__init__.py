"""The training layer: settings, the sampler, the loop and its commit protocol."""
