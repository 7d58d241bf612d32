"""Entry points of the CFNet study (called by the Snakemake rules).

    python -m paperzoo.studies.cfnet.steps <step> --params P --scale S [options]

``P`` is the study's ``cfnet`` config block after the scale overlay (JSON text or file).

Steps (outputs written atomically; training resumable from ``<checkpoint>.partial``):

* ``train``   --arm A --seed K --data-dir D --checkpoint C.pt --out runs/A/seedK/metrics.json
              RetinaNet-lite (``layers.dense``) with arm A's pyramid module, ``train.steps``
              steps; metrics: COCO ``AP``, ``AP50``, ``AP75``, ``AP_S/M/L`` (scaled COCO
              areas), ``AP_S/M/L_abs`` (absolute areas, ``eval.abs_areas``), ``params``
              (backbone + neck) and ``params_ratio`` (to the baseline arm's), ``gflops``
              (forward, per image, whole detector) and ``flops_ratio``, ``transition_share``
              (CFNet: transition / backbone-and-neck parameters), ``train_img_per_s``.
* ``figures`` --metrics aggregated.json --outdir DIR
"""
from __future__ import annotations

import time
from pathlib import Path

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

STUDY = "cfnet"
PACKAGES = ("numpy", "torch", "torchvision", "pycocotools", "faster_coco_eval")
COCO_KEYS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AP_S_abs", "AP_M_abs", "AP_L_abs")


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


# --- data and evaluation --------------------------------------------------------------------

def load_data(data_dir, dataset: str, n_val: int, coco_size: int = 1024):
    """Train and val sets and the normalisation statistics (``data.detection.load_detection``)."""
    from paperzoo.data.detection import load_detection

    return load_detection(data_dir, dataset, n_val, coco_size, study="cfnet")


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


# --- steps ---------------------------------------------------------------------------------

def run_train(block: dict, *, scale: str, arm: str, seed: int, data_dir, checkpoint, out, pretrained=None,
              threads: int = 1, progress: bool = True) -> dict:
    """Train arm ``arm`` of seed ``seed``, evaluate, write metrics. ``pretrained``: the arm's
    ImageNet-1K pretraining checkpoint (``pretrain.run_pretrain``), required when
    ``cfnet.pretrained`` is true; its backbone weights are loaded into the detector's pyramid
    module (the attachment / FPN layers stay as initialised)."""
    import torch

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import load_trained, train

    t0 = time.perf_counter()
    seed_everything(seed, threads)   # also sets torch's thread count
    ev, o = eval_from_config(block), train_from_config(block)
    train_set, val, mean, std = load_data(data_dir, ev["dataset"], ev["n_val"], ev["coco_size"])
    image_size = ev["coco_size"] if ev["dataset"] == "coco" else int(train_set.images.shape[-1])
    costs = model_costs(block, arm, train_set.num_classes, image_size)
    torch.manual_seed(seed)  # the init of seed K (architectures differ, so arms cannot share it)
    model = build_detector(block, arm, train_set.num_classes)
    transfer = None
    if block.get("pretrained"):
        if pretrained is None:
            raise SystemExit(f"cfnet: cfnet.pretrained is true but no --pretrained checkpoint was given for arm {arm}")
        from paperzoo.engine.checkpoint import load_checkpoint

        from .pretrain import load_pretrained_backbone

        transfer = load_pretrained_backbone(model.features, load_checkpoint(pretrained)["model"])
    batches = StepBatches(train_set, o["batch_size"], seed, mean, std, hflip=o["hflip"])
    device = torch.device("cuda") if torch.cuda.is_available() else None   # paper scale: the GPU
    t1 = time.perf_counter()
    train(model, make_loss_fn(image_size), batches, steps=o["steps"], final=checkpoint, lr=o["lr"], device=device,
          weight_decay=o["weight_decay"], clip_grad=o["clip_grad"], schedule=o["schedule"], warmup=o["warmup"],
          drop_at=o["drop_at"], params=param_groups(model, block, arm), progress=progress,
          desc=f"cfnet {arm} seed{seed}")
    t_train = time.perf_counter() - t1
    history = load_trained(model, checkpoint)
    metrics = evaluate(model, val, mean, std, area_rule=ev["area_rule"], abs_areas=ev["abs_areas"])
    metrics.update(costs)
    metrics["train_img_per_s"] = o["steps"] * o["batch_size"] / t_train
    a = arm_from_config(block, arm)
    meta = run_meta(t0, threads, PACKAGES, model=a["model"], model_kwargs=a["kwargs"], steps=o["steps"],
                    train_s=round(t_train, 3), final_loss=history[-1]["loss"] if history else None, n_val=len(val),
                    image_size=image_size, device=str(device or "cpu"),
                    timing_note=(f"GPU {torch.cuda.get_device_name()}" if device is not None else
                                 f"CPU, {threads} thread(s), other cores busy with other jobs"),
                    pretrained=None if transfer is None else {"checkpoint": str(pretrained),
                                                              "loaded": len(transfer.get("loaded", []))},
                    deviations=deviations(block, scale, image_size))
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_figures(block: dict, *, scale: str, metrics, outdir) -> list[Path]:
    from . import figures

    outdir = Path(outdir)
    agg = read_json(metrics)
    arms = [a for a in run_arms(block) if a in agg["arms"]]
    return [figures.table_arms(agg, arms, outdir, baseline=block["baseline_arm"]),
            figures.fig_ap_per_arm(agg, arms, outdir / "fig_ap_per_arm.png", scale=scale),
            figures.fig_ap_vs_cost(agg, arms, outdir / "fig_ap_vs_cost.png", scale=scale)]


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("train", "figures"))
    ap.add_argument("--arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--outdir", type=Path)
    ap.add_argument("--pretrained", type=Path, help="the arm's ImageNet pretraining checkpoint (train)")
    need = {"train": ["arm", "data_dir", "checkpoint", "out"], "figures": ["metrics", "outdir"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "train":
        run_train(block, scale=args.scale, arm=args.arm, seed=args.seed, data_dir=args.data_dir,
                  checkpoint=args.checkpoint, out=args.out, pretrained=args.pretrained, threads=args.threads)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, outdir=args.outdir)


if __name__ == "__main__":
    main()
