"""CPGNet losses (arXiv 2204.09914 §III-D; official ``utils/criterion.py``, ``lovasz_losses.py``,
``models/cpgnet.py``). Label 0 = ignore throughout.

* Eq. (seg): ``L_seg = CE_OHEM + 2 · Lovász-softmax`` per stage.
* ``CE_OHEM = mean_i CE_i + 3 · mean(top-20% CE_i)``, CE_i = 0 for ignored points, which
  still count in both means (the official behaviour, kept).
* Lovász-softmax (Berman et al. 2018, Eq. 8–9): on softmax probabilities, classes present
  in the batch, ignored points removed.
* TCL (paper Eq. 6): ``L_TCL = mean_i Σ_c |p_aug(c|i) − p_raw(c|i)|`` on the *same* points;
  gradients flow into both views (no detach, as in the official code).
* Stage total with TCL: ``0.5 · (L_seg(aug) + L_seg(raw)) + 1.0 · L_TCL``; stages are summed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = 0


def ce_ohem(logits: Tensor, target: Tensor, top_ratio: float = 0.2, top_weight: float = 3.0) -> Tensor:
    """``logits (B, K, N)``, ``target (B, N)`` → scalar (mean CE + ``top_weight`` · mean of top ``top_ratio``)."""
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none").flatten()   # (B·N,), 0 if ignored
    k = max(1, int(top_ratio * ce.numel()))
    return ce.mean() + top_weight * ce.topk(k).values.mean()


def _lovasz_grad(gt_sorted: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors (Berman Alg. 1)."""
    gts = gt_sorted.sum()
    inter = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jac = 1.0 - inter / union
    if gt_sorted.numel() > 1:
        jac[1:] = jac[1:] - jac[:-1]
    return jac


def lovasz_softmax(probs: Tensor, target: Tensor) -> Tensor:
    """Lovász-softmax over the classes present; ``probs (B, K, N)`` softmax, ``target (B, N)``."""
    K = probs.shape[1]
    p = probs.transpose(1, 2).reshape(-1, K)
    t = target.reshape(-1)
    keep = t != IGNORE
    p, t = p[keep], t[keep]
    if t.numel() == 0:
        return probs.sum() * 0.0
    losses = []
    for c in torch.unique(t).tolist():
        fg = (t == c).to(p.dtype)
        err = (fg - p[:, c]).abs()
        err_sorted, perm = torch.sort(err, descending=True)
        losses.append(torch.dot(err_sorted, _lovasz_grad(fg[perm])))
    return torch.stack(losses).mean()


def seg_loss(logits: Tensor, target: Tensor, lovasz_weight: float = 2.0) -> tuple[Tensor, Tensor]:
    """``(CE-OHEM, Lovász)`` of one stage; the total is ``ce + lovasz_weight · lovasz``."""
    return ce_ohem(logits, target), lovasz_softmax(torch.softmax(logits, 1), target)


def tcl_loss(logits_aug: Tensor, logits_raw: Tensor) -> Tensor:
    """Transformation consistency (Eq. 6): mean over points of the L1 distance of class distributions."""
    return (torch.softmax(logits_aug, 1) - torch.softmax(logits_raw, 1)).abs().sum(1).mean()


def cpgnet_loss(model, xyzi: Tensor, target: Tensor, xyzi_raw: Tensor | None = None,
                lovasz_weight: float = 2.0, tcl_weight: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Deep-supervised loss over all stages. ``xyzi (B, N, 4)`` is the augmented view; with
    ``xyzi_raw`` (same points, untransformed) the TCL form is used. Returns ``(loss, dict)``
    with ``loss_ce``, ``loss_lovasz`` (summed over stages, averaged over views) and ``loss_tcl``."""
    views = [model(xyzi)["stage_logits"]]
    if xyzi_raw is not None:
        views.append(model(xyzi_raw)["stage_logits"])
    w = 1.0 / len(views)
    ce = lov = tcl = xyzi.new_zeros(())
    for s in range(len(views[0])):
        for v in views:
            c, lz = seg_loss(v[s], target, lovasz_weight)
            ce, lov = ce + w * c, lov + w * lz
        if xyzi_raw is not None:
            tcl = tcl + tcl_loss(views[0][s], views[1][s])
    loss = ce + lovasz_weight * lov + tcl_weight * tcl
    parts = {"loss_ce": ce, "loss_lovasz": lov}
    if xyzi_raw is not None:
        parts["loss_tcl"] = tcl
    return loss, parts
