"""KD-DETR training and evaluation: the Hungarian criterion, the loss function of every arm
(detection loss + the distillation points' terms), and COCO evaluation of the own queries."""
from __future__ import annotations

COCO_KEYS = ("AP", "AP50", "AP75", "AR100")


def make_criterion(o: dict, num_classes: int, num_decoder_layers: int):
    from paperzoo.layers.criterion import SetCriterion, with_aux_weights
    from paperzoo.layers.matcher import HungarianMatcher

    weights = with_aux_weights({"loss_ce": o["loss_weights"]["ce"], "loss_bbox": o["loss_weights"]["bbox"],
                                "loss_giou": o["loss_weights"]["giou"]}, num_decoder_layers)
    matcher = HungarianMatcher(o["matcher"]["cls"], o["matcher"]["bbox"], o["matcher"]["giou"])
    return SetCriterion(num_classes, matcher, weights), weights


def make_loss_fn(criterion, weights: dict, *, arm: dict | None = None, teacher=None, kd: dict | None = None,
                 seed: int = 0, matcher=None, teacher_targets=None):
    """``loss_fn(model, (images, targets, step))`` → (loss, parts): the Hungarian loss plus, for a
    distillation arm, ``loss_kd_<set>_<cls|bbox|giou>`` of each point set (``general``,
    ``specific``; coefficients ``kd["weights"]``) or ``loss_kd_naive_<cls|bbox>`` of the
    GT-matched own queries (``naive``; coefficients ``kd["naive_weights"]``). ``matcher``:
    the Hungarian matcher of the naive KD's GT matching (default: the criterion's).
    ``teacher_targets``: a ``teacher_cache.TeacherTargets`` of this seed; the teacher's
    outputs are read from it instead of computed (the same tensors, bit for bit)."""
    from paperzoo.layers.criterion import weighted_loss

    from .losses import distill_points, naive_kd_loss
    from .recipe import distils
    from .sampling import forward_with_points, general_points, specific_points
    from .teacher_cache import teacher_pass

    arm = arm or {"general": False, "specific": False, "frw": True, "naive": False}
    distil = distils(arm)
    matcher = matcher if matcher is not None else criterion.matcher

    def loss_fn(model, batch):
        images, targets, step = batch
        points = {}
        if arm["general"]:  # fresh every step, from the anchor law
            points["general"] = general_points(kd["num_general"], seed, step, kd["general_mean"], kd["general_std"])
        if arm["specific"]:
            points["specific"] = specific_points(teacher)  # detached teacher anchors
        own, extra = forward_with_points(model, images, points)
        parts = criterion(own, targets)
        loss = weighted_loss(parts, weights)
        if not distil:
            return loss, parts
        if teacher_targets is not None:
            t_own, t_extra = teacher_targets(step, arm["general"])
        else:
            t_own, t_extra = teacher_pass(teacher, images, points["general"] if arm["general"] else None)
        sets = {}
        if arm["general"]:
            sets["general"] = distill_points(extra["general"], t_extra["general"], temperature=kd["temperature"],
                                             frw=arm["frw"], cls_norm=kd.get("cls_norm", "sum"))
        if arm["specific"]:  # targets: the teacher's own predictions on its own anchors, no matching
            sets["specific"] = distill_points(extra["specific"], t_own, temperature=kd["temperature"],
                                              frw=arm["frw"], cls_norm=kd.get("cls_norm", "sum"))
        if arm["naive"]:
            sets["naive"] = naive_kd_loss(own, t_own, targets, matcher, temperature=kd["temperature"])
        for name, terms in sets.items():
            coef = kd["naive_weights"] if name == "naive" else kd["weights"]
            for k, v in terms.items():
                parts[f"loss_kd_{name}_{k}"] = v
                loss = loss + coef[k] * v
        return loss, parts

    return loss_fn


def evaluate(model, val, mean, std, *, top_k: int, area_rule: str, batch_size: int = 64) -> dict[str, float]:
    """COCO bbox AP / AP50 / AP75 / AR100 of ``model`` (own queries only) on ``val``."""
    import math

    import torch

    from paperzoo.data.sets import to_float
    from paperzoo.engine.coco_eval import evaluate as coco_evaluate, results_from_predictions
    from paperzoo.layers.detr_lite import PostProcess

    model.eval()
    post, preds = PostProcess(top_k=top_k, focal=True), []
    with torch.no_grad():
        for s in range(0, len(val), batch_size):
            x = to_float(val.images[s:s + batch_size], mean, std)
            sizes = torch.stack([t["orig_size"] for t in val.targets[s:s + batch_size]])
            preds += post(model(x), sizes)
    res = results_from_predictions(preds, val.image_ids, val.category_ids)
    m = coco_evaluate(val.coco_path, res, area_rule=area_rule, img_ids=val.image_ids)
    return {k: float(m[k]) for k in COCO_KEYS if math.isfinite(m[k])}
