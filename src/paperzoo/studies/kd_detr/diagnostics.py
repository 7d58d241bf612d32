"""Consistency diagnostic (KD-DETR §3.1 premise): are teacher and student predictions on
SHARED distillation points more alike than on each model's own queries paired by matching?

For a trained student and the teacher (both eval mode) on validation images:

* ``diag_iou_shared`` / ``diag_kl_shared``: specific points (the teacher's anchors, decoded
  by both); ``diag_iou_general`` / ``diag_kl_general``: one fixed draw of random anchors;
* ``diag_iou_matched`` / ``diag_kl_matched``: each model's own detection queries, paired by
  Hungarian matching per image (as the naive KD does).

IoU: mean over points of the box IoU between teacher and student predictions (fraction);
KL: mean over points of KL(softmax(t) || softmax(s)), summed over classes, at T = 1 (nats).
All points count equally (no FRW), final decoder layer only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from paperzoo.layers import box_ops
from paperzoo.layers.matcher import HungarianMatcher

from .losses import match_to_teacher
from .sampling import forward_with_points, specific_points




def _pair_iou(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise IoU of cxcywh boxes (N, 4), (N, 4) -> (N,)."""
    a, b = box_ops.cxcywh_to_xyxy(a), box_ops.cxcywh_to_xyxy(b)
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp_min(1e-12)


@torch.no_grad()
def consistency(student, teacher, images: Tensor, *, num_general: int, seed: int = 0,
                batch_size: int = 64) -> dict[str, float]:
    """Diagnostic metrics over ``images`` (N, 3, H, W) float (see module docstring)."""
    student.eval(), teacher.eval()
    matcher = HungarianMatcher()
    general = torch.randn(num_general, 4, generator=torch.Generator().manual_seed(seed + 7))
    acc = {k: [] for k in ("iou_shared", "kl_shared", "iou_general", "kl_general", "iou_matched", "kl_matched")}
    for x in images.split(batch_size):
        pts = {"specific": specific_points(teacher), "general": general}
        s_own, s_pts = forward_with_points(student, x, pts)
        t_own, t_pts = forward_with_points(teacher, x, {"general": general})
        pairs = {"shared": (s_pts["specific"], t_own), "general": (s_pts["general"], t_pts["general"])}
        for name, (s, t) in pairs.items():
            iou = _pair_iou(s["pred_boxes"].flatten(0, 1), t["pred_boxes"].flatten(0, 1))
            kl = F.kl_div(F.log_softmax(s["pred_logits"].flatten(0, 1), -1),
                          F.softmax(t["pred_logits"].flatten(0, 1), -1), reduction="none").sum(-1)
            acc[f"iou_{name}"].append(iou), acc[f"kl_{name}"].append(kl)
        b, si, ti = match_to_teacher(s_own, t_own, matcher)
        iou = _pair_iou(s_own["pred_boxes"][b, si], t_own["pred_boxes"][b, ti])
        kl = F.kl_div(F.log_softmax(s_own["pred_logits"][b, si], -1), F.softmax(t_own["pred_logits"][b, ti], -1),
                      reduction="none").sum(-1)
        acc["iou_matched"].append(iou), acc["kl_matched"].append(kl)
    return {f"diag_{k}": float(torch.cat(v).mean()) for k, v in acc.items()}
