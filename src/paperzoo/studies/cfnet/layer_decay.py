"""Layer-wise learning-rate decay parameter groups for fine-tuning a pretrained backbone in a
detector, as the official CEDNet detection configs do.

Reference: ``ced-mmdet/mmdet/core/optimizers/layer_decay_optimizer_constructor.py`` of
github.com/zhanggang001/CEDNet (class ``LearningRateDecayOptimizerConstructor``, functions
``get_num_layer_for_cednet`` (``decay_type='layer_wise_cednet'``),
``get_num_layer_for_cednet_small`` (``'layer_wise_cednet_small'``) and
``get_layer_id_for_convnext`` (``'layer_wise'``; ConvNeXt's own repository calls it
``get_num_layer_layer_wise``)). Read, not copied.

Every trainable parameter gets a layer id ``i`` in ``0 .. num_layers + 1`` and the learning rate
``lr * decay_rate ** (num_layers + 1 - i)`` (official: ``num_layers = cfg + 2``, scale
``decay_rate ** (num_layers - layer_id - 1)``): the stem gets the smallest lr, the top layer
(``num_layers + 1``: everything that is not stem / stage, e.g. CFNet's ``attach``, ConvNeXt's
FPN, the detection head) the full ``lr``. Weight decay is ``weight_decay`` for >= 2-D
tensors and 0 for 1-D ones and biases (norm weights/biases, layer-scale gammas), as the
official ``len(param.shape) == 1 or name.endswith('.bias')`` rule.

Schemes (names relative to the backbone; CEDNet's ``backbone.stages.0`` is the p2 stage =
our ``p2``, CEDNet's ``backbone.stages.k`` (k >= 1) = our ``stages[k-1]``):

* ``"cfnet"`` (``layer_wise_cednet``; official CEDNet-T RetinaNet: ``num_layers=4``,
  ``decay_rate=0.95``): ``stem`` -> 0, ``p2`` -> 1, ``stages[j]`` -> j + 2, rest -> top.
* ``"cfnet_small"`` (``layer_wise_cednet_small``; official S / B: ``num_layers=9``,
  ``decay_rate=0.95``): ``stem`` -> 0, ``p2`` -> 1; stage ``stages[j]`` (k = j + 1) is split in
  two layers: ``b3``, ``d4`` and the first 4 blocks of ``b4`` -> 2k; the other ``b4`` blocks,
  ``d5``, ``b5`` (focal blocks) and the ``transition`` -> 2k + 1; rest -> top.
* ``"convnext"`` (``layer_wise``; official ConvNeXt-T RetinaNet: ``num_layers=6``,
  ``decay_rate=0.95``; S / B use 12 in ConvNeXt's configs): ``stem`` (ConvNeXt's
  ``downsample_layers.0``) -> 0; stage 0 blocks -> 1; stage 1 downsample and blocks -> 2;
  stage 2 downsample -> 3, its block ``b`` -> 3 + b // 3; stage 3 downsample and blocks ->
  ``num_layers``; rest (the FPN, head) -> top. Our ``ConvNeXtFPN.stages[i]`` (i >= 1) holds
  ConvNeXt's ``downsample_layers[i]`` at index 0 and the blocks after it.

Differences from the official constructor, on purpose or by option:

* official parameters outside ``backbone.`` (neck, head) get ``lr_scale`` 1.0 and a hard-coded
  weight decay 1e-4 for ALL of them, 1-D included; by default here they follow the rule above
  (top layer, weight decay ``weight_decay`` / 0 for 1-D). ``head_weight_decay=1e-4`` reproduces
  the official behaviour (applied to everything outside the backbone, which for
  ``ConvNeXtFPN`` includes its ``fpn``, the official ``neck``; CFNet's ``attach`` is inside
  the official backbone wrapper and is not affected).
* the deformable-DETR special case (``sampling_offsets`` / ``reference_points``: scale 0.1)
  is not reproduced (no such parameters here).
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

SCHEMES = ("cfnet", "cfnet_small", "convnext")
CEDNET_SMALL_SPLIT = 4      # b4 blocks [0, 4) go with the first half of the stage (official constant)


def _cfnet_layer(parts: list[str], num_layers: int) -> int:
    top = num_layers + 1
    if parts[0] == "stem":
        return 0
    if parts[0] == "p2":
        return 1
    if parts[0] == "stages":
        return int(parts[1]) + 2
    return top


def _cfnet_small_layer(parts: list[str], num_layers: int) -> int:
    top = num_layers + 1
    if parts[0] == "stem":
        return 0
    if parts[0] == "p2":
        return 1
    if parts[0] != "stages":
        return top
    k = int(parts[1]) + 1                   # CEDNet stage index
    sub = parts[2]
    if sub in ("b3", "d4") or (sub == "b4" and int(parts[3]) < CEDNET_SMALL_SPLIT):
        return 2 * k
    return 2 * k + 1                        # rest of b4, d5, b5, transition


def _convnext_layer(parts: list[str], num_layers: int) -> int:
    top = num_layers + 1
    if parts[0] == "stem":
        return 0
    if parts[0] != "stages":
        return top
    stage, idx = int(parts[1]), int(parts[2])
    if stage >= 4:
        raise ValueError(f"layer decay 'convnext': stage {stage} (expected 4 ConvNeXt stages)")
    if stage == 0:
        return 1
    if stage == 3:
        return num_layers
    if idx == 0:                            # downsample_layers[stage]
        return {1: 2, 2: 3}[stage]
    block = idx - 1
    return 2 if stage == 1 else 3 + block // 3


_MAPPERS: dict[str, Callable[[list[str], int], int]] = {
    "cfnet": _cfnet_layer, "cfnet_small": _cfnet_small_layer, "convnext": _convnext_layer}


def _backbone_prefix(model: nn.Module) -> str:
    """'' if ``model`` is the backbone itself (has ``stem``), 'features.' for a detector."""
    if hasattr(model, "stem") and hasattr(model, "stages"):
        return ""
    feats = getattr(model, "features", None)
    if feats is not None and hasattr(feats, "stem") and hasattr(feats, "stages"):
        return "features."
    raise TypeError(f"layer_decay_groups: {type(model).__name__} is neither a CFNet / ConvNeXtFPN (stem, stages) "
                    f"nor a detector holding one as `.features`")


def _check_scheme(backbone: nn.Module, scheme: str) -> None:
    has_p2 = hasattr(backbone, "p2")
    if scheme in ("cfnet", "cfnet_small") and not has_p2:
        raise ValueError(f"layer decay {scheme!r} needs a CFNet (stem, p2, stages); got {type(backbone).__name__}")
    if scheme == "convnext" and has_p2:
        raise ValueError(f"layer decay 'convnext' needs a ConvNeXt backbone; got {type(backbone).__name__} (use 'cfnet')")


def layer_id(name: str, *, scheme: str, num_layers: int, prefix: str = "") -> int:
    """Layer id of the parameter ``name`` (a full name of the model; ``prefix`` is the
    backbone's, e.g. ``"features."``); names outside the backbone -> ``num_layers + 1``."""
    if scheme not in _MAPPERS:
        raise ValueError(f"layer decay scheme {scheme!r}: expected one of {list(SCHEMES)}")
    if not name.startswith(prefix):
        return num_layers + 1
    return _MAPPERS[scheme](name[len(prefix):].split("."), num_layers)


def layer_decay_groups(model: nn.Module, *, lr: float, weight_decay: float, decay_rate: float, num_layers: int,
                       scheme: str, head_weight_decay: float | None = None) -> list[dict]:
    """Optimizer param groups with layer-wise lr decay (module doc).

    model: a ``CFNet`` / ``ConvNeXtFPN`` or a detector holding it as ``.features``
        (``DenseDetector``); a ``DeepSupervisedCFNet`` works too (its ``heads`` are top).
    lr, weight_decay: base values (the top layer's lr; the decay of >= 2-D weights).
    decay_rate, num_layers, scheme: as the official ``paramwise_cfg``'s ``decay_rate``,
        ``num_layers`` and ``decay_type`` (``"cfnet"`` = ``layer_wise_cednet``,
        ``"cfnet_small"`` = ``layer_wise_cednet_small``, ``"convnext"`` = ``layer_wise``).
    head_weight_decay: None (default) or the official 1e-4 for everything outside the
        backbone (module doc).

    Returns one group per (layer id, weight decay), ordered by layer id, each
    ``{"params", "lr", "weight_decay", "layer_id", "lr_scale", "names"}``; frozen parameters
    are left out. Pass it as ``engine.train.train(..., params=groups)``; the schedule's
    multiplier applies to every group's own lr. Raises ``ValueError`` if a backbone layer
    id exceeds ``num_layers`` (``num_layers`` too small for the model).
    """
    if scheme not in _MAPPERS:
        raise ValueError(f"layer decay scheme {scheme!r}: expected one of {list(SCHEMES)}")
    prefix = _backbone_prefix(model)
    backbone = model.get_submodule(prefix[:-1]) if prefix else model
    _check_scheme(backbone, scheme)
    neck = prefix + "fpn." if scheme == "convnext" else None
    groups: dict[tuple[int, float], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lid = layer_id(name, scheme=scheme, num_layers=num_layers, prefix=prefix)
        if _in_stage(name, prefix) and lid > num_layers:
            raise ValueError(f"layer decay {scheme!r}: {name} maps to layer {lid} > num_layers {num_layers}; "
                             f"raise num_layers")
        in_backbone = name.startswith(prefix) and not (neck and name.startswith(neck))
        if head_weight_decay is not None and not in_backbone:
            wd, scale = head_weight_decay, 1.0
        else:
            wd = 0.0 if p.ndim <= 1 or name.endswith(".bias") else weight_decay
            scale = decay_rate ** (num_layers + 1 - lid)
        g = groups.setdefault((lid, wd), {"params": [], "lr": lr * scale, "weight_decay": wd, "layer_id": lid,
                                          "lr_scale": scale, "names": []})
        g["params"].append(p)
        g["names"].append(name)
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], -k[1]))]


def _in_stage(name: str, prefix: str) -> bool:
    """A stem / p2 / stage parameter of the backbone (these must not land on the top layer)."""
    return name.startswith(prefix) and name[len(prefix):].split(".")[0] in ("stem", "p2", "stages")
