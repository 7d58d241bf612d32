"""APIS pieces: a box-conditioned mask head trained from point labels, and the active
selection of the next point per instance.

APIS (Tang et al., *Active Pointly-Supervised Instance Segmentation*, arXiv 2207.11493) trains
an instance segmenter from a few labelled points per object (PointSup, Cheng et al., arXiv
2104.06404) and chooses each instance's next point by the model's uncertainty instead of at
random. The official loop (chufengt/APIS on CondInst, read, not copied) is mirrored here on a
mask head that is given the ground-truth box, as APIS gives boxes as annotation:

* :class:`MaskHeadUNet` — RoIAlign crop of the image around the box (``expand`` x the box,
  ``size`` x ``size``) plus two crop-coordinate channels → a small U-Net → mask logits on the
  crop (the analogue of Mask R-CNN's 28 x 28 mask head, PointSup's architecture).
* :func:`point_loss` — PointSup's point loss: the logits are bilinearly sampled at the
  labelled points (``grid_sample``, ``align_corners=False``, pixel centres ``x + 0.5``) and
  scored by binary cross-entropy against the labels (detectron2 ``roi_mask_point_loss``).
* :func:`draw_points` — PointSup's rule for random points: ``floor(u * (w, h) + (x0, y0))``
  with ``u ~ U[0, 1)^2``, label = the ground-truth mask at (row, col).
* :func:`box_probabilities` — every view's foreground probability at the pixel centres of the
  instance's box (the paste-back); :func:`score_pixels` — the strategies' scores from them;
  :func:`select_points` — argmax inside the box with random ties (official: already-labelled
  pixels are NOT excluded).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperzoo.layers.registry import register_presets

STRATEGIES = ("random", "entropy", "bald", "oracle")
EPS = 1e-6


# --- the mask head ------------------------------------------------------------------------------

def _block(cin: int, cout: int) -> nn.Sequential:
    groups = math.gcd(cout, 4)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True))


class MaskHeadUNet(nn.Module):
    """A 3-level U-Net on a (B, 5, S, S) crop (RGB + 2 coordinate channels) → (B, 1, S, S)
    mask logits. Class-agnostic (one mask per box). ``S`` must be divisible by 4."""

    def __init__(self, widths: tuple[int, int, int] = (8, 16, 32), in_chans: int = 5):
        super().__init__()
        w1, w2, w3 = widths
        self.enc1, self.enc2, self.enc3 = _block(in_chans, w1), _block(w1, w2), _block(w2, w3)
        self.up2, self.dec2 = nn.ConvTranspose2d(w3, w2, 2, stride=2), _block(2 * w2, w2)
        self.up1, self.dec1 = nn.ConvTranspose2d(w2, w1, 2, stride=2), _block(2 * w1, w1)
        self.out = nn.Conv2d(w1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)


HEADS = {
    "apis_unet_s": dict(widths=(8, 16, 32)),     # mini: 30 k parameters
    "test_apis_unet": dict(widths=(4, 4, 8)),    # tests
}
register_presets(__name__, MaskHeadUNet, HEADS, "Box-conditioned U-Net mask head {defaults}.")


# --- instances, crops, points -------------------------------------------------------------------

@dataclass
class Instances:
    """Every annotated instance of one split, flattened.

    ``images`` float32 (N, 3, H, W) normalised; ``img_index`` (M,) row of ``images``;
    ``boxes`` float32 (M, 4) ``x0, y0, x1, y1`` px of the visible mask (COCO bbox, x1 = x0 + w);
    ``masks`` bool (M, H, W) visible masks; ``labels`` (M,) class; ``image_ids``/``category_ids``
    for COCO evaluation; ``coco_path`` the split's ground-truth JSON.
    """

    images: Tensor
    img_index: Tensor
    boxes: Tensor
    masks: Tensor
    labels: Tensor
    image_ids: list[int]
    category_ids: list[int]
    coco_path: object = None

    def __len__(self) -> int:
        return int(self.img_index.shape[0])


def instances_from_detection(dset, mean, std, n_images: int | None = None) -> Instances:
    """Flatten a :class:`~paperzoo.data.sets.DetectionSet` loaded with masks."""
    from paperzoo.data.sets import to_float

    n = len(dset) if n_images is None else min(int(n_images), len(dset))
    images = to_float(dset.images[:n], mean, std)
    idx, boxes, masks, labels = [], [], [], []
    for i in range(n):
        t = dset.targets[i]
        h, w = (int(v) for v in t["size"])
        b = t["boxes"].double()
        x0, y0 = (b[:, 0] - b[:, 2] / 2) * w, (b[:, 1] - b[:, 3] / 2) * h
        xyxy = torch.stack([x0, y0, x0 + b[:, 2] * w, y0 + b[:, 3] * h], 1)
        boxes.append(xyxy.round(decimals=4).float())
        masks.append(t["masks"])
        labels.append(t["labels"])
        idx.append(torch.full((len(t["labels"]),), i, dtype=torch.long))
    return Instances(images, torch.cat(idx), torch.cat(boxes), torch.cat(masks), torch.cat(labels),
                     list(dset.image_ids[:n]), list(dset.category_ids), dset.coco_path)


def crop_boxes(boxes: Tensor, expand: float, shift: tuple[float, float] = (0.0, 0.0)) -> Tensor:
    """The crop region of each box: ``expand`` x its size around its centre, moved by
    ``shift`` x (w, h) (the jittered views of the selection ensemble)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2 + shift[0] * w, (boxes[:, 1] + boxes[:, 3]) / 2 + shift[1] * h
    hw, hh = expand * w / 2, expand * h / 2
    return torch.stack([cx - hw, cy - hh, cx + hw, cy + hh], 1)


def coord_channels(n: int, size: int) -> Tensor:
    """(n, 2, S, S) x and y of each crop cell's centre in [-1, 1]."""
    r = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([xx, yy]).expand(n, 2, size, size)


def extract_crops(images: Tensor, img_index: Tensor, regions: Tensor, size: int) -> Tensor:
    """(M, 5, S, S): RoIAlign (``aligned=True``: pixel i covers [i, i + 1)) of each region of
    its image, plus the coordinate channels."""
    from torchvision.ops import roi_align

    rois = torch.cat([img_index.to(regions.dtype)[:, None], regions], 1)
    rgb = roi_align(images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return torch.cat([rgb, coord_channels(len(regions), size)], 1)


def to_grid(points_xy: Tensor, regions: Tensor) -> Tensor:
    """Integer pixel coordinates (..., n, 2) as (col, row) → ``grid_sample`` coordinates of
    their centres in each crop region: ``2 (x + 0.5 - x0) / (x1 - x0) - 1`` (align_corners=False)."""
    r = regions[:, None, :]
    x = (points_xy[..., 0].float() + 0.5 - r[..., 0]) / (r[..., 2] - r[..., 0])
    y = (points_xy[..., 1].float() + 0.5 - r[..., 1]) / (r[..., 3] - r[..., 1])
    return torch.stack([x, y], -1) * 2 - 1


def sample_logits(logits: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples of (B, 1, S, S) logits at (B, n, 2) grid points → (B, n)."""
    return F.grid_sample(logits, grid[:, :, None, :], mode="bilinear", padding_mode="border",
                         align_corners=False)[:, 0, :, 0]


def point_loss(logits: Tensor, grid: Tensor, labels: Tensor) -> Tensor:
    """PointSup's point loss: mean binary cross-entropy of the logits bilinearly sampled at the
    labelled points (arXiv 2104.06404 §3; detectron2 ``roi_mask_point_loss``)."""
    return F.binary_cross_entropy_with_logits(sample_logits(logits, grid), labels.float())


def draw_points(inst: Instances, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """PointSup's random points: ``n`` per instance, ``floor(u * (w, h) + (x0, y0))`` with
    u ~ U[0, 1)^2 in the annotated box; label = the visible mask at (row, col).
    Returns (M, n, 2) int64 (col, row) and (M, n) float labels."""
    m = len(inst)
    u = torch.rand(m, n, 2, generator=generator, dtype=torch.float64)
    b = inst.boxes.double()
    wh = (b[:, 2:] - b[:, :2])[:, None, :]
    xy = torch.floor(u * wh + b[:, None, :2]).long()
    h, w = inst.masks.shape[-2:]
    xy[..., 0].clamp_(0, w - 1)
    xy[..., 1].clamp_(0, h - 1)
    return xy, mask_at(inst.masks, xy)


def mask_at(masks: Tensor, xy: Tensor) -> Tensor:
    """The oracle: mask value at each (col, row) of (M, n, 2) → (M, n) float."""
    rows = torch.arange(masks.shape[0])[:, None].expand(xy.shape[:2])
    return masks[rows, xy[..., 1], xy[..., 0]].float()


# --- the box's pixel grid (paste-back) ---------------------------------------------------------

def box_pixel_grid(boxes: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Every pixel of each box on a common (G, G) grid anchored at ``floor(x0), floor(y0)``:
    (M, G, G, 2) int64 (col, row) and a (M, G, G) bool mask of the pixels inside the box
    (columns ``floor(x0) <= c < floor(x1)``, the official code's exclusive upper bound; with
    the mask's own extent as box this is every pixel of the mask)."""
    h, w = image_size
    lo = torch.floor(boxes[:, :2]).long()
    hi = torch.maximum(torch.floor(boxes[:, 2:]).long(), lo + 1)
    g = int((hi - lo).max()) if len(boxes) else 1
    ar = torch.arange(g)
    cols = lo[:, 0, None, None] + ar[None, None, :]
    rows = lo[:, 1, None, None] + ar[None, :, None]
    inside = (cols < hi[:, 0, None, None]) & (rows < hi[:, 1, None, None]) & (cols < w) & (rows < h)
    xy = torch.stack(torch.broadcast_tensors(cols, rows), -1)
    return xy, inside


def box_probabilities(model: nn.Module, inst: Instances, *, size: int, expand: float,
                      shifts: list[tuple[float, float]], hflip: bool, batch_size: int = 512
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """Foreground probability of every view at the pixel centres of each instance's box.

    Views: each ``shift`` of the crop region (x (w, h) of the box), and with ``hflip`` each of
    them mirrored (input mirrored, output mirrored back). Returns probabilities (V, M, G, G),
    the pixel grid (M, G, G, 2) and its inside-the-box mask (M, G, G); pixels outside the
    box have probability 0 (PointSup's test-time trick: masks are zeroed outside the box).
    """
    xy, inside = box_pixel_grid(inst.boxes, tuple(inst.masks.shape[-2:]))
    m, g = xy.shape[0], xy.shape[1]
    views = []
    for shift in shifts:
        regions = crop_boxes(inst.boxes, expand, shift)
        grid = to_grid(xy.reshape(m, g * g, 2), regions)
        for flip in ((False, True) if hflip else (False,)):
            out = torch.empty(m, g * g)
            for s in range(0, m, batch_size):
                sl = slice(s, s + batch_size)
                crops = extract_crops(inst.images, inst.img_index[sl], regions[sl], size)
                if flip:
                    crops[:, :3] = crops[:, :3].flip(-1)
                logits = model(crops)
                if flip:
                    logits = logits.flip(-1)
                out[sl] = torch.sigmoid(sample_logits(logits, grid[sl]))
            views.append(out.reshape(m, g, g) * inside)
    return torch.stack(views), xy, inside


def binary_entropy(p: Tensor) -> Tensor:
    p = p.clamp(EPS, 1 - EPS)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def score_pixels(strategy: str, probs: Tensor, gt: Tensor | None = None) -> Tensor:
    """The strategy's score of every pixel from the views' probabilities (V, M, G, G).

    * ``entropy`` (APIS, the released strategy): H(p̄), the binary entropy of the mean over the
      views (official: the mean over the proposals assigned to the instance). Entropy, margin
      and least confidence rank the pixels of one map identically, so they are one strategy.
    * ``bald`` (ours, not the paper's): H(p̄) − mean_v H(p_v), the views' disagreement.
    * ``oracle`` (a probe that reads the ground truth, not an upper bound): |p̄ − gt|, the error of the mean map.
    """
    pbar = probs.mean(0)
    if strategy == "entropy":
        return binary_entropy(pbar)
    if strategy == "bald":
        return binary_entropy(pbar) - binary_entropy(probs).mean(0)
    if strategy == "oracle":
        if gt is None:
            raise ValueError("score_pixels: the oracle strategy needs the ground-truth masks")
        return (pbar - gt.float()).abs()
    raise ValueError(f"score_pixels: unknown strategy {strategy!r}; model-based ones: entropy, bald, oracle")


def select_points(scores: Tensor, xy: Tensor, inside: Tensor, generator: torch.Generator,
                  rel_tol: float = 1e-6) -> Tensor:
    """The argmax of each instance's score inside its box, ties (within ``rel_tol`` of the
    max) broken uniformly at random → (M, 2) int64 (col, row). Already-labelled pixels are not
    excluded (as in the official loop)."""
    m = scores.shape[0]
    s = scores.reshape(m, -1).masked_fill(~inside.reshape(m, -1), -math.inf)
    best = s.max(1, keepdim=True).values
    ties = (s >= best - rel_tol * best.abs().clamp_min(EPS)) & inside.reshape(m, -1)
    noise = torch.rand(s.shape, generator=generator)
    pick = torch.where(ties, noise, torch.full_like(noise, -1.0)).argmax(1)
    return xy.reshape(m, -1, 2)[torch.arange(m), pick]


def gt_on_grid(inst: Instances, xy: Tensor, inside: Tensor) -> Tensor:
    """(M, G, G) ground-truth mask on each box's pixel grid (0 outside the box)."""
    h, w = inst.masks.shape[-2:]
    cols, rows = xy[..., 0].clamp(0, w - 1), xy[..., 1].clamp(0, h - 1)
    m = torch.arange(len(inst))[:, None, None]
    return inst.masks[m, rows, cols] & inside
