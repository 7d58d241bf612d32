"""Entry points of the KD-DETR study (called by the Snakemake rules).

    python -m paperzoo.studies.kd_detr.steps <step> --params P --scale S [options]

``P`` is the study's ``kd_detr`` config block after the scale overlay, as JSON text or a
JSON file. Only the ``*_from_config`` functions read it.

Steps (outputs written atomically; training resumable from ``<checkpoint>.partial``):

* ``teacher`` --data-dir D --checkpoint T.pt --out teacher/metrics.json
              Trains the teacher once (shared by every student run); COCO AP of it.
              With ``teacher.weights_url`` set (paper scale) it refuses to run unless the
              URL's checksum is confirmed or ``--allow-unverified`` is given (TODO: fetch).
* ``init``    --seed K --data-dir D --checkpoint init/seedK.pt
              Shared student initialisation of seed K: ``student.init_steps`` of plain
              Hungarian training (a recorded deviation: the miniature analogue of the paper's
              ImageNet-pretrained student backbone; every arm of seed K starts from it).
* ``student`` --arm A --seed K --data-dir D --teacher T.pt --init init/seedK.pt
              --checkpoint C.pt --out runs/A/seedK/metrics.json
              ``student.steps`` more steps of arm A; metrics ``AP``, ``AP50``, ``AP75``,
              ``AR100`` (fractions, val split), the consistency diagnostic ``diag_*``
              (``diagnostics.py``) and ``train_img_per_s`` (training images per second).
* ``figures`` --metrics aggregated.json --teacher-metrics teacher/metrics.json --outdir DIR
"""
from __future__ import annotations

import time
from pathlib import Path

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

STUDY = "kd_detr"
PACKAGES = ("numpy", "torch", "scipy", "pycocotools")
COCO_KEYS = ("AP", "AP50", "AP75", "AR100")


# --- config → explicit keyword arguments -------------------------------------------------

def arm_from_config(block: dict, arm: str) -> dict:
    """Arm name → ``{"general", "specific", "frw", "naive"}`` booleans."""
    if arm not in block["arms"]:
        raise KeyError(f"kd_detr: unknown arm {arm!r}; configured: {sorted(block['arms'])}")
    a = block["arms"][arm]
    return {k: bool(a.get(k, d)) for k, d in (("general", False), ("specific", False), ("frw", True),
                                               ("naive", False))}


def opt_from_config(block: dict, part: str) -> dict:
    """``kd_detr.<part>`` (teacher | student) + ``kd_detr.train`` → keyword arguments."""
    t, p = block["train"], block[part]
    return {"model": str(p["model"]), "lr": float(p["lr"]), "steps": int(p["steps"]),
            "lr_backbone": None if p.get("lr_backbone") is None else float(p["lr_backbone"]),
            "init_steps": int(p.get("init_steps", 0)), "batch_size": int(t["batch_size"]),
            "weight_decay": float(t["weight_decay"]), "clip_grad": float(t["clip_grad"]),
            "warmup": int(t["warmup"]), "schedule": str(t["schedule"]), "drop_at": float(t["drop_at"]),
            "loss_weights": {k: float(v) for k, v in t["loss_weights"].items()},
            "matcher": {k: float(v) for k, v in t["matcher_costs"].items()}}


TEACHER_ANCHOR_SEED = 1_000_003   # anchor_seed = offset + seed: teacher and student anchors independent
STUDENT_ANCHOR_SEED = 2_000_003


def anchors_from_config(block: dict) -> dict:
    """``kd_detr.anchors`` → DETRLite anchor keywords. One law for both models' anchor init
    and the general points (official: DAB-DETR's ``nn.Embedding`` N(0, 1) in inverse-sigmoid
    space for both)."""
    a = block.get("anchors") or {}
    init = str(a.get("init", "normal"))
    if init not in ("normal", "grid"):
        raise ValueError(f"kd_detr.anchors.init = {init!r}: expected 'normal' (DAB-DETR's N(mean, std) "
                         "anchors) or 'grid'")

    def four(key, default):
        v = a.get(key, default)
        v = [float(x) for x in v] if isinstance(v, (list, tuple)) else float(v)
        if isinstance(v, list) and len(v) != 4:
            raise ValueError(f"kd_detr.anchors.{key} = {v}: expected one number or 4 (cx, cy, w, h)")
        return v

    return {"anchor_init": init, "anchor_mean": four("mean", 0.0), "anchor_std": four("std", 1.0)}


def build_arm_model(block: dict, part: str, num_classes: int, seed: int):
    """The teacher or a student (``part``) with its anchors drawn from ``anchors_from_config``
    under its own anchor seed (teacher and student anchors are independent draws)."""
    from .models import build_model

    kw = anchors_from_config(block)
    if kw["anchor_init"] == "normal":
        kw["anchor_seed"] = (TEACHER_ANCHOR_SEED if part == "teacher" else STUDENT_ANCHOR_SEED) + seed
    return build_model(block[part]["model"], num_classes, **kw)


def kd_from_config(block: dict) -> dict:
    k, law = block["kd"], anchors_from_config(block)
    nw = k.get("naive_weights", {"cls": 10.0, "bbox": 1.0})
    return {"temperature": float(k["temperature"]), "num_general": int(k["num_general"]),
            "weights": {n: float(k["weights"][n]) for n in ("cls", "bbox", "giou")},
            "naive_weights": {n: float(nw[n]) for n in ("cls", "bbox")},
            # official "sum"; "weight" (KL / sum w) only as a diagnostic (bench_kd_detr_gate --set kd.cls_norm=weight)
            "cls_norm": str(k.get("cls_norm", "sum")),
            "general_mean": law["anchor_mean"], "general_std": law["anchor_std"]}


def eval_from_config(block: dict) -> dict:
    e = block["eval"]
    return {"n_val": int(e["n_val"]), "top_k": int(e["top_k"]), "area_rule": str(e["area_rule"]),
            "n_diag": int(e["n_diag"]), "dataset": str(block["dataset"]), "coco_size": int(block["coco_size"])}


def param_groups(model, o: dict):
    """One group, or the backbone at ``lr_backbone`` (DETR practice: the official student uses
    2e-5 for the ResNet, 2e-4 for the rest) — ``engine.train``'s ``params``."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if o["lr_backbone"] is None:
        return trainable
    bb = {id(p) for p in model.backbone.parameters()}
    return [{"params": [p for p in trainable if id(p) in bb], "lr": o["lr_backbone"]},
            {"params": [p for p in trainable if id(p) not in bb]}]


def optim_kwargs(model, o: dict) -> dict:
    """The optimizer and schedule keywords of ``engine.train`` shared by teacher, init and arms."""
    return {"params": param_groups(model, o), "lr": o["lr"], "weight_decay": o["weight_decay"],
            "clip_grad": o["clip_grad"], "schedule": o["schedule"], "warmup": o["warmup"], "drop_at": o["drop_at"]}


# --- data ----------------------------------------------------------------------------------
# batches: paperzoo.data.sets.StepBatches (step i -> a function of (seed, i) only: every arm of a
# seed sees the same images and flips)

def load_data(data_dir, dataset: str, n_val: int, coco_size: int = 800):
    """Train and val sets and the normalisation statistics (``data.detection.load_detection``:
    shapes variants in memory, COCO squashed to ``coco_size`` ² with ImageNet statistics)."""
    from paperzoo.data.detection import load_detection

    return load_detection(data_dir, dataset, n_val, coco_size, study="kd_detr")


# --- losses and evaluation -------------------------------------------------------------------

def make_criterion(o: dict, num_classes: int, num_decoder_layers: int):
    from paperzoo.layers.criterion import SetCriterion, with_aux_weights
    from paperzoo.layers.matcher import HungarianMatcher

    weights = with_aux_weights({"loss_ce": o["loss_weights"]["ce"], "loss_bbox": o["loss_weights"]["bbox"],
                                "loss_giou": o["loss_weights"]["giou"]}, num_decoder_layers)
    matcher = HungarianMatcher(o["matcher"]["cls"], o["matcher"]["bbox"], o["matcher"]["giou"])
    return SetCriterion(num_classes, matcher, weights), weights


def make_loss_fn(criterion, weights: dict, *, arm: dict | None = None, teacher=None, kd: dict | None = None,
                 seed: int = 0, matcher=None):
    """``loss_fn(model, (images, targets, step))`` → (loss, parts): the Hungarian loss plus, for a
    distillation arm, ``loss_kd_<set>_<cls|bbox|giou>`` of each point set (``general``,
    ``specific``; coefficients ``kd["weights"]``) or ``loss_kd_naive_<cls|bbox>`` of the
    GT-matched own queries (``naive``; coefficients ``kd["naive_weights"]``). ``matcher``:
    the Hungarian matcher of the naive KD's GT matching (default: the criterion's)."""
    import torch

    from paperzoo.layers.criterion import weighted_loss

    from .losses import distill_points, naive_kd_loss
    from .sampling import forward_with_points, general_points, specific_points

    arm = arm or {"general": False, "specific": False, "frw": True, "naive": False}
    distil = arm["general"] or arm["specific"] or arm["naive"]
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
        with torch.no_grad():
            t_own, t_extra = forward_with_points(teacher, images,
                                                 {"general": points["general"]} if arm["general"] else {})
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


def deviations(o: dict, scale: str, init_steps: int = 0, init_seed: int | None = None,
               dataset: str = "shapes", coco_size: int = 800, block: dict | None = None) -> list[str]:
    """Every recorded difference from the official recipe (``block``: the study config, for
    the model pair, anchor law and teacher sharing)."""
    out = [f"AdamW lr {o['lr']:g}, {o['steps']} steps at batch {o['batch_size']}, {o['schedule']} drop at "
           f"{o['drop_at']:g} (official: lr 2e-4 / backbone 2e-5, 50 epochs, drop at 40, batch 64)",
           f"Hungarian loss weights ce {o['loss_weights']['ce']:g} / L1 {o['loss_weights']['bbox']:g} / GIoU "
           f"{o['loss_weights']['giou']:g} (official DAB-DETR: focal 1 / 5 / 2)"]
    if dataset != "coco":
        out.append("procedural shapes (64 px) instead of COCO 2017; DETR-lite models with a from-scratch CNN "
                   "backbone instead of DAB-DETR R50 / R18 with ImageNet-pretrained ResNets")
    else:
        out.append(f"COCO images squashed to {coco_size}x{coco_size} without padding masks (official: shorter side "
                   "480-800, longer <= 1333, random crops); ResNets not ImageNet-pretrained (offline); "
                   "single-scale DAB-style DETR-lite modules, not the official DAB-DETR code")
    if init_steps:
        shared = "one initialisation shared by every seed" if init_seed is not None else "a per-seed initialisation"
        out.append(f"student starts from {shared} ({init_steps} steps of plain Hungarian training, identical "
                   "for every arm): the miniature stand-in for the paper's ImageNet-pretrained student backbone")
    if block is not None:
        if dataset != "coco" and "student" in block:   # the teacher step's block has no student
            t, st = block["teacher"]["model"], block["student"]["model"]
            out.append(f"teacher {t} / student {st}: the student keeps the teacher's transformer (d_model, "
                       "encoder and decoder depth, FFN, 16 queries) and halves the backbone's width, the miniature "
                       "analogue of the official R50 -> R18 pair; both are DETR-lite, trained here")
        law = anchors_from_config(block)
        if law["anchor_init"] == "normal" and (law["anchor_mean"] != 0.0 or law["anchor_std"] != 1.0):
            out.append(f"anchor law N({law['anchor_mean']}, {law['anchor_std']}) in inverse-sigmoid space for both "
                       "models' anchors and the general points (official: N(0, 1) for both)")
        elif law["anchor_init"] == "grid":
            out.append("models' anchors start on a fixed grid while general points are N(mean, std) draws: the "
                       "general points are then out of the anchors' distribution (official: one N(0, 1) law)")
        out.append(f"the teacher is trained once (seed {block['teacher'].get('seed', 0)}) and shared by every seed; "
                   "seeds vary the student's anchors, initialisation and data order")
        out.append(f"general points per step: {block['kd']['num_general']} for 16 detection queries (official 300 "
                   "for 300, the same 1:1 ratio)")
    return out


# --- steps ---------------------------------------------------------------------------------

def _setup(block: dict, data_dir, seed: int, threads: int):

    seed_everything(seed, threads)   # also sets torch's thread count
    ev = eval_from_config(block)
    train_set, val, mean, std = load_data(data_dir, ev["dataset"], ev["n_val"], ev["coco_size"])
    return ev, train_set, val, mean, std


def _load_frozen(name: str, num_classes: int, checkpoint):
    from paperzoo.engine.train import load_trained

    from .models import build_model

    m = build_model(name, num_classes)  # anchors come from the checkpoint
    load_trained(m, checkpoint)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def run_teacher(block: dict, *, scale: str, data_dir, checkpoint, out, seed: int = 0, threads: int = 1,
                allow_unverified: bool = False, progress: bool = True) -> dict:
    """Train the teacher (or refuse an unverified download) and write its COCO metrics."""
    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import load_trained, train


    url = block["teacher"].get("weights_url")
    if url is not None:  # null (default, every scale): the teacher is trained here
        if block["teacher"].get("weights_sha256") is None and not allow_unverified:
            raise SystemExit(f"kd_detr teacher: weights {url!r} have no confirmed SHA-256 in the config; "
                             "refusing to use them (pass --allow-unverified to override)")
        raise SystemExit("kd_detr teacher: loading the official DAB-DETR checkpoint needs a key converter to "
                         "paperzoo's DAB-DETR modules that is not written (TODO); set kd_detr.teacher.weights_url "
                         "to null to train the teacher in the DAG instead")
    t0 = time.perf_counter()
    seed = int(block["teacher"].get("seed", seed))
    ev, train_set, val, mean, std = _setup(block, data_dir, seed, threads)
    o = opt_from_config(block, "teacher")
    model = build_arm_model(block, "teacher", train_set.num_classes, seed)
    crit, weights = make_criterion(o, train_set.num_classes, len(model.decoder.layers))
    history = train(model, make_loss_fn(crit, weights), StepBatches(train_set, o["batch_size"], seed, mean, std),
                    steps=o["steps"], final=checkpoint, **optim_kwargs(model, o), progress=progress,
                    desc="kd_detr teacher")
    history = load_trained(model, checkpoint)
    t_train = time.perf_counter() - t0
    metrics = evaluate(model, val, mean, std, top_k=ev["top_k"], area_rule=ev["area_rule"])
    from paperzoo.data.sets import to_float

    from .diagnostics import teacher_reliability

    kd = kd_from_config(block)
    metrics.update(teacher_reliability(model, to_float(val.images[:ev["n_diag"]], mean, std),
                                       val.targets[:ev["n_diag"]], num_general=kd["num_general"],
                                       general_mean=kd["general_mean"], general_std=kd["general_std"], seed=seed))
    meta = run_meta(t0, threads, PACKAGES, model=o["model"], n_params=sum(p.numel() for p in model.parameters()),
                    steps=o["steps"], train_s=round(t_train, 3), final_loss=history[-1]["loss"] if history else None,
                    n_val=len(val),
                    deviations=deviations(o, scale, dataset=ev["dataset"], coco_size=ev["coco_size"], block=block))
    write_run_metrics(out, study=STUDY, scale=scale, arm="teacher", seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_init(block: dict, *, scale: str, seed: int, data_dir, checkpoint, threads: int = 1,
             progress: bool = True) -> None:
    """Shared student initialisation of one seed: ``init_steps`` of Hungarian-only training,
    constant lr after warmup (the arms' schedules start afterwards)."""
    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import train


    _, train_set, _, mean, std = _setup(block, data_dir, seed, threads)
    o = opt_from_config(block, "student")
    model = build_arm_model(block, "student", train_set.num_classes, seed)
    crit, weights = make_criterion(o, train_set.num_classes, len(model.decoder.layers))
    if o["init_steps"] == 0:  # no shared init (paper scale: pretrained backbone): the untrained model
        from paperzoo.engine.checkpoint import save_checkpoint

        save_checkpoint(checkpoint, {"model": model.state_dict(), "ema": None, "history": [], "steps": 0})
        return
    # the init phase draws its batches from a seed distinct from the arm phase's
    train(model, make_loss_fn(crit, weights), StepBatches(train_set, o["batch_size"], seed + 50_000, mean, std),
          steps=o["init_steps"], final=checkpoint, **{**optim_kwargs(model, o), "schedule": "constant"},
          progress=progress, desc=f"kd_detr init seed{seed}")


def run_student(block: dict, *, scale: str, arm: str, seed: int, data_dir, teacher_checkpoint, init, checkpoint,
                out, teacher_metrics=None, threads: int = 1, progress: bool = True) -> dict:
    """Train arm ``arm`` of seed ``seed`` from its seed's init, evaluate, write metrics
    (``teacher_metrics``: the teacher's metrics.json; its AP is copied as ``teacher_AP`` so
    the teacher-beats-student precondition can be judged per seed)."""
    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import load_trained, train

    from .diagnostics import consistency

    t0 = time.perf_counter()
    a = arm_from_config(block, arm)
    ev, train_set, val, mean, std = _setup(block, data_dir, seed, threads)
    o, kd = opt_from_config(block, "student"), kd_from_config(block)
    teacher = _load_frozen(block["teacher"]["model"], train_set.num_classes, teacher_checkpoint)
    model = build_arm_model(block, "student", train_set.num_classes, seed)
    if o["init_steps"]:
        load_trained(model, init)
    crit, weights = make_criterion(o, train_set.num_classes, len(model.decoder.layers))
    loss_fn = make_loss_fn(crit, weights, arm=a, teacher=teacher, kd=kd, seed=seed)
    t1 = time.perf_counter()
    train(model, loss_fn, StepBatches(train_set, o["batch_size"], seed, mean, std), steps=o["steps"],
          final=checkpoint, **optim_kwargs(model, o), progress=progress, desc=f"kd_detr {arm} seed{seed}")
    t_train = time.perf_counter() - t1   # includes a resumed run's reload; fresh runs: pure training
    history = load_trained(model, checkpoint)
    metrics = evaluate(model, val, mean, std, top_k=ev["top_k"], area_rule=ev["area_rule"])
    from paperzoo.data.sets import to_float

    diag_x = to_float(val.images[:ev["n_diag"]], mean, std)
    metrics.update(consistency(model, teacher, diag_x, num_general=kd["num_general"], seed=seed,
                               general_mean=kd["general_mean"], general_std=kd["general_std"]))
    if teacher_metrics is not None:
        metrics["teacher_AP"] = float(read_json(teacher_metrics)["metrics"]["AP"])
    metrics["train_img_per_s"] = o["steps"] * o["batch_size"] / t_train
    meta = run_meta(t0, threads, PACKAGES, model=o["model"], teacher=block["teacher"]["model"], arm_flags=a,
                    n_params=sum(p.numel() for p in model.parameters()), steps=o["steps"],
                    init_steps=o["init_steps"], train_s=round(t_train, 3),
                    final_loss=history[-1]["loss"] if history else None, n_val=len(val),
                    timing_note="CPU, 1 thread, other core busy with other jobs: contended timings",
                    init_seed=block["student"].get("init_seed"),
                    deviations=deviations(o, scale, o["init_steps"], block["student"].get("init_seed"),
                                          dataset=ev["dataset"], coco_size=ev["coco_size"], block=block))
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_figures(block: dict, *, scale: str, metrics, teacher_metrics, outdir) -> list[Path]:
    from . import figures

    outdir = Path(outdir)
    agg, teacher = read_json(metrics), read_json(teacher_metrics)
    order = ["baseline", "general", "general_frw", "specific", "specific_frw", "kd_detr", "general_specific_nofrw",
             "naive_kd"]  # the paper's ablation rows first
    arms = sorted((a for a in block["arms"] if a in agg["arms"]),
                  key=lambda a: (order.index(a) if a in order else len(order), a))
    return [figures.table_sampling_ablation(agg, arms, outdir, teacher=teacher, labels=block["arms"]),
            figures.fig_ap_per_arm(agg, arms, outdir / "fig_ap_per_arm.png", scale=scale, teacher=teacher),
            figures.fig_consistency(agg, arms, outdir / "fig_consistency.png", scale=scale)]


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("teacher", "init", "student", "figures"))
    ap.add_argument("--arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--teacher", type=Path, help="teacher checkpoint (student)")
    ap.add_argument("--init", type=Path, help="shared student init checkpoint (student)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--teacher-metrics", type=Path)
    ap.add_argument("--outdir", type=Path)
    ap.add_argument("--allow-unverified", action="store_true")
    need = {"teacher": ["data_dir", "checkpoint", "out"], "init": ["data_dir", "checkpoint"],
            "student": ["arm", "data_dir", "teacher", "init", "checkpoint", "out"],
            "figures": ["metrics", "teacher_metrics", "outdir"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "teacher":
        run_teacher(block, scale=args.scale, data_dir=args.data_dir, checkpoint=args.checkpoint, out=args.out,
                    threads=args.threads, allow_unverified=args.allow_unverified)
    elif args.step == "init":
        run_init(block, scale=args.scale, seed=args.seed, data_dir=args.data_dir, checkpoint=args.checkpoint,
                 threads=args.threads)
    elif args.step == "student":
        run_student(block, scale=args.scale, arm=args.arm, seed=args.seed, data_dir=args.data_dir,
                    teacher_checkpoint=args.teacher, init=args.init, checkpoint=args.checkpoint, out=args.out,
                    teacher_metrics=args.teacher_metrics, threads=args.threads)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, teacher_metrics=args.teacher_metrics,
                    outdir=args.outdir)


if __name__ == "__main__":
    main()
