"""Set-prediction loss of the DETR family (DETR §3.1, Eq. 1-2; DAB/Deformable focal variant).

``SetCriterion`` matches predictions to targets with a ``HungarianMatcher`` and returns a
loss dict keyed by name: ``loss_ce`` (focal or cross-entropy), ``loss_bbox`` (L1 on
``cxcywh``) and ``loss_giou`` (1 - GIoU), all normalised by the number of target boxes,
plus ``loss_ce_0``, ``loss_bbox_0``, ... for every auxiliary decoder layer (each layer
matched independently). The weight dict has the same keys; ``weighted_loss`` sums them.
With Group DETR's ``G`` query groups every box has ``G`` positives, so the normaliser is
``G * num_boxes`` (otherwise the loss scale, hence the effective lr, grows with ``G``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import box_ops
from .matcher import HungarianMatcher

BASE_KEYS = {"labels": ("loss_ce",), "boxes": ("loss_bbox", "loss_giou")}


def with_aux_weights(weight_dict: dict[str, float], num_decoder_layers: int) -> dict[str, float]:
    """Add ``<key>_<i>`` copies for the ``num_decoder_layers - 1`` auxiliary layers (DETR)."""
    out = dict(weight_dict)
    for i in range(num_decoder_layers - 1):
        out.update({f"{k}_{i}": v for k, v in weight_dict.items()})
    return out


def weighted_loss(loss_dict: dict[str, Tensor], weight_dict: dict[str, float]) -> Tensor:
    """Total loss: sum of ``weight_dict[k] * loss_dict[k]`` over the weight dict's keys."""
    return sum(loss_dict[k] * w for k, w in weight_dict.items())


class SetCriterion(nn.Module):
    """Hungarian loss over the final and every auxiliary decoder layer.

    num_classes: object classes, without "no object". With ``focal=True`` the model
        predicts ``C`` sigmoid logits; with ``focal=False`` it predicts ``C + 1`` softmax
        logits, the last being "no object", down-weighted by ``eos_coef`` (DETR: 0.1).
    weight_dict: loss key -> weight, including the ``_<i>`` auxiliary keys
        (``with_aux_weights``); the keys this criterion returns must equal its keys.
    losses: which loss groups to compute: ``"labels"`` -> ``loss_ce``,
        ``"boxes"`` -> ``loss_bbox`` and ``loss_giou``.
    """

    def __init__(self, num_classes: int, matcher: HungarianMatcher, weight_dict: dict[str, float],
                 losses: tuple[str, ...] = ("labels", "boxes"), focal: bool = True,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, eos_coef: float = 0.1):
        super().__init__()
        unknown = set(losses) - set(BASE_KEYS)
        assert not unknown, f"unknown losses {unknown}; choose from {sorted(BASE_KEYS)}"
        self.num_classes, self.matcher, self.weight_dict, self.losses = num_classes, matcher, weight_dict, losses
        self.focal, self.focal_alpha, self.focal_gamma = focal, focal_alpha, focal_gamma
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)

    def loss_labels(self, outputs: dict, targets: list[dict], indices, num_boxes: float) -> dict[str, Tensor]:
        logits = outputs["pred_logits"]  # (B, GQ, C) focal, (B, GQ, C+1) softmax
        batch_idx, src_idx = _flat_index(indices)
        tgt_cls = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)])
        if self.focal:
            onehot = torch.zeros_like(logits)  # (B, GQ, C)
            onehot[batch_idx, src_idx, tgt_cls] = 1.0
            loss = box_ops.sigmoid_focal_loss(logits, onehot, alpha=self.focal_alpha,
                                              gamma=self.focal_gamma, reduction="sum")
            return {"loss_ce": loss / num_boxes}
        target = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        target[batch_idx, src_idx] = tgt_cls  # (B, GQ), "no object" = C elsewhere
        return {"loss_ce": F.cross_entropy(logits.transpose(1, 2), target, self.empty_weight)}

    def loss_boxes(self, outputs: dict, targets: list[dict], indices, num_boxes: float) -> dict[str, Tensor]:
        batch_idx, src_idx = _flat_index(indices)
        src = outputs["pred_boxes"][batch_idx, src_idx]  # (N, 4) cxcywh
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)])  # (N, 4)
        loss_giou = box_ops.generalized_box_iou_loss(box_ops.cxcywh_to_xyxy(src), box_ops.cxcywh_to_xyxy(tgt),
                                                     reduction="sum")
        return {"loss_bbox": F.l1_loss(src, tgt, reduction="sum") / num_boxes,
                "loss_giou": loss_giou / num_boxes}

    def layer_losses(self, outputs: dict, targets: list[dict], num_groups: int, num_boxes: float) -> dict[str, Tensor]:
        indices = self.matcher(outputs, targets, num_groups=num_groups)
        out = {}
        for name in self.losses:
            out.update(getattr(self, f"loss_{name}")(outputs, targets, indices, num_boxes))
        return out

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, Tensor]:
        """Loss dict for ``outputs`` of a DETR-family model.

        outputs: ``pred_logits`` (B, G*Q, C), ``pred_boxes`` (B, G*Q, 4), optionally
            ``aux_outputs`` (list of dicts with the same two keys, one per earlier
            decoder layer) and ``num_groups`` (int G, default 1). Other keys are ignored.
        targets: one dict per image, ``labels`` (M_b,) int64 and ``boxes`` (M_b, 4) cxcywh.
        Returns ``loss_ce``, ``loss_bbox``, ``loss_giou`` (those of ``losses``) and the same
        keys suffixed ``_<i>`` for auxiliary layer ``i``; each a scalar tensor.
        """
        G = int(outputs.get("num_groups", 1))
        # every target is matched once per group; clamp: an empty batch still gives finite losses
        num_boxes = max(float(sum(len(t["labels"]) for t in targets)) * G, 1.0)
        losses = self.layer_losses(outputs, targets, G, num_boxes)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            losses.update({f"{k}_{i}": v for k, v in self.layer_losses(aux, targets, G, num_boxes).items()})
        return losses


def _flat_index(indices: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Per-image ``(query_idx, target_idx)`` -> flat ``(batch_idx, query_idx)``."""
    batch_idx = torch.cat([torch.full_like(src, b) for b, (src, _) in enumerate(indices)])
    src_idx = torch.cat([src for src, _ in indices])
    return batch_idx, src_idx
