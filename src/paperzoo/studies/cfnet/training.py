"""CFNet training and evaluation: the detector's loss (``layers.dense``) and COCO evaluation,
and the pretrained classifier's ImageNet accuracy (the classifiers' deep-supervision loss sits
with them in ``classifier``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

COCO_KEYS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AP_S_abs", "AP_M_abs", "AP_L_abs")


def make_loss_fn(image_size: int):
    """``loss_fn(model, (images, targets, step))`` → (focal + box loss, parts)
    (``layers.dense.detection_loss_fn``)."""
    from paperzoo.layers.dense import detection_loss_fn

    return detection_loss_fn(image_size)


def evaluate(model, val, mean, std, *, area_rule: str, abs_areas, batch_size: int = 50) -> dict[str, float]:
    """COCO bbox metrics (``COCO_KEYS`` that are finite) of ``model`` on ``val``
    (``engine.coco_eval.evaluate_model``)."""
    from paperzoo.engine.coco_eval import evaluate_model

    return evaluate_model(model, val, mean, std, keys=COCO_KEYS, area_rule=area_rule, abs_areas=abs_areas,
                          batch_size=batch_size)


def evaluate_classifier(model: nn.Module, dset, *, image_size: int, batch_size: int = 100,
                        device: str | torch.device | None = None, workers: int = 0) -> dict[str, float]:
    """Accuracy of ``model`` on ``dset`` (eval transform of :class:`StepImageBatches`):
    ``top1`` and ``top5`` (fractions; top-k with k = min(5, num_classes)) of the last head,
    and for a model with several heads ``top1_stage<k>`` (k = 1 .. M) of each."""
    import torch

    from .imagenet_batches import StepImageBatches

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
