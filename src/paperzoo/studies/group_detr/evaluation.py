"""Group-wise evaluation of a DETR-lite with K query groups.

Group DETR trains K groups and infers with group 0 only (arXiv 2207.13085, §3.2: "we only use
the first group of queries for inference"), post-processed by a top-k over (query, class)
scores without NMS. The functions here decode every group at once and score:

* ``AP`` etc.: group 0, no NMS (what the method deploys);
* ``AP_g<i>``: each group alone (are the groups interchangeable?), ``per_group_AP_spread``
  = max - min over groups;
* ``AP_allgroups_noNMS`` / ``AP_allgroups_NMS``: the K x Q queries pooled, top-k, without and
  with class-wise NMS;
* ``nms_gain_g0`` = AP(group 0 + NMS) - AP(group 0) and ``nms_gain_allgroups`` = AP(all + NMS)
  - AP(all, no NMS): threshold-free duplicate measures (how much AP suppressing duplicates
  recovers).
"""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor

COCO_KEYS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")


def decode_all(model, val, mean, std, num_groups: int, batch_size: int = 64) -> dict[str, Tensor]:
    """``pred_logits`` (N, G*Q, C) and ``pred_boxes`` (N, G*Q, 4) of every val image, all
    ``num_groups`` groups decoded (eval mode)."""
    from paperzoo.data.sets import to_float

    model.eval()
    logits, boxes = [], []
    with torch.no_grad():
        for s in range(0, len(val), batch_size):
            out = model(to_float(val.images[s:s + batch_size], mean, std), num_groups=num_groups)
            logits.append(out["pred_logits"])
            boxes.append(out["pred_boxes"])
    return {"pred_logits": torch.cat(logits), "pred_boxes": torch.cat(boxes)}


def detections(outputs: dict, sizes: Tensor, *, top_k: int, nms_iou: float | None = None) -> list[dict]:
    """Top-``top_k`` (query, class) detections per image (``PostProcess``), then class-wise NMS
    at ``nms_iou`` when given (``torchvision.ops.batched_nms``)."""
    from torchvision.ops import batched_nms

    from paperzoo.layers.detr_lite import PostProcess

    dets = PostProcess(top_k=top_k, focal=True)(outputs, sizes)
    if nms_iou is None:
        return dets
    out = []
    for d in dets:
        keep = batched_nms(d["boxes"], d["scores"], d["labels"], nms_iou)
        out.append({k: v[keep] for k, v in d.items()})
    return out


def coco_metrics(dets: list[dict], val, *, area_rule: str) -> dict[str, float]:
    from paperzoo.engine.coco_eval import evaluate as coco_evaluate, results_from_predictions

    res = results_from_predictions(dets, val.image_ids, val.category_ids)
    m = coco_evaluate(val.coco_path, res, area_rule=area_rule, img_ids=val.image_ids)
    return {k: float(m[k]) for k in COCO_KEYS if math.isfinite(m[k])}


def _slice(out: dict, a: int, b: int) -> dict:
    return {"pred_logits": out["pred_logits"][:, a:b], "pred_boxes": out["pred_boxes"][:, a:b]}


def evaluate_groups(model, val, mean, std, *, top_k: int, nms_iou: float, area_rule: str,
                    per_group: bool = True) -> dict[str, float]:
    """Group 0's COCO metrics (the deployed model) and, for K > 1 with ``per_group``, the
    per-group and pooled-groups measures of the module doc; ``nms_gain_g0`` always."""
    k, q = model.num_groups, model.num_queries
    out = decode_all(model, val, mean, std, k if per_group else 1)
    sizes = torch.stack([t["orig_size"] for t in val.targets])
    g0 = _slice(out, 0, q)
    metrics = coco_metrics(detections(g0, sizes, top_k=top_k), val, area_rule=area_rule)
    ap_g0_nms = coco_metrics(detections(g0, sizes, top_k=top_k, nms_iou=nms_iou), val, area_rule=area_rule)["AP"]
    metrics["AP_g0_NMS"] = ap_g0_nms
    metrics["nms_gain_g0"] = ap_g0_nms - metrics["AP"]
    if per_group and k > 1:
        aps = [metrics["AP"]] + [coco_metrics(detections(_slice(out, g * q, (g + 1) * q), sizes, top_k=top_k), val,
                                              area_rule=area_rule)["AP"] for g in range(1, k)]
        metrics.update({f"AP_g{g}": a for g, a in enumerate(aps)})
        metrics["per_group_AP_spread"] = max(aps) - min(aps)
        metrics["per_group_AP_std"] = float(torch.tensor(aps).std())
        no = coco_metrics(detections(out, sizes, top_k=top_k), val, area_rule=area_rule)["AP"]
        yes = coco_metrics(detections(out, sizes, top_k=top_k, nms_iou=nms_iou), val, area_rule=area_rule)["AP"]
        metrics.update(AP_allgroups_noNMS=no, AP_allgroups_NMS=yes, nms_gain_allgroups=yes - no)
    return metrics


def inference_ms_per_img(model, val, mean, std, *, n: int = 128, batch_size: int = 32, repeats: int = 2) -> float:
    """Wall ms per image of the deployed forward (eval mode: group 0 only), best of
    ``repeats`` passes over the first ``n`` val images (after one warm-up batch)."""
    from paperzoo.data.sets import to_float

    model.eval()
    x = to_float(val.images[:n], mean, std)
    best = math.inf
    with torch.no_grad():
        model(x[:batch_size])
        for _ in range(repeats):
            t0 = time.perf_counter()
            for s in range(0, len(x), batch_size):
                model(x[s:s + batch_size])
            best = min(best, (time.perf_counter() - t0) * 1000 / len(x))
    return best
