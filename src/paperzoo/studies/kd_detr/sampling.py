"""Distillation points (KD-DETR §3.2-3.3): general (random) and specific (teacher) anchors.

A DAB-style query is fully defined by its 4-d anchor (content query = zeros, no patterns),
so sharing anchors between teacher and student shares the queries. Every point set is
decoded in its OWN decoder pass over the model's own encoder memory: distillation points
never enter the detection queries' self-attention (pitfall: concatenating them would change
both the student's detection outputs and the teacher's targets).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from paperzoo.engine.train import step_generator
from paperzoo.layers.detr_lite import anchor_law_sample


def general_points(num: int, seed: int, step: int, mean=0.0, std=1.0) -> Tensor:
    """(num, 4) fresh random anchors of training step ``step``, inverse-sigmoid cxcywh.

    Official: a newly created ``nn.Embedding(num, 4)`` each iteration, i.e. N(0, 1) in
    inverse-sigmoid space, the law DAB-DETR's own anchors are initialised from; ``mean`` /
    ``std`` (scalars or 4 values) are that law here too (``kd_detr.anchors``: the models'
    anchors start from it). Seeded by ``(seed, step)`` so a resumed run draws the same
    points; identical for teacher and student because both receive this one tensor.
    """
    g = step_generator(seed + 104_729, step)  # offset: independent of the step's flip draws
    return anchor_law_sample(num, mean, std, g)


def specific_points(teacher: nn.Module) -> Tensor:
    """(Q_t, 4) the teacher's learned anchors (group 0), detached: the student decodes them."""
    return teacher.own_anchors().detach().clone()


def forward_with_points(model: nn.Module, images: Tensor, points: dict[str, Tensor],
                        fuse: bool = True) -> tuple[dict, dict]:
    """Detection outputs plus one separate decoder pass per point set over the same memory.

    images (B, 3, H, W); points: name -> (K, 4) inverse-sigmoid anchors (broadcast over the
    batch). Returns ``(outputs, {name: outputs})``, each a ``DETRLite.decode`` dict
    (``pred_logits`` (B, N, C), ``pred_boxes`` (B, N, 4), ``aux_outputs``).

    ``fuse``: when every set has exactly ``num_queries`` points (and the model decodes one
    query group), all passes run as ONE call with Group-DETR group-wise self-attention
    (``transformer`` folds groups into the batch axis): a block-diagonal mask, i.e. the
    same separate passes (equal up to float rounding; ``tests``), at a fraction of the
    Python overhead that dominates these tiny models on CPU.
    """
    B = images.shape[0]
    memory, pos = model.encode(images)  # (B, HW, C) each
    G = model.num_groups if model.training else 1
    Q = model.num_queries
    own_anchors = model.anchors[: G * Q].unsqueeze(0).expand(B, -1, -1)  # (B, G*Q, 4)
    names = list(points)
    if fuse and names and G == 1 and all(points[n].shape[0] == Q for n in names):
        anchors = torch.cat([own_anchors] + [points[n].to(memory.dtype).unsqueeze(0).expand(B, -1, -1)
                                             for n in names], 1)  # (B, (1+S)*Q, 4)
        out = model.decode(memory, pos, anchors, 1 + len(names))
        parts = [_slice(out, k * Q, (k + 1) * Q) for k in range(1 + len(names))]
        own, extra = parts[0], dict(zip(names, parts[1:]))
    else:
        own = model.decode(memory, pos, own_anchors, G)
        extra = {n: model.decode(memory, pos, points[n].to(memory.dtype).unsqueeze(0).expand(B, -1, -1), 1)
                 for n in names}
    own["num_groups"] = G
    return own, extra


def _slice(out: dict, a: int, b: int) -> dict:
    """Queries ``[a, b)`` of a ``decode`` dict (every layer)."""
    return {"pred_logits": out["pred_logits"][:, a:b], "pred_boxes": out["pred_boxes"][:, a:b],
            "aux_outputs": [{"pred_logits": x["pred_logits"][:, a:b], "pred_boxes": x["pred_boxes"][:, a:b]}
                            for x in out["aux_outputs"]]}
