"""ImageNet-1K pretraining of a CFNet backbone with deep supervision (and of the ConvNeXt
baseline by the same recipe), and the transfer of the pretrained backbone into a detector's
:class:`~paperzoo.studies.cfnet.models.CFNet` / :class:`~paperzoo.studies.cfnet.models.ConvNeXtFPN`.

    python -m paperzoo.studies.cfnet.pretrain --params P --scale S --arm A --data-dir D \
        --checkpoint C.pt --out M.json [--threads N] [--seed K] [--device auto] [--workers W]

``P``: the ``cfnet`` config block; ``D``: the extracted ImageNet-1K (``root/train/<wnid>``,
``root/val/<wnid>``; ``paperzoo.data.imagenet.extract_imagenet``). Step
:func:`run_pretrain`: arm ``A``'s model (``cfnet.arms.A.model`` + ``kwargs``) as a
classifier (:func:`build_classifier`), trained with ``cfnet.pretrain`` (:data:`PRETRAIN_KEYS`)
through ``engine.train.train`` (resumable from ``C.pt.partial``), evaluated on the first
``n_val`` val images by file name; metrics ``top1``, ``top5``, (CFNet) ``top1_stage<k>``,
``params``, ``train_img_per_s`` go to ``M.json`` as run arm ``pretrain_<A>``.

**Checkpoint for the detector step**: ``C.pt`` is ``engine.train``'s final file,
``{"model": classifier state dict, "ema": None, "history": [...], "steps": int}``; the
detector reads ``load_checkpoint(C)["model"]`` and passes it to
:func:`load_pretrained_backbone` (``heads.*`` dropped, ``attach.*`` / ``fpn.*`` keep their
initialisation), or calls :func:`load_pretrain_checkpoint` which does both.

Reference: CEDNet's classification model (github.com/zhanggang001/CEDNet, ``models/cednet.py``,
class ``CEDNet``: ``final_layers``, ``norms``, ``heads``, ``forward_training``,
``forward_inference``) and its loss (``engine.py``, ``train_one_epoch``: with a list of
outputs, ``loss = sum(criterion(out, targets)) / len(outputs)`` for ``--loss_weight avg``).
Read, not copied. CFNet v1 (arXiv 2302.06052 v1) released no code; using CEDNet's recipe for
v1 is an assumption of this reproduction.

Model (per stage ``s`` of the ``M`` cascade stages, on that stage's c5, (B, dims[-1], H/32, W/32)):

    conv1x1 dims[-1] -> hidden (2048 officially) -> channels-first LayerNorm -> GELU
    -> global average pool (B, hidden) -> LayerNorm(eps 1e-6) -> Linear(hidden -> num_classes)

Training returns the M logits tensors (B, num_classes) (every stage's c5 is classified; a
non-last stage's c5 is unchanged by its transition, which only fuses c4 and c3); the loss is
the mean over stages of the cross-entropy with label smoothing (official ``--smoothing 0.1``;
timm's ``LabelSmoothingCrossEntropy`` equals ``F.cross_entropy(label_smoothing=...)``).
Evaluation runs every stage (the cascade needs them) and returns the last head's logits only.

Out of scope: mixup / cutmix (official defaults 0.8 / 1.0 via timm ``Mixup``, which turns
targets into smoothed soft labels), RandAugment, random erasing, EMA, the 300-epoch schedule
and the data pipeline. :func:`deep_supervision_loss` accepts soft (B, num_classes) targets,
so a mixup implementation can be plugged in front of it later. Note that the official
``train_one_epoch`` only handles the list of outputs on its AMP path (``--use_amp true``).

Transfer: the classifier's parameter names are exactly the detector backbone's
(``stem.*``, ``p2.*``, ``stages.*``; CEDNet's ``stem`` / ``stages.0`` / ``stages.k``), so
:func:`backbone_state_dict` drops the ``heads.*`` and :func:`load_pretrained_backbone`
loads the rest; the detector's ``attach.*`` (CEDNet's ``reduce_convs`` / ``add_blocks`` in
``ced-mmdet/mmdet/models/backbones/cednet.py``, ``CEDNetWrapper``) has no counterpart and
keeps its initialisation, as with the official ``load_checkpoint(strict=False)``.

ConvNeXt baseline (:class:`ConvNeXtClassifier`): ConvNeXt's own ImageNet head
(github.com/facebookresearch/ConvNeXt ``models/convnext.py``: ``norm`` = LayerNorm(eps 1e-6)
of the global average pool of the last stage, ``head`` = Linear), no FPN; kept under
``heads.0.norm`` / ``heads.0.fc`` so that the same transfer applies (the detector's ``fpn.*``
keeps its initialisation). It is pretrained here by the same recipe as CFNet, a recorded
deviation: the paper starts it from the public ConvNeXt-T ImageNet-1K weights, whose
checksum cannot be confirmed offline.

Data (:class:`StepImageBatches`): timm's ImageNet train transform reduced to
RandomResizedCrop(scale (0.08, 1), ratio (3/4, 4/3), bicubic) + horizontal flip, ImageNet
mean / std; eval: bicubic resize of the short side to ``int(S / 0.875)`` + centre crop ``S``
(timm ``crop_pct`` 0.875, ConvNeXt's 224 evaluation). Optimizer: AdamW, linear warmup then
cosine to 0, weight decay on >= 2-D weights only (timm ``param_groups_weight_decay``), no
gradient clipping by default (official ``clip_grad None``).
"""
from __future__ import annotations

import argparse
import math
import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

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
ATTACH_PREFIX = "attach."
# detector-only parts of the backbone modules: no counterpart in a classifier, keep their init
NECK_PREFIXES = (ATTACH_PREFIX, "fpn.")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_PCT = 0.875


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


def backbone_state_dict(model: nn.Module) -> OrderedDict[str, Tensor]:
    """The classifier's state dict without its heads: keys ``stem.*``, ``p2.*``, ``stages.*``
    (those of the detector's :class:`CFNet`; ``stem.*``, ``stages.*`` for a
    :class:`ConvNeXtClassifier`), tensors detached and cloned."""
    return OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items() if not k.startswith(HEAD_PREFIX))


def load_pretrained_backbone(features: CFNet | ConvNeXtFPN, state_dict: Mapping[str, Tensor], *,
                             strict: bool = True) -> dict:
    """Load pretrained backbone weights into a detector's ``features`` (a :class:`CFNet` or
    a :class:`ConvNeXtFPN`).

    state_dict: from :func:`backbone_state_dict`, or a whole :class:`DeepSupervisedCFNet` /
        :class:`ConvNeXtClassifier` state dict (its ``heads.*`` are dropped), e.g. the
        ``"model"`` entry of :func:`run_pretrain`'s checkpoint; a leading ``module.`` (DDP /
        timm EMA copies) is stripped.
    strict: also fail when a backbone key of ``features`` (anything but ``attach.*`` /
        ``fpn.*``) is missing from ``state_dict`` (e.g. a classifier with fewer stages); the
        detector's ``attach.*`` (CFNet) / ``fpn.*`` (ConvNeXtFPN) are always allowed to be
        missing and keep their initialisation.

    Fails (``KeyError``) on any unexpected key (e.g. a classifier with more stages) and
    (``ValueError``) on any shape mismatch, before anything is loaded. Returns
    ``{"loaded", "missing", "unexpected", "dropped"}`` (sorted key lists; ``unexpected`` is
    empty on success, ``missing`` holds the ``attach.*`` / ``fpn.*`` keys).
    """
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    dropped = sorted(k for k in sd if k.startswith(HEAD_PREFIX))
    sd = {k: v for k, v in sd.items() if not k.startswith(HEAD_PREFIX)}
    own = features.state_dict()
    unexpected = sorted(set(sd) - set(own))
    missing = sorted(set(own) - set(sd))
    if unexpected:
        raise KeyError(f"load_pretrained_backbone: {len(unexpected)} unexpected key(s) (not in the detector's "
                       f"backbone; different model / num_stages / blocks?): {unexpected[:8]}")
    lost = [k for k in missing if not k.startswith(NECK_PREFIXES)]
    if strict and lost:
        raise KeyError(f"load_pretrained_backbone: {len(lost)} backbone key(s) missing from the pretrained "
                       f"weights: {lost[:8]}")
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"load_pretrained_backbone: {len(wrong)} shape mismatch(es) (pretrained vs detector): "
                         f"{wrong[:8]}")
    result = features.load_state_dict(sd, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    return {"loaded": sorted(sd), "missing": missing, "unexpected": unexpected, "dropped": dropped}


def load_pretrain_checkpoint(features: CFNet | ConvNeXtFPN, path: str | os.PathLike, *, strict: bool = True) -> dict:
    """Load :func:`run_pretrain`'s checkpoint ``path`` (its ``"model"`` entry) into a
    detector's ``features`` with :func:`load_pretrained_backbone`; returns its report."""
    from paperzoo.engine.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    if "model" not in state:
        raise KeyError(f"{path}: no 'model' entry (keys {sorted(state)}); expected engine.train's final checkpoint")
    return load_pretrained_backbone(features, state["model"], strict=strict)


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: ``weight_decay`` for >= 2-D weights, 0 for 1-D tensors and biases
    (norms, layer-scale gammas), as timm's ``param_groups_weight_decay`` in the official
    pretraining; frozen parameters are left out."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --- data ------------------------------------------------------------------------------------

CROP_ATTEMPTS = 10


def crop_box(height: int, width: int, u: Sequence[Sequence[float]], scale=(0.08, 1.0),
             ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box ``(top, left, h, w)`` for an ``height`` x ``width`` image,
    from given uniforms ``u`` (:data:`CROP_ATTEMPTS` rows of 4 numbers in [0, 1): area
    fraction, log aspect ratio, top, left), by torchvision's algorithm (``make_params``):
    the first of 10 attempts that fits, else the centre crop clamped to ``ratio``."""
    area = height * width
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for ua, ur, ut, ul in u:
        target = area * (scale[0] + (scale[1] - scale[0]) * ua)
        aspect = math.exp(lo + (hi - lo) * ur)
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return min(int(ut * (height - h + 1)), height - h), min(int(ul * (width - w + 1)), width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _as_rgb_tensor(img) -> Tensor:
    """uint8 (3, H, W) from a tensor (1, 3 or 4 channels) or a PIL image."""
    if not isinstance(img, Tensor):
        from torchvision.transforms.v2.functional import pil_to_tensor

        img = pil_to_tensor(img.convert("RGB"))
    if img.ndim != 3:
        raise ValueError(f"expected an image (C, H, W), got shape {tuple(img.shape)}")
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img[:3]


class StepImageBatches:
    """Step-indexed image-classification batches: ``batches(i)`` -> ``(images, labels, i)``.

    dset: ``dset[j]`` -> ``(image, label)``, the image a uint8 (C, H, W) tensor or a PIL
        image (an ``ImageFolder`` of ``paperzoo.data.imagenet.ImageNetFolders``, a ``Subset``).
    train: True: sample order a fresh seeded permutation per epoch
        (``engine.train.IndexBatches``, last incomplete batch dropped), RandomResizedCrop
        ``image_size`` (scale (0.08, 1), ratio (3/4, 4/3), bicubic, antialiased) + horizontal
        flip with probability 1/2; the uniforms of every sample's crop (:func:`crop_box`) and
        flip are drawn up front from ``engine.train.step_generator(seed, i)``, so step ``i``'s
        batch depends on ``(seed, i)`` only (not on the call order, the global RNG or
        ``workers``). False: batch ``i`` is images ``[i * B, (i + 1) * B)`` in order (the last
        one may be short; ``len(batches)`` batches), bicubic resize of the short side to
        ``int(image_size / 0.875)`` + centre crop.
    workers: 0 decodes in the calling thread; > 0 decodes and augments the samples in a pool
        of that many threads and prepares the next ``prefetch`` batches ahead (same batches).

    ``images`` float32 (B, 3, S, S) normalised with ImageNet's mean / std; ``labels`` int64 (B,).
    """

    def __init__(self, dset, batch_size: int, seed: int = 0, *, train: bool, image_size: int = 224,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, workers: int = 0,
                 prefetch: int = 2):
        from paperzoo.engine.train import IndexBatches

        if batch_size < 1 or len(dset) < 1:
            raise ValueError(f"StepImageBatches: batch_size {batch_size} for {len(dset)} images")
        self.dset, self.batch_size, self.seed, self.train = dset, batch_size, seed, train
        self.image_size, self.mean, self.std = int(image_size), list(mean), list(std)
        self.resize_to = int(self.image_size / CROP_PCT)
        self.sampler = IndexBatches(len(dset), batch_size, seed) if train else None
        self.workers, self.prefetch = int(workers), int(prefetch)
        self._pool, self._pending = None, {}

    def __len__(self) -> int:
        """Batches per epoch (train) / in the whole set (eval)."""
        return len(self.dset) // self.batch_size if self.train else math.ceil(len(self.dset) / self.batch_size)

    def _plan(self, i: int) -> list[tuple[int, list | None, bool]]:
        """Step ``i``'s samples: ``(index, crop uniforms, flip)`` each."""
        if not self.train:
            if not 0 <= i < len(self):
                raise IndexError(f"eval batch {i} of {len(self)}")
            idx = range(i * self.batch_size, min((i + 1) * self.batch_size, len(self.dset)))
            return [(j, None, False) for j in idx]
        from paperzoo.engine.train import step_generator

        idx = self.sampler(i).tolist()
        g = step_generator(self.seed, i)
        u = torch.rand(len(idx), CROP_ATTEMPTS, 4, generator=g, dtype=torch.float64).tolist()
        flip = (torch.rand(len(idx), generator=g, dtype=torch.float64) < 0.5).tolist()
        return list(zip(idx, u, flip))

    def _sample(self, j: int, u, flip: bool) -> tuple[Tensor, int]:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        img, label = self.dset[j]
        img = _as_rgb_tensor(img)
        s, bicubic = self.image_size, InterpolationMode.BICUBIC
        if u is not None:
            top, left, h, w = crop_box(img.shape[-2], img.shape[-1], u)
            img = TF.resized_crop(img, top, left, h, w, [s, s], interpolation=bicubic, antialias=True)
            if flip:
                img = TF.horizontal_flip(img)
        else:
            img = TF.center_crop(TF.resize(img, [self.resize_to], interpolation=bicubic, antialias=True), [s, s])
        return img, int(label)

    def _submit(self, i: int) -> None:
        if i not in self._pending and (self.train or 0 <= i < len(self)):
            self._pending[i] = [self._pool.submit(self._sample, *p) for p in self._plan(i)]

    def _samples(self, i: int) -> list[tuple[Tensor, int]]:
        if self.workers <= 0:
            return [self._sample(*p) for p in self._plan(i)]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="imagenet")
        for k in [k for k in self._pending if k < i or k > i + self.prefetch]:   # a jump (resume, eval)
            for f in self._pending.pop(k):
                f.cancel()
        for k in range(i, i + self.prefetch + 1):
            self._submit(k)
        return [f.result() for f in self._pending.pop(i)]

    def __call__(self, i: int) -> tuple[Tensor, Tensor, int]:
        from torchvision.transforms.v2 import functional as TF

        samples = self._samples(i)
        images = torch.stack([img for img, _ in samples]).float().div_(255)             # (B, 3, S, S)
        labels = torch.tensor([lab for _, lab in samples], dtype=torch.int64)           # (B,)
        return TF.normalize(images, self.mean, self.std), labels, i

    def close(self) -> None:
        """Stop the worker threads (if any); the object stays usable (a new pool starts)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, {}


def evaluate_classifier(model: nn.Module, dset, *, image_size: int, batch_size: int = 100,
                        device: str | torch.device | None = None, workers: int = 0) -> dict[str, float]:
    """Accuracy of ``model`` on ``dset`` (eval transform of :class:`StepImageBatches`):
    ``top1`` and ``top5`` (fractions; top-k with k = min(5, num_classes)) of the last head,
    and for a model with several heads ``top1_stage<k>`` (k = 1 .. M) of each."""
    batches = StepImageBatches(dset, min(batch_size, len(dset)), train=False, image_size=image_size, workers=workers)
    model.eval()
    top1, top5, n = None, 0, 0
    try:
        with torch.no_grad():
            for i in range(len(batches)):
                x, y, _ = batches(i)
                if device is not None:
                    x, y = x.to(device), y.to(device)
                outs = model.stage_logits(x) if hasattr(model, "stage_logits") else [model(x)]
                hits = torch.stack([(z.argmax(1) == y).sum() for z in outs]).cpu()
                top1 = hits if top1 is None else top1 + hits
                k = min(5, outs[-1].shape[1])
                top5 += int((outs[-1].topk(k, 1).indices == y[:, None]).any(1).sum())
                n += len(y)
    finally:
        batches.close()
    out = {"top1": float(top1[-1]) / n, "top5": top5 / n}
    if len(top1) > 1:
        out.update({f"top1_stage{k + 1}": float(c) / n for k, c in enumerate(top1)})
    return out


# --- the pretraining step ----------------------------------------------------------------------

PRETRAIN_KEYS = ("steps", "batch_size", "lr", "weight_decay", "warmup", "label_smoothing", "hidden", "image_size",
                 "num_classes", "n_val")
PACKAGES = ("numpy", "torch", "torchvision")


def pretrain_from_config(block: dict) -> dict:
    """``cfnet.pretrain`` -> typed settings. Required: :data:`PRETRAIN_KEYS`; optional:
    ``clip_grad`` (0 = none, the official), ``drop_path_rate`` (None = :data:`PRETRAIN_DROP_PATH`
    or the model's default), ``head_init_scale`` (1.0). Missing keys raise one ``KeyError``
    naming every ``cfnet.pretrain.<key>``."""
    p = block.get("pretrain")
    if not isinstance(p, Mapping):
        raise KeyError(f"cfnet.pretrain: missing (the ImageNet-1K pretraining block, keys {', '.join(PRETRAIN_KEYS)})")
    missing = [f"cfnet.pretrain.{k}" for k in PRETRAIN_KEYS if p.get(k) is None]
    if missing:
        raise KeyError(f"cfnet.pretrain: missing key(s) {', '.join(missing)}")
    o = {"steps": int(p["steps"]), "batch_size": int(p["batch_size"]), "lr": float(p["lr"]),
         "weight_decay": float(p["weight_decay"]), "warmup": int(p["warmup"]),
         "label_smoothing": float(p["label_smoothing"]), "hidden": int(p["hidden"]),
         "image_size": int(p["image_size"]), "num_classes": int(p["num_classes"]), "n_val": int(p["n_val"]),
         "clip_grad": float(p.get("clip_grad") or 0.0),
         "drop_path_rate": None if p.get("drop_path_rate") is None else float(p["drop_path_rate"]),
         "head_init_scale": float(p.get("head_init_scale", 1.0))}
    for k in ("steps", "batch_size", "image_size", "num_classes", "n_val", "hidden"):
        if o[k] < 1:
            raise ValueError(f"cfnet.pretrain.{k}: {o[k]}, expected a positive integer")
    if o["image_size"] % 32:
        raise ValueError(f"cfnet.pretrain.image_size: {o['image_size']}, expected a multiple of 32 (stride 32)")
    return o


def pretrain_deviations(model: nn.Module, o: dict) -> list[str]:
    """The run's departures from the official CEDNet / ConvNeXt ImageNet-1K recipe."""
    out = [(f"AdamW lr {o['lr']:g}, weight decay {o['weight_decay']:g} (not on 1-D / bias), warmup {o['warmup']} "
            f"steps then cosine to 0, {o['steps']} steps at batch {o['batch_size']}, {o['image_size']} px, label "
            f"smoothing {o['label_smoothing']:g} (official: 300 epochs at batch 4096, lr 4e-3, 20 warmup epochs, "
            "cosine to 1e-6)"),
           ("no mixup / cutmix, RandAugment, random erasing or EMA (official: mixup 0.8, cutmix 1.0, "
            "rand-m9-mstd0.5-inc1, reprob 0.25); RandomResizedCrop + horizontal flip only"),
           "fp32 training (official: AMP)",
           (f"validation on the first {o['n_val']} val images by file name (ILSVRC2012_val_00000001 ...)"
            if o["n_val"] < 50_000 else "validation on the whole val set")]
    if o["clip_grad"] > 0:
        out.append(f"gradient clipping at L2 norm {o['clip_grad']:g} (official: none)")
    if isinstance(model, DeepSupervisedCFNet) and o["hidden"] != 2048:
        out.append(f"classification heads of width {o['hidden']} (official: 2048)")
    if isinstance(model, ConvNeXtClassifier):
        out.append("ConvNeXt baseline pretrained by this recipe (deep-supervision loss with its single head), "
                   "not started from the public ConvNeXt ImageNet-1K weights as in the paper (their checksum "
                   "cannot be confirmed offline); Kaiming fan-out init as the CFNet models (official ConvNeXt: "
                   "truncated normal std 0.02)")
    return out


def run_pretrain(block: dict, *, scale: str, arm: str, data_dir, checkpoint, out, threads: int = 1,
                 progress: bool = True, seed: int = 0, device: str = "auto", workers: int = 0) -> dict:
    """Pretrain arm ``arm``'s backbone on ImageNet-1K (module doc), evaluate, write metrics.

    block: the ``cfnet`` config block (``arms.<arm>.model`` / ``kwargs``, ``pretrain``).
    data_dir: the extracted ImageNet (``train/<wnid>``, ``val/<wnid>``); its class count must
        equal ``cfnet.pretrain.num_classes``.
    checkpoint: ``engine.train``'s final file (``{"model", "ema", "history", "steps"}``;
        resumable from ``<checkpoint>.partial``); the detector reads its ``"model"``.
    device: ``"auto"`` (CUDA when available) or a torch device name. workers: decoding threads.
    Returns the metrics written to ``out`` (run arm ``pretrain_<arm>``).
    """
    from paperzoo.data.imagenet import ImageNetFolders, first_by_name
    from paperzoo.engine.metrics import run_meta, write_run_metrics
    from paperzoo.engine.seeding import seed_everything
    from paperzoo.engine.train import load_trained, pick_device, train

    from .steps import STUDY, arm_from_config

    t0 = time.perf_counter()
    o, a = pretrain_from_config(block), arm_from_config(block, arm)
    seed_everything(seed, threads)
    torch.set_num_threads(threads)
    folders = ImageNetFolders(data_dir)
    if folders.num_classes != o["num_classes"]:
        raise ValueError(f"cfnet.pretrain.num_classes {o['num_classes']}: {data_dir} has {folders.num_classes} "
                         "classes")
    if o["batch_size"] > len(folders.train):
        raise ValueError(f"cfnet.pretrain.batch_size {o['batch_size']} > {len(folders.train)} training images")
    # drop path: cfnet.pretrain.drop_path_rate, else the official pretraining rate of the preset
    # (an arm's kwargs may carry the DETECTION rate), else the arm's / model's own
    kwargs = dict(a["kwargs"])
    if o["drop_path_rate"] is not None:
        kwargs["drop_path_rate"] = o["drop_path_rate"]
    elif a["model"] in PRETRAIN_DROP_PATH:
        kwargs["drop_path_rate"] = PRETRAIN_DROP_PATH[a["model"]]
    torch.manual_seed(seed)
    model = build_classifier(a["model"], o["num_classes"], o["hidden"], head_init_scale=o["head_init_scale"], **kwargs)
    drop_path = kwargs.get("drop_path_rate")          # None: the registered model's default
    dev = pick_device(device)
    batches = StepImageBatches(folders.train, o["batch_size"], seed, train=True, image_size=o["image_size"],
                               workers=workers)
    t1 = time.perf_counter()
    try:
        train(model, pretrain_loss_fn(o["label_smoothing"]), batches, steps=o["steps"], final=checkpoint, lr=o["lr"],
              weight_decay=o["weight_decay"], clip_grad=o["clip_grad"], schedule="cosine", warmup=o["warmup"],
              params=weight_decay_groups(model, o["weight_decay"]), device=dev, progress=progress,
              desc=f"cfnet pretrain {arm}")
    finally:
        batches.close()
    t_train = time.perf_counter() - t1
    history = load_trained(model, checkpoint)
    val = torch.utils.data.Subset(folders.val, first_by_name(folders.val, o["n_val"]))
    metrics = evaluate_classifier(model, val, image_size=o["image_size"], batch_size=o["batch_size"], device=dev,
                                  workers=workers)
    metrics["params"] = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(HEAD_PREFIX))
    metrics["params_total"] = sum(p.numel() for p in model.parameters())
    metrics["train_img_per_s"] = o["steps"] * o["batch_size"] / t_train
    meta = run_meta(t0, threads, PACKAGES, model=a["model"], model_kwargs=a["kwargs"], classifier=type(model).__name__,
                    drop_path_rate=drop_path, steps=o["steps"], batch_size=o["batch_size"], lr=o["lr"],
                    weight_decay=o["weight_decay"], warmup=o["warmup"], label_smoothing=o["label_smoothing"],
                    image_size=o["image_size"], hidden=o["hidden"] if isinstance(model, DeepSupervisedCFNet) else None,
                    num_classes=o["num_classes"], n_train=len(folders.train), n_val=len(val), device=str(dev),
                    train_s=round(t_train, 3), final_loss=history[-1]["loss"] if history else None,
                    checkpoint=str(checkpoint), checkpoint_key="model",
                    checkpoint_note="detector: load_pretrained_backbone(det.features, load_checkpoint(C)['model']) "
                                    "(heads.* dropped, attach.* / fpn.* keep their init)",
                    deviations=pretrain_deviations(model, o))
    write_run_metrics(out, study=STUDY, scale=scale, arm=f"pretrain_{arm}", seed=seed, metrics=metrics, meta=meta)
    return metrics


def main(argv: list[str] | None = None) -> None:
    from paperzoo.engine.cli import parse_step

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", required=True,
                    help="the cfnet config block (after the scale overlay): JSON text or a JSON file")
    ap.add_argument("--scale", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, help="extracted ImageNet-1K: train/<wnid>/, val/<wnid>/")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    ap.add_argument("--workers", type=int, default=0, help="image decoding threads (0: in the training thread)")
    ap.set_defaults(step="pretrain")
    args, block = parse_step(ap, argv, {"pretrain": ["arm", "data_dir", "checkpoint", "out"]})
    run_pretrain(block, scale=args.scale, arm=args.arm, data_dir=args.data_dir, checkpoint=args.checkpoint,
                 out=args.out, threads=args.threads, seed=args.seed, device=args.device, workers=args.workers)


if __name__ == "__main__":
    main()
