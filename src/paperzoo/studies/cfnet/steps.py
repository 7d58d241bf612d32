"""Entry points of the CFNet study (called by the Snakemake rules).

    python -m paperzoo.studies.cfnet.steps <step> --params P --scale S [options]

``P`` is the study's ``cfnet`` config block after the scale overlay (JSON text or file);
``recipe`` turns it into keyword arguments, ``training`` holds the loss and the evaluation.

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

from .recipe import (  # noqa: F401  (re-exported: the recipe is part of this module's interface)
    STUDY,
    arm_from_config,
    build_detector,
    detector_from_config,
    deviations,
    eval_from_config,
    load_data,
    model_costs,
    param_groups,
    run_arms,
    train_from_config,
)
from .training import COCO_KEYS, evaluate, make_loss_fn  # noqa: F401

PACKAGES = ("numpy", "torch", "torchvision", "pycocotools", "faster_coco_eval")


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

        from .transfer import load_pretrained_backbone

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
