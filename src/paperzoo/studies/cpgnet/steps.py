"""Entry points of the CPGNet study (called by the Snakemake rules).

    python -m paperzoo.studies.cpgnet.steps <step> --params P --scale S [options]

``P`` is the study's ``cpgnet`` config block after the scale overlay, as JSON text (what
the rules pass) or a JSON file. Only the ``*_from_config`` functions below read it;
everything else takes explicit keyword arguments.

Steps and outputs (all written atomically):

* ``train``   --arm A --seed K --data-dir results/data/synthscan/<scale>
              --out runs/A/seedK/metrics.json --checkpoint runs/A/seedK/model.pt
              Trains arm A through ``engine.train`` (resumable from ``<checkpoint>.partial``),
              re-estimates the BatchNorm statistics (``model.recalibrate_bn``, a recorded
              deviation), evaluates on the val split (all points per scan) and writes run
              metrics ``miou``, ``miou_tta``, ``tta_gap`` (= miou_tta − miou),
              ``flip_consistency``, ``iou_<class>`` and ``iou_tta_<class>`` (fractions;
              classes from ``<data-dir>/classes.json``; a class neither present nor predicted
              has no IoU and is left out). The checkpoint holds ``{"model": state_dict after
              BN recalibration, "history", "steps"}`` (``engine.checkpoint.load_checkpoint``).
* ``latency`` --arm A --seed K --checkpoint runs/A/seedK/model.pt --data-dir ... --out F
              [--train-metrics runs/A/seedK/metrics.json]
              Median over ``eval.latency_repeats`` timed passes (the first min(n_val_scans, repeats)
              val scans in turn, all points, after one untimed warm-up pass) of the single-pass
              forward and the 4-flip TTA (4 forwards + softmax mean), at ``eval.latency_threads`` threads → metrics
              ``latency_ms``, ``latency_tta_ms``, ``tta_cost_ratio``. ``engine.metrics.aggregate``
              refuses two files with the same arm and seed, so with ``--train-metrics`` the
              output is that run's file with the latency metrics added (one file per run to
              aggregate); without it, only the latency metrics.
* ``figures`` --metrics aggregated.json --outdir DIR   (``DIR/<fig>.png`` for each name in
              ``figures.FIGURES``)
* ``scene``   --arm A --seed K --checkpoint runs/A/seedK/model.pt --data-dir ... --out F.png
              The rendered BEV of val scan ``eval.scene_index``: ground truth vs A's single
              pass and 4-flip TTA prediction, and its errors (``figures.fig_bev_scene``).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

STUDY = "cpgnet"
PACKAGES = ("numpy", "torch")


# --- config → explicit keyword arguments -------------------------------------------------

def arm_from_config(block: dict, arm: str) -> dict:
    """Arm name → ``{"tcl": bool, "batch_size": int | None}`` (``batch_size`` overrides
    ``train.batch_size`` for this arm: the compute-matched control of TCL; the model itself
    comes from ``model.cpgnet_from_config``)."""
    if arm not in block["arms"]:
        raise KeyError(f"cpgnet: unknown arm {arm!r}; configured: {sorted(block['arms'])}")
    spec = block["arms"][arm]
    return {"tcl": bool(spec.get("tcl", False)), "batch_size": spec.get("batch_size")}


def train_from_config(block: dict) -> dict:
    """``cpgnet.train`` → keyword arguments of ``engine.train`` plus batching/loss settings."""
    t = block["train"]
    aug = t.get("aug")
    if aug is not None:
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
    return {"steps": int(t["steps"]), "batch_size": int(t["batch_size"]), "n_points": int(t["n_points"]),
            "lr": float(t["lr"]), "weight_decay": float(t["weight_decay"]), "clip_grad": float(t["clip_grad"]),
            "schedule": str(t["schedule"]), "warmup": int(t["warmup"]),
            "lovasz_weight": float(t["lovasz_weight"]), "tcl_weight": float(t["tcl_weight"]),
            "bn_batches": int(t["bn_recalibrate_batches"]), "aug": aug,
            "optimizer": str(t["optimizer"]), "momentum": float(t["momentum"]), "nesterov": bool(t["nesterov"]),
            "drop_at": [float(x) for x in t["drop_at"]], "drop_factor": float(t["drop_factor"]),
            "device": str(t["device"])}


def eval_from_config(block: dict) -> dict:
    e = block["eval"]
    return {"n_val_scans": int(e["n_val_scans"]), "num_classes": int(block["num_classes"]),
            "dataset": str(block.get("dataset", "synthscan"))}


def latency_from_config(block: dict) -> dict:
    e = block["eval"]
    return {"repeats": int(e["latency_repeats"]), "threads": int(e["latency_threads"]),
            "n_scans": int(e["n_val_scans"])}


# --- helpers -------------------------------------------------------------------------------

def class_names(data_dir, num_classes: int, dataset: str = "synthscan") -> list[str]:
    """Names of classes 1..K−1: ``<data_dir>/classes.json`` for synthscan, the official
    learning-map names for SemanticKITTI."""
    f = Path(data_dir) / "classes.json"
    if dataset == "semantickitti":
        from paperzoo.data.semantickitti import CLASSES

        names = ["ignore", *CLASSES]
    else:
        names = read_json(f) if f.exists() else [f"c{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{f}: {len(names)} classes, config num_classes = {num_classes}")
    return [str(n).replace(".", "_").replace("-", "_").replace(" ", "_") for n in names[1:]]


def load_scans(data_dir, split: str, dataset: str = "synthscan", limit: int | None = None):
    """Scans of ``split`` as a sequence of ``(points (N, 4) float32, labels (N,) int64)``:
    synthscan in memory; SemanticKITTI read lazily frame by frame (19,130 training scans do
    not fit in memory). ``limit`` keeps the first ``limit`` scans."""
    if dataset == "synthscan":
        from paperzoo.data.synthscan import load_synthscan

        scans = load_synthscan(data_dir, split)
        return scans if limit is None else scans[:limit]
    if dataset == "semantickitti":
        from paperzoo.data.semantickitti import SemanticKittiScans

        scans = SemanticKittiScans(data_dir, split)
        if len(scans) == 0:
            raise FileNotFoundError(f"{data_dir}: no SemanticKITTI {split} frames (see paperzoo.data.semantickitti)")
        return scans if limit is None else scans.head(limit)
    raise ValueError(f"cpgnet: dataset {dataset!r}: expected 'synthscan' or 'semantickitti'")


def deviations(tr: dict, dataset: str, block: dict) -> list[str]:
    """What this run does differently from the official recipe (GangZhang842/CPGNet
    ``config/config_cpgnet_sgd_bili_sample_ohem_fp16.py``, released for nuScenes)."""
    out = []
    if tr["bn_batches"] > 0:
        out.append("BatchNorm running statistics re-estimated after training over "
                   f"{tr['bn_batches']} training batches (model.recalibrate_bn; not in the official code)")
    if tr["optimizer"] != "sgd" or tr["lr"] != 0.02 or tr["batch_size"] != 24:
        out.append(f"{tr['optimizer']} lr {tr['lr']:g}, {tr['schedule']} schedule, {tr['steps']} steps at batch "
                   f"{tr['batch_size']} (official: SGD lr 0.02, momentum 0.9, Nesterov, 48 epochs, ×0.1 every 10 "
                   "epochs, batch 6 × 4 GPUs, fp16)")
    else:
        out.append("fp32, one device at batch 24 (official: fp16, 6 per GPU × 4 GPUs)")
    if tr["n_points"] != 60000:
        out.append(f"{tr['n_points']} points resampled per training scan (official: 60,000)")
    out.append(f"{block['model'].get('blocks', 1)} residual block(s) at every 2D level "
               "(official (2, 3, 4) + 1 per level)")
    if dataset == "synthscan":
        out.append("synthetic synthscan scenes instead of SemanticKITTI; mini-width networks "
                   f"(point {block['model'].get('point_width')}, grids {block['model'].get('grid_widths')})")
    return out


# --- steps ---------------------------------------------------------------------------------

def run_train(block: dict, *, scale: str, arm: str, seed: int, data_dir, out, checkpoint, threads: int = 1,
              progress: bool = True, checkpoint_every_s: float | None = None) -> dict:
    """Train one arm/seed, recalibrate BN, evaluate on val, write metrics and weights.
    ``checkpoint_every_s``: None = engine.train's default ($PAPERZOO_CHECKPOINT_EVERY_S or 120)."""
    import torch

    from paperzoo.engine.checkpoint import save_checkpoint
    from paperzoo.engine.train import load_trained, pick_device, to_device, train

    from .augment import ScanBatches, make_loss_fn
    from .metrics import evaluate
    from .model import cpgnet_from_config, recalibrate_bn

    t0 = time.perf_counter()
    seed_everything(seed, threads)
    torch.set_num_threads(threads)
    a, tr, ev = arm_from_config(block, arm), train_from_config(block), eval_from_config(block)
    if a["batch_size"] is not None:
        tr["batch_size"] = int(a["batch_size"])
    names = class_names(data_dir, ev["num_classes"], ev["dataset"])
    device = pick_device(tr["device"])
    model = cpgnet_from_config(block, arm)
    batches = ScanBatches(load_scans(data_dir, "train", ev["dataset"]), tr["batch_size"], tr["n_points"], seed=seed,
                          tcl=a["tcl"], aug=tr["aug"])
    train(model, make_loss_fn(tr["lovasz_weight"], tr["tcl_weight"]), batches, steps=tr["steps"],
          final=checkpoint, lr=tr["lr"], weight_decay=tr["weight_decay"], clip_grad=tr["clip_grad"],
          schedule=tr["schedule"], warmup=tr["warmup"], drop_at=tr["drop_at"], drop_factor=tr["drop_factor"],
          optimizer=tr["optimizer"], momentum=tr["momentum"], nesterov=tr["nesterov"], device=device,
          checkpoint_every_s=checkpoint_every_s,
          progress=progress, desc=f"cpgnet {arm} seed{seed}")
    model.cpu()
    history = load_trained(model, checkpoint)     # also the path of a run whose training had finished
    model.to(device)
    t_train = time.perf_counter() - t0
    # BN statistics from fresh batches (indices past the training run: same distribution, no reuse)
    bn_batches = ScanBatches(batches.scans, tr["batch_size"], tr["n_points"], seed=seed + 10_000, tcl=False,
                             aug=tr["aug"])
    if tr["bn_batches"] > 0:
        recalibrate_bn(model, lambda i: to_device(bn_batches(i), device), tr["bn_batches"])
    val = load_scans(data_dir, "val", ev["dataset"], limit=ev["n_val_scans"])
    t1 = time.perf_counter()
    res = evaluate(model, val, ev["num_classes"], device=device)
    t_eval = time.perf_counter() - t1
    metrics = {"miou": res["miou"], "miou_tta": res["miou_tta"], "tta_gap": res["miou_tta"] - res["miou"],
               "flip_consistency": res["flip_consistency"]}
    for name, v, vt in zip(names, res["iou_per_class"], res["iou_per_class_tta"]):
        if np.isfinite(v):
            metrics[f"iou_{name}"] = v
        if np.isfinite(vt):
            metrics[f"iou_tta_{name}"] = vt
    model.cpu()
    save_checkpoint(checkpoint, {"model": model.state_dict(), "history": history, "steps": tr["steps"],
                                 "bn_recalibrated": True})
    n_params = sum(p.numel() for p in model.parameters())
    meta = run_meta(t0, threads, PACKAGES, model=block["arms"][arm]["model"], tcl=a["tcl"], n_params=n_params,
                    batch_size=tr["batch_size"], scans_seen=tr["batch_size"] * tr["steps"],
                    train_s=round(t_train, 3), eval_s=round(t_eval, 3), n_val_scans=len(val),
                    final_loss=history[-1]["loss"] if history else None,
                    optimizer=tr["optimizer"], device=str(device),
                    deviations=deviations(tr, ev["dataset"], block))
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    return metrics


def time_forward(model, scans, repeats: int, tta: bool) -> list[float]:
    """Wall ms of ``repeats`` passes over ``scans`` in turn (one untimed warm-up pass first)."""
    import torch

    from .metrics import predict_probs

    xs = [torch.from_numpy(np.ascontiguousarray(p))[None] for p, _ in scans]
    with torch.inference_mode():
        predict_probs(model, xs[0], tta=tta)
        times = []
        for i in range(repeats):
            x = xs[i % len(xs)]
            t = time.perf_counter()
            predict_probs(model, x, tta=tta)
            times.append(1e3 * (time.perf_counter() - t))
    return times


def run_latency(block: dict, *, scale: str, arm: str, seed: int, checkpoint, data_dir, out,
                train_metrics=None) -> dict:
    """Median single-pass and 4-flip-TTA latency (ms/scan) of a trained arm."""
    import torch

    from paperzoo.engine.checkpoint import load_checkpoint

    from .model import cpgnet_from_config

    t0 = time.perf_counter()
    lat, ev = latency_from_config(block), eval_from_config(block)
    seed_everything(seed, lat["threads"])
    torch.set_num_threads(lat["threads"])
    model = cpgnet_from_config(block, arm)
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    model.eval()
    scans = load_scans(data_dir, "val", ev["dataset"], limit=min(lat["n_scans"], lat["repeats"]))   # the timed ones
    single = time_forward(model, scans, lat["repeats"], tta=False)
    tta = time_forward(model, scans, lat["repeats"], tta=True)
    m_single, m_tta = statistics.median(single), statistics.median(tta)
    q1, _, q3 = statistics.quantiles(single, n=4)   # spread of the single passes (issue: report it)
    metrics = {"latency_ms": m_single, "latency_tta_ms": m_tta, "tta_cost_ratio": m_tta / m_single,
               "latency_iqr_ms": q3 - q1}
    lat_meta = {"threads": lat["threads"], "repeats": lat["repeats"], "n_scans": len(scans),
                "mean_points_per_scan": float(np.mean([len(p) for p, _ in scans])),
                "timed": "model forward incl. projection, scatter and gather, softmax; TTA = 4 flips + mean",
                "device": "cpu", "torch_threads": torch.get_num_threads()}
    meta = run_meta(t0, lat["threads"], PACKAGES, latency=lat_meta)
    if train_metrics is not None:
        run = read_json(train_metrics)
        if (run["arm"], int(run["seed"])) != (arm, seed):
            raise ValueError(f"{train_metrics}: arm/seed {run['arm']}/{run['seed']} differ from {arm}/{seed}")
        metrics = {**run["metrics"], **metrics}
        meta = {**run["meta"], "latency": {**lat_meta, "wall_s": meta["wall_s"]}}
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_scene(block: dict, *, scale: str, arm: str, seed: int, checkpoint, data_dir, out) -> dict:
    """Predict one val scan with a trained arm and draw it from above (``fig_bev_scene``)."""
    import torch

    from paperzoo.engine.checkpoint import load_checkpoint

    from . import figures
    from .metrics import confusion, miou, predict_probs, to_labels
    from .model import cpgnet_from_config

    ev = eval_from_config(block)
    idx = int(block["eval"]["scene_index"])
    seed_everything(seed, 1)
    model = cpgnet_from_config(block, arm)
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    model.eval()
    scans = load_scans(data_dir, "val", ev["dataset"], limit=idx + 1)
    if idx >= len(scans):
        raise IndexError(f"cpgnet.eval.scene_index = {idx}: the val split has {len(scans)} scans")
    pts, lab = scans[idx]
    x = torch.from_numpy(np.ascontiguousarray(pts))[None]
    pred = to_labels(predict_probs(model, x))[0].numpy()
    pred_tta = to_labels(predict_probs(model, x, tta=True))[0].numpy()
    k = ev["num_classes"]
    scores = {"miou": miou(confusion(pred, lab, k)), "miou_tta": miou(confusion(pred_tta, lab, k))}
    names = [n.replace("_", "-") for n in class_names(data_dir, k, ev["dataset"])]
    figures.fig_bev_scene(pts, lab, pred, pred_tta, names, out, arm=arm, extent=tuple(block["model"]["bev_range"]),
                          scale=scale, **scores)
    return scores


def run_figures(block: dict, *, scale: str, metrics, outdir) -> list[Path]:
    """All figures into ``outdir`` (``<name>.png`` for each name in ``figures.FIGURES``)."""
    from . import figures  # matplotlib only where figures are drawn

    outdir = Path(outdir)
    agg = read_json(metrics)
    arms = [a for a in block["arms"] if a in agg["arms"]] + [a for a in agg["arms"] if a not in block["arms"]]
    figures.fig_miou_tta(agg, arms, outdir / "fig_miou_tta.png", scale=scale)
    classes = None
    if block.get("dataset", "synthscan") == "synthscan":
        from paperzoo.data.synthscan import CLASSES as classes
    figures.fig_iou_per_class(agg, arms, outdir / "fig_iou_per_class.png", scale=scale,
                              classes=list(classes) if classes else None)
    figures.fig_latency(agg, arms, outdir / "fig_latency.png", scale=scale)
    return [outdir / f"{name}.png" for name in figures.FIGURES]


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("train", "latency", "figures", "scene"))
    ap.add_argument("--arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--out", type=Path, help="run metrics JSON (train, latency)")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--train-metrics", type=Path, help="latency: the run's train metrics to merge into --out")
    ap.add_argument("--metrics", type=Path, help="aggregated metrics.json (figures)")
    ap.add_argument("--outdir", type=Path)
    need = {"train": ["arm", "data_dir", "out", "checkpoint"], "latency": ["arm", "checkpoint", "data_dir", "out"],
            "figures": ["metrics", "outdir"], "scene": ["arm", "checkpoint", "data_dir", "out"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "train":
        run_train(block, scale=args.scale, arm=args.arm, seed=args.seed, data_dir=args.data_dir, out=args.out,
                  checkpoint=args.checkpoint, threads=args.threads)
    elif args.step == "latency":
        run_latency(block, scale=args.scale, arm=args.arm, seed=args.seed, checkpoint=args.checkpoint,
                    data_dir=args.data_dir, out=args.out, train_metrics=args.train_metrics)
    elif args.step == "scene":
        run_scene(block, scale=args.scale, arm=args.arm, seed=args.seed, checkpoint=args.checkpoint,
                  data_dir=args.data_dir, out=args.out)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, outdir=args.outdir)


if __name__ == "__main__":
    main()
