"""Image tensors as the models read them: uint8 batches → normalised float32.

On the engine floor so that the evaluation (``coco_eval``) and the in-memory data sets on the
floor above (which re-export :func:`to_float`) use one conversion.
"""
from __future__ import annotations

from typing import Sequence

import torch


def to_float(images: torch.Tensor, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) → float32 in [0, 1], then ``(x - mean) / std`` per channel if given."""
    x = images.float().div_(255.0)
    if mean is not None:
        m = torch.as_tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
        x = (x - m) / s
    return x
