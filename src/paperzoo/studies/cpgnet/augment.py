"""Scan batching and the CPGNet training augmentation (official ``datasets/data.py``).

TCL needs the *same points* in both views: resample first (one shared index), then
transform a copy (``augment``) and keep the raw one.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from paperzoo.engine.train import IndexBatches, step_generator

AUG = dict(rot_deg=180.0, flip=True, scale=(0.95, 1.05), shift_xy=3.0, shift_z=0.4, noise=1e-4)  # official values


def augment(xyzi: Tensor, g: torch.Generator, rot_deg: float = 180.0, flip: bool = True, scale=(0.95, 1.05),
            shift_xy: float = 3.0, shift_z: float = 0.4, noise: float = 1e-4) -> Tensor:
    """Random z-rotation U(±rot_deg), x/y sign flips, isotropic scale, shift U(±shift) [m],
    Gaussian jitter σ=``noise`` [m] of ``xyzi (B, N, 4)`` (one transform per scan)."""
    B = xyzi.shape[0]
    out = xyzi.clone()
    u = torch.rand(B, 7, generator=g)
    a = (2 * u[:, 0] - 1) * math.radians(rot_deg)
    c, s = torch.cos(a), torch.sin(a)
    x, y = out[..., 0].clone(), out[..., 1].clone()
    out[..., 0], out[..., 1] = c[:, None] * x - s[:, None] * y, s[:, None] * x + c[:, None] * y
    if flip:
        out[..., 0] *= torch.where(u[:, 1] < 0.5, -1.0, 1.0)[:, None]
        out[..., 1] *= torch.where(u[:, 2] < 0.5, -1.0, 1.0)[:, None]
    out[..., :3] *= (scale[0] + (scale[1] - scale[0]) * u[:, 3])[:, None, None]
    out[..., 0] += ((2 * u[:, 4] - 1) * shift_xy)[:, None]
    out[..., 1] += ((2 * u[:, 5] - 1) * shift_xy)[:, None]
    out[..., 2] += ((2 * u[:, 6] - 1) * shift_z)[:, None]
    out[..., :3] += noise * torch.randn(out[..., :3].shape, generator=g)
    return out


class ScanBatches:
    """``batches(i)`` for ``engine.train``: ``batch_size`` scans resampled with replacement to
    ``n_points`` each (seeded by ``(seed, i)``) → ``{"xyzi": (B, N, 4) augmented, "raw": (B, N, 4)
    or None, "target": (B, N) int64}``."""

    def __init__(self, scans: list[tuple[np.ndarray, np.ndarray]], batch_size: int, n_points: int, seed: int = 0,
                 tcl: bool = False, aug: dict | None = None):
        self.scans, self.n_points, self.seed, self.tcl = scans, n_points, seed, tcl
        self.aug = AUG if aug is None else aug
        self.order = IndexBatches(len(scans), batch_size, seed)

    def __call__(self, i: int) -> dict:
        g = step_generator(self.seed, i)
        xs, ts = [], []
        for j in self.order(i).tolist():
            pts, lab = self.scans[j]
            sel = torch.randint(len(pts), (self.n_points,), generator=g)
            xs.append(torch.from_numpy(pts)[sel]); ts.append(torch.from_numpy(lab)[sel])
        raw = torch.stack(xs)
        return {"xyzi": augment(raw, g, **self.aug), "raw": raw if self.tcl else None, "target": torch.stack(ts).long()}


def make_loss_fn(lovasz_weight: float = 2.0, tcl_weight: float = 1.0):
    """``loss_fn(model, batch)`` for ``engine.train`` (TCL on when the batch carries ``raw``)."""
    from .losses import cpgnet_loss

    def loss_fn(model, batch):
        return cpgnet_loss(model, batch["xyzi"], batch["target"], batch["raw"], lovasz_weight, tcl_weight)

    return loss_fn
