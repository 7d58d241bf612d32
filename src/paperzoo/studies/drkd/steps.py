"""Entry points of the DRKD study (called by the Snakemake rules).

    python -m paperzoo.studies.drkd.steps <step> --params P --scale S [options]

``P`` is the study's ``drkd`` config block after the scale overlay (JSON text or file). Only
the ``*_from_config`` functions (``recipe``) read it; ``training`` holds the loss, the
evaluation and the relation diagnostics.

The training images are the train split minus its last ``kd.calibration.holdout_frac``
(``fit_split``); that tail is read by ``calibrate`` only, the val split by evaluation only.

Steps (outputs written atomically; training resumable from ``<checkpoint>.partial``):

* ``teacher``   --data-dir D --checkpoint T.pt --out teacher/metrics.json
                The wide teacher (RetinaNet-lite), trained once and shared by every student
                run; COCO metrics and parameter counts.
* ``init``      --seed K --data-dir D --checkpoint init/seedK.pt
                The student initialisation shared by every arm of seed K: ``student.init_steps``
                of plain detection training (0: the untrained, seeded student).
* ``calibrate`` --data-dir D --teacher T.pt --init init/seedK.pt --out calibration.json
                One-off loss-weight calibration on the held-out TRAIN tail (never val): the
                magnitude of every distillation term relative to the detection loss at step 0
                and the weights that put each term at ``factor`` x the detection loss.
* ``student``   --arm A --seed K --data-dir D --teacher T.pt --init init/seedK.pt
                --checkpoint C.pt --out runs/A/seedK/metrics.json [--teacher-metrics teacher/metrics.json]
                ``student.steps`` of arm A: detection loss + the arm's weighted distillation
                terms (``models.DistillKit``); metrics ``AP``, ``AP50``, ``AP75``, ``AP_S/M/L``
                (scaled COCO areas), ``AP_S/M/L_abs`` (absolute areas), ``teacher_AP``,
                ``teacher_AP_S_abs``, the relation diagnostics of the trained teacher-side
                modules (``relation_share``, ``fg_energy_gain``, ``ird_relation_share``:
                ``models.relation_diagnostics``) and the same at their init (``*_init``),
                ``params`` (student detector), ``kit_params`` and ``train_img_per_s``.
* ``figures``   --metrics aggregated.json --outdir DIR
"""
from __future__ import annotations

import time
from pathlib import Path

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json, write_json
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

from .recipe import (  # noqa: F401  (re-exported: the recipe is part of this module's interface)
    INIT_BATCH_SEED,
    KIT_SEED,
    arm_from_config,
    build_detector,
    build_kit,
    detector_from_config,
    deviations,
    eval_from_config,
    holdout_frac_of,
    image_size_of,
    init_seed_of,
    kd_from_config,
    load_data,
    load_train_only,
    opt_from_config,
    optim_kwargs,
    run_arms,
    split_train,
)
from .training import COCO_KEYS, FILTER_SEED, diagnostics, evaluate, make_loss_fn  # noqa: F401

STUDY = "drkd"
PACKAGES = ("numpy", "torch", "torchvision", "pycocotools", "faster_coco_eval")


# --- steps ---------------------------------------------------------------------------------

def _load_frozen(block: dict, num_classes: int, checkpoint):
    """The trained teacher, in eval mode, every parameter frozen."""
    from paperzoo.engine.train import load_trained

    m = build_detector(block, "teacher", num_classes)
    load_trained(m, checkpoint)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _n(m) -> int:
    return sum(p.numel() for p in m.parameters())


def _setup(block: dict, data_dir, seed: int, threads: int):

    seed_everything(seed, threads)   # also sets torch's thread count
    ev = eval_from_config(block)
    train_set, val, mean, std = load_data(data_dir, ev["dataset"], ev["n_val"], ev["coco_size"])
    fit, _ = split_train(train_set, holdout_frac_of(block))
    return ev, fit, val, mean, std, image_size_of(ev, train_set)


def _device():
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else None   # paper scale: the GPU


def run_teacher(block: dict, *, scale: str, data_dir, checkpoint, out, threads: int = 1,
                progress: bool = True) -> dict:
    """Train the teacher once (seed ``drkd.teacher.seed``) and write its COCO metrics."""
    import torch

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import load_trained, train
    from paperzoo.layers.dense import detection_loss_fn

    t0 = time.perf_counter()
    seed = int(block["teacher"].get("seed", 0))
    ev, fit, val, mean, std, size = _setup(block, data_dir, seed, threads)
    o = opt_from_config(block, "teacher")
    torch.manual_seed(seed)
    model = build_detector(block, "teacher", fit.num_classes)
    device = _device()
    t1 = time.perf_counter()
    train(model, detection_loss_fn(size), StepBatches(fit, o["batch_size"], seed, mean, std, hflip=o["hflip"]),
          steps=o["steps"], final=checkpoint, device=device, **optim_kwargs(o), progress=progress,
          desc="drkd teacher")
    t_train = time.perf_counter() - t1
    history = load_trained(model, checkpoint)
    metrics = evaluate(model, val, mean, std, area_rule=ev["area_rule"], abs_areas=ev["abs_areas"])
    metrics.update(params=_n(model), params_features=_n(model.features))
    metrics["train_img_per_s"] = o["steps"] * o["batch_size"] / t_train
    meta = run_meta(t0, threads, PACKAGES, model=o["model"], steps=o["steps"], train_s=round(t_train, 3),
                    final_loss=history[-1]["loss"] if history else None, n_train=len(fit), n_val=len(val),
                    image_size=size, device=str(device or "cpu"), deviations=deviations(block, scale, "teacher"))
    write_run_metrics(out, study=STUDY, scale=scale, arm="teacher", seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_init(block: dict, *, scale: str, seed: int, data_dir, checkpoint, threads: int = 1,
             progress: bool = True) -> None:
    """The student initialisation of seed ``seed`` (``init_seed_of``): ``init_steps`` of
    detection-only training at constant lr after warmup, or the seeded untrained student."""
    import torch

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.checkpoint import save_checkpoint
    from paperzoo.engine.train import train
    from paperzoo.layers.dense import detection_loss_fn

    s = init_seed_of(block, seed)
    _, fit, _, mean, std, size = _setup(block, data_dir, s, threads)
    o = opt_from_config(block, "student")
    torch.manual_seed(s)
    model = build_detector(block, "student", fit.num_classes)
    if o["init_steps"] == 0:
        save_checkpoint(checkpoint, {"model": model.state_dict(), "ema": None, "history": [], "steps": 0})
        return
    train(model, detection_loss_fn(size), StepBatches(fit, o["batch_size"], s + INIT_BATCH_SEED, mean, std,
                                                   hflip=o["hflip"]),
          steps=o["init_steps"], final=checkpoint, device=_device(), **{**optim_kwargs(o), "schedule": "constant"},
          progress=progress, desc=f"drkd init seed{s}")


def run_calibrate(block: dict, *, scale: str, data_dir, teacher_checkpoint, init, out, seed: int = 0,
                  threads: int = 1) -> dict:
    """One-off weight calibration on the held-out train tail (never the val split).

    With the frozen teacher, the init student of ``seed`` and a kit with all four terms
    (code filter, seeded like the arms'), over the first ``kd.calibration.batches`` batches of
    ``train.batch_size`` held-out images (no flip, step-0 modes: student and kit in train
    mode, no update): the mean detection loss L_det and every raw term T_k. Proposed weight
    w_k = factor * L_det / T_k, so that w_k T_k = factor * L_det at step 0. Writes the
    weights, the magnitudes, the ratio the released weights would give, and provenance."""
    import torch

    from paperzoo.data.sets import to_float
    from paperzoo.engine.train import load_trained
    from paperzoo.layers.dense import targets_to_xyxy

    from .losses import WEIGHTS_TWO_STAGE
    from .models import check_pair, pyramid

    t0 = time.perf_counter()
    seed_everything(seed, threads)   # also sets torch's thread count
    ev, kd, o = eval_from_config(block), kd_from_config(block), opt_from_config(block, "student")
    train_set, mean, std = load_train_only(data_dir, ev["dataset"], ev["coco_size"])
    size = image_size_of(ev, train_set)
    fit, hold = split_train(train_set, kd["holdout_frac"])
    if hold is None:
        raise SystemExit("drkd calibrate: drkd.kd.calibration.holdout_frac is 0: no held-out train images "
                         "(the calibration never reads the val split)")
    teacher = _load_frozen(block, train_set.num_classes, teacher_checkpoint)
    student = build_detector(block, "student", train_set.num_classes)
    load_trained(student, init)
    check_pair(teacher, student)
    full = {**block, "arms": {**block["arms"], "_calibration": {"prd": True, "ird": True, "ins": True,
                                                                 "fitnet": True, "filter": "code"}}}
    kit = build_kit(full, "_calibration", student.features.out_channels, len(student.features.strides), seed)
    student.train()
    kit.train()
    bs = o["batch_size"]
    n_batches = min(kd["calib_batches"], len(hold) // bs) or 1
    det, terms = [], {k: [] for k in ("prd", "ird", "ins", "fitnet")}
    with torch.no_grad():
        for b in range(n_batches):
            idx = torch.arange(b * bs, min((b + 1) * bs, len(hold)))
            images = to_float(hold.images[idx], mean, std)
            tgt = targets_to_xyxy([{"labels": hold.targets[int(i)]["labels"], "boxes": hold.targets[int(i)]["boxes"]}
                                   for i in idx], size)
            parts = student(images, tgt, return_features=True)
            det.append(float(parts["classification"] + parts["bbox_regression"]))
            g = torch.Generator().manual_seed(FILTER_SEED + seed * 1_000_003 + b)
            vals = kit.terms(list(parts["features"].values()), pyramid(teacher, images), [t["boxes"] for t in tgt],
                             strides=student.features.strides, loss_form=kd["loss_form"], pool_from=kd["pool_from"],
                             generator=g)
            for k, v in vals.items():
                terms[k].append(float(v))
    l_det = sum(det) / len(det)
    mag = {k: sum(v) / len(v) for k, v in terms.items()}
    factor = kd["factor"]

    def sig3(x: float) -> float:
        return float(f"{x:.3g}")

    weights = {k: sig3(factor * l_det / v) if v > 0 else 0.0 for k, v in mag.items()}
    result = {
        "weights": weights, "factor": factor, "loss_form": kd["loss_form"], "det_loss": l_det, "terms": mag,
        "ratio_to_det": {k: v / l_det for k, v in mag.items()},
        "released_weights": dict(WEIGHTS_TWO_STAGE),
        "ratio_to_det_at_released_weights": {k: WEIGHTS_TWO_STAGE[k] * mag[k] / l_det for k in WEIGHTS_TWO_STAGE},
        "holdout": {"split": "train", "first_index": len(fit), "n_images": len(hold),
                    "n_used": min(n_batches * bs, len(hold)), "batches": n_batches, "batch_size": bs},
        "provenance": (f"drkd calibrate: step-0 magnitudes of each term relative to the detection loss, teacher "
                       f"{block['teacher']['model']} + init student {block['student']['model']} (seed {seed}), "
                       f"{n_batches} batch(es) of {bs} held-out TRAIN images (indices {len(fit)}..{len(train_set) - 1}"
                       f", never trained on); w = {factor:g} x L_det / term; val split never read"),
        "meta": run_meta(t0, threads, PACKAGES, scale=scale),
    }
    write_json(out, result)
    return result


def run_student(block: dict, *, scale: str, arm: str, seed: int, data_dir, teacher_checkpoint, init, checkpoint,
                out, teacher_metrics=None, threads: int = 1, progress: bool = True) -> dict:
    """Train arm ``arm`` of seed ``seed`` from its seed's init, evaluate, write metrics.
    ``teacher_metrics``: the teacher's metrics.json (its AP and AP_S_abs are copied as
    ``teacher_AP`` / ``teacher_AP_S_abs`` for the teacher-beats-student precondition)."""
    import torch

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import load_trained, train

    from .models import DistillStudent, check_pair

    t0 = time.perf_counter()
    a = arm_from_config(block, arm)
    ev, fit, val, mean, std, size = _setup(block, data_dir, seed, threads)
    o, kd = opt_from_config(block, "student"), kd_from_config(block)
    torch.manual_seed(init_seed_of(block, seed))
    student = build_detector(block, "student", fit.num_classes)
    if init is not None:
        load_trained(student, init)
    teacher = _load_frozen(block, fit.num_classes, teacher_checkpoint)
    check_pair(teacher, student)
    kit = build_kit(block, arm, student.features.out_channels, len(student.features.strides), seed)
    model = DistillStudent(student, kit)
    diag_init = {f"{k}_init": v for k, v in diagnostics(kit, teacher, val, mean, std, n_diag=ev["n_diag"],
                                                         image_size=size, seed=seed, pool_from=kd["pool_from"]).items()}
    device = _device()
    if device is not None:
        teacher.to(device)
    loss_fn = make_loss_fn(size, teacher=teacher, kd=kd, seed=seed)
    t1 = time.perf_counter()
    train(model, loss_fn, StepBatches(fit, o["batch_size"], seed, mean, std, hflip=o["hflip"]), steps=o["steps"],
          final=checkpoint, device=device, **optim_kwargs(o), progress=progress, desc=f"drkd {arm} seed{seed}")
    t_train = time.perf_counter() - t1
    history = load_trained(model, checkpoint)
    metrics = evaluate(model.student, val, mean, std, area_rule=ev["area_rule"], abs_areas=ev["abs_areas"])
    metrics.update(diagnostics(kit, teacher, val, mean, std, n_diag=ev["n_diag"], image_size=size, seed=seed,
                               pool_from=kd["pool_from"]))
    metrics.update(diag_init)
    if teacher_metrics is not None:
        tm = read_json(teacher_metrics)["metrics"]
        metrics.update({f"teacher_{k}": float(tm[k]) for k in ("AP", "AP_S_abs") if k in tm})
    metrics.update(params=_n(model.student), kit_params=_n(kit), train_img_per_s=o["steps"] * o["batch_size"] / t_train)
    final = {k: v for k, v in (history[-1] if history else {}).items() if k.startswith("loss")}
    meta = run_meta(t0, threads, PACKAGES, model=o["model"], teacher=block["teacher"]["model"], arm_flags=a,
                    kd_weights={k: kd["weights"][k] for k in kit.active}, loss_form=kd["loss_form"],
                    weights_provenance=kd["weights_provenance"], steps=o["steps"], init_steps=o["init_steps"],
                    init_seed=init_seed_of(block, seed), train_s=round(t_train, 3), final_losses=final,
                    n_train=len(fit), n_val=len(val), image_size=size, device=str(device or "cpu"),
                    timing_note=(f"GPU {torch.cuda.get_device_name()}" if device is not None else
                                 f"CPU, {threads} thread(s), other cores busy with other jobs"),
                    deviations=deviations(block, scale))
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_figures(block: dict, *, scale: str, metrics, outdir) -> list[Path]:
    from . import figures

    outdir = Path(outdir)
    agg = read_json(metrics)
    baseline = str(block.get("baseline_arm", "baseline"))
    arms = [a for a in run_arms(block) if a in agg["arms"]]
    labels = {a: figures.terms_label(arm_from_config(block, a)) for a in arms}
    return [figures.table_arms(agg, arms, outdir, baseline=baseline, labels=labels),
            figures.fig_ap_per_arm(agg, arms, outdir / "fig_ap_per_arm.png", scale=scale, baseline=baseline),
            figures.fig_delta_vs_baseline(agg, arms, outdir / "fig_delta_vs_baseline.png", baseline=baseline,
                                          scale=scale)]


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("teacher", "init", "calibrate", "student", "figures"))
    ap.add_argument("--arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--teacher", type=Path, help="teacher checkpoint (calibrate, student)")
    ap.add_argument("--init", type=Path, help="student init checkpoint of the seed (calibrate, student)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--teacher-metrics", type=Path, help="teacher metrics.json (student: teacher_AP)")
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--outdir", type=Path)
    need = {"teacher": ["data_dir", "checkpoint", "out"], "init": ["data_dir", "checkpoint"],
            "calibrate": ["data_dir", "teacher", "init", "out"],
            "student": ["arm", "data_dir", "teacher", "init", "checkpoint", "out"],
            "figures": ["metrics", "outdir"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "teacher":
        run_teacher(block, scale=args.scale, data_dir=args.data_dir, checkpoint=args.checkpoint, out=args.out,
                    threads=args.threads)
    elif args.step == "init":
        run_init(block, scale=args.scale, seed=args.seed, data_dir=args.data_dir, checkpoint=args.checkpoint,
                 threads=args.threads)
    elif args.step == "calibrate":
        run_calibrate(block, scale=args.scale, data_dir=args.data_dir, teacher_checkpoint=args.teacher,
                      init=args.init, out=args.out, seed=args.seed, threads=args.threads)
    elif args.step == "student":
        run_student(block, scale=args.scale, arm=args.arm, seed=args.seed, data_dir=args.data_dir,
                    teacher_checkpoint=args.teacher, init=args.init, checkpoint=args.checkpoint, out=args.out,
                    teacher_metrics=args.teacher_metrics, threads=args.threads)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, outdir=args.outdir)


if __name__ == "__main__":
    main()
