"""A RetinaNet-style dense detector assembled from torchvision's detection parts.

features (any module: images -> ``OrderedDict`` of pyramid maps) -> :class:`DenseHead`
(shared class / box conv towers with GroupNorm) -> anchors from torchvision's
``AnchorGenerator`` -> torchvision RetinaNet's loss (training) or postprocessing (eval).

What comes from torchvision (``torchvision.models.detection``, 0.29.1), unchanged:

* ``retinanet.RetinaNetHead`` and its two sub-heads: the output layers, their prior and
  N(0, 0.01) init, the (B, sum HWA, K) output layout and ``compute_loss`` (sigmoid focal
  loss over non-ignored anchors; L1 on ``BoxCoder`` deltas over foreground anchors; each
  image normalised by its own foreground count, then averaged over the batch);
  :class:`DenseHead` only swaps the hard-coded 4-conv towers for ``num_convs`` convs;
* ``anchor_utils.AnchorGenerator``, ``image_list.ImageList``;
* ``_utils.Matcher`` (``allow_low_quality_matches=True``) and ``_utils.BoxCoder``
  (weights (1, 1, 1, 1));
* ``RetinaNet.compute_loss`` and ``RetinaNet.postprocess_detections``, borrowed as methods
  of :class:`DenseDetector` (see there), and ``ops.FeaturePyramidNetwork`` in
  :class:`SmallPyramid`.

What is deliberately NOT used: ``GeneralizedRCNNTransform``. torchvision's ``RetinaNet``
normalises every image and resizes it so its shorter side is ``min_size=800`` px: a 96-px
image would be trained and evaluated at 800 px (~70x the compute, and anchors in the wrong
scale). Here images arrive already normalised at their final size; the ``ImageList`` holds
the true sizes (boxes are clipped to them) and the only change made to the batch is
torchvision's own zero padding of the bottom / right edges up to a multiple of
``size_divisible`` (a no-op for 64- and 96-px images).

Boxes are ``xyxy`` in pixels of the input tensor everywhere here; this project's targets
(normalised ``cx, cy, w, h``, :mod:`paperzoo.data.sets`) go through :func:`targets_to_xyxy`.
Labels are contiguous 0-based class indices: RetinaNet has no background class (one sigmoid
per class), so label 0 is an ordinary class.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
from torchvision.ops import Conv2dNormActivation, FeaturePyramidNetwork

from . import box_ops
from .registry import register_model


def _tower(channels: int, num_convs: int, norm_layer) -> nn.Sequential:
    """``num_convs`` x (3x3 conv (no bias) -> norm -> ReLU), convs ~ N(0, 0.01) as in RetinaNet."""
    tower = nn.Sequential(*(Conv2dNormActivation(channels, channels, norm_layer=norm_layer)
                            for _ in range(num_convs)))
    for m in tower.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return tower


class DenseHead(RetinaNetHead):
    """torchvision's ``RetinaNetHead`` with ``num_convs`` (not 4) GroupNorm convs per branch.

    in_channels: width of every pyramid map (and of the towers). num_anchors: A anchors per
    location. num_classes: K object classes (no background). num_convs: 3x3 conv -> GroupNorm
    (``gn_groups`` groups; 0 = no norm, convs with bias, as mmdet's RetinaHead) -> ReLU blocks
    in each of the two branches (0 allowed), weights
    shared over pyramid levels. prior_probability: initial sigmoid score of every class
    (classification bias -log((1 - p) / p)).

    Built by ``RetinaNetHead.__init__`` with ``norm_layer=GroupNorm`` (so output convs, their
    init and ``compute_loss`` are torchvision's), after which each sub-head's ``conv``
    Sequential is rebuilt with ``num_convs`` blocks of the same kind (torchvision's own
    module layout, so ``num_convs=4`` state dicts load into ``RetinaNetHead``).

    forward(list of L maps (B, in_channels, H_l, W_l)) ->
        ``cls_logits`` (B, sum_l H_l W_l A, K) and ``bbox_regression`` (B, sum_l H_l W_l A, 4),
        anchors ordered level-major, then (y, x), then anchor (AnchorGenerator's order).
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, *, num_convs: int = 2,
                 gn_groups: int = 8, prior_probability: float = 0.01):
        if gn_groups < 0 or (gn_groups and in_channels % gn_groups):
            raise ValueError(f"DenseHead: gn_groups={gn_groups} does not divide in_channels={in_channels} "
                             "(0 = no norm, convs with bias: mmdet's RetinaHead)")
        if num_convs < 0:
            raise ValueError(f"DenseHead: num_convs={num_convs} < 0")
        norm = partial(nn.GroupNorm, gn_groups) if gn_groups else None
        super().__init__(in_channels, num_anchors, num_classes, norm_layer=norm)
        for branch in (self.classification_head, self.regression_head):
            branch.conv = _tower(in_channels, num_convs, norm)
        nn.init.constant_(self.classification_head.cls_logits.bias,
                          -math.log((1 - prior_probability) / prior_probability))
        self.num_convs, self.gn_groups = num_convs, gn_groups


class DenseDetector(nn.Module):
    """RetinaNet on any feature pyramid, without torchvision's resizing transform.

    features: module mapping images (B, 3, H, W) to an ``OrderedDict[str, Tensor]`` of L
        pyramid maps (B, features.out_channels, H_l, W_l), stride ascending; the head width
        is ``features.out_channels``. If it has ``strides`` (L ints), they are checked
        against ``anchor_sizes``.
    num_classes: K object classes, labels 0..K-1 (no background class).
    anchor_sizes: per level, anchor sizes in pixels (sqrt of the area), e.g.
        :func:`retinanet_anchor_sizes`; aspect_ratios (h / w) are the same at every level.
        A = len(sizes) x len(aspect_ratios) must be the same at every level (shared head).
    num_convs, gn_groups: of :class:`DenseHead`.
    fg_iou_thresh, bg_iou_thresh: anchors with IoU >= fg are positive, < bg negative, in
        between ignored; each GT box also claims its best anchor(s) (low-quality matches).
    score_thresh, nms_thresh, detections_per_img, topk_candidates: postprocessing, as in
        torchvision's RetinaNet (per level: score > thresh, top-k; then class-wise NMS over
        all levels and the best ``detections_per_img``). ``detections_per_img`` defaults to
        100 (torchvision: 300), the COCO AP budget.
    size_divisible: images are zero-padded bottom / right to a multiple of this (what
        torchvision's transform does with 32), so that AnchorGenerator's stride
        (padded size // map size) equals the true stride; the true sizes stay in the
        ``ImageList`` and boxes are clipped to them.

    Loss and postprocessing are torchvision's own code: ``RetinaNet.compute_loss`` and
    ``RetinaNet.postprocess_detections`` are plain functions of ``self`` that read only
    ``self.proposal_matcher``, ``self.head`` (its ``compute_loss``), ``self.box_coder``,
    ``self.score_thresh``, ``self.nms_thresh``, ``self.detections_per_img`` and
    ``self.topk_candidates``; this class defines exactly those attributes and takes the two
    functions as its methods. Subclassing ``RetinaNet`` would also build the unwanted
    800-px ``GeneralizedRCNNTransform`` and make ``isinstance(m, RetinaNet)`` true for a
    module whose ``forward`` has another signature; copying the code would let it drift.
    Only ``RetinaNet.forward``'s few lines of glue (batching, the per-level split before
    postprocessing) are rewritten in :meth:`forward`.
    """

    compute_loss = RetinaNet.compute_loss                      # (targets, head_outputs, anchors) -> losses
    postprocess_detections = RetinaNet.postprocess_detections  # (split outputs, split anchors, sizes) -> dets

    def __init__(self, features: nn.Module, num_classes: int, *, anchor_sizes: Sequence[Sequence[float]],
                 aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), num_convs: int = 2, gn_groups: int = 8,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.4, score_thresh: float = 0.05,
                 nms_thresh: float = 0.5, detections_per_img: int = 100, topk_candidates: int = 1000,
                 size_divisible: int = 32):
        super().__init__()
        if not hasattr(features, "out_channels"):
            raise ValueError("DenseDetector: `features` needs an `out_channels` attribute (the pyramid width)")
        strides = getattr(features, "strides", None)
        if strides is not None and len(strides) != len(anchor_sizes):
            raise ValueError(f"DenseDetector: {len(anchor_sizes)} anchor-size levels for {len(strides)} "
                             f"pyramid levels (strides {tuple(strides)})")
        self.features = features
        self.num_classes = num_classes
        self.anchor_generator = AnchorGenerator(tuple(tuple(s) for s in anchor_sizes),
                                                (tuple(aspect_ratios),) * len(anchor_sizes))
        per_level = self.anchor_generator.num_anchors_per_location()
        if len(set(per_level)) != 1:
            raise ValueError("DenseDetector: the shared head needs the same number of anchors per level, "
                             f"got {per_level}")
        self.head = DenseHead(features.out_channels, per_level[0], num_classes, num_convs=num_convs,
                              gn_groups=gn_groups)
        self.proposal_matcher = det_utils.Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.box_coder = det_utils.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        self.size_divisible = size_divisible

    def num_anchors_per_location(self) -> int:
        """A: anchors per feature-map location (the same at every level)."""
        return self.anchor_generator.num_anchors_per_location()[0]

    def image_list(self, images: Tensor, image_sizes: Sequence[tuple[int, int]] | None = None) -> ImageList:
        """``ImageList`` of ``images`` (B, 3, H, W) zero-padded to ``size_divisible`` and
        the true (h, w) of each image (default (H, W) for all)."""
        B, _, H, W = images.shape
        sizes = [(H, W)] * B if image_sizes is None else [(int(h), int(w)) for h, w in image_sizes]
        if len(sizes) != B:
            raise ValueError(f"DenseDetector: {len(sizes)} image_sizes for {B} images")
        d = self.size_divisible
        pad_h, pad_w = -H % d, -W % d
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))
        return ImageList(images, sizes)

    def _check_targets(self, targets: list[dict], batch: int) -> None:
        if targets is None:
            raise ValueError("DenseDetector: targets are required in training mode")
        if len(targets) != batch:
            raise ValueError(f"DenseDetector: {len(targets)} targets for {batch} images")
        for i, t in enumerate(targets):
            boxes, labels = t["boxes"], t["labels"]
            if boxes.dim() != 2 or boxes.shape[-1] != 4 or not boxes.is_floating_point():
                raise ValueError(f"DenseDetector: target {i} boxes must be float (m, 4), got "
                                 f"{boxes.dtype} {tuple(boxes.shape)}")
            if labels.dtype != torch.int64 or labels.shape != boxes.shape[:1]:
                raise ValueError(f"DenseDetector: target {i} labels must be int64 ({boxes.shape[0]},), got "
                                 f"{labels.dtype} {tuple(labels.shape)}")
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(f"DenseDetector: target {i} labels outside [0, {self.num_classes})")
            degenerate = (boxes[:, 2:] <= boxes[:, :2]).any(1)
            if degenerate.any():  # torchvision asserts the same: they would give log(0) box targets
                raise ValueError(f"DenseDetector: target {i} has a box without positive width and height: "
                                 f"{boxes[degenerate][0].tolist()}")

    def forward(self, images: Tensor, targets: list[dict] | None = None, return_features: bool = False,
                image_sizes: Sequence[tuple[int, int]] | None = None):
        """Detect objects in ``images`` (B, 3, H, W), already normalised, at their final size.

        targets (training only; ignored in eval): one dict per image, ``boxes`` float (m, 4)
            xyxy pixels with x2 > x1, y2 > y1, ``labels`` int64 (m,) in [0, K); m = 0 is fine
            (all anchors negative).
        return_features: also return the pyramid (the ``OrderedDict`` of ``features``, maps
            (B, out_channels, H_l, W_l) of the padded batch).
        image_sizes: true (h, w) of each image when the batch is padded (e.g. COCO
            batches); default: every image is (H, W). Boxes are clipped to these.

        Returns, training: ``{"classification": (), "bbox_regression": ()}`` scalar losses
        (torchvision's; weight 1 each in RetinaNet), plus ``"features"`` if asked.
        Eval: a list of B dicts ``boxes`` (n, 4) float xyxy pixels within the image,
        ``scores`` (n,) sigmoid scores, descending, ``labels`` (n,) int64 in [0, K), n <=
        ``detections_per_img``; with ``return_features`` a tuple (that list, features).
        """
        if images.dim() != 4:
            raise ValueError(f"DenseDetector: images must be (B, 3, H, W), got {tuple(images.shape)}")
        if self.training:
            self._check_targets(targets, images.shape[0])
        batch = self.image_list(images, image_sizes)
        feats = self.features(batch.tensors)
        maps = list(feats.values())
        head_outputs = self.head(maps)                          # (B, sum HWA, K), (B, sum HWA, 4)
        anchors = self.anchor_generator(batch, maps)            # B x (sum HWA, 4) xyxy pixels
        if self.training:
            losses = self.compute_loss(targets, head_outputs, anchors)
            if return_features:
                losses["features"] = feats
            return losses
        A = self.num_anchors_per_location()
        per_level = [m.shape[-2] * m.shape[-1] * A for m in maps]
        split_outputs = {k: list(v.split(per_level, dim=1)) for k, v in head_outputs.items()}
        split_anchors = [list(a.split(per_level)) for a in anchors]
        detections = self.postprocess_detections(split_outputs, split_anchors, batch.image_sizes)
        return (detections, feats) if return_features else detections


def detection_loss_fn(image_size: int | tuple[int, int] | None):
    """``loss_fn(model, (images, targets, step))`` → (focal + box loss, parts) of a bare
    :class:`DenseDetector` on normalised cxcywh targets (``engine.train``'s loss function)."""

    def loss_fn(model, batch):
        images, targets, _ = batch
        parts = model(images, targets_to_xyxy(targets, image_size))
        return parts["classification"] + parts["bbox_regression"], parts

    return loss_fn


def targets_to_xyxy(targets: list[dict], image_size: int | tuple[int, int] | None = None) -> list[dict]:
    """This project's targets (``boxes`` normalised ``cx, cy, w, h``) -> ``boxes`` xyxy pixels.

    image_size: ``S`` (square), ``(h, w)``, or None to use each target's ``size`` (h, w)
    (the true, unpadded size in :mod:`paperzoo.data`). Returns new dicts with the other keys
    (``labels``, ...) shared; boxes float32 (m, 4).
    """
    out = []
    for t in targets:
        if image_size is None:
            h, w = (int(v) for v in t["size"])
        elif isinstance(image_size, int):
            h = w = image_size
        else:
            h, w = image_size
        boxes = box_ops.cxcywh_to_xyxy(t["boxes"].float().reshape(-1, 4))
        out.append({**t, "boxes": boxes * boxes.new_tensor([w, h, w, h])})
    return out


def retinanet_anchor_sizes(bases: Sequence[float] = (8, 16, 32), scales_per_octave: int = 3
                           ) -> tuple[tuple[float, ...], ...]:
    """RetinaNet's anchor sizes: per level ``base * 2 ** (i / scales_per_octave)``, i < scales.

    (8, 16, 32) -> ((8, 10.08, 12.70), (16, 20.16, 25.40), (32, 40.32, 50.80)). torchvision's
    ``AnchorGenerator`` rounds each anchor's half-width and half-height to whole pixels.
    """
    return tuple(tuple(b * 2 ** (i / scales_per_octave) for i in range(scales_per_octave)) for b in bases)


class SmallPyramid(nn.Module):
    """A from-scratch conv-BN-ReLU backbone + torchvision ``FeaturePyramidNetwork``: P3-P5.

    widths: 4 channel counts: the stem (two stride-2 convs, stride 4), then C3, C4, C5
        (strides 8, 16, 32; each stage ``depth`` convs, the first with stride 2).
    fpn_channels: width of every output map (``out_channels``, the detector head width).

    forward(images (B, 3, H, W)) -> ``OrderedDict`` ``p3`` (B, F, H/8, W/8), ``p4`` (B, F,
    H/16, W/16), ``p5`` (B, F, H/32, W/32) (ceil for sizes not divisible; F = fpn_channels).
    No P6/P7: at 64-96 px P5 is already 2x2-3x3.
    """

    strides = (8, 16, 32)

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), fpn_channels: int = 64, depth: int = 1,
                 in_chans: int = 3):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"SmallPyramid: widths = (stem, C3, C4, C5), got {tuple(widths)}")

        def cbr(c_in, c_out, stride):
            return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.stem = nn.Sequential(*cbr(in_chans, widths[0], 2), *cbr(widths[0], widths[0], 2))
        self.stages = nn.ModuleList()
        c_in = widths[0]
        for c in widths[1:]:
            layers = cbr(c_in, c, 2)
            for _ in range(depth - 1):
                layers += cbr(c, c, 1)
            self.stages.append(nn.Sequential(*layers))
            c_in = c
        self.fpn = FeaturePyramidNetwork(list(widths[1:]), fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, images: Tensor) -> OrderedDict[str, Tensor]:
        x = self.stem(images)
        c = OrderedDict()
        for name, stage in zip(("p3", "p4", "p5"), self.stages):
            x = stage(x)
            c[name] = x  # C3..C5, keyed by the names the FPN gives its outputs
        return self.fpn(c)


_PYRAMID_ARGS = ("widths", "fpn_channels", "depth")


def _dense(pyramid: dict, detector: dict, overrides: dict) -> DenseDetector:
    """Build a ``SmallPyramid`` + ``DenseDetector``; overrides ``widths``, ``fpn_channels``,
    ``depth`` go to the pyramid, ``features`` (a module) replaces it, the rest to the detector."""
    overrides = dict(overrides)
    pyramid = {**pyramid, **{k: overrides.pop(k) for k in _PYRAMID_ARGS if k in overrides}}
    features = overrides.pop("features", None)
    return DenseDetector(features if features is not None else SmallPyramid(**pyramid),
                         **{**detector, **overrides})


@register_model
def test_dense(**kw) -> DenseDetector:
    """Unit-test size: SmallPyramid (8, 8, 16, 32), FPN 16, 1 GN(4) conv per branch, 4 classes,
    anchors 8/16/32 px x 3 scales x 3 ratios (A = 9)."""
    return _dense(dict(widths=(8, 8, 16, 32), fpn_channels=16),
                  dict(num_classes=4, anchor_sizes=retinanet_anchor_sizes((8, 16, 32)), num_convs=1, gn_groups=4), kw)


@register_model
def dense_lite(**kw) -> DenseDetector:
    """64-96-px images: SmallPyramid (16, 32, 64, 128), FPN 64, 2 GN(8) convs per branch, 4
    classes, anchors 8/16/32 px x 3 scales x 3 ratios (A = 9; largest square anchor ~51 px)."""
    return _dense(dict(widths=(16, 32, 64, 128), fpn_channels=64),
                  dict(num_classes=4, anchor_sizes=retinanet_anchor_sizes((8, 16, 32)), num_convs=2, gn_groups=8), kw)


def dense_kwargs(d: dict) -> dict:
    """A study's ``detector`` config block → :class:`DenseDetector` keywords.

    ``anchor_base`` (px per level) x ``anchor_scales`` give each level's anchor sizes;
    ``aspect_ratios``, ``num_convs``, ``gn_groups``, ``score_thresh``, ``nms_thresh`` and
    ``detections_per_img`` pass through.
    """
    base, scales = [float(b) for b in d["anchor_base"]], [float(s) for s in d["anchor_scales"]]
    return {"anchor_sizes": tuple(tuple(round(b * s, 2) for s in scales) for b in base),
            "aspect_ratios": tuple(float(r) for r in d["aspect_ratios"]), "num_convs": int(d["num_convs"]),
            "gn_groups": int(d["gn_groups"]), "score_thresh": float(d["score_thresh"]),
            "nms_thresh": float(d["nms_thresh"]), "detections_per_img": int(d["detections_per_img"])}
