"""DRKD building blocks: GloRe unit (PRD), instance-relation module (IRD), adapters, RoI pooling.

Written from the official code (github.com/nizhenliang/Dual-Relation-Knowledge-Distillation),
read, not copied:

* ``GloReUnit``  <- ``mmdet/models/detectors/GloRe.py``: ``GloRe_Unit`` / ``GloRe_Unit_2D``, ``GCN``
  (identical to facebookresearch/GloRe ``network/global_reasoning_unit.py``);
* ``ObjectRelation`` <- ``two_stage.py``: ``ObjectRelation_1`` (``forward``, ``resize``);
* ``Adapter`` <- ``two_stage.py``: ``non_local_adaptation``, ``relation_adaptation``,
  ``for_adaptation`` (all ``nn.Conv2d(256, 256, 1)``);
* ``roi_features`` <- ``two_stage.py``: ``TwoStageDetector.forward_train`` (``torchvision.ops.roi_align``).

Layout convention: a flattened RoI feature is ``(N, C * k * k)`` in channel-major order, i.e.
``(N, C, k, k).flatten(1)``, which is what the released ``x.view(bbox_num, -1)`` does.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

FILTERS = ("code", "none")


def glore_mid_channels(channels: int, level: int) -> int:
    """``num_mid`` of the level's GloRe unit as released: C/4 on the two largest levels
    (P2, P3), C on the others (``TwoStageDetector.__init__``: ``GloRe_Unit_2D(256, 64)`` x2,
    ``GloRe_Unit_2D(256, 256)`` x3)."""
    return channels // 4 if level < 2 else channels


class GloReUnit(nn.Module):
    """Graph-based global reasoning unit on a (B, C, H, W) map (``GloRe_Unit_2D``).

    With S = 2 * num_mid states and N = num_mid nodes, X_s = conv_state(x) (B, S, HW),
    B_p = conv_proj(x) (B, N, HW):

        V   = X_s B_p^T                        (B, S, N)   projection (no 1/HW unless normalize)
        H   = node_conv(V) + V                  i.e. V (I + A_g): Conv1d over nodes, PLUS identity
        Z   = state_conv(ReLU(H))               Conv1d over states, no bias
        Y   = Z B_p                             (B, S, HW) reverse projection (same B_p)
        out = x + BN(conv_extend(Y))            conv_extend 1x1, no bias; BN eps 1e-4

    ``normalize`` (False as released) multiplies V by 1/HW. ``zero_init`` zeroes the final BN
    weight so the unit starts as the identity; the released code does NOT (its comment says
    "should be zero initialized" but neither DRKD nor facebookresearch/GloRe does it), so the
    default is False (BN weight 1, bias 0).
    """

    def __init__(self, channels: int, num_mid: int, normalize: bool = False, zero_init: bool = False):
        super().__init__()
        self.num_s, self.num_n, self.normalize = 2 * num_mid, num_mid, normalize
        self.conv_state = nn.Conv2d(channels, self.num_s, 1)
        self.conv_proj = nn.Conv2d(channels, self.num_n, 1)
        self.node_conv = nn.Conv1d(self.num_n, self.num_n, 1)            # GCN.conv1 (bias)
        self.state_conv = nn.Conv1d(self.num_s, self.num_s, 1, bias=False)  # GCN.conv2
        self.conv_extend = nn.Conv2d(self.num_s, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels, eps=1e-4)                     # ``blocker``
        if zero_init:
            nn.init.zeros_(self.bn.weight)

    def reason(self, v: Tensor) -> Tensor:
        """The single-layer GCN on node states ``v`` (B, S, N) -> (B, S, N)."""
        h = self.node_conv(v.transpose(1, 2)).transpose(1, 2) + v
        return self.state_conv(F.relu(h))

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        xs = self.conv_state(x).flatten(2)                   # (B, S, HW)
        bp = self.conv_proj(x).flatten(2)                    # (B, N, HW)
        v = xs @ bp.transpose(1, 2)                          # (B, S, N)
        if self.normalize:
            v = v / xs.shape[-1]
        y = (self.reason(v) @ bp).view(b, self.num_s, h, w)  # (B, S, H, W)
        return x + self.bn(self.conv_extend(y))


def glore_pyramid(channels: int = 256, num_levels: int = 5, **kw) -> nn.ModuleList:
    """One ``GloReUnit`` per pyramid level with the released widths (``glore_mid_channels``)."""
    return nn.ModuleList(GloReUnit(channels, glore_mid_channels(channels, l), **kw) for l in range(num_levels))


def random_filter_mask(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The released "relation filter" (``ObjectRelation_1.resize``): a FRESH ``nn.Linear(D, n)``
    (default init, weight and bias ~ U(-1/sqrt(D), 1/sqrt(D))), never trained or registered,
    applied to the n instances (n, D) and soft-maxed over j -> (n, n), rows sum to 1.

    The weights are plain tensors drawn from ``generator`` (on its device, then moved) or from
    the global RNG; gradients still flow into ``x`` through the mask, as in the code."""
    n, d = x.shape
    bound = 1.0 / math.sqrt(d)
    dev = generator.device if generator is not None else x.device
    w = torch.rand(n, d, generator=generator, device=dev, dtype=x.dtype).to(x.device) * 2 * bound - bound
    b = torch.rand(n, generator=generator, device=dev, dtype=x.dtype).to(x.device) * 2 * bound - bound
    return F.softmax(F.linear(x, w, b), dim=-1)


def block_filter_mask(x: Tensor, outside: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``random_filter_mask`` of every image of a batch at once. x: (N, D) instances of all
    images; outside: (N, N) True where row and column belong to different images. One (N, D)
    weight and (N,) bias draw (row j is the filter output of instance j of its own image), the
    full (N, N) map, then a softmax over each row's own image only. Returns (N, N), zero across
    images; each diagonal block is a ``random_filter_mask`` of its image."""
    n, d = x.shape
    bound = 1.0 / math.sqrt(d)
    dev = generator.device if generator is not None else x.device
    w = torch.rand(n, d, generator=generator, device=dev, dtype=x.dtype).to(x.device) * 2 * bound - bound
    b = torch.rand(n, generator=generator, device=dev, dtype=x.dtype).to(x.device) * 2 * bound - bound
    return F.softmax(F.linear(x, w, b).masked_fill(outside, float("-inf")), dim=-1)


class ObjectRelation(nn.Module):
    """Instance-wise relation module (``ObjectRelation_1``), applied per image.

    For the n_i instances x (n_i, D) of one image: theta, phi, g = Linear(D, D/2), W = Linear(D/2, D),

        f   = theta(x) phi(x)^T                   (n_i, n_i), no 1/sqrt(d) scaling
        f   = f * M      with M = random_filter_mask(x)   (``filter="code"``; skipped for "none")
        A   = softmax_j(f)
        z   = W(A g(x)) + x

    ``filter="code"`` draws a new random filter for every image and every call (so the student
    and teacher sides use DIFFERENT filters, as released). A single-instance image gives A = [[1]].
    Input (N, D) or (N, C, k, k) (flattened, output reshaped back); ``sizes`` splits N into
    images (default: one image).
    """

    def __init__(self, dim: int, filter: str = "code"):
        super().__init__()
        if filter not in FILTERS:
            raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
        self.dim, self.inter, self.filter = dim, dim // 2, filter
        self.theta = nn.Linear(dim, self.inter)
        self.phi = nn.Linear(dim, self.inter)
        self.g = nn.Linear(dim, self.inter)
        self.W = nn.Linear(self.inter, dim)

    def _one(self, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """One image, written as the formula (the reference of the batched ``forward``)."""
        f = self.theta(x) @ self.phi(x).T
        if self.filter == "code":
            f = f * random_filter_mask(x, generator)
        att = F.softmax(f, dim=-1)
        return self.W(att @ self.g(x)) + x, att

    def forward(self, x: Tensor, sizes: list[int] | None = None, generator: torch.Generator | None = None,
                return_attention: bool = False):
        """All images at once: the relation logits of the whole batch are one (N, N) product,
        restricted to the per-image diagonal blocks by a -inf mask before each softmax, so that
        images never interact. Equal to ``_one`` per image (the filter weights are one (N, D)
        draw split into per-image (n_i, D) blocks: the same law as a fresh ``Linear(D, n_i)`` per
        image)."""
        shape = x.shape
        flat = x.reshape(shape[0], -1)
        if flat.shape[1] != self.dim:
            raise ValueError(f"instance dim {flat.shape[1]} != {self.dim}")
        sizes = [shape[0]] if sizes is None else list(sizes)
        if sum(sizes) != shape[0]:
            raise ValueError(f"sizes {sizes} do not add up to {shape[0]} instances")
        if shape[0] == 0:
            return (x, [flat.new_zeros(0, 0) for _ in sizes]) if return_attention else x
        image = torch.repeat_interleave(torch.arange(len(sizes), device=x.device),
                                        torch.tensor(sizes, device=x.device))
        outside = image[:, None] != image[None, :]                       # (N, N): pairs across images
        f = self.theta(flat) @ self.phi(flat).T
        if self.filter == "code":
            f = f * block_filter_mask(flat, outside, generator)
        att = F.softmax(f.masked_fill(outside, float("-inf")), dim=-1)   # block diagonal
        z = (self.W(att @ self.g(flat)) + flat).reshape(shape)
        if not return_attention:
            return z
        ends = torch.tensor(sizes).cumsum(0).tolist()
        return z, [att[e - n:e, e - n:e] for n, e in zip(sizes, ends)]


class Adapter(nn.Module):
    """Student-side adapter. As released it is always ``nn.Conv2d(C, C, 1)``: on pyramid maps
    (B, C, H, W) (PRD, FitNet) and on the (N, C, 3, 3) RoI grids (IRD ``relation_adaptation``,
    INS ``for_adaptation``), i.e. ONE C x C channel map shared by the k*k RoI positions, not a
    dense D x D linear. Flattened RoI vectors (N, C*k*k) are handled the same way.

    ``dense_dim`` (not in the released code) instead uses a dense ``nn.Linear(D, D)`` on
    flattened vectors (2-D inputs)."""

    def __init__(self, channels: int, dense_dim: int | None = None):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, 1)
        self.dense = nn.Linear(dense_dim, dense_dim) if dense_dim else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return self.conv(x)
        if x.dim() != 2:
            raise ValueError("Adapter takes (B, C, H, W) maps or (N, D) vectors")
        if self.dense is not None:
            return self.dense(x)
        n, d = x.shape
        if d % self.channels:
            raise ValueError(f"vector dim {d} is not a multiple of {self.channels} channels")
        return self.conv(x.view(n, self.channels, d // self.channels, 1)).reshape(n, d)


def roi_features(features: list[Tensor], boxes: list[Tensor], strides: list[float], output_size: int = 3,
                 sampling_ratio: int = -1, aligned: bool = False,
                 pool_from: str = "own") -> tuple[list[Tensor], list[int]]:
    """RoIAlign of ALL boxes on EVERY given level (no size-based level assignment).

    features: per level (B, C, H_l, W_l); boxes: per image (n_i, 4) xyxy in input pixels;
    strides: per level (spatial_scale = 1 / stride). Returns per level (N_total, C*k*k)
    (image-major, channel-major flattening) and the per-image sizes [n_i].

    Defaults follow the released call ``torchvision.ops.roi_align(x[l], boxes=[gt_bboxes[b]],
    output_size=3, spatial_scale=W_l / (4 W_0))``: torchvision defaults sampling_ratio=-1
    (adaptive ceil(roi/bin)) and aligned=False (no half-pixel shift); the two-stage code uses
    levels 0 and 1 (strides 4 and 8).

    ``pool_from="first"`` reproduces a bug of the release: passing ``[gt_bboxes[b]]`` (a one-
    element list) makes torchvision assign batch index 0, so the boxes of EVERY image are pooled
    from the FIRST image's features (student and teacher alike). ``"own"`` pools each image's
    boxes from its own features.
    """
    if pool_from not in ("own", "first"):
        raise ValueError("pool_from must be 'own' or 'first'")
    sizes = [int(b.shape[0]) for b in boxes]
    ref = features[0]
    if sum(sizes) == 0:
        return [f.new_zeros(0, f.shape[1] * output_size ** 2) for f in features], sizes
    idx = torch.cat([torch.full((n,), 0 if pool_from == "first" else i, dtype=ref.dtype, device=ref.device)
                     for i, n in enumerate(sizes)])
    rois = torch.cat([idx[:, None], torch.cat([b.to(ref).reshape(-1, 4) for b in boxes])], dim=1)
    out = []
    for feat, stride in zip(features, strides):
        r = roi_align(feat, rois, output_size, spatial_scale=1.0 / stride, sampling_ratio=sampling_ratio,
                      aligned=aligned)
        out.append(r.flatten(1))
    return out, sizes
