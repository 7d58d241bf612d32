"""Entry points of the Group DETR v2 study (called by the Snakemake rules).

    python -m paperzoo.studies.group_detr.steps <step> --params P --scale S [options]

``P`` is the ``group_detr`` config block after the scale overlay (JSON text or file). Only the
``*_from_config`` functions read it. The three stages of Group DETR v2 (arXiv 2211.03594, §3):

* ``mim``       --data-dir D --checkpoint E.pt --out mim/metrics.json
                (E) masked-image pretraining (MAE, ``models.MAE``) of the ViT encoder on the
                pretraining set's train images (labels unused); one run, shared by every seed.
* ``detpre``    --arm A --seed K --data-dir D [--encoder E.pt] --checkpoint C.pt --out M.json
                (D) detector pretraining on the Objects365 stand-in with arm A's number of
                query groups, from the MAE encoder (``encoder: mim``) or a random one.
* ``finetune``  --arm A --seed K --data-dir T [--encoder E.pt] [--detector C.pt] --checkpoint F.pt
                --out M.json
                (F) finetuning on the target set (the first ``finetune.n_train`` train images)
                from a pretrained detector of the same seed (class head re-initialised) or from
                the encoder only.
* ``figures``   --metrics aggregated.json --outdir DIR

Every training run records its AP-vs-step curve (group 0 on the val split every
``eval_every`` steps), ``AP_auc`` (the mean of that curve: the convergence-speed metric fixed
before the runs), the final group-0 COCO metrics, the per-group and pooled-groups duplicate
measures (``evaluation.evaluate_groups``), train ms/step, inference ms/image and parameters.
"""
from __future__ import annotations

import time
from pathlib import Path

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

STUDY = "group_detr"
PACKAGES = ("numpy", "torch", "torchvision", "timm", "pycocotools", "faster_coco_eval")
MASK_SEED = 7_000_003        # MAE masks of step i: a function of (seed, i) only
FINETUNE_BATCH_SEED = 500    # stage F draws its batches from seed + this (D from seed)
STAGES = ("detpre", "finetune")


# --- config → explicit keyword arguments -------------------------------------------------

def mim_from_config(block: dict) -> dict:
    m = block["mim"]
    return {"steps": int(m["steps"]), "batch_size": int(m["batch_size"]), "lr": float(m["lr"]),
            "weight_decay": float(m["weight_decay"]), "warmup": int(m["warmup"]), "mask_ratio": float(m["mask_ratio"]),
            "decoder_dim": int(m["decoder_dim"]), "decoder_depth": int(m["decoder_depth"]), "seed": int(m["seed"])}


def stage_from_config(block: dict, stage: str) -> dict:
    """``group_detr.<stage>`` (detpre | finetune) + the shared loss / matcher keys."""
    if stage not in STAGES:
        raise KeyError(f"group_detr: unknown stage {stage!r}; expected one of {STAGES}")
    s = block[stage]
    return {"steps": int(s["steps"]), "batch_size": int(s["batch_size"]), "lr": float(s["lr"]),
            "lr_backbone_factor": float(s["lr_backbone_factor"]), "weight_decay": float(s["weight_decay"]),
            "warmup": int(s["warmup"]), "drop_at": float(s["drop_at"]), "clip_grad": float(s["clip_grad"]),
            "eval_every": int(s["eval_every"]), "n_train": s.get("n_train"),
            "loss_weights": {k: float(v) for k, v in block["loss_weights"].items()},
            "matcher": {k: float(v) for k, v in block["matcher_costs"].items()}}


def arm_from_config(block: dict, stage: str, arm: str) -> dict:
    """detpre arm → ``{"num_groups", "encoder": "mim" | "none", "shared_self_attn",
    "repeat_targets"}``; finetune arm → the same plus ``"from": <detpre arm> | None``.

    ``shared_self_attn``: decoder self-attention across all groups in training (Group DETR's
    ablation; matching stays per group). ``repeat_targets`` = k: every ground-truth object is
    repeated k times in the Hungarian matching of one group, the naive one-to-many assignment
    the v1 abstract says "does not work for DETR"."""
    arms = block["arms"][stage]
    if arm not in arms:
        raise KeyError(f"group_detr: unknown {stage} arm {arm!r}; configured: {sorted(arms)}")
    a = dict(arms[arm])
    out = {"num_groups": int(a.get("num_groups", 1)), "encoder": str(a.get("encoder", "mim")),
           "shared_self_attn": bool(a.get("shared_self_attn", False)),
           "repeat_targets": int(a.get("repeat_targets", 1))}
    if out["repeat_targets"] < 1:
        raise ValueError(f"group_detr.arms.{stage}.{arm}.repeat_targets must be >= 1")
    if out["encoder"] not in ("mim", "none"):
        raise ValueError(f"group_detr.arms.{stage}.{arm}.encoder = {out['encoder']!r}: expected mim or none")
    if out["num_groups"] < 1:
        raise ValueError(f"group_detr.arms.{stage}.{arm}.num_groups must be >= 1")
    if stage == "finetune":
        src = a.get("from")
        if src is not None and src not in block["arms"]["detpre"]:
            raise KeyError(f"group_detr.arms.finetune.{arm}.from = {src!r}: not a detpre arm")
        out["from"] = src
    return out


def eval_from_config(block: dict) -> dict:
    e = block["eval"]
    return {"n_val": int(e["n_val"]), "top_k": int(e["top_k"]), "nms_iou": float(e["nms_iou"]),
            "area_rule": str(e["area_rule"])}


# --- models ----------------------------------------------------------------------------------

def build_detector(block: dict, num_classes: int, num_groups: int, seed: int, shared_self_attn: bool = False):
    """``group_detr.model`` with ``num_groups`` query groups, initialised from ``seed`` (arms of
    a seed share every weight but the anchors of groups > 0, which K = 1 lacks)."""
    import torch

    from paperzoo.layers import create_model

    torch.manual_seed(seed)
    return create_model(block["model"], num_classes=num_classes, num_groups=num_groups,
                        group_self_attn=not shared_self_attn)


def build_mae(block: dict, detector):
    from .models import MAE

    m = mim_from_config(block)
    return MAE(detector.backbone, mask_ratio=m["mask_ratio"], decoder_dim=m["decoder_dim"],
               decoder_depth=m["decoder_depth"])


def load_mim_encoder(block: dict, detector, checkpoint) -> None:
    """Stage E's encoder into ``detector.backbone`` (the MAE checkpoint holds backbone + decoder)."""
    from paperzoo.engine.train import load_trained

    load_trained(build_mae(block, detector), checkpoint)


def param_groups(model, o: dict):
    """The backbone at ``lr x lr_backbone_factor`` (detrex / Paddle Group DETR: x0.1), the rest at lr."""
    bb = {id(p) for p in model.backbone.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in trainable if id(p) in bb], "lr": o["lr"] * o["lr_backbone_factor"]},
            {"params": [p for p in trainable if id(p) not in bb]}]


def repeat_targets(targets: list[dict], k: int) -> list[dict]:
    """Every object listed ``k`` times (naive one-to-many: k queries of ONE group match each
    object; the criterion's normaliser counts the copies)."""
    if k == 1:
        return targets
    return [{**t, "labels": t["labels"].repeat(k), "boxes": t["boxes"].repeat(k, 1)} for t in targets]


def make_loss_fn(o: dict, num_classes: int, num_decoder_layers: int, repeat: int = 1):
    """Hungarian loss with per-group matching and the normaliser x K (``layers.criterion``);
    ``repeat`` > 1: the targets repeated (``repeat_targets``)."""
    from paperzoo.layers.criterion import SetCriterion, weighted_loss, with_aux_weights
    from paperzoo.layers.matcher import HungarianMatcher

    w = o["loss_weights"]
    weights = with_aux_weights({"loss_ce": w["ce"], "loss_bbox": w["bbox"], "loss_giou": w["giou"]},
                               num_decoder_layers)
    m = o["matcher"]
    criterion = SetCriterion(num_classes, HungarianMatcher(m["cls"], m["bbox"], m["giou"]), weights)

    def loss_fn(model, batch):
        images, targets, _ = batch
        parts = criterion(model(images), repeat_targets(targets, repeat))
        return weighted_loss(parts, weights), parts

    return loss_fn


# --- data ----------------------------------------------------------------------------------

def load_data(data_dir, dataset: str, n_val: int, n_train: int | None = None):
    """(train, val, mean, std) of ``dataset`` (``data.detection.load_detection``); ``n_train``:
    keep the first n train images."""
    from paperzoo.data.detection import load_detection

    train_set, val, mean, std = load_detection(data_dir, dataset, n_val, study=STUDY)
    if n_train is not None:
        if n_train > len(train_set):
            raise ValueError(f"group_detr.finetune.n_train = {n_train} > {len(train_set)} train images in {data_dir}")
        train_set = train_set.subset(range(int(n_train)))
    return train_set, val, mean, std


# --- steps ---------------------------------------------------------------------------------

def deviations(block: dict, scale: str, stage: str, encoder: str = "mim") -> list[str]:
    out = [f"DETR-lite (DAB-style anchors, {block['model']}) with plain Hungarian matching instead of Group-DINO "
           "(deformable attention, denoising queries, two-stage query selection per group)",
           "inference: group 0, top-k without NMS (as in the paper)"]
    if encoder == "none":
        out.append("encoder-pretraining ablation: the ViT starts from its random init (no stage E)")
    elif stage in ("mim", "detpre", "finetune"):
        out.append("encoder pretrained by MAE on the pretraining set's images only (v2: ViT-Huge MAE/CAE-style "
                   "self-supervised on ImageNet-1K, then supervised ImageNet finetuning, skipped here)")
    if stage == "finetune":
        out.append("class head re-initialised for the target's classes (Objects365 -> COCO label spaces differ)")
    if scale != "paper":
        out += ["procedural 64-px shapes: 'shapes_o365' (6 kinds, more objects per image than the target; "
                "data.shapes_o365) as the Objects365 stand-in, shapes_easy (4 kinds) as the COCO stand-in",
                "a 4-block d64 ViT (patch 8) instead of ViT-Huge; one feature level instead of a 4-level "
                "simple feature pyramid"]
    return out


def _device():
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else None


def run_mim(block: dict, *, scale: str, data_dir, checkpoint, out, threads: int = 1, progress: bool = True) -> dict:
    """Stage E: MAE pretraining of the encoder (one run, ``mim.seed``)."""
    import torch

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import load_trained, train

    t0 = time.perf_counter()
    m = mim_from_config(block)
    seed_everything(m["seed"], threads)
    train_set, _, mean, std = load_data(data_dir, block["pretrain_dataset"], 1)
    det = build_detector(block, train_set.num_classes, 1, m["seed"])
    mae = build_mae(block, det)

    def loss_fn(model, batch):
        images, _, step = batch
        return model(images, torch.Generator().manual_seed(MASK_SEED + m["seed"] * 1_000_003 + int(step)))

    t1 = time.perf_counter()
    hist = train(mae, loss_fn, StepBatches(train_set, m["batch_size"], m["seed"], mean, std), steps=m["steps"],
                 final=checkpoint, lr=m["lr"], weight_decay=m["weight_decay"], clip_grad=0.0, schedule="cosine",
                 warmup=m["warmup"], betas=(0.9, 0.95), device=_device(), progress=progress, desc="group_detr mim")
    t_train = time.perf_counter() - t1
    history = load_trained(mae, checkpoint)
    tail = [h["loss"] for h in (history or hist)[-50:]]
    head = [h["loss"] for h in (history or hist)[:50]]
    metrics = {"loss_mae_first50": sum(head) / max(1, len(head)), "loss_mae_last50": sum(tail) / max(1, len(tail)),
               "encoder_params": sum(p.numel() for p in det.backbone.parameters()),
               "train_img_per_s": m["steps"] * m["batch_size"] / t_train}
    meta = run_meta(t0, threads, PACKAGES, steps=m["steps"], mask_ratio=m["mask_ratio"], n_train=len(train_set),
                    train_s=round(t_train, 3), deviations=deviations(block, scale, "mim"))
    write_run_metrics(out, study=STUDY, scale=scale, arm="mim", seed=m["seed"], metrics=metrics, meta=meta)
    return metrics


def _train_and_measure(block: dict, stage: str, model, train_set, val, mean, std, *, seed: int, batch_seed: int,
                       checkpoint, progress: bool, desc: str, repeat: int = 1) -> tuple[dict, list[dict], float]:
    """Train ``model`` for the stage's steps (AP-vs-step curve by the callback), then the final
    group-wise metrics, AP_auc and costs."""
    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import load_trained, train

    from .evaluation import evaluate_groups, inference_ms_per_img

    o, ev = stage_from_config(block, stage), eval_from_config(block)
    loss_fn = make_loss_fn(o, train_set.num_classes, len(model.decoder.layers), repeat)

    def callback(step, m):
        return evaluate_groups(m, val, mean, std, top_k=ev["top_k"], nms_iou=ev["nms_iou"],
                               area_rule=ev["area_rule"], per_group=False)

    t1 = time.perf_counter()
    train(model, loss_fn, StepBatches(train_set, o["batch_size"], batch_seed, mean, std), steps=o["steps"],
          final=checkpoint, params=param_groups(model, o), lr=o["lr"], weight_decay=o["weight_decay"],
          clip_grad=o["clip_grad"], schedule="step", warmup=o["warmup"], drop_at=o["drop_at"], device=_device(),
          callback=callback, eval_every=o["eval_every"], progress=progress, desc=desc)
    t_train = time.perf_counter() - t1
    history = load_trained(model, checkpoint)
    curve = [{"step": h["step"], "AP": h["AP"]} for h in history if "AP" in h]
    n_evals = len(curve)
    metrics = evaluate_groups(model, val, mean, std, top_k=ev["top_k"], nms_iou=ev["nms_iou"],
                              area_rule=ev["area_rule"], per_group=True)
    metrics["AP_auc"] = sum(c["AP"] for c in curve) / max(1, n_evals)
    metrics.update({f"AP_s{c['step']}": c["AP"] for c in curve})
    metrics["eval_ms_per_img"] = inference_ms_per_img(model, val, mean, std)
    from .models import inference_params

    metrics["params"] = sum(p.numel() for p in model.parameters())
    metrics["params_inference"] = inference_params(model)
    metrics["num_groups"] = model.num_groups
    return metrics, curve, t_train


def run_detpre(block: dict, *, scale: str, arm: str, seed: int, data_dir, encoder, checkpoint, out,
               threads: int = 1, progress: bool = True) -> dict:
    """Stage D, arm ``arm`` of seed ``seed``."""
    t0 = time.perf_counter()
    a, ev, o = arm_from_config(block, "detpre", arm), eval_from_config(block), stage_from_config(block, "detpre")
    seed_everything(seed, threads)
    train_set, val, mean, std = load_data(data_dir, block["pretrain_dataset"], ev["n_val"], o["n_train"])
    model = build_detector(block, train_set.num_classes, a["num_groups"], seed, a["shared_self_attn"])
    if a["encoder"] == "mim":
        if encoder is None:
            raise SystemExit(f"group_detr detpre {arm}: encoder 'mim' needs --encoder (stage E's checkpoint)")
        load_mim_encoder(block, model, encoder)
    metrics, curve, t_train = _train_and_measure(block, "detpre", model, train_set, val, mean, std, seed=seed,
                                                 batch_seed=seed, checkpoint=checkpoint, progress=progress,
                                                 desc=f"group_detr detpre {arm} seed{seed}",
                                                 repeat=a["repeat_targets"])
    metrics["train_ms_per_step"] = 1000 * t_train / o["steps"]   # includes the curve's evaluations
    meta = run_meta(t0, threads, PACKAGES, stage="detpre", arm_flags=a, steps=o["steps"], curve=curve,
                    n_train=len(train_set), n_val=len(val), train_s=round(t_train, 3),
                    deviations=deviations(block, scale, "detpre", a["encoder"]))
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_finetune(block: dict, *, scale: str, arm: str, seed: int, data_dir, encoder, detector, checkpoint, out,
                 threads: int = 1, progress: bool = True) -> dict:
    """Stage F, arm ``arm`` of seed ``seed``: from stage D's ``from`` arm of the same seed
    (``--detector``; class head re-initialised) or from the encoder only."""
    import torch

    from .models import transfer_detector

    t0 = time.perf_counter()
    a, ev, o = arm_from_config(block, "finetune", arm), eval_from_config(block), stage_from_config(block, "finetune")
    seed_everything(seed, threads)
    train_set, val, mean, std = load_data(data_dir, block["target_dataset"], ev["n_val"], o["n_train"])
    model = build_detector(block, train_set.num_classes, a["num_groups"], seed, a["shared_self_attn"])
    skipped = []
    if a["from"] is not None:
        if detector is None:
            raise SystemExit(f"group_detr finetune {arm}: from detpre arm {a['from']!r} needs --detector")
        state = torch.load(detector, map_location="cpu", weights_only=True)["model"]
        skipped = transfer_detector(model, state)
    elif a["encoder"] == "mim":
        if encoder is None:
            raise SystemExit(f"group_detr finetune {arm}: encoder 'mim' needs --encoder (stage E's checkpoint)")
        load_mim_encoder(block, model, encoder)
    metrics, curve, t_train = _train_and_measure(block, "finetune", model, train_set, val, mean, std, seed=seed,
                                                 batch_seed=seed + FINETUNE_BATCH_SEED, checkpoint=checkpoint,
                                                 progress=progress, desc=f"group_detr finetune {arm} seed{seed}",
                                                 repeat=a["repeat_targets"])
    metrics["train_ms_per_step"] = 1000 * t_train / o["steps"]
    meta = run_meta(t0, threads, PACKAGES, stage="finetune", arm_flags=a, steps=o["steps"], curve=curve,
                    reinitialised=skipped, n_train=len(train_set), n_val=len(val), train_s=round(t_train, 3),
                    deviations=deviations(block, scale, "finetune", a["encoder"] if a["from"] is None else "mim"))
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_figures(block: dict, *, scale: str, metrics, outdir) -> list[Path]:
    from . import figures

    agg = read_json(metrics)
    return figures.make_all(block, agg, Path(outdir), scale=scale)


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("mim", "detpre", "finetune", "figures"))
    ap.add_argument("--arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--encoder", type=Path, help="stage E checkpoint (MAE)")
    ap.add_argument("--detector", type=Path, help="stage D checkpoint of the same seed (finetune)")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--outdir", type=Path)
    need = {"mim": ["data_dir", "checkpoint", "out"], "detpre": ["arm", "data_dir", "checkpoint", "out"],
            "finetune": ["arm", "data_dir", "checkpoint", "out"], "figures": ["metrics", "outdir"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "mim":
        run_mim(block, scale=args.scale, data_dir=args.data_dir, checkpoint=args.checkpoint, out=args.out,
                threads=args.threads)
    elif args.step == "detpre":
        run_detpre(block, scale=args.scale, arm=args.arm, seed=args.seed, data_dir=args.data_dir,
                   encoder=args.encoder, checkpoint=args.checkpoint, out=args.out, threads=args.threads)
    elif args.step == "finetune":
        run_finetune(block, scale=args.scale, arm=args.arm, seed=args.seed, data_dir=args.data_dir,
                     encoder=args.encoder, detector=args.detector, checkpoint=args.checkpoint, out=args.out,
                     threads=args.threads)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, outdir=args.outdir)


if __name__ == "__main__":
    main()
