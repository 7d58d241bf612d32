"""Entry points of the LAE study (called by the Snakemake rules).

    python -m paperzoo.studies.lae.steps <step> --params P --scale S [options]

``P`` is the ``lae`` config block after the scale overlay (JSON text or file). Only the
``*_from_config`` functions read it; everything else takes explicit keyword arguments.

* ``pretrain`` --data-dir results/data/classes/<scale> --out pretrain/backbone.pt --metrics pretrain/metrics.json
      ``pretrain.source: upstream``: ViT trained on the upstream classes (resumable);
      ``official``: download + verify the IN-21k ViT-B/16 ``.npz`` and convert it.
* ``train``    --arm <bench>_<arm> --seed K --backbone backbone.pt --data-dir D --out runs/<arm>/seedK/metrics.json
      [--state S] [--seq-out runs/<bench>_seq_<pet>/seedK/metrics.json] One run (see :mod:`.runs`);
      ``--state`` = per-task resume file (removed when the run is complete). A forked LAE arm
      (``fork_seq``) also runs Seq-PET of the same order and writes it to ``--seq-out``.
      Metric names: :func:`.benchmark.summarize`.
* ``figures``  --metrics aggregated.json --outdir DIR
"""
from __future__ import annotations

import time
from pathlib import Path

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json, write_json
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

STUDY = "lae"
PACKAGES = ("numpy", "torch", "timm")
OFFICIAL = {"adapter": "Adapter5 (bottleneck 5)", "lora": "LoRA5 (rank 5)", "prefix": "Prefix10 (length 10)"}


# --- config → explicit keyword arguments -----------------------------------------------------

def split_arm(block: dict, run_arm: str) -> tuple[str, str]:
    """``<bench>_<arm>`` → (bench, arm), both checked against the config."""
    bench, _, arm = run_arm.partition("_")
    if bench not in block["benchmarks"] or bench not in block["bench"] or arm not in block["arms"]:
        raise KeyError(f"lae: run arm {run_arm!r} is not <benchmark>_<arm> with benchmark in "
                       f"{sorted(block['benchmarks'])} and arm in {sorted(block['arms'])}")
    return bench, arm


def run_arms(block: dict) -> list[str]:
    """Every run arm name of the study (the rules' ``{arm}`` wildcard values)."""
    return [f"{b}_{a}" for b in block["benchmarks"] for a in block["arms"]]


def arm_seeds(block: dict, arm: str) -> list[int]:
    """Class orders of an arm: ``lae.seeds``, or the arm's own ``seeds`` when smaller."""
    n = int(block["seeds"])
    return list(range(min(int(block["arms"][arm].get("seeds", n)), n)))


def fork_pairs(block: dict) -> dict[str, str]:
    """``{lae_<pet>: seq_<pet>}`` for the PETs whose Seq-PET and LAE run in one job (``fork_seq``)."""
    if not block["fork_seq"]:
        return {}
    arms = block["arms"]
    pairs = {}
    for name, a in arms.items():
        seq = f"seq_{a['pet']}"
        if a["method"] == "lae" and name == f"lae_{a['pet']}" and seq in arms:
            if arm_seeds(block, name) != arm_seeds(block, seq):
                raise ValueError(f"lae.arms: {name} and {seq} run in one job (fork_seq) and need the same seeds")
            pairs[name] = seq
    return pairs


def backbone_from_config(block: dict) -> tuple[str, dict]:
    """``lae.backbone`` → (registered model name, keyword overrides)."""
    bb = dict(block["backbone"])
    return bb.pop("model"), bb


def train_from_config(block: dict, bench: dict | None = None) -> dict:
    """``lae.train``, with a benchmark's own non-null ``lr`` / ``epochs`` / ``freeze_epochs``
    (ImageNet-R's official schedule differs from CIFAR's) taking precedence."""
    t = {**block["train"], **{k: v for k, v in (bench or {}).items()
                              if k in ("lr", "epochs", "freeze_epochs") and v is not None}}
    return {"batch_size": int(t["batch_size"]), "lr": float(t["lr"]), "epochs": int(t["epochs"]),
            "freeze_epochs": int(t["freeze_epochs"]), "ema_c": float(t["ema_c"]),
            "ema_decay_fixed": None if t["ema_decay"] is None else float(t["ema_decay"])}


def deviations(block: dict, method: str, pet: str | None, info: dict, tr: dict | None = None) -> list[str]:
    tr = {**block["train"], **(tr or {})}
    pc, bb = block["pet"], backbone_from_config(block)
    out = []
    if block["pretrain"]["source"] != "official":
        out.append(f"backbone {bb[0]} {bb[1]} pretrained from scratch on the upstream `classes` "
                   "(official: ViT-B/16 IN-21k)")
    if method == "lae" and tr["ema_decay"] is None and info.get("ema_decay") is not None:
        out.append(f"EMA decay rescaled to d = 1 - {tr['ema_c']}/steps_per_task = {info['ema_decay']:.5f} "
                   "(official 0.9999 over ~1040 steps/task, i.e. the same ~10% pull per task)")
    if pet is not None and (pc["n_blocks"] != 5 or pc["adapter_bottleneck"] != 5 or pc["lora_rank"] != 5
                            or pc["prefix_length"] != 10):
        size = {"adapter": pc["adapter_bottleneck"], "lora": pc["lora_rank"], "prefix": pc["prefix_length"]}[pet]
        out.append(f"PET on the first {pc['n_blocks']} blocks (official 5 of 12); {pet} size {size}"
                   f" (official {OFFICIAL[pet]})")
    out.append(f"Adam lr {tr['lr']:g}, batch {tr['batch_size']}, {tr['epochs']} epochs/task "
               f"(freeze {tr['freeze_epochs']}); no RandomResizedCrop/flip augmentation (official: 24, 5 (3) on CIFAR)")
    if method == "lae":
        out.append("head-only warm-up and PET training use one Adam per task; frozen steps run the PET "
                   "without gradient (official: requires_grad toggled inside one optimizer, same effect)")
    return out


# --- steps -----------------------------------------------------------------------------------

def run_pretrain(block: dict, *, scale: str, data_dir, out, metrics_out, threads: int = 1) -> dict:
    import torch

    from . import pretrain

    t0 = time.perf_counter()
    seed_everything(0, threads)
    torch.set_num_threads(threads)
    p, (name, kwargs) = block["pretrain"], backbone_from_config(block)
    if p["source"] == "official":
        npz = Path(out).with_name("ViT-B_16.npz")
        pretrain.fetch_official_weights(p["url"], npz, sha256=p["sha256"], allow_unverified=p["allow_unverified"])
        res = pretrain.load_official(model=name, model_kwargs=kwargs, npz=npz, out=out)
    elif p["source"] == "upstream":
        res = pretrain.pretrain_upstream(model=name, model_kwargs=kwargs, data_dir=data_dir, out=out,
                                         steps=int(p["steps"]), batch_size=int(p["batch_size"]), lr=float(p["lr"]),
                                         weight_decay=float(p["weight_decay"]), warmup=int(p["warmup"]), seed=0,
                                         shift=int(p["shift"]))
    else:
        raise ValueError(f"lae.pretrain.source {p['source']!r}: expected upstream | official")
    res = {**res, **run_meta(t0, threads, PACKAGES, scale=scale, source=p["source"])}
    write_json(metrics_out, res)
    return res


def run_train(block: dict, *, scale: str, arm: str, seed: int, backbone, data_dir, out, state=None,
              threads: int = 1, seq_out=None) -> dict:
    """One run; for a forked pair (``fork_seq``: ``arm`` = <bench>_lae_<pet>) also the Seq-PET run
    of the same order, written to ``seq_out``."""
    import torch

    from paperzoo.layers.pet import PETViT

    from .benchmark import load_benchmark
    from .pretrain import load_backbone
    from .runs import run_calibration, run_continual, run_joint

    t0, c0 = time.perf_counter(), time.process_time()   # wall and CPU seconds (the 2 cores are shared)
    seed_everything(seed, threads)
    torch.set_num_threads(threads)
    bench_name, arm_name = split_arm(block, arm)
    b, a = block["bench"][bench_name], block["arms"][arm_name]
    tr = train_from_config(block, b)
    vit = PETViT(load_backbone(backbone))
    size = vit.vit.patch_embed.img_size[0]
    bench = load_benchmark(b["dataset"], data_dir, n_tasks=int(b["n_tasks"]),
                           classes_per_task=int(b["classes_per_task"]), seed=seed,
                           n_train_per_class=b.get("n_train_per_class"))
    method, pet = a["method"], a.get("pet")
    common = {"seed": seed, "size": size, "batch_size": tr["batch_size"], "lr": tr["lr"]}
    pair = fork_pairs(block).get(arm_name)
    if (pair is None) != (seq_out is None):
        raise ValueError(f"lae: run arm {arm!r} " + ("runs with its Seq-PET arm: give --seq-out" if pair
                                                     else "is not a forked LAE arm: --seq-out is not used"))
    extra = {}
    if pair is not None:
        from .runs import run_seq_lae

        cl = {"pet_kind": pet, "pet_cfg": block["pet"], "epochs": tr["epochs"], "freeze_epochs": tr["freeze_epochs"],
              "ema_c": tr["ema_c"], "ema_decay_fixed": tr["ema_decay_fixed"], **common}
        state_dir = None if state is None else Path(f"{state}.d")
        (m_seq, i_seq), (metrics, info) = run_seq_lae(vit, bench, state_dir=state_dir, **cl)
        extra = {"seq": (m_seq, i_seq)}
    elif method in ("seq", "lae", "linear"):
        metrics, info = run_continual(vit, bench, method=method, pet_kind=pet, pet_cfg=block["pet"],
                                      epochs=tr["epochs"], freeze_epochs=tr["freeze_epochs"], ema_c=tr["ema_c"],
                                      ema_decay_fixed=tr["ema_decay_fixed"], state=state, **common)
    elif method == "joint":
        metrics, info = run_joint(vit, bench, pet_kind=pet, pet_cfg=block["pet"], epochs=tr["epochs"], **common)
    elif method == "calib":
        metrics, info = run_calibration(vit, bench, pet_cfg=block["pet"], steps=int(block["calib"]["steps"]),
                                        warmup_steps=int(block["calib"]["warmup_steps"]), **common)
    else:
        raise ValueError(f"lae: arm {arm_name!r} has unknown method {method!r}")
    common_meta = {"cpu_s": round(time.process_time() - c0, 3), "benchmark": bench_name, "pet": pet,
                   "n_tasks": bench.n_tasks, "classes_per_task": int(b["classes_per_task"]),
                   "n_train": len(bench.train), "n_test": len(bench.test),
                   "class_order": "seeded permutation (seed = class order)"}
    if "seq" in extra:   # the pair's Seq-PET run first: the LAE file is the job's last output
        m_seq, i_seq = extra["seq"]
        meta = run_meta(t0, threads, PACKAGES, **common_meta, method="seq", **i_seq,
                        forked_pair=f"{bench_name}_{arm_name}", deviations=deviations(block, "seq", pet, i_seq, tr))
        write_run_metrics(seq_out, study=STUDY, scale=scale, arm=f"{bench_name}_{pair}", seed=seed,
                          metrics=m_seq, meta=meta)
    meta = run_meta(t0, threads, PACKAGES, **common_meta, method=method, **info,
                    deviations=deviations(block, method, pet, info, tr))
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    if state is not None:
        Path(state).unlink(missing_ok=True)
        if Path(f"{state}.d").is_dir():
            import shutil

            shutil.rmtree(f"{state}.d")
    return metrics


def run_figures(block: dict, *, scale: str, metrics, outdir) -> list[Path]:
    from . import figures

    agg = read_json(metrics)
    return figures.draw_all(agg, block, Path(outdir), scale=scale)


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("pretrain", "train", "figures"))
    ap.add_argument("--arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--backbone", type=Path, help="pretrained backbone.pt (train)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--state", type=Path, help="train: per-task resume file")
    ap.add_argument("--seq-out", type=Path, help="train, forked LAE arm: the Seq-PET run's metrics.json")
    ap.add_argument("--metrics", type=Path, help="pretrain: metrics JSON to write; figures: aggregated metrics")
    ap.add_argument("--outdir", type=Path)
    need = {"pretrain": ["out", "metrics"], "train": ["arm", "backbone", "data_dir", "out"],
            "figures": ["metrics", "outdir"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "pretrain":
        run_pretrain(block, scale=args.scale, data_dir=args.data_dir, out=args.out, metrics_out=args.metrics,
                     threads=args.threads)
    elif args.step == "train":
        run_train(block, scale=args.scale, arm=args.arm, seed=args.seed, backbone=args.backbone,
                  data_dir=args.data_dir, out=args.out, state=args.state, threads=args.threads,
                  seq_out=args.seq_out)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, outdir=args.outdir)


if __name__ == "__main__":
    main()
