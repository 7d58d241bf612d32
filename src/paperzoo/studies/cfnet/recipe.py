"""CFNet recipe: the ``cfnet`` config block → explicit keyword arguments for both entry points
(the detector's ``steps``, the ImageNet pretraining's ``pretrain``), the detector of an arm,
its costs and parameter groups, the data, and the deviations every run records.

Only the ``*_from_config`` functions read the block.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

STUDY = "cfnet"


# --- config → explicit keyword arguments -------------------------------------------------

def arm_from_config(block: dict, arm: str) -> dict:
    """Arm → ``{"model": registry name, "kwargs": dict}`` (e.g. ``transition: concat``)."""
    if arm not in block["arms"]:
        raise KeyError(f"cfnet: unknown arm {arm!r}; configured: {sorted(block['arms'])}")
    a = block["arms"][arm]
    if "model" not in a:
        raise KeyError(f"cfnet.arms.{arm}: needs 'model' (a registered pyramid module, e.g. cfnet_mini_m2)")
    return {"model": str(a["model"]), "kwargs": dict(a.get("kwargs") or {}),
            "ld_scheme": a.get("ld_scheme"), "ld_layers": a.get("ld_layers")}


def detector_from_config(block: dict) -> dict:
    """``cfnet.detector`` → ``DenseDetector`` keywords (``layers.dense.dense_kwargs``)."""
    from paperzoo.layers.dense import dense_kwargs

    return dense_kwargs(block["detector"])


def train_from_config(block: dict) -> dict:
    t = block["train"]
    return {"steps": int(t["steps"]), "batch_size": int(t["batch_size"]), "lr": float(t["lr"]),
            "weight_decay": float(t["weight_decay"]), "warmup": int(t["warmup"]), "schedule": str(t["schedule"]),
            "clip_grad": float(t["clip_grad"]), "hflip": bool(t.get("hflip", True)),
            "drop_at": [float(x) for x in t.get("drop_at", [0.75, 0.9167])],
            "layer_decay_rate": None if t.get("layer_decay_rate") is None else float(t["layer_decay_rate"])}


def run_arms(block: dict) -> list[str]:
    """``cfnet.run_arms``, checked against ``cfnet.arms`` (the baseline must run too)."""
    arms = list(block["run_arms"])
    unknown = [a for a in arms if a not in block["arms"]]
    if unknown:
        raise KeyError(f"cfnet.run_arms: {unknown} not in cfnet.arms ({sorted(block['arms'])})")
    if block["baseline_arm"] not in arms:
        raise KeyError(f"cfnet.run_arms {arms} must include cfnet.baseline_arm {block['baseline_arm']!r}")
    return arms


def eval_from_config(block: dict) -> dict:
    e = block["eval"]
    return {"n_val": int(e["n_val"]), "area_rule": str(e["area_rule"]),
            "abs_areas": tuple(float(a) for a in e["abs_areas"]) if e.get("abs_areas") else None,
            "dataset": str(block["dataset"]), "coco_size": int(block.get("coco_size", 1024))}


PRETRAIN_KEYS = ("steps", "batch_size", "lr", "weight_decay", "warmup", "label_smoothing", "hidden", "image_size",
                 "num_classes", "n_val")


def pretrain_from_config(block: dict) -> dict:
    """``cfnet.pretrain`` -> typed settings. Required: :data:`PRETRAIN_KEYS`; optional:
    ``clip_grad`` (0 = none, the official), ``drop_path_rate`` (None = :data:`~.classifier.PRETRAIN_DROP_PATH`
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


# --- model ---------------------------------------------------------------------------------

def build_detector(block: dict, arm: str, num_classes: int):
    """DenseDetector with arm ``arm``'s pyramid module (``cfnet.arms.<arm>.model``)."""
    from paperzoo.layers import create_model
    from paperzoo.layers.dense import DenseDetector

    a = arm_from_config(block, arm)
    kw = {"ls_init": float(block["layer_scale_init"]), **a["kwargs"]} if "layer_scale_init" in block else a["kwargs"]
    return DenseDetector(create_model(a["model"], **kw), num_classes, **detector_from_config(block))


def model_costs(block: dict, arm: str, num_classes: int, image_size: int) -> dict:
    """Parameters of backbone + neck (``params``), of the whole detector (``params_total``),
    forward GFLOPs per image of the whole detector (``gflops``) and, for CFNet, the
    transition share; the ratios are to the baseline arm (``cfnet.baseline_arm``)."""
    import torch

    from paperzoo.engine.flops import count_params, flops_per_image

    def costs(a):
        torch.manual_seed(0)
        m = build_detector(block, a, num_classes)
        out = {"params": count_params(m.features), "params_total": count_params(m),
               "gflops": flops_per_image(m, image_size) / 1e9}
        if hasattr(m.features, "transition_params"):
            out["transition_share"] = m.features.transition_params() / out["params"]
        return out

    mine, base = costs(arm), costs(block["baseline_arm"])
    mine["params_ratio"] = mine["params"] / base["params"]
    mine["flops_ratio"] = mine["gflops"] / base["gflops"]
    return mine


def param_groups(model, block: dict, arm: str):
    """All trainable parameters at one lr, or, with ``train.layer_decay_rate``, the official
    layer-wise lr decay groups of the arm's scheme (``layer_decay.layer_decay_groups``)."""
    o, a = train_from_config(block), arm_from_config(block, arm)
    if o["layer_decay_rate"] is None:
        return None
    if not a["ld_scheme"] or not a["ld_layers"]:
        raise KeyError(f"cfnet.arms.{arm}: layer-wise lr decay needs 'ld_scheme' and 'ld_layers'")
    from .layer_decay import layer_decay_groups

    return layer_decay_groups(model, lr=o["lr"], weight_decay=o["weight_decay"], decay_rate=o["layer_decay_rate"],
                              num_layers=int(a["ld_layers"]), scheme=str(a["ld_scheme"]))


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: ``weight_decay`` for >= 2-D weights, 0 for 1-D tensors and biases
    (norms, layer-scale gammas), as timm's ``param_groups_weight_decay`` in the official
    pretraining; frozen parameters are left out."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --- data and deviations ---------------------------------------------------------------------

def load_data(data_dir, dataset: str, n_val: int, coco_size: int = 1024):
    """Train and val sets and the normalisation statistics (``data.detection.load_detection``)."""
    from paperzoo.data.detection import load_detection

    return load_detection(data_dir, dataset, n_val, coco_size, study="cfnet")


def deviations(block: dict, scale: str, image_size: int) -> list[str]:
    t, d = train_from_config(block), block["detector"]
    top = image_size // 32   # side of the 1/32 map (P5)
    out = [f"AdamW lr {t['lr']:g}, wd {t['weight_decay']:g}, {t['steps']} steps at batch {t['batch_size']}, "
           f"{t['schedule']} schedule, horizontal flip only (official: RetinaNet 3x, 36 epochs, LSJ 1024 + "
           "copy-paste, AdamW 1e-4 with layer-wise lr decay 0.95, batch 16)",
           f"RetinaNet head with {d['num_convs']} convs per branch and GroupNorm (official: mmdet RetinaHead, 4 convs, "
           "256 channels)"]
    out.append("torchvision's RetinaNet loss normalisation (per image by its foreground anchors; mmdet: per batch)")
    if block.get("dataset") == "coco":
        out += [f"COCO images squashed to {block.get('coco_size', 1024)}^2 (official: large-scale jitter 1024 crops "
                "of scale 0.1-2.0 and copy-paste)",
                "ImageNet-1K pretraining of both backbones in the DAG by one recipe (CEDNet's deep supervision for "
                "CFNet; the paper starts ConvNeXt from its public weights)"]
    if scale != "paper":
        out += [f"procedural {block.get('dataset')} (image size and objects: config data.{block.get('dataset')}) "
                "instead of COCO 2017",
                "every backbone trained from scratch, no ImageNet-1K pretraining (the paper pretrains CFNet with "
                "deep supervision and starts ConvNeXt from its public weights)",
                f"pyramid P3-P5 only (official RetinaNet: P3-P7; at {image_size} px P5 is already {top}x{top})",
                "miniature widths and depths (about 0.25 M parameters in backbone + neck) instead of CFNet-T / "
                "ConvNeXt-T (about 30 M)",
                f"the focal-block ablation is not run: at {image_size} px the 1/32 map is {top}x{top}, where a dilated "
                "7x7 kernel reads almost only padding"]
    return out


def pretrain_deviations(model: nn.Module, o: dict) -> list[str]:
    """The run's departures from the official CEDNet / ConvNeXt ImageNet-1K recipe."""
    from .classifier import ConvNeXtClassifier, DeepSupervisedCFNet

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
