"""The data layer: one Data container, the built-in datasets, your own files, checks
and augmentation."""
