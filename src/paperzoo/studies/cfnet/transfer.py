"""Transfer of a pretrained classifier's backbone (``classifier``) into a detector's
:class:`~.models.CFNet` / :class:`~.models.ConvNeXtFPN`: the parameter names match, the
classifier's ``heads.*`` are dropped, the detector's ``attach.*`` / ``fpn.*`` keep their
initialisation (as with the official ``load_checkpoint(strict=False)``). The detector step
(``steps.run_train``) and the pretraining (``pretrain``) both read it.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping

from torch import Tensor, nn

from .classifier import HEAD_PREFIX
from .models import CFNet, ConvNeXtFPN

ATTACH_PREFIX = "attach."
# detector-only parts of the backbone modules: no counterpart in a classifier, keep their init
NECK_PREFIXES = (ATTACH_PREFIX, "fpn.")


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
        ``"model"`` entry of :func:`~.pretrain.run_pretrain`'s checkpoint; a leading ``module.`` (DDP /
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
    """Load :func:`~.pretrain.run_pretrain`'s checkpoint ``path`` (its ``"model"`` entry) into a
    detector's ``features`` with :func:`load_pretrained_backbone`; returns its report."""
    from paperzoo.engine.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    if "model" not in state:
        raise KeyError(f"{path}: no 'model' entry (keys {sorted(state)}); expected engine.train's final checkpoint")
    return load_pretrained_backbone(features, state["model"], strict=strict)
