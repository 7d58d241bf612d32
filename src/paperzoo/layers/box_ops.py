"""Box utilities: thin wrappers over ``torchvision.ops`` (none of them is reimplemented).

Boxes travel through the DETR family as normalised ``cxcywh`` in [0, 1] (what the box
head predicts); COCO results and IoU maths use ``xyxy`` (or ``xywh`` for COCO JSON).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision import ops

nms = ops.nms                          # (boxes xyxy (N, 4), scores (N,), iou_thr) -> kept indices
batched_nms = ops.batched_nms          # per-class NMS via an index per box
roi_align = ops.roi_align              # (feats (B, C, H, W), rois (K, 5) or list, output_size, ...)
sigmoid_focal_loss = ops.sigmoid_focal_loss
generalized_box_iou = ops.generalized_box_iou          # pairwise (N, 4) x (M, 4) -> (N, M)
generalized_box_iou_loss = ops.generalized_box_iou_loss  # elementwise 1 - GIoU
box_iou = ops.box_iou


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    return ops.box_convert(boxes, "cxcywh", "xyxy")


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    return ops.box_convert(boxes, "xyxy", "cxcywh")


def xywh_to_cxcywh(boxes: Tensor) -> Tensor:
    """COCO ``[x, y, w, h]`` (top-left corner) to ``cxcywh``."""
    return ops.box_convert(boxes, "xywh", "cxcywh")


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``xyxy`` to COCO ``[x, y, w, h]``."""
    return ops.box_convert(boxes, "xyxy", "xywh")


def cxcywh_to_xywh(boxes: Tensor) -> Tensor:
    """``cxcywh`` to COCO ``[x, y, w, h]``."""
    return ops.box_convert(boxes, "cxcywh", "xywh")


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """logit(x), clamped so boxes at 0 or 1 stay finite (anchors live in this space)."""
    return torch.logit(x, eps=eps)
