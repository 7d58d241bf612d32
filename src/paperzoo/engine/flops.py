"""Model cost: forward FLOPs and parameter counts, for the cost columns of every study.

    flops = count_flops(model, images)                 # forward FLOPs of this batch
    per_img = flops_per_image(model, 96)               # one 3 × 96 × 96 image
    n = count_params(model, trainable_only=True)

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one real forward
pass (display off; model in eval mode under ``no_grad``; every module's training flag
restored afterwards). Its convention:

* a multiply-add counts as **2 FLOPs** (``mm`` of (m, k) @ (k, n) = 2·m·k·n; a convolution
  = 2 · output elements · C_in/groups · kh · kw), so numbers are ~2× "MACs"/"GMACs" as
  many papers (and ``fvcore``/``thop``) report them — halve before comparing;
* only matrix-multiply-like ops are counted (``mm``, ``addmm``, ``bmm``, convolutions,
  scaled-dot-product attention, ...): **elementwise ops are ignored** — bias adds
  (``Linear``'s ``addmm`` counts 2·m·k·n, the bias not at all), activations,
  normalisations, pooling, softmax outside SDPA, interpolation;
* the count is for the shapes of this forward pass: data-dependent control flow
  (e.g. a variable number of proposals) gives the count of the example given.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, example: Tensor, **forward_kwargs) -> int:
    """Forward FLOPs of ``model(example, **forward_kwargs)`` for the whole batch ``example``.

    Runs one forward pass in eval mode under ``torch.no_grad()`` and restores each
    module's ``training`` flag afterwards (also if the forward raises). 2 FLOPs per
    multiply-add, elementwise ops not counted (see the module docstring).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_flops: model must be a torch.nn.Module, got {type(model).__name__}")
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example, **forward_kwargs)
    finally:
        for m, was_training in flags:
            m.training = was_training
    return int(counter.get_total_flops())


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, (p.dtype if p.is_floating_point() else torch.float32)
    return torch.device("cpu"), torch.float32


def flops_per_image(model: nn.Module, image_size: int | Sequence[int], batch: int = 1, in_chans: int = 3) -> int:
    """Forward FLOPs per image of ``model`` on zero images ``(batch, in_chans, H, W)``.

    ``image_size``: ``S`` (square, px) or ``(H, W)`` px. The batch total is divided by
    ``batch`` (rounded), on the device and dtype of the model's first parameter.
    """
    hw = (image_size, image_size) if isinstance(image_size, (int, float)) else tuple(image_size)
    if len(hw) != 2 or any(int(s) != s or s < 1 for s in hw):
        raise ValueError(f"flops_per_image: image_size = {image_size!r}: expected S or (H, W), positive px")
    if int(batch) != batch or batch < 1 or int(in_chans) != in_chans or in_chans < 1:
        raise ValueError(f"flops_per_image: batch = {batch!r}, in_chans = {in_chans!r}: expected positive integers")
    device, dtype = _model_device_dtype(model)
    x = torch.zeros(int(batch), int(in_chans), int(hw[0]), int(hw[1]), device=device, dtype=dtype)
    return round(count_flops(model, x) / int(batch))


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (scalars; shared tensors once); only ``requires_grad`` ones if ``trainable_only``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
