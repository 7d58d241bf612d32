"""CPGNet evaluation: per-class IoU, mIoU (label 0 ignored), 4-flip TTA, flip consistency.

``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` over all evaluated points (a confusion matrix
accumulated over scans, as the SemanticKITTI API does); mIoU = mean over classes 1..K−1
with a non-empty union. TTA (official ``evaluate.py``): average of the softmax over the
identity, x-flip, y-flip and xy-flip of the input. Predictions take the argmax over
classes 1..K−1 (class 0 is never a prediction).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

FLIPS = ((1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0))   # (x sign, y sign); first = identity


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = ground truth, cols = prediction; ignored (0) targets dropped."""
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    keep = target != 0
    return np.bincount(target[keep] * num_classes + pred[keep], minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """IoU of classes 1..K−1 (NaN where the class is neither present nor predicted)."""
    tp = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / union
    return iou[1:]


def miou(conf: np.ndarray) -> float:
    return float(np.nanmean(iou_per_class(conf)))


def flip(xyzi: Tensor, sx: float, sy: float) -> Tensor:
    out = xyzi.clone()
    out[..., 0] *= sx
    out[..., 1] *= sy
    return out


@torch.no_grad()
def predict_probs(model, xyzi: Tensor, tta: bool = False) -> Tensor:
    """Softmax ``(B, K, N)`` of the last stage; with ``tta`` the mean over :data:`FLIPS`."""
    flips = FLIPS if tta else FLIPS[:1]
    return sum(torch.softmax(model(flip(xyzi, *f))["logits"], 1) for f in flips) / len(flips)


def to_labels(probs: Tensor) -> Tensor:
    """Argmax over classes 1..K−1 → labels (B, N)."""
    return probs[:, 1:].argmax(1) + 1


@torch.no_grad()
def flip_consistency(model, xyzi: Tensor, target: Tensor) -> float:
    """Share of labelled points whose predicted label under each non-identity flip equals the
    identity pass's, averaged over the 3 flips."""
    base = to_labels(predict_probs(model, xyzi))
    keep = target != 0
    agree = [(to_labels(torch.softmax(model(flip(xyzi, *f))["logits"], 1)) == base)[keep].float().mean()
             for f in FLIPS[1:]]
    return float(torch.stack(agree).mean())


@torch.no_grad()
def evaluate(model, scans, num_classes: int, device=None) -> dict:
    """Evaluate on ``scans`` (list of ``(points (N, 4), labels (N,))``, one scan at a time, all points).

    One forward per flip of :data:`FLIPS` (4 per scan) gives everything: single pass = the
    identity flip, TTA = the mean softmax of all 4, flip consistency = agreement of each
    flipped pass's labels with the identity pass's (labelled points, mean over 3 flips).
    Returns fractions: ``miou``, ``miou_tta``, ``iou_per_class``, ``iou_per_class_tta`` (K−1
    lists) and ``flip_consistency``. ``device``: where the forwards run (None: CPU).
    """
    model.eval()
    conf = np.zeros((2, num_classes, num_classes), np.int64)
    agree, n_lab = 0.0, 0
    for pts, lab in scans:
        x = torch.from_numpy(np.ascontiguousarray(pts))[None]
        if device is not None:
            x = x.to(device)
        t = np.asarray(lab, dtype=np.int64)
        probs = [torch.softmax(model(flip(x, *f))["logits"], 1).cpu() for f in FLIPS]   # 4 × (1, K, N)
        base = to_labels(probs[0])
        conf[0] += confusion(base.numpy(), t, num_classes)
        conf[1] += confusion(to_labels(sum(probs) / len(probs)).numpy(), t, num_classes)
        keep = torch.from_numpy(t != 0)[None]
        agree += sum(float((to_labels(p) == base)[keep].sum()) for p in probs[1:]) / (len(probs) - 1)
        n_lab += int(keep.sum())
    return {"miou": miou(conf[0]), "miou_tta": miou(conf[1]), "iou_per_class": iou_per_class(conf[0]).tolist(),
            "iou_per_class_tta": iou_per_class(conf[1]).tolist(), "flip_consistency": agree / max(n_lab, 1)}
