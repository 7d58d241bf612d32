"""DRKD distillation losses: PRD, IRD, INS, a FitNet control, and the relation-share diagnostic.

From ``two_stage.py`` ``TwoStageDetector.forward_train`` of the official code (read, not copied).
Every term compares an ADAPTED student quantity with the teacher's:

    PRD  sum_l  d( A_l(phi_s,l(S_l)),  phi_t,l(T_l) )                 all FPN levels, whole batch
    IRD  sum_l sum_b  d( A_l(R_s,l(s_lb)),  R_t,l(t_lb) )              levels 0, 1; per image b
    INS  sum_l sum_b  d( A_l(s_lb),  t_lb )                            levels 0, 1; per image b

``loss_form="code"``: d = ``torch.dist(a, b, p=2)``, the UNSQUARED Frobenius norm of the whole
difference tensor, summed over levels (and images), as released. ``loss_form="paper"``: d =
mean squared error per element, averaged over levels (IRD/INS: over all instances of a level);
the paper's exact normalisation is NOT confirmed -- this form is our reading, kept as an
alternative, not a reproduction.

Teacher inputs (pyramid maps, RoI features) are detached here: the frozen teacher receives no
gradient, while the teacher-side GloRe / relation modules (trainable, part of the student's
parameters in the release) do.

Released weights (two-stage, ``WEIGHTS_TWO_STAGE``): PRD ``4e-3 * 0.25`` = 1e-3 (logged as
``kd_glore_loss``), IRD ``0.004`` (``kd_relation_loss``), INS ``0.008 * 0.3`` = 2.4e-3
(``kd_fore_loss``). The single-stage file uses IRD only, weight 0.005.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSS_FORMS = ("code", "paper")
WEIGHTS_TWO_STAGE = {"prd": 4e-3 * 0.25, "ird": 4e-3, "ins": 8e-3 * 0.3}


def distance(a: Tensor, b: Tensor, loss_form: str = "code") -> Tensor:
    """"code": ``torch.dist(a, b, p=2)`` (unsquared Frobenius norm); "paper": mean squared
    error. Empty inputs give 0 (connected to the graph)."""
    if loss_form not in LOSS_FORMS:
        raise ValueError(f"loss_form must be one of {LOSS_FORMS}, got {loss_form!r}")
    if a.numel() == 0:
        return (a.sum() + b.sum()) * 0.0
    return torch.dist(a, b, p=2) if loss_form == "code" else F.mse_loss(a, b)


def _reduce(terms: list[Tensor], loss_form: str) -> Tensor:
    total = torch.stack(terms).sum()
    return total if loss_form == "code" else total / len(terms)


def _per_image(a: Tensor, b: Tensor, sizes: list[int], loss_form: str) -> Tensor:
    """Code form: sum over images of the per-image distance; paper form: one MSE over the level."""
    if loss_form == "paper" or a.numel() == 0:
        return distance(a, b, loss_form)
    # sum_i ||a_i - b_i||_F over images, vectorised: per-row squared distances summed per image
    image = torch.repeat_interleave(torch.arange(len(sizes), device=a.device), torch.tensor(sizes, device=a.device))
    sq = a.new_zeros(len(sizes)).index_add(0, image, (a - b).pow(2).flatten(1).sum(1))
    pos = sq > 0          # sqrt'(0) is infinite; torch.dist's gradient at a zero distance is 0
    return (torch.where(pos, sq, torch.ones_like(sq)).sqrt() * pos).sum()


def prd_loss(s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], s_units: Sequence[nn.Module],
             t_units: Sequence[nn.Module], adapters: Sequence[nn.Module], loss_form: str = "code") -> Tensor:
    """Pixel-wise relation distillation over the given pyramid levels (released: all 5)."""
    terms = [distance(a(us(s)), ut(t.detach()), loss_form)
             for s, t, us, ut, a in zip(s_feats, t_feats, s_units, t_units, adapters, strict=True)]
    return _reduce(terms, loss_form)


def ird_loss(s_rois: Sequence[Tensor], t_rois: Sequence[Tensor], sizes: list[int],
             s_relations: Sequence[nn.Module], t_relations: Sequence[nn.Module], adapters: Sequence[nn.Module],
             loss_form: str = "code", generator: torch.Generator | None = None) -> Tensor:
    """Instance-wise relation distillation. ``s_rois``/``t_rois``: per level (N, C*k*k) from
    ``modules.roi_features``; ``sizes``: instances per image. The relation modules relate
    instances within each image only; the random filter (if any) is drawn separately for the
    student and the teacher side, as released."""
    terms = []
    for s, t, rs, rt, a in zip(s_rois, t_rois, s_relations, t_relations, adapters, strict=True):
        zs = rs(s, sizes, generator=generator)
        zt = rt(t.detach(), sizes, generator=generator)
        terms.append(_per_image(a(zs), zt, sizes, loss_form))
    return _reduce(terms, loss_form)


def ins_loss(s_rois: Sequence[Tensor], t_rois: Sequence[Tensor], sizes: list[int], adapters: Sequence[nn.Module],
             loss_form: str = "code") -> Tensor:
    """Direct RoI-feature imitation (released ``kd_fore_loss``)."""
    terms = [_per_image(a(s), t.detach(), sizes, loss_form)
             for s, t, a in zip(s_rois, t_rois, adapters, strict=True)]
    return _reduce(terms, loss_form)


def fitnet_loss(s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], adapters: Sequence[nn.Module],
                loss_form: str = "code") -> Tensor:
    """FitNet-style control: PRD without the GloRe units (adapter + the same distance on the
    raw pyramid maps). Not in the release; the natural ablation of PRD."""
    terms = [distance(a(s), t.detach(), loss_form) for s, t, a in zip(s_feats, t_feats, adapters, strict=True)]
    return _reduce(terms, loss_form)


@torch.no_grad()
def relation_share(phi_t: Tensor | Sequence[Tensor], t: Tensor | Sequence[Tensor]) -> Tensor:
    """||phi(t) - t|| / ||t|| (Frobenius): how much the relation module changes the teacher's
    features. Near 0 means the residual module is ~identity and PRD (IRD) has collapsed to
    FitNet (INS). Sequences give one value per level, as a 1-D tensor."""
    if isinstance(phi_t, Tensor):
        return torch.linalg.vector_norm(phi_t - t) / torch.linalg.vector_norm(t).clamp_min(1e-12)
    return torch.stack([relation_share(p, x) for p, x in zip(phi_t, t, strict=True)])
