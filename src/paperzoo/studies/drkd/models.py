"""DRKD models: the teacher / student pyramids, the trainable distillation kit of an arm, and
the relation diagnostics.

Both detectors are ``layers.dense.DenseDetector`` (RetinaNet-lite, P3-P5) on a from-scratch
conv-BN-ReLU ``SmallPyramid``; the teacher is wider in the backbone, the student narrower, and
both have the SAME FPN width, so that every adapter is the released ``Conv2d(C, C, 1)``
(``modules.Adapter``) and the pyramid maps, RoI grids and relation features of the two sides
have one shape.

:class:`DistillKit` holds an arm's trainable distillation modules, as the release keeps them
inside the student detector (``two_stage.py``, ``TwoStageDetector.__init__``) and so in the
student's optimizer: per pyramid level a student-side and a TEACHER-side GloRe unit and a PRD
adapter; per RoI level (the two largest maps) a student-side and a teacher-side instance-
relation module, an IRD adapter and an INS adapter; a FitNet adapter per level (our control).
:class:`DistillStudent` bundles the student detector with its kit, which is what the training
loop optimises and checkpoints. The frozen teacher detector is never part of it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from paperzoo.layers.dense import SmallPyramid
from paperzoo.layers.registry import register_presets

from . import losses
from .modules import Adapter, GloReUnit, ObjectRelation, glore_mid_channels, roi_features

TERMS = ("prd", "ird", "ins", "fitnet")


# --- registry: pyramid feature modules for DenseDetector ---------------------------------------
# mini (64 px): teacher 32/64/128/256 (538 k parameters with FPN 64), student 16/32/64/128 (225 k);
# test: a few thousand parameters, FPN 16.

PYRAMIDS = {
    "drkd_teacher_mini": dict(widths=(32, 64, 128, 256), fpn_channels=64),
    "drkd_student_mini": dict(widths=(16, 32, 64, 128), fpn_channels=64),
    "test_drkd_teacher": dict(widths=(8, 16, 32, 32), fpn_channels=16),
    "test_drkd_student": dict(widths=(8, 8, 16, 16), fpn_channels=16),
}


register_presets(__name__, SmallPyramid, PYRAMIDS, "SmallPyramid {defaults} (P3-P5).")


# --- the distillation kit -------------------------------------------------------------------

class DistillKit(nn.Module):
    """The trainable distillation modules of one arm.

    channels: the common FPN width C; num_levels: pyramid levels distilled by PRD / FitNet
    (all of them); roi_levels: the first (largest) levels pooled for IRD / INS (released: 2);
    roi_size: RoIAlign output k (released: 3), instance dim D = C k^2.
    prd / ird / ins / fitnet: which terms the arm uses; filter: the IRD relation filter
    ("code": the release's random per-call filter, "none").

    Every module of every term is built in a fixed order from the current RNG state and the
    unused ones are dropped afterwards, so that arms built under the same seed start their
    shared modules (e.g. the PRD GloRe units of ``prd`` and ``drkd``) from the same weights.
    Attributes of unused terms are None.
    """

    def __init__(self, channels: int, num_levels: int, *, prd: bool = False, ird: bool = False, ins: bool = False,
                 fitnet: bool = False, filter: str = "code", roi_levels: int = 2, roi_size: int = 3):
        super().__init__()
        if roi_levels > num_levels:
            raise ValueError(f"DistillKit: roi_levels {roi_levels} > num_levels {num_levels}")
        self.channels, self.num_levels, self.roi_levels, self.roi_size = channels, num_levels, roi_levels, roi_size
        self.flags = {"prd": bool(prd), "ird": bool(ird), "ins": bool(ins), "fitnet": bool(fitnet)}
        self.filter = filter
        d = channels * roi_size ** 2

        def glore():
            return nn.ModuleList(GloReUnit(channels, glore_mid_channels(channels, l)) for l in range(num_levels))

        def adapters(n):
            return nn.ModuleList(Adapter(channels) for _ in range(n))

        def relations():
            return nn.ModuleList(ObjectRelation(d, filter=filter) for _ in range(roi_levels))

        self.s_glore, self.t_glore, self.prd_adapt = glore(), glore(), adapters(num_levels)
        self.s_rel, self.t_rel, self.ird_adapt = relations(), relations(), adapters(roi_levels)
        self.ins_adapt = adapters(roi_levels)
        self.fit_adapt = adapters(num_levels)
        drop = {"prd": ("s_glore", "t_glore", "prd_adapt"), "ird": ("s_rel", "t_rel", "ird_adapt"),
                "ins": ("ins_adapt",), "fitnet": ("fit_adapt",)}
        for term, names in drop.items():
            if not self.flags[term]:
                for n in names:
                    setattr(self, n, None)

    @property
    def active(self) -> list[str]:
        """The terms this kit computes, in ``TERMS`` order."""
        return [t for t in TERMS if self.flags[t]]

    def teacher_side(self) -> list[nn.Module]:
        """The teacher-side relation modules (trainable, in the student's optimizer as released)."""
        return [m for m in (self.t_glore, self.t_rel) if m is not None]

    def terms(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], boxes: Sequence[Tensor], *,
              strides: Sequence[float], loss_form: str = "code", pool_from: str = "own",
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The raw (unweighted) distillation terms of the active arms.

        s_feats / t_feats: per level (B, C, H_l, W_l), student and (frozen) teacher pyramid;
        boxes: per image the GT boxes (n_i, 4) xyxy pixels; strides: per level.
        Teacher inputs are detached inside ``losses``."""
        out = {}
        s_feats, t_feats = list(s_feats)[: self.num_levels], list(t_feats)[: self.num_levels]
        if self.flags["prd"]:
            out["prd"] = losses.prd_loss(s_feats, t_feats, self.s_glore, self.t_glore, self.prd_adapt, loss_form)
        if self.flags["fitnet"]:
            out["fitnet"] = losses.fitnet_loss(s_feats, t_feats, self.fit_adapt, loss_form)
        if self.flags["ird"] or self.flags["ins"]:
            k, lv = self.roi_size, self.roi_levels
            s_rois, sizes = roi_features(s_feats[:lv], list(boxes), list(strides)[:lv], output_size=k,
                                         pool_from=pool_from)
            t_rois, _ = roi_features([t.detach() for t in t_feats[:lv]], list(boxes), list(strides)[:lv],
                                     output_size=k, pool_from=pool_from)
            if self.flags["ird"]:
                out["ird"] = losses.ird_loss(s_rois, t_rois, sizes, self.s_rel, self.t_rel, self.ird_adapt,
                                             loss_form, generator)
            if self.flags["ins"]:
                out["ins"] = losses.ins_loss(s_rois, t_rois, sizes, self.ins_adapt, loss_form)
        return out


class DistillStudent(nn.Module):
    """The student detector and its distillation kit: what the training loop optimises and
    checkpoints (``student.*``, ``kit.*``). The teacher is kept outside (frozen, eval mode)."""

    def __init__(self, student: nn.Module, kit: DistillKit):
        super().__init__()
        self.student, self.kit = student, kit


def check_pair(teacher: nn.Module, student: nn.Module) -> None:
    """Teacher and student must share the FPN width and the strides (one adapter shape)."""
    tf, sf = teacher.features, student.features
    if tf.out_channels != sf.out_channels:
        raise ValueError(f"drkd: teacher FPN width {tf.out_channels} != student {sf.out_channels}; the released "
                         "adapters are Conv2d(C, C, 1), so both pyramids need the same width")
    if tuple(getattr(tf, "strides", ())) != tuple(getattr(sf, "strides", ())):
        raise ValueError(f"drkd: teacher strides {getattr(tf, 'strides', None)} != student "
                         f"{getattr(sf, 'strides', None)}")


def pyramid(detector: nn.Module, images: Tensor) -> list[Tensor]:
    """The pyramid maps of ``detector`` (a DenseDetector) on ``images``: backbone + FPN only,
    no head, no postprocessing (the teacher side of every distillation term)."""
    return list(detector.features(detector.image_list(images).tensors).values())


# --- diagnostics ------------------------------------------------------------------------------

def box_mask(boxes: Sequence[Tensor], shape: tuple[int, int], stride: float) -> Tensor:
    """(B, H, W) bool: the cells of a stride-``stride`` map whose centre lies inside one of
    the image's GT boxes (xyxy pixels, half-open [x1, x2) x [y1, y2))."""
    h, w = shape
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * stride
    out = torch.zeros(len(boxes), h, w, dtype=torch.bool)
    for i, b in enumerate(boxes):
        b = b.detach().float().cpu().reshape(-1, 4)
        if b.numel() == 0:
            continue
        inside_x = (xs[None, :] >= b[:, 0:1]) & (xs[None, :] < b[:, 2:3])      # (n, W)
        inside_y = (ys[None, :] >= b[:, 1:2]) & (ys[None, :] < b[:, 3:4])      # (n, H)
        out[i] = (inside_y[:, :, None] & inside_x[:, None, :]).any(0)
    return out


def energy_contrast(x: Tensor, mask: Tensor) -> float:
    """Mean per-cell energy (mean over channels of x^2) inside ``mask`` over the mean outside;
    NaN when either side has no cell. x: (B, C, H, W); mask: (B, H, W)."""
    e = x.detach().float().pow(2).mean(1).cpu()                                 # (B, H, W)
    if not mask.any() or mask.all():
        return math.nan
    return float(e[mask].mean() / e[~mask].mean().clamp_min(1e-12))


@torch.no_grad()
def relation_diagnostics(kit: DistillKit, t_feats: Sequence[Tensor], boxes: Sequence[Tensor],
                         strides: Sequence[float], *, pool_from: str = "own", seed: int = 0) -> dict[str, float]:
    """Diagnostics of the trained teacher-side relation modules on teacher features (eval mode):

    * ``relation_share`` (PRD): mean over levels of ||phi_t(T) - T|| / ||T||; near 0 the GloRe
      residual is ~identity and PRD has collapsed into FitNet on the raw maps;
    * ``fg_energy_gain`` (PRD): per level, the foreground/background energy contrast of the
      relation residual phi_t(T) - T (mean energy per cell inside GT boxes over outside)
      divided by the same contrast of T itself; geometric mean over the levels where it is
      defined. > 1: the relation features emphasise the foreground more than the features
      they are computed from (the paper's Fig. 1 reading);
    * ``ird_relation_share`` (IRD): mean over the RoI levels of ||R_t(t) - t|| / ||t|| on
      the GT RoIs (the random filter, if any, drawn from a generator seeded ``seed``).

    Only the keys of the kit's active relation terms are returned, and only finite values."""
    out: dict[str, float] = {}
    was = kit.training
    kit.eval()
    try:
        t_feats = [t.detach() for t in t_feats][: kit.num_levels]
        if kit.flags["prd"]:
            phi = [u(t) for u, t in zip(kit.t_glore, t_feats)]
            out["relation_share"] = float(losses.relation_share(phi, t_feats).mean())
            gains = []
            for p, t, s in zip(phi, t_feats, strides):
                m = box_mask(boxes, t.shape[-2:], s)
                g = energy_contrast(p - t, m) / energy_contrast(t, m)
                if math.isfinite(g) and g > 0:
                    gains.append(math.log(g))
            if gains:
                out["fg_energy_gain"] = math.exp(sum(gains) / len(gains))
        if kit.flags["ird"]:
            lv = kit.roi_levels
            rois, sizes = roi_features(t_feats[:lv], list(boxes), list(strides)[:lv], output_size=kit.roi_size,
                                       pool_from=pool_from)
            if sum(sizes):
                g = torch.Generator().manual_seed(seed)
                z = [r(x, sizes, generator=g) for r, x in zip(kit.t_rel, rois)]
                out["ird_relation_share"] = float(losses.relation_share(z, rois).mean())
    finally:
        kit.train(was)
    return {k: v for k, v in out.items() if math.isfinite(v)}
