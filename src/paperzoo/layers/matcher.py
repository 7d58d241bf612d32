"""Hungarian matching between predictions and ground truth (DETR, Carion et al. 2020, §3.1).

One cost matrix for the whole batch, a weighted sum of named costs (class, L1 on
``cxcywh``, -GIoU), split per image and solved with scipy's ``linear_sum_assignment``.
Group DETR (arXiv 2207.13085, §3.2) matches every query group independently: the
queries are laid out group-major, ``(B, G*Q)``, the cost is built once and solved per
image per group, so each ground-truth box gets exactly ``G`` positives (one per group).
"""
from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from . import box_ops


class HungarianMatcher(nn.Module):
    """Optimal one-to-one assignment of queries to targets, per image (and per group).

    ``cost_class``, ``cost_bbox``, ``cost_giou``: weights of the named costs (DAB/Group
    DETR use 2 / 5 / 2 with ``focal=True``; DETR uses 1 / 5 / 2 with softmax).
    ``focal=True`` uses the focal-loss-shaped class cost on sigmoid scores (alpha, gamma as
    in the focal loss); ``False`` uses ``-softmax(logits)[target]`` over ``C+1`` logits.
    """

    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 focal: bool = True, focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        super().__init__()
        assert cost_class or cost_bbox or cost_giou, "all costs are zero"
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.focal, self.focal_alpha, self.focal_gamma = focal, focal_alpha, focal_gamma

    def class_cost(self, logits: Tensor, tgt_ids: Tensor) -> Tensor:
        """(N, C) logits, (M,) target ids -> (N, M) cost."""
        if not self.focal:
            return -logits.softmax(-1)[:, tgt_ids]
        p = logits.sigmoid()
        a, g = self.focal_alpha, self.focal_gamma
        neg = (1 - a) * p.pow(g) * -(1 - p + 1e-8).log()
        pos = a * (1 - p).pow(g) * -(p + 1e-8).log()
        return (pos - neg)[:, tgt_ids]

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict], num_groups: int = 1) -> list[tuple[Tensor, Tensor]]:
        """Match ``outputs`` to ``targets``.

        outputs: ``pred_logits`` (B, G*Q, C) and ``pred_boxes`` (B, G*Q, 4) cxcywh in [0, 1],
            queries group-major (group g is ``[g*Q, (g+1)*Q)``).
        targets: one dict per image with ``labels`` (M_b,) int64 and ``boxes`` (M_b, 4) cxcywh.
        num_groups: G; each group is matched independently.
        Returns one ``(query_idx, target_idx)`` pair of int64 tensors per image, each of
        length ``G * min(Q, M_b)``, query indices in ``[0, G*Q)``.
        """
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        B, GQ = logits.shape[:2]
        assert GQ % num_groups == 0, f"{GQ} queries do not split into {num_groups} groups"
        Q = GQ // num_groups
        sizes = [len(t["boxes"]) for t in targets]
        empty = torch.empty(0, dtype=torch.int64)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in range(B)]

        tgt_ids = torch.cat([t["labels"] for t in targets])  # (M,)
        tgt_boxes = torch.cat([t["boxes"] for t in targets])  # (M, 4)
        out_logits = logits.flatten(0, 1).float()  # (B*G*Q, C)
        out_boxes = boxes.flatten(0, 1).float()  # (B*G*Q, 4)
        cost = (self.cost_class * self.class_cost(out_logits, tgt_ids)
                + self.cost_bbox * torch.cdist(out_boxes, tgt_boxes, p=1)
                - self.cost_giou * box_ops.generalized_box_iou(box_ops.cxcywh_to_xyxy(out_boxes),
                                                               box_ops.cxcywh_to_xyxy(tgt_boxes)))
        cost = cost.view(B, num_groups, Q, -1).cpu()  # (B, G, Q, M)

        indices = []
        for b, c in enumerate(cost.split(sizes, -1)):  # c: (B, G, Q, M_b)
            if sizes[b] == 0:
                indices.append((empty, empty))
                continue
            rows, cols = [], []
            for g in range(num_groups):
                i, j = linear_sum_assignment(c[b, g].numpy())
                rows.append(torch.as_tensor(i, dtype=torch.int64) + g * Q)
                cols.append(torch.as_tensor(j, dtype=torch.int64))
            indices.append((torch.cat(rows), torch.cat(cols)))
        return indices
