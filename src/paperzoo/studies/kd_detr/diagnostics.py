"""Diagnostics of KD-DETR's premise (arXiv 2211.08071, §3.1: DETR distillation lacks
consistent distillation points) and of the teacher's reliability on the point sets.

``consistency`` (every student run, both models in eval mode, validation images): do teacher
and student predictions agree more on SHARED points than on each model's OWN queries? Every
point set gets the SAME pairing rule, so the comparison is not biased by it:

* pairing: per image, the student's K predictions are Hungarian-matched to the teacher's K
  predictions (teacher argmax class + box as pseudo ground truth, the DETR matching costs);
* weighting: each pair counts with the teacher's foreground confidence max_c sigmoid(t)
  (FRW), so background points, whose boxes no loss supervises, barely count;
* null: the same statistic with the teacher's predictions taken from another image of the
  batch (image-shuffled), i.e. the agreement the pairing rule finds between unrelated
  predictions. ``*_excess`` = value - null.

Sets: ``shared`` = the teacher's anchors (the specific points) decoded by both; ``general``
= one draw of general points (the anchor law); ``own`` = each model's detection queries.
``diag_iou_shared_id`` pairs the shared points by identity, as the KD loss does.
IoU: box IoU of paired predictions (fraction); KL: KL(softmax(t) || softmax(s)) at T = 1
summed over classes (nats). Final decoder layer only.

``teacher_reliability`` (teacher step): the teacher's confidence and its boxes' IoU with the
nearest ground-truth box at general points vs at its own anchors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from paperzoo.layers import box_ops
from paperzoo.layers.detr_lite import anchor_law_sample
from paperzoo.layers.matcher import HungarianMatcher

from .losses import frw_weights, match_to_teacher
from .sampling import forward_with_points, specific_points


def _pair_iou(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise IoU of cxcywh boxes (N, 4), (N, 4) -> (N,)."""
    a, b = box_ops.cxcywh_to_xyxy(a), box_ops.cxcywh_to_xyxy(b)
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp_min(1e-12)


def _agreement(s: dict, t: dict, matcher: HungarianMatcher | None) -> tuple[Tensor, Tensor, Tensor]:
    """Paired predictions of ``s`` and ``t`` ((B, K, ·) dicts) -> per-pair IoU, KL and teacher
    weight, all (P,). ``matcher`` None pairs by index."""
    if matcher is None:
        B, K = s["pred_boxes"].shape[:2]
        b = torch.arange(B).repeat_interleave(K)
        si = ti = torch.arange(K).repeat(B)
    else:
        b, si, ti = match_to_teacher(s, t, matcher)
    iou = _pair_iou(s["pred_boxes"][b, si], t["pred_boxes"][b, ti])
    kl = F.kl_div(F.log_softmax(s["pred_logits"][b, si], -1), F.softmax(t["pred_logits"][b, ti], -1),
                  reduction="none").sum(-1)
    w = frw_weights(t["pred_logits"][b, ti][None])
    return iou, kl, w


def _roll(out: dict) -> dict:
    """Predictions of image k -> image k+1 (mod B): the image-shuffled null."""
    return {k: out[k].roll(1, 0) for k in ("pred_logits", "pred_boxes")}


@torch.no_grad()
def consistency(student, teacher, images: Tensor, *, num_general: int, seed: int = 0, general_mean=0.0,
                general_std=1.0, batch_size: int = 64) -> dict[str, float]:
    """Diagnostic metrics over ``images`` (N, 3, H, W) float (module docstring). Batches of
    one image have no null (the null needs a second image)."""
    student.eval(), teacher.eval()
    matcher = HungarianMatcher()
    general = anchor_law_sample(num_general, general_mean, general_std, torch.Generator().manual_seed(seed + 7))
    acc: dict[str, list] = {}

    def add(name, iou, kl, w):
        for k, v in (("iou", iou), ("kl", kl), ("w", w)):
            acc.setdefault(f"{k}_{name}", []).append(v)

    for x in images.split(batch_size):
        s_own, s_pts = forward_with_points(student, x, {"specific": specific_points(teacher), "general": general})
        t_own, t_pts = forward_with_points(teacher, x, {"general": general})
        sets = {"shared": (s_pts["specific"], t_own), "general": (s_pts["general"], t_pts["general"]),
                "own": (s_own, t_own)}
        for name, (s, t) in sets.items():
            add(name, *_agreement(s, t, matcher))
            if len(x) > 1 and name != "general":
                add(f"{name}_null", *_agreement(s, _roll(t), matcher))
        add("shared_id", *_agreement(s_pts["specific"], t_own, None))
    out = {}
    for key in [k for k in acc if not k.startswith("w_")]:
        name = key.split("_", 1)[1]
        v, w = torch.cat(acc[key]), torch.cat(acc[f"w_{name}"])
        out[f"diag_{key}"] = float((v * w).sum() / w.sum().clamp_min(1e-12))
    for metric in ("iou", "kl"):
        for name in ("shared", "own"):
            if f"diag_{metric}_{name}_null" in out:
                out[f"diag_{metric}_{name}_excess"] = out[f"diag_{metric}_{name}"] - out[f"diag_{metric}_{name}_null"]
    return out


@torch.no_grad()
def teacher_reliability(teacher, images: Tensor, targets: list[dict], *, num_general: int, general_mean=0.0,
                        general_std=1.0, seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """How trustworthy the teacher's targets are at general points vs at its own anchors.

    images (N, 3, H, W) float; targets: N dicts with ``boxes`` (M, 4) normalised cxcywh. Per
    set: ``teacher_conf_<set>`` mean FRW weight max_c sigmoid; ``teacher_frac_conf_<set>``
    fraction of points with weight > 0.3; ``teacher_gtiou_<set>`` FRW-weighted mean IoU of the
    teacher's box with the nearest GT box of the image (fraction). Sets: ``own``, ``general``.
    """
    teacher.eval()
    g = torch.Generator().manual_seed(seed + 11)
    acc = {k: [] for k in ("w_own", "w_general", "iou_own", "iou_general")}
    for s in range(0, len(images), batch_size):
        x, tg = images[s:s + batch_size], targets[s:s + batch_size]
        general = anchor_law_sample(num_general, general_mean, general_std, g)
        own, pts = forward_with_points(teacher, x, {"general": general})
        for name, out in (("own", own), ("general", pts["general"])):
            w = out["pred_logits"].sigmoid().max(-1).values  # (B, K)
            for k, t in enumerate(tg):
                boxes = box_ops.cxcywh_to_xyxy(out["pred_boxes"][k])
                gt = box_ops.cxcywh_to_xyxy(t["boxes"].to(boxes.dtype))
                best = box_ops.box_iou(boxes, gt).max(-1).values if len(gt) else torch.zeros(len(boxes))
                acc[f"w_{name}"].append(w[k]), acc[f"iou_{name}"].append(best)
    out = {}
    for name in ("own", "general"):
        w, iou = torch.cat(acc[f"w_{name}"]), torch.cat(acc[f"iou_{name}"])
        out[f"teacher_conf_{name}"] = float(w.mean())
        out[f"teacher_frac_conf_{name}"] = float((w > 0.3).float().mean())
        out[f"teacher_gtiou_{name}"] = float((iou * w).sum() / w.sum().clamp_min(1e-12))
    return out
