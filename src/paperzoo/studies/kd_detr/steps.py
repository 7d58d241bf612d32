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
              Student initialisation K: ``student.init_steps`` of plain Hungarian training
              (a recorded deviation: the miniature analogue of the paper's ImageNet-pretrained
              student backbone). ``student.init_seed`` set: one init shared by every seed;
              ``student.init_load: backbone``: the arms keep only its backbone weights.
* ``teacher_targets`` --seed K --data-dir D --teacher T.pt --out teacher_targets/seedK.pt
              The teacher's outputs at every student step of seed K, stored once for all its
              KD arms (``teacher_cache.py``; with ``kd.teacher_cache: true``).
* ``student`` --arm A --seed K --data-dir D --teacher T.pt --init init/seedK.pt
              [--teacher-targets teacher_targets/seedK.pt]
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

from .recipe import (  # noqa: F401  (re-exported: the recipe is part of this module's interface)
    STUDENT_ANCHOR_SEED,
    TEACHER_ANCHOR_SEED,
    anchors_from_config,
    arm_from_config,
    build_arm_model,
    deviations,
    distils,
    eval_from_config,
    load_init,
    kd_from_config,
    load_data,
    optim_kwargs,
    opt_from_config,
    param_groups,
)
from .training import COCO_KEYS, evaluate, make_criterion, make_loss_fn  # noqa: F401

STUDY = "kd_detr"
PACKAGES = ("numpy", "torch", "scipy", "pycocotools", "faster_coco_eval")


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


def run_teacher_targets(block: dict, *, scale: str, seed: int, data_dir, teacher_checkpoint, out,
                        threads: int = 1, progress: bool = True) -> Path:
    """The teacher's outputs for every step of seed ``seed``'s student runs, once for all
    its KD arms (``teacher_cache``; ``kd_detr.kd.teacher_cache``)."""
    from paperzoo.data.sets import StepBatches

    from . import teacher_cache

    ev, train_set, val, mean, std = _setup(block, data_dir, seed, threads)
    o, kd = opt_from_config(block, "student"), kd_from_config(block)
    teacher = _load_frozen(block["teacher"]["model"], train_set.num_classes, teacher_checkpoint)
    arms = {a: arm_from_config(block, a) for a in block["arms"]}
    targets = teacher_cache.build(teacher, StepBatches(train_set, o["batch_size"], seed, mean, std),
                                  steps=o["steps"], seed=seed, kd=kd, passes=teacher_cache.passes_needed(arms),
                                  progress=progress)
    teacher_cache.save(targets, out)
    return Path(out)


def run_student(block: dict, *, scale: str, arm: str, seed: int, data_dir, teacher_checkpoint, init, checkpoint,
                out, teacher_metrics=None, teacher_targets=None, threads: int = 1, progress: bool = True) -> dict:
    """Train arm ``arm`` of seed ``seed`` from its seed's init, evaluate, write metrics
    (``teacher_metrics``: the teacher's metrics.json; its AP is copied as ``teacher_AP`` so
    the teacher-beats-student precondition can be judged per seed; ``teacher_targets``: the
    seed's stored teacher outputs, read instead of running the teacher in the loss)."""
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
        load_init(model, init, o["init_load"])
    crit, weights = make_criterion(o, train_set.num_classes, len(model.decoder.layers))
    cached = None
    if teacher_targets is not None and distils(a):
        from .teacher_cache import TeacherTargets

        cached = TeacherTargets(teacher_targets, seed=seed, steps=o["steps"])
    loss_fn = make_loss_fn(crit, weights, arm=a, teacher=teacher, kd=kd, seed=seed, teacher_targets=cached)
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
    ap = study_parser(__doc__, ("teacher", "init", "teacher_targets", "student", "figures"))
    ap.add_argument("--arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--teacher", type=Path, help="teacher checkpoint (student)")
    ap.add_argument("--init", type=Path, help="shared student init checkpoint (student)")
    ap.add_argument("--teacher-targets", type=Path,
                    help="the seed's stored teacher outputs (student; written by the teacher_targets step)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--teacher-metrics", type=Path)
    ap.add_argument("--outdir", type=Path)
    ap.add_argument("--allow-unverified", action="store_true")
    need = {"teacher": ["data_dir", "checkpoint", "out"], "init": ["data_dir", "checkpoint"],
            "teacher_targets": ["data_dir", "teacher", "out"],
            "student": ["arm", "data_dir", "teacher", "init", "checkpoint", "out"],
            "figures": ["metrics", "teacher_metrics", "outdir"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "teacher":
        run_teacher(block, scale=args.scale, data_dir=args.data_dir, checkpoint=args.checkpoint, out=args.out,
                    threads=args.threads, allow_unverified=args.allow_unverified)
    elif args.step == "init":
        run_init(block, scale=args.scale, seed=args.seed, data_dir=args.data_dir, checkpoint=args.checkpoint,
                 threads=args.threads)
    elif args.step == "teacher_targets":
        run_teacher_targets(block, scale=args.scale, seed=args.seed, data_dir=args.data_dir,
                            teacher_checkpoint=args.teacher, out=args.out, threads=args.threads)
    elif args.step == "student":
        run_student(block, scale=args.scale, arm=args.arm, seed=args.seed, data_dir=args.data_dir,
                    teacher_checkpoint=args.teacher, init=args.init, checkpoint=args.checkpoint, out=args.out,
                    teacher_metrics=args.teacher_metrics, teacher_targets=args.teacher_targets, threads=args.threads)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, teacher_metrics=args.teacher_metrics,
                    outdir=args.outdir)


if __name__ == "__main__":
    main()
