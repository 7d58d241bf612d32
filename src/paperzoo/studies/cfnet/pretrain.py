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

This module is the entry point; its pieces live by role (every name stays importable from
here): ``classifier`` (the classifiers and the deep-supervision loss), ``transfer`` (backbone
→ detector), ``imagenet_batches`` (the data), ``recipe`` (config → keywords, deviations) and
``training`` (the accuracy evaluation).

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
import time
from pathlib import Path

import torch

from .classifier import (  # noqa: F401  (re-exported: the pretraining's interface, as before the split)
    HEAD_PREFIX,
    PRETRAIN_DROP_PATH,
    ConvNeXtClassifier,
    ConvNeXtHead,
    DeepSupervisedCFNet,
    StageClassifier,
    build_classifier,
    build_pretrain_model,
    deep_supervision_loss,
    pretrain_loss_fn,
    stage_losses,
)
from .imagenet_batches import (  # noqa: F401
    CROP_ATTEMPTS,
    CROP_PCT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    StepImageBatches,
    crop_box,
)
from .recipe import (  # noqa: F401
    PRETRAIN_KEYS,
    STUDY,
    arm_from_config,
    pretrain_deviations,
    pretrain_from_config,
    weight_decay_groups,
)
from .training import evaluate_classifier
from .transfer import (  # noqa: F401
    ATTACH_PREFIX,
    NECK_PREFIXES,
    backbone_state_dict,
    load_pretrain_checkpoint,
    load_pretrained_backbone,
)

PACKAGES = ("numpy", "torch", "torchvision")


# --- the pretraining step ----------------------------------------------------------------------

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
