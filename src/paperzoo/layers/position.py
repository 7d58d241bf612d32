"""Sine positional encodings: of the feature-map grid (DETR) and of anchor boxes (DAB-DETR).

Both use the transformer's ``sin/cos(x / T^(2i/F))`` on coordinates scaled to ``[0, 2π]``.
Images in a batch share one size here (procedural data, fixed resize), so there is no
padding mask.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sine_embed(coords: Tensor, num_feats: int, temperature: float = 10000.0) -> Tensor:
    """Embed each coordinate in ``[0, 1]`` with ``num_feats`` sine/cosine features.

    coords: (..., K) e.g. anchors ``cx, cy, w, h`` (K=4). Returns (..., K * num_feats),
    coordinate-major, features interleaved ``sin, cos`` (DAB-DETR's
    ``gen_sineembed_for_position``, with the y-before-x order dropped: it is a fixed
    permutation that the following MLP absorbs).
    """
    assert num_feats % 2 == 0, "num_feats must be even (sin/cos pairs)"
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=coords.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)  # (F,)
    pos = coords[..., None].float() * (2 * math.pi) / dim_t  # (..., K, F)
    pos = torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)  # (..., K, F)
    return pos.flatten(-2)  # (..., K*F)


class PositionEmbeddingSine(nn.Module):
    """DETR's 2-D sine encoding of the feature grid: ``num_pos_feats`` per axis.

    forward(x (B, C, H, W)) -> (B, 2 * num_pos_feats, H, W), y features then x features;
    positions are pixel centres normalised to ``(0, 1)``.
    """

    def __init__(self, num_pos_feats: int = 64, temperature: float = 10000.0):
        super().__init__()
        self.num_pos_feats, self.temperature = num_pos_feats, temperature

    def forward(self, x: Tensor) -> Tensor:
        B, _, H, W = x.shape
        y = (torch.arange(H, dtype=torch.float32, device=x.device) + 0.5) / H  # (H,)
        xs = (torch.arange(W, dtype=torch.float32, device=x.device) + 0.5) / W  # (W,)
        grid = torch.stack(torch.meshgrid(y, xs, indexing="ij"), dim=-1)  # (H, W, 2)
        pos = sine_embed(grid, self.num_pos_feats, self.temperature)  # (H, W, 2F)
        return pos.permute(2, 0, 1).unsqueeze(0).expand(B, -1, -1, -1).to(x.dtype)  # (B, 2F, H, W)
