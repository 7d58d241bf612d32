"""DRKD training and evaluation: the loss of every arm (the detection loss + the weighted
distillation terms of the arm's kit), COCO evaluation of the student, and the relation
diagnostics on val images."""
from __future__ import annotations

COCO_KEYS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AP_S_abs", "AP_M_abs", "AP_L_abs")
FILTER_SEED = 4_000_037       # random relation filter of step i: a function of (seed, i) only


def make_loss_fn(image_size: int, *, teacher=None, kd: dict | None = None, seed: int = 0):
    """``loss_fn(model, (images, targets, step))`` → (loss, parts).

    ``model``: a ``models.DistillStudent``. The detection loss (focal + box) of the student,
    plus, for every active term of its kit, ``w_term * term`` with the raw term logged as
    ``loss_kd_<term>``. The teacher's pyramid is computed under ``no_grad`` on the frozen,
    eval-mode teacher; GT boxes of the batch feed IRD / INS; the random relation filter of
    step i is drawn from a generator seeded by (seed, i)."""
    import torch

    from paperzoo.layers.dense import targets_to_xyxy

    from .models import pyramid

    def loss_fn(model, batch):
        images, targets, step = batch
        tgt = targets_to_xyxy(targets, image_size)
        out = model.student(images, tgt, return_features=True)
        parts = {"classification": out["classification"], "bbox_regression": out["bbox_regression"]}
        loss = parts["classification"] + parts["bbox_regression"]
        kit = model.kit
        if not kit.active:
            return loss, parts
        with torch.no_grad():
            t_feats = pyramid(teacher, images)
        g = torch.Generator().manual_seed(FILTER_SEED + seed * 1_000_003 + int(step))
        terms = kit.terms(list(out["features"].values()), t_feats, [t["boxes"] for t in tgt],
                          strides=model.student.features.strides, loss_form=kd["loss_form"],
                          pool_from=kd["pool_from"], generator=g)
        for name, v in terms.items():
            parts[f"loss_kd_{name}"] = v
            loss = loss + kd["weights"][name] * v
        return loss, parts

    return loss_fn


def evaluate(model, val, mean, std, *, area_rule: str, abs_areas, batch_size: int = 50) -> dict[str, float]:
    """COCO bbox metrics (``COCO_KEYS`` that are finite) of the detector ``model`` on ``val``
    (``engine.coco_eval.evaluate_model``)."""
    from paperzoo.engine.coco_eval import evaluate_model

    return evaluate_model(model, val, mean, std, keys=COCO_KEYS, area_rule=area_rule, abs_areas=abs_areas,
                          batch_size=batch_size)


def diagnostics(kit, teacher, val, mean, std, *, n_diag: int, image_size: int, seed: int = 0,
                pool_from: str = "own") -> dict[str, float]:
    """``models.relation_diagnostics`` on the first ``n_diag`` val images (teacher pyramid)."""
    import torch

    from paperzoo.data.sets import to_float
    from paperzoo.layers.dense import targets_to_xyxy

    from .models import pyramid, relation_diagnostics

    if not (kit.flags["prd"] or kit.flags["ird"]) or n_diag <= 0:
        return {}
    n = min(n_diag, len(val))
    dev = next(teacher.parameters()).device
    with torch.no_grad():
        t_feats = pyramid(teacher, to_float(val.images[:n], mean, std).to(dev))
    boxes = [t["boxes"].to(dev) for t in targets_to_xyxy(val.targets[:n], image_size)]
    return relation_diagnostics(kit, t_feats, boxes, teacher.features.strides, pool_from=pool_from, seed=seed)
