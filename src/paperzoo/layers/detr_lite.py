"""DETR-lite: a DAB-DETR-style detector small enough to train on two CPU cores.

backbone -> 1x1 input projection -> transformer encoder (sine positions) -> anchor decoder
(learnable 4-d anchors, iterative refinement) -> shared class and box heads per layer.

Two hooks serve the DETR studies:
- KD-DETR (arXiv 2211.08071, §3.2): ``extra_anchors`` are decoded in a SEPARATE decoder
  pass over the same encoder memory, so they never enter the detection queries'
  self-attention; their predictions come back under ``extra_outputs``.
- Group DETR (arXiv 2207.13085, §3.2): ``num_groups`` copies of the queries are trained
  with group-wise self-attention (``transformer.DecoderLayer``); inference uses group 0.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import box_ops
from .position import PositionEmbeddingSine
from .registry import create_model, register_model
from .transformer import AnchorDecoder, EncoderLayer


def grid_anchors(num_queries: int, wh: float) -> Tensor:
    """(num_queries, 4) cxcywh anchors on a near-square grid of cell centres, all of size ``wh``."""
    n = math.ceil(math.sqrt(num_queries))
    c = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    xy = torch.stack([cx.flatten(), cy.flatten()], -1)[:num_queries]  # (Q, 2)
    return torch.cat([xy, torch.full_like(xy, wh)], -1)


def anchor_law_sample(num: int, mean: float | list[float] = 0.0, std: float | list[float] = 1.0,
                      generator: torch.Generator | None = None) -> Tensor:
    """(num, 4) anchors in inverse-sigmoid cxcywh, each coordinate ~ N(mean, std).

    ``mean``/``std``: a scalar or 4 values (cx, cy, w, h). (0, 1) is the law of DAB-DETR's
    ``nn.Embedding`` anchors and of KD-DETR's general distillation points.
    """
    m = torch.as_tensor(mean, dtype=torch.float32).expand(4)
    sd = torch.as_tensor(std, dtype=torch.float32).expand(4)
    return torch.randn(num, 4, generator=generator) * sd + m


class DETRLite(nn.Module):
    """DAB-DETR-lite detector.

    backbone: registry name (``cnn_s16``, ``resnet18_s16``, ...) or a module with
        ``num_channels``. num_classes: object classes (focal: C sigmoid logits; else C+1).
    num_queries: Q detection queries per group. num_groups: G query groups used in
        training (Group DETR); 1 = plain DETR. pos_temperature: of the feature-grid sine
        encoding; DAB-DETR's 20 (not DETR's 10000) keeps every feature informative on a
        small grid (at 10000 and 64 features most periods exceed 100 image widths).
    anchor_init: how the learnable anchors start.
        ``"grid"``: group 0 on a grid of cell centres with width = height = ``anchor_wh``,
        later groups on the same grid jittered by up to half a cell (identical groups would
        receive identical gradients and never differ); deterministic.
        ``"normal"``: DAB-DETR's default, ``nn.Embedding(Q, 4)`` init, i.e. every anchor
        coordinate drawn from N(``anchor_mean``, ``anchor_std``) in inverse-sigmoid space
        (N(0, 1) officially: boxes around the image centre, median width 0.5). Drawn from
        ``anchor_seed`` when given (independent models get independent anchors), else from
        the global RNG.
    group_self_attn: Group DETR's decoder self-attention within each group (default); False
        lets all G*Q queries attend to each other in training (the shared self-attention
        ablation; matching stays per group). Eval on group 0 is the same either way.
    """

    def __init__(self, backbone: str | nn.Module = "cnn_s16", num_classes: int = 4, d_model: int = 128,
                 nhead: int = 4, num_encoder_layers: int = 2, num_decoder_layers: int = 3,
                 dim_feedforward: int = 256, dropout: float = 0.0, num_queries: int = 16, num_groups: int = 1,
                 focal: bool = True, anchor_wh: float = 0.25, modulate_hw_attn: bool = True,
                 pos_temperature: float = 20.0, anchor_init: str = "grid",
                 anchor_mean: float | list[float] = 0.0, anchor_std: float | list[float] = 1.0,
                 anchor_seed: int | None = None, group_self_attn: bool = True):
        super().__init__()
        self.group_self_attn = group_self_attn
        self.backbone = create_model(backbone) if isinstance(backbone, str) else backbone
        self.num_classes, self.num_queries, self.num_groups, self.focal = num_classes, num_queries, num_groups, focal
        self.input_proj = nn.Conv2d(self.backbone.num_channels, d_model, 1)
        self.position = PositionEmbeddingSine(d_model // 2, pos_temperature)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, nhead, dim_feedforward, dropout)
                                     for _ in range(num_encoder_layers))
        self.decoder = AnchorDecoder(d_model, nhead, dim_feedforward, num_decoder_layers, dropout, modulate_hw_attn)
        self.class_head = nn.Linear(d_model, num_classes if focal else num_classes + 1)
        if focal:  # prior 0.01 for every class (RetinaNet), else focal loss swamps early training
            nn.init.constant_(self.class_head.bias, -math.log((1 - 0.01) / 0.01))

        if anchor_init == "grid":
            anchors = grid_anchors(num_queries, anchor_wh).repeat(num_groups, 1)  # (G*Q, 4)
            g = torch.Generator().manual_seed(num_queries)  # same init for any global seed state
            jitter = (torch.rand(num_groups * num_queries, 2, generator=g) - 0.5) / math.ceil(math.sqrt(num_queries))
            anchors[num_queries:, :2] += jitter[num_queries:]
            logits = box_ops.inverse_sigmoid(anchors.clamp(0.01, 0.99))
        elif anchor_init == "normal":
            logits = anchor_law_sample(num_groups * num_queries, anchor_mean, anchor_std,
                                       None if anchor_seed is None else torch.Generator().manual_seed(anchor_seed))
        else:
            raise ValueError(f"DETRLite: anchor_init={anchor_init!r}; expected 'grid' or 'normal'")
        self.anchor_law = {"init": anchor_init, "mean": anchor_mean, "std": anchor_std}
        self.anchors = nn.Parameter(logits)  # (G*Q, 4) inverse-sigmoid cxcywh

    def own_anchors(self) -> Tensor:
        """Group 0's learned anchors (Q, 4), inverse-sigmoid cxcywh: KD-DETR's "specific" points."""
        return self.anchors[: self.num_queries]

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images (B, 3, H, W) -> memory (B, HW', C) and its positional encoding (B, HW', C)."""
        feat = self.input_proj(self.backbone(images))  # (B, C, h, w)
        pos = self.position(feat).flatten(2).transpose(1, 2)  # (B, hw, C)
        memory = feat.flatten(2).transpose(1, 2)  # (B, hw, C)
        for layer in self.encoder:
            memory = layer(memory, pos)
        return memory, pos

    def decode(self, memory: Tensor, pos: Tensor, anchors: Tensor, num_groups: int = 1) -> dict:
        """Decode anchors (B, N, 4) logits -> ``pred_logits``, ``pred_boxes``, ``aux_outputs``."""
        hs, boxes = self.decoder(memory, pos, anchors, num_groups, self.group_self_attn)  # (L, B, N, C), (L, B, N, 4)
        logits = self.class_head(hs)  # (L, B, N, C')
        return {"pred_logits": logits[-1], "pred_boxes": boxes[-1],
                "aux_outputs": [{"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1])]}

    def forward(self, images: Tensor, extra_anchors: Tensor | None = None, num_groups: int | None = None) -> dict:
        """Detect objects in ``images`` (B, 3, H, W).

        extra_anchors: optional (K, 4) or (B, K, 4) anchors in inverse-sigmoid cxcywh
            (the space of ``self.anchors``), decoded in a separate pass over the same
            memory; the detection outputs do not depend on them.
        num_groups: query groups to decode; default ``self.num_groups`` in training and 1
            (group 0 only) in eval. Passing G in eval decodes every group (per-group AP).

        Returns a dict (G = groups decoded, Q = ``num_queries``, C' = C if focal else C+1,
        L = decoder layers, boxes are sigmoid cxcywh in [0, 1] of the image):
            ``pred_logits``: (B, G*Q, C') class logits of the last decoder layer, group-major
            ``pred_boxes``: (B, G*Q, 4) boxes of the last decoder layer
            ``aux_outputs``: list of L-1 dicts with ``pred_logits`` and ``pred_boxes`` as
                above, for decoder layers 0 .. L-2
            ``num_groups``: int G (the criterion normalises and matches per group)
            ``extra_outputs``: only with ``extra_anchors``: a dict with ``pred_logits``
                (B, K, C'), ``pred_boxes`` (B, K, 4) and ``aux_outputs`` (L-1 dicts) for
                the extra anchors
        """
        G = num_groups if num_groups is not None else (self.num_groups if self.training else 1)
        assert 1 <= G <= self.num_groups, f"num_groups={G} but the model has {self.num_groups} groups"
        B = images.shape[0]
        memory, pos = self.encode(images)  # (B, HW, C) each
        anchors = self.anchors[: G * self.num_queries].unsqueeze(0).expand(B, -1, -1)  # (B, G*Q, 4)
        out = self.decode(memory, pos, anchors, G)
        out["num_groups"] = G
        if extra_anchors is not None:
            if extra_anchors.dim() == 2:
                extra_anchors = extra_anchors.unsqueeze(0).expand(B, -1, -1)  # (B, K, 4)
            out["extra_outputs"] = self.decode(memory, pos, extra_anchors.to(memory.dtype), 1)
        return out


class PostProcess(nn.Module):
    """Outputs -> per-image detections: top-k over (query, class) scores, no NMS (DETR/DAB).

    forward(outputs, image_sizes (B, 2) as (height, width) in pixels) returns one dict per
    image: ``scores`` (k,), ``labels`` (k,) int64 in [0, C), ``boxes`` (k, 4) xyxy pixels.
    """

    def __init__(self, top_k: int = 100, focal: bool = True):
        super().__init__()
        self.top_k, self.focal = top_k, focal

    @torch.no_grad()
    def forward(self, outputs: dict, image_sizes: Tensor) -> list[dict]:
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]  # (B, N, C'), (B, N, 4)
        B, N, _ = logits.shape
        prob = logits.sigmoid() if self.focal else logits.softmax(-1)[..., :-1]  # (B, N, C)
        C = prob.shape[-1]
        scores, idx = prob.flatten(1).topk(min(self.top_k, N * C), dim=1)  # (B, k)
        query, labels = idx // C, idx % C
        xyxy = box_ops.cxcywh_to_xyxy(torch.gather(boxes, 1, query.unsqueeze(-1).expand(-1, -1, 4)))  # (B, k, 4)
        h, w = image_sizes.unbind(-1)
        xyxy = xyxy * torch.stack([w, h, w, h], -1).to(xyxy.dtype)[:, None, :]
        return [{"scores": s, "labels": lab, "boxes": b} for s, lab, b in zip(scores, labels, xyxy)]


def _detr(defaults: dict, overrides: dict) -> DETRLite:
    return DETRLite(**{**defaults, **overrides})


@register_model
def test_detr_lite(**kw) -> DETRLite:
    """Unit-test size: test_cnn backbone, d16, 1 encoder / 2 decoder layers, 4 queries."""
    return _detr(dict(backbone="test_cnn", d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
                      dim_feedforward=32, num_queries=4), kw)


@register_model
def detr_lite_tiny(**kw) -> DETRLite:
    """`tiny` scale (CI): cnn_s16, d32, 1 encoder / 2 decoder layers, 8 queries."""
    return _detr(dict(backbone="cnn_s16", d_model=32, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
                      dim_feedforward=64, num_queries=8), kw)


@register_model
def detr_lite_s(**kw) -> DETRLite:
    """Student (early CPU probe, recipe S): cnn_s16, d64, 1 encoder / 2 decoder layers, ff 128, 16 queries."""
    return _detr(dict(backbone="cnn_s16", d_model=64, nhead=4, num_encoder_layers=1, num_decoder_layers=2,
                      dim_feedforward=128, num_queries=16), kw)


@register_model
def detr_lite_s3(**kw) -> DETRLite:
    """KD-DETR teacher at mini: cnn_s16, d64, 2 encoder / 3 decoder layers, ff 128, 16 queries."""
    return _detr(dict(backbone="cnn_s16", d_model=64, nhead=4, num_encoder_layers=2, num_decoder_layers=3,
                      dim_feedforward=128, num_queries=16), kw)


@register_model
def detr_lite_s3_nb(**kw) -> DETRLite:
    """KD-DETR student at mini: ``detr_lite_s3``'s transformer on the half-width
    ``cnn_s16_narrow`` backbone, as the official R50 -> R18 pair keeps the teacher's
    transformer and changes only the backbone."""
    return _detr(dict(backbone="cnn_s16_narrow", d_model=64, nhead=4, num_encoder_layers=2, num_decoder_layers=3,
                      dim_feedforward=128, num_queries=16), kw)


@register_model
def detr_lite_m(**kw) -> DETRLite:
    """Teacher (early CPU probe, recipe C): cnn_s16, d128, 2 encoder / 3 decoder layers, ff 256, 16 queries."""
    return _detr(dict(backbone="cnn_s16", d_model=128, nhead=4, num_encoder_layers=2, num_decoder_layers=3,
                      dim_feedforward=256, num_queries=16), kw)
