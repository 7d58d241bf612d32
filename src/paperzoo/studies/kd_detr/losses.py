"""KD-DETR's distillation loss (official ``KDCriterion``) and the naive matched-logit KD.

For one point set with student outputs ``s`` and teacher final-layer outputs ``t`` on the
SAME points (no matching), flattened over batch and points (N = B*K):

    w_n     = max_c sigmoid(t_logits[n, c])                 (FRW; detached; 1 without FRW)
    KL_n    = T^2 * mean_c p_t,c (log p_t,c - log p_s,c),   p = softmax(logits / T), T = 10
    L_cls   = sum_n w_n KL_n                                (summed, NOT normalised)
    L_bbox  = sum_n w_n |b_s - b_t|_1 / 4  / sum_n w_n      (normalised by the weight sum)
    L_giou  = sum_n w_n (1 - GIoU(b_s, b_t)) / sum_n w_n

The asymmetry (cls summed, boxes weight-normalised) is the official code's; it sets the
effective weight of the cls term (it grows with B*K). Without FRW (the paper's "general" and
"specific" rows) the official unweighted path AVERAGES the KL over points
(``loss_kl_div(weight=None)``: ``kd_loss.mean()``) and the boxes become plain means. The softmax KL is used although
detection itself uses sigmoid focal loss (official). Every student decoder layer (final and
auxiliary) is distilled against the teacher's FINAL layer; the per-layer terms are summed.
Coefficients (``KD_WEIGHTS``): cls 1, L1 5, GIoU 2 for both point sets (official).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from paperzoo.layers import box_ops
from paperzoo.layers.matcher import HungarianMatcher

KD_WEIGHTS = {"cls": 1.0, "bbox": 5.0, "giou": 2.0}  # official, auxrf and randomrf alike


def frw_weights(teacher_logits: Tensor) -> Tensor:
    """(B, K, C) teacher logits -> (B*K,) foreground confidence max_c sigmoid, detached (FRW)."""
    return teacher_logits.detach().flatten(0, 1).sigmoid().max(-1).values


def kl_per_point(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """(N, C), (N, C) -> (N,) T^2 * mean over classes of KL(softmax(t/T) || softmax(s/T))."""
    target = F.softmax(teacher_logits.detach() / temperature, -1)
    kl = F.kl_div(F.log_softmax(student_logits / temperature, -1), target, reduction="none")  # (N, C)
    return kl.mean(-1) * temperature ** 2


def point_loss(student: dict, teacher: dict, weight: Tensor | None, temperature: float,
               cls_norm: str = "sum") -> dict[str, Tensor]:
    """One layer: ``student``/``teacher`` dicts with ``pred_logits`` (B, K, C), ``pred_boxes``
    (B, K, 4) on the same points; ``weight`` (B*K,) FRW weights, or None for the official
    unweighted path (every term a mean over points). ``cls_norm``: ``"sum"`` (official:
    sum_n w_n KL_n) or ``"weight"`` (sum_n w_n KL_n / sum_n w_n, normalised like the box
    terms; a diagnostic, not the paper's). Returns ``cls``, ``bbox``, ``giou``."""
    if cls_norm not in ("sum", "weight"):
        raise ValueError(f"kd_detr: cls_norm {cls_norm!r}: expected 'sum' (official) or 'weight'")
    s_logits, t_logits = student["pred_logits"].flatten(0, 1), teacher["pred_logits"].flatten(0, 1)
    s_box, t_box = student["pred_boxes"].flatten(0, 1), teacher["pred_boxes"].detach().flatten(0, 1)  # (N, 4)
    l1 = (s_box - t_box).abs().mean(-1)  # (N,)
    # element-wise (N,), not the (N, N) pairwise matrix's diagonal: same value, O(N) cost
    giou = box_ops.generalized_box_iou_loss(box_ops.cxcywh_to_xyxy(s_box), box_ops.cxcywh_to_xyxy(t_box),
                                            reduction="none")
    kl = kl_per_point(s_logits, t_logits, temperature)
    if weight is None:
        return {"cls": kl.mean(), "bbox": l1.mean(), "giou": giou.mean()}
    w_sum = weight.sum().clamp_min(1e-8)
    cls = (kl * weight).sum() if cls_norm == "sum" else (kl * weight).sum() / w_sum
    return {"cls": cls, "bbox": (l1 * weight).sum() / w_sum, "giou": (giou * weight).sum() / w_sum}


def layers_of(outputs: dict) -> list[dict]:
    """Final and auxiliary decoder layers of a ``decode`` dict, final last."""
    return list(outputs.get("aux_outputs", [])) + [outputs]


def distill_points(student: dict, teacher: dict, *, temperature: float = 10.0, frw: bool = True,
                   cls_norm: str = "sum") -> dict[str, Tensor]:
    """KD loss of one point set summed over every student layer vs the teacher's final layer.

    student: ``decode`` dict of the student on the points (final + ``aux_outputs``);
    teacher: the teacher's outputs on the same points (only its final layer is used).
    ``frw``: weight points by the teacher's foreground confidence; False = the official
    unweighted path (means over points). ``cls_norm``: see :func:`point_loss`.
    Returns unweighted ``cls``, ``bbox``, ``giou`` (weights: ``KD_WEIGHTS``).
    """
    t_final = {"pred_logits": teacher["pred_logits"].detach(), "pred_boxes": teacher["pred_boxes"].detach()}
    w = frw_weights(t_final["pred_logits"]) if frw else None
    out = {k: 0.0 for k in KD_WEIGHTS}
    for layer in layers_of(student):
        for k, v in point_loss(layer, t_final, w, temperature, cls_norm).items():
            out[k] = out[k] + v
    return out


def match_to_teacher(student: dict, teacher: dict, matcher: HungarianMatcher) -> tuple[Tensor, Tensor, Tensor]:
    """Hungarian-match each image's student predictions to the teacher's predictions
    (teacher argmax class + box as pseudo ground truth). Returns flat ``(batch_idx,
    student_idx, teacher_idx)`` int64 tensors. (Used by the consistency diagnostic.)"""
    t_logits, t_boxes = teacher["pred_logits"].detach(), teacher["pred_boxes"].detach()
    pseudo = [{"labels": lg.argmax(-1), "boxes": b} for lg, b in zip(t_logits, t_boxes)]
    idx = matcher(student, pseudo)
    b = torch.cat([torch.full_like(i, k) for k, (i, _) in enumerate(idx)])
    return b, torch.cat([i for i, _ in idx]), torch.cat([j for _, j in idx])


def gt_matched_pairs(student: dict, teacher: dict, targets: list[dict],
                     matcher: HungarianMatcher) -> tuple[Tensor, Tensor, Tensor]:
    """Pair student and teacher queries THROUGH the ground truth (official
    ``get_matched_outputs``): each model is Hungarian-matched to the GT boxes of every image,
    and the student query matched to GT box j is paired with the teacher query matched to it.
    Foreground only: one pair per GT box. Returns flat ``(batch_idx, student_idx, teacher_idx)``."""
    s_idx = matcher({k: student[k] for k in ("pred_logits", "pred_boxes")}, targets)
    t_idx = matcher({k: teacher[k].detach() for k in ("pred_logits", "pred_boxes")}, targets)
    b, si, ti = [], [], []
    for k, ((sq, sg), (tq, tg)) in enumerate(zip(s_idx, t_idx)):
        s_by_gt = torch.empty_like(sq)
        s_by_gt[sg] = sq  # GT j -> student query
        t_by_gt = torch.empty_like(tq)
        t_by_gt[tg] = tq
        b.append(torch.full_like(sq, k)), si.append(s_by_gt), ti.append(t_by_gt)
    return torch.cat(b), torch.cat(si), torch.cat(ti)


def naive_kd_loss(student: dict, teacher: dict, targets: list[dict], matcher: HungarianMatcher, *,
                  temperature: float = 10.0) -> dict[str, Tensor]:
    """Arm 2, the official matched-logit KD (``--loss_kd_logits``): student and teacher OWN
    queries paired through their GT matches (``gt_matched_pairs``), per decoder layer (student
    layer l against teacher layer l, final against final; the auxiliary layers are zipped as
    the official code does). Per layer:

        cls  = mean over pairs of T^2 * mean_c KL(softmax(t/T) || softmax(s/T))   (unweighted)
        bbox = SmoothL1(beta = 1/9) of the cxcywh boxes, mean over pairs and coordinates

    summed over layers; official coefficients cls 10, bbox 1 (``naive_weights``).
    """
    out = {"cls": 0.0, "bbox": 0.0}
    s_layers, t_layers = [student] + list(student.get("aux_outputs", [])), \
        [teacher] + list(teacher.get("aux_outputs", []))
    for s, t in zip(s_layers, t_layers):
        b, si, ti = gt_matched_pairs(s, t, targets, matcher)
        if len(b) == 0:
            continue
        s_logits, t_logits = s["pred_logits"][b, si], t["pred_logits"][b, ti].detach()
        out["cls"] = out["cls"] + kl_per_point(s_logits, t_logits, temperature).mean()
        out["bbox"] = out["bbox"] + F.smooth_l1_loss(s["pred_boxes"][b, si], t["pred_boxes"][b, ti].detach(),
                                                     beta=1.0 / 9.0)
    return out
