"""The deep-supervised ImageNet classifiers of the pretraining (``pretrain``): a CFNet with
one head per cascade stage (CEDNet ``models/cednet.py``, ``final_layers`` / ``norms`` /
``heads``), the ConvNeXt baseline with ConvNeXt's own head, and the deep-supervision loss
(CEDNet ``engine.py``, ``train_one_epoch``, ``--loss_weight avg``). Their backbone parameter
names are the detector's, so ``transfer`` moves the weights over.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import CFNet, ConvNeXtFPN, LayerNorm2d, _init

# Official drop-path rates for ImageNet pretraining (comments on ``CEDNet_next_tiny``,
# ``CEDNet_next_small``, ``CEDNet_next_base`` in ``models/cednet.py``); the detection presets
# of ``models.py`` use 0.2 / 0.3 / 0.3 instead (the ``ced-mmdet`` RetinaNet configs).
# ConvNeXt-T / S / B: 0.1 / 0.4 / 0.5 (ConvNeXt README, ImageNet-1K training commands; the
# ``convnext_*_fpn`` detection presets use 0.4).
PRETRAIN_DROP_PATH = {"cfnet_t": 0.1, "cfnet_s": 0.4, "cfnet_b": 0.5,
                      "convnext_t_fpn": 0.1, "convnext_s_fpn": 0.4, "convnext_b_fpn": 0.5}
HEAD_PREFIX = "heads."


class StageClassifier(nn.Module):
    """One deep-supervision head: c5 (B, in_dim, h, w) -> logits (B, num_classes).

    ``proj`` = conv1x1 + channels-first LN + GELU (CEDNet ``final_layers[i]``), then global
    average pooling, ``norm`` = LayerNorm (``norms[i]``), ``fc`` = Linear (``heads[i]``).
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 2048):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_dim, hidden, 1), LayerNorm2d(hidden), nn.GELU())
        self.norm = nn.LayerNorm(hidden, eps=1e-6)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, c5: Tensor) -> Tensor:
        return self.fc(self.norm(self.proj(c5).mean((-2, -1))))


class DeepSupervisedCFNet(nn.Module):
    """A CFNet classifier with one :class:`StageClassifier` per cascade stage.

    backbone: a :class:`CFNet`; its ``stem``, ``p2`` and ``stages`` become this module's
        (shared, not copied; same parameter names), its detection ``attach`` is not part of
        the classifier (CEDNet's ImageNet model has no such layers).
    num_classes: 1000 for ImageNet-1K. hidden: width of the heads' conv1x1 (2048 officially).
    head_init_scale: multiplies the final Linear's initial weight and bias (official
        ``--head_init_scale``, 1.0 for pretraining).

    ``forward(images (B, 3, H, W))``: in training mode the list of the M stages' logits
    (B, num_classes), first stage first; in eval mode the last stage's logits only.
    """

    def __init__(self, backbone: CFNet, num_classes: int = 1000, hidden: int = 2048, head_init_scale: float = 1.0):
        super().__init__()
        if not all(hasattr(backbone, a) for a in ("stem", "p2", "stages", "dims")):
            raise TypeError(f"DeepSupervisedCFNet wraps a CFNet (stem, p2, stages), got {type(backbone).__name__}")
        self.stem, self.p2, self.stages = backbone.stem, backbone.p2, backbone.stages
        self.dims, self.num_stages, self.num_classes = tuple(backbone.dims), len(backbone.stages), num_classes
        self.heads = nn.ModuleList(StageClassifier(self.dims[-1], num_classes, hidden) for _ in self.stages)
        self.heads.apply(_init)                     # CEDNet ``_init_weights``: kaiming normal fan_out, zero bias
        with torch.no_grad():
            for head in self.heads:
                head.fc.weight.mul_(head_init_scale)
                head.fc.bias.mul_(head_init_scale)

    def stage_c5(self, images: Tensor) -> list[Tensor]:
        """Every stage's c5 (B, dims[-1], H/32, W/32); the next stage reads the fused c3."""
        x, outs = self.p2(self.stem(images)), []
        for stage in self.stages:
            c3, _c4, c5 = stage(x)
            outs.append(c5)
            x = c3
        return outs

    def stage_logits(self, images: Tensor) -> list[Tensor]:
        """Every stage's logits (B, num_classes), first stage first (training or eval mode)."""
        return [head(c5) for head, c5 in zip(self.heads, self.stage_c5(images))]

    def forward(self, images: Tensor) -> list[Tensor] | Tensor:
        c5s = self.stage_c5(images)
        if self.training:
            return [head(c5) for head, c5 in zip(self.heads, c5s)]
        return self.heads[-1](c5s[-1])


class ConvNeXtHead(nn.Module):
    """ConvNeXt's classifier: c5 (B, dim, h, w) -> global average pool -> ``norm``
    (LayerNorm, eps 1e-6) -> ``fc`` (Linear) -> logits (B, num_classes)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, c5: Tensor) -> Tensor:
        return self.fc(self.norm(c5.mean((-2, -1))))


class ConvNeXtClassifier(nn.Module):
    """The ConvNeXt of a :class:`ConvNeXtFPN` with ConvNeXt's ImageNet head, no FPN.

    backbone: a :class:`ConvNeXtFPN`; its ``stem`` and ``stages`` become this module's
        (shared, same parameter names), its ``fpn`` is not part of the classifier.
    num_classes: 1000 for ImageNet-1K. head_init_scale: multiplies the Linear's initial
        weight and bias (official ``--head_init_scale``, 1.0 for pretraining).

    ``forward(images)``: ``[logits]`` (a one-element list, so :func:`deep_supervision_loss`
    and :func:`pretrain_loss_fn` apply unchanged) in training mode, ``logits`` (B,
    num_classes) in eval mode. The head sits at ``heads.0`` (``heads.0.norm``,
    ``heads.0.fc``; official ``norm`` / ``head``) so :func:`backbone_state_dict` drops it.
    """

    def __init__(self, backbone: ConvNeXtFPN, num_classes: int = 1000, head_init_scale: float = 1.0):
        super().__init__()
        if not all(hasattr(backbone, a) for a in ("stem", "stages", "dims")) or hasattr(backbone, "p2"):
            raise TypeError(f"ConvNeXtClassifier wraps a ConvNeXtFPN (stem, stages), got {type(backbone).__name__}")
        self.stem, self.stages = backbone.stem, backbone.stages
        self.dims, self.num_stages, self.num_classes = tuple(backbone.dims), 1, num_classes
        self.heads = nn.ModuleList([ConvNeXtHead(self.dims[-1], num_classes)])
        self.heads.apply(_init)
        with torch.no_grad():
            self.heads[0].fc.weight.mul_(head_init_scale)
            self.heads[0].fc.bias.mul_(head_init_scale)

    def c5(self, images: Tensor) -> Tensor:
        """The last stage's map (B, dims[-1], H/32, W/32)."""
        x = self.stem(images)
        for stage in self.stages:
            x = stage(x)
        return x

    def stage_logits(self, images: Tensor) -> list[Tensor]:
        return [self.heads[0](self.c5(images))]

    def forward(self, images: Tensor) -> list[Tensor] | Tensor:
        logits = self.heads[0](self.c5(images))
        return [logits] if self.training else logits


def build_classifier(model_name: str, num_classes: int = 1000, hidden: int = 2048, *, head_init_scale: float = 1.0,
                     **overrides) -> DeepSupervisedCFNet | ConvNeXtClassifier:
    """The registered pyramid module ``model_name`` (with ``overrides``, e.g. an arm's
    ``kwargs``) as an ImageNet classifier: :class:`DeepSupervisedCFNet` for a :class:`CFNet`
    (heads of width ``hidden``), :class:`ConvNeXtClassifier` for a :class:`ConvNeXtFPN`
    (``hidden`` unused). The drop-path rate defaults to :data:`PRETRAIN_DROP_PATH` where
    listed (an explicit ``drop_path_rate`` wins)."""
    from paperzoo.layers import create_model

    if model_name in PRETRAIN_DROP_PATH:
        overrides.setdefault("drop_path_rate", PRETRAIN_DROP_PATH[model_name])
    backbone = create_model(model_name, **overrides)
    if isinstance(backbone, CFNet):
        return DeepSupervisedCFNet(backbone, num_classes, hidden, head_init_scale)
    if isinstance(backbone, ConvNeXtFPN):
        return ConvNeXtClassifier(backbone, num_classes, head_init_scale)
    raise TypeError(f"build_classifier: {model_name!r} builds a {type(backbone).__name__}; expected a CFNet or a "
                    "ConvNeXtFPN")


def build_pretrain_model(name: str = "cfnet_t", num_classes: int = 1000, hidden: int = 2048,
                         head_init_scale: float = 1.0, **overrides) -> DeepSupervisedCFNet:
    """A registered CFNet (``cfnet_t`` / ``_s`` / ``_b``, ``test_cfnet``, ...) as a deep-supervised
    classifier; the drop-path rate defaults to :data:`PRETRAIN_DROP_PATH` where listed."""
    from paperzoo.layers import create_model

    if name in PRETRAIN_DROP_PATH:
        overrides.setdefault("drop_path_rate", PRETRAIN_DROP_PATH[name])
    return DeepSupervisedCFNet(create_model(name, **overrides), num_classes, hidden, head_init_scale)


def stage_losses(logits: Sequence[Tensor] | Tensor, targets: Tensor, label_smoothing: float = 0.1) -> list[Tensor]:
    """Cross-entropy of each stage's logits (B, C) against ``targets``: class indices (B,) or
    class probabilities (B, C) (e.g. mixed labels)."""
    if isinstance(logits, Tensor):
        logits = [logits]
    return [F.cross_entropy(z, targets, label_smoothing=label_smoothing) for z in logits]


def deep_supervision_loss(logits: Sequence[Tensor] | Tensor, targets: Tensor, label_smoothing: float = 0.1,
                          weights: Sequence[float] | None = None) -> Tensor:
    """Deep-supervision loss: the MEAN of the per-stage cross-entropies (official
    ``--loss_weight avg``), or ``sum(w_s * CE_s)`` with explicit ``weights`` (official
    ``--loss_weight "w1;w2;..."``, not normalised). A single tensor is one stage."""
    losses = stage_losses(logits, targets, label_smoothing)
    if weights is None:
        return torch.stack(losses).mean()
    if len(weights) != len(losses):
        raise ValueError(f"deep_supervision_loss: {len(weights)} weights for {len(losses)} stages")
    return sum(w * l for w, l in zip(weights, losses))


def pretrain_loss_fn(label_smoothing: float = 0.1, weights: Sequence[float] | None = None):
    """``loss_fn(model, (images, targets[, step]))`` for ``paperzoo.engine.train.train``: returns
    the deep-supervision loss and ``{"ce_s1": ..., "ce_sM": ...}`` (the per-stage CEs)."""

    def loss_fn(model: nn.Module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        images, targets = batch[0], batch[1]
        losses = stage_losses(model(images), targets, label_smoothing)
        if weights is None:
            loss = torch.stack(losses).mean()
        else:
            if len(weights) != len(losses):
                raise ValueError(f"pretrain_loss_fn: {len(weights)} weights for {len(losses)} stages")
            loss = sum(w * l for w, l in zip(weights, losses))
        return loss, {f"ce_s{i + 1}": l.detach() for i, l in enumerate(losses)}

    return loss_fn
