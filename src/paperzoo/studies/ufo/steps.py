"""Entry points of the UFO study (called by the Snakemake rules).

    python -m paperzoo.studies.ufo.steps <step> --params P --scale S [options]

``P`` is the ``ufo`` config block after the scale overlay (JSON text or file). Only the
``*_from_config`` functions read it. Arms, per seed (every arm of a seed draws the same images
of each task at each step):

* ``single``    --seed K --data-dir D --checkpoint-dir C --out runs/single/seedK/metrics.json
                one dense model per task (the largest architecture, shared FFN only), trained on
                that task alone; metrics of all tasks in one run (arm ``single``).
* ``allinone``  --seed K --data-dir D --checkpoint A.pt --out M.json
                one multi-task model, largest architecture, no routing and no sub-network
                sampling (UFO v1's unified model without the supernet).
* ``supernet``  --seed K --data-dir D --checkpoint U.pt --out M.json
                the UFO supernet (task-routed FFNs, a sub-network per step); evaluated at its
                largest sub-network (arm ``ufo_largest``).
* ``trim``      --seed K --data-dir D --supernet U.pt --out M.json
                per task, the sub-network found by search on the **validation** identities under
                ``search.param_cap`` x the largest path's parameters, the supernet's weights
                loaded read-only (no finetuning, checked by a digest), scored on the test
                identities (arm ``ufo_trimmed``).
* ``figures``   --metrics aggregated.json --trimmed runs/ufo_trimmed/seed0/metrics.json --outdir DIR

Metrics per task t: ``R1_<t>``, ``mAP_<t>`` (all-vs-all retrieval among the test images of
unseen identities), ``params_<t>`` (the deployed path, CosFace weights excluded),
``latency_ms_<t>`` (ms per image at batch ``eval.latency_batch``, 1 thread, median).
"""
from __future__ import annotations

import time
from pathlib import Path

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

from .recipe import (ARMS, MEAN, PACKAGES, STD, STUDY, TASK_SEED, deviations, model_from_config,  # noqa: F401
                     search_from_config, space_from_config, tasks_from_config, train_from_config)
from .training import (augment, build, evaluate_path, fit, latency_ms, load_split, make_loss_fn,  # noqa: F401
                       summarise, task_batches)


# --- steps -------------------------------------------------------------------------------------

def _load_train(data_dir, tasks):
    train = {t: load_split(data_dir, t, "train") for t in tasks}
    return train, {t: int(train[t][1].max()) + 1 for t in tasks}


def run_single(block: dict, *, scale: str, seed: int, data_dir, checkpoint_dir, out, threads: int = 1,
               progress: bool = True) -> dict:
    """One dense largest-architecture model per task, trained on that task only."""
    t0 = time.perf_counter()
    tasks = tasks_from_config(block)
    seed_everything(seed, threads)
    train, n_ids = _load_train(data_dir, tasks)
    space, metrics, train_s = space_from_config(block), {}, 0.0
    for t in tasks:
        seed_everything(seed, threads)
        model = build(block, (t,), n_ids, seed, moe=False)
        train_s += fit(block, model, train, (t,), tasks, seed=seed, sample=False,
                       checkpoint=Path(checkpoint_dir) / f"{t}.pt", progress=progress, desc=f"ufo single {t} seed{seed}")
        metrics |= evaluate_path(model.net, t, space.largest(), load_split(data_dir, t, "test"), block)
    metrics = summarise(metrics, tasks)
    metrics["train_ms_per_step"] = 1000 * train_s / (len(tasks) * train_from_config(block)["steps"])
    meta = run_meta(t0, threads, PACKAGES, tasks=list(tasks), n_ids=n_ids, train_s=round(train_s, 3),
                    deviations=deviations(block, scale, "single"))
    write_run_metrics(out, study=STUDY, scale=scale, arm="single", seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_multitask(block: dict, *, scale: str, arm: str, seed: int, data_dir, checkpoint, out, threads: int = 1,
                  progress: bool = True) -> dict:
    """``allinone`` (no routing, no sampling) or the UFO supernet (``ufo_largest``), evaluated at
    the largest sub-network."""
    if arm not in ("allinone", "ufo_largest"):
        raise KeyError(f"ufo: multi-task arm {arm!r}; expected allinone or ufo_largest")
    t0 = time.perf_counter()
    tasks = tasks_from_config(block)
    seed_everything(seed, threads)
    train, n_ids = _load_train(data_dir, tasks)
    ufo = arm == "ufo_largest"
    model = build(block, tasks, n_ids, seed, moe=ufo)
    train_s = fit(block, model, train, tasks, tasks, seed=seed, sample=ufo, checkpoint=checkpoint, progress=progress,
                  desc=f"ufo {arm} seed{seed}")
    largest, metrics = space_from_config(block).largest(), {}
    for t in tasks:
        metrics |= evaluate_path(model.net, t, largest, load_split(data_dir, t, "test"), block)
        if ufo:
            metrics[f"task_expert_frac_{t}"] = sum(b.routed_expert(t) for b in model.net.blocks) / len(model.net.blocks)
    metrics = summarise(metrics, tasks)
    metrics["train_ms_per_step"] = 1000 * train_s / train_from_config(block)["steps"]
    meta = run_meta(t0, threads, PACKAGES, tasks=list(tasks), n_ids=n_ids, train_s=round(train_s, 3),
                    deviations=deviations(block, scale, arm))
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    return metrics


def state_digest(module) -> str:
    """SHA-256 of every parameter and buffer (the read-only check of the trimming search)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def search_task(net, task: str, val: tuple, block: dict, seed: int) -> tuple[dict, float, int, list[dict]]:
    """Random + evolutionary search of ``task``'s path on the validation identities under the
    parameter cap; returns (best config, its val score, candidates scored, the history)."""
    import random

    from .models import embed, mutate, path_config, retrieval_metrics

    s, space = search_from_config(block), space_from_config(block)
    cap = s["param_cap"] * net.path_params(task, space.largest())
    rng = random.Random(s["seed"] * 1_000_003 + seed * 101 + net.tasks.index(task))
    scored: list[tuple[float, dict]] = []
    history = []

    def score(cfg):
        r = retrieval_metrics(embed(net, val[0], task, cfg), val[1])
        v = (r["R1"] + r["mAP"]) / 2
        scored.append((v, cfg))
        history.append({"score": v, "params": net.path_params(task, cfg), "depth": cfg["depth"]})

    def under_cap(make, tries: int = 200):
        for _ in range(tries):
            c = make()
            if net.path_params(task, c) <= cap:
                return c
        raise RuntimeError(f"ufo trim {task}: no sub-network under {cap:.0f} parameters in {tries} draws "
                           "(ufo.search.param_cap too small for ufo.space)")

    for _ in range(s["n_random"]):
        score(under_cap(lambda: path_config(space, rng)))
    for _ in range(s["n_evolve"]):
        top = [c for _, c in sorted(scored, key=lambda p: -p[0])[: s["top_k"]]]
        parent = rng.choice(top)
        score(under_cap(lambda: mutate(parent, space, rng)))
    best_v, best = max(scored, key=lambda p: p[0])
    return best, best_v, len(scored), history


def run_trim(block: dict, *, scale: str, seed: int, data_dir, supernet, out, threads: int = 1,
             progress: bool = True) -> dict:
    """Per task: search on val identities, then the found path on the test identities. The
    supernet is loaded read-only: no parameter requires grad, no optimizer exists, and its
    digest must be unchanged after the search (else the step fails)."""
    from paperzoo.engine.train import load_trained

    t0 = time.perf_counter()
    tasks = tasks_from_config(block)
    seed_everything(seed, threads)
    _, n_ids = _load_train(data_dir, tasks)
    model = build(block, tasks, n_ids, seed, moe=True)
    load_trained(model, supernet)
    net = model.net.requires_grad_(False).eval()
    before = state_digest(net)
    metrics, found = {}, {}
    for t in tasks:
        ts = time.perf_counter()
        cfg, v, n_cand, hist = search_task(net, t, load_split(data_dir, t, "val"), block, seed)
        found[t] = {"config": cfg, "val_score": v, "candidates": n_cand, "search_s": time.perf_counter() - ts,
                    "history": hist}
        metrics |= evaluate_path(net, t, cfg, load_split(data_dir, t, "test"), block)
        metrics[f"depth_{t}"] = cfg["depth"]
        metrics[f"val_score_{t}"] = v
    changed = state_digest(net) != before
    if changed:
        raise RuntimeError(f"ufo trim: the supernet's weights changed during the search ({supernet}); trimming "
                           "must not adapt them")
    metrics["weights_changed"] = float(changed)
    metrics = summarise(metrics, tasks)
    largest = space_from_config(block).largest()
    metrics |= {f"params_frac_{t}": metrics[f"params_{t}"] / net.path_params(t, largest) for t in tasks}
    meta = run_meta(t0, threads, PACKAGES, tasks=list(tasks), supernet_sha256=before, found=found,
                    deviations=deviations(block, scale, "ufo_trimmed"))
    write_run_metrics(out, study=STUDY, scale=scale, arm="ufo_trimmed", seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_figures(block: dict, *, scale: str, metrics, outdir, trimmed=None) -> list[Path]:
    """Every figure; the search picture reads seed 0's ``ufo_trimmed`` run file (``trimmed``)."""
    from . import figures

    return figures.make_all(block, read_json(metrics), Path(outdir), scale=scale,
                            trimmed_run=read_json(trimmed) if trimmed else None)


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("single", "allinone", "supernet", "trim", "figures"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--checkpoint-dir", type=Path, help="single: one <task>.pt per task")
    ap.add_argument("--supernet", type=Path, help="trim: the supernet checkpoint (read-only)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--outdir", type=Path)
    ap.add_argument("--trimmed", type=Path, help="figures: seed 0's ufo_trimmed run (the search history)")
    need = {"single": ["data_dir", "checkpoint_dir", "out"], "allinone": ["data_dir", "checkpoint", "out"],
            "supernet": ["data_dir", "checkpoint", "out"], "trim": ["data_dir", "supernet", "out"],
            "figures": ["metrics", "trimmed", "outdir"]}
    args, block = parse_step(ap, argv, need)
    common = {"scale": args.scale, "threads": args.threads}
    if args.step == "single":
        run_single(block, seed=args.seed, data_dir=args.data_dir, checkpoint_dir=args.checkpoint_dir, out=args.out,
                   **common)
    elif args.step in ("allinone", "supernet"):
        run_multitask(block, arm="allinone" if args.step == "allinone" else "ufo_largest", seed=args.seed,
                      data_dir=args.data_dir, checkpoint=args.checkpoint, out=args.out, **common)
    elif args.step == "trim":
        run_trim(block, seed=args.seed, data_dir=args.data_dir, supernet=args.supernet, out=args.out, **common)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, outdir=args.outdir, trimmed=args.trimmed)


if __name__ == "__main__":
    main()
