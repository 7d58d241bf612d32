"""APIS: active pointly-supervised instance segmentation (arXiv 2207.11493)."""
