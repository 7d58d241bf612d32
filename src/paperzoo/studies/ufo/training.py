"""UFO study: data, models, the multi-task training loop and evaluation (called by ``steps``)."""
from __future__ import annotations

import time

from .recipe import MEAN, STD, TASK_SEED, model_from_config, space_from_config, train_from_config


# --- data, models ----------------------------------------------------------------------------

def load_split(data_dir, task: str, split: str):
    from paperzoo.data.sets import to_float
    from paperzoo.data.synthid import load_synthid

    images, labels = load_synthid(data_dir, task, split)
    return to_float(images, MEAN, STD), labels


def build(block: dict, tasks: tuple[str, ...], n_ids: dict[str, int], seed: int, moe: bool):
    """(module with ``.net`` (the supernet) and ``.heads`` (CosFace per task)), initialised from ``seed``."""
    import torch
    from torch import nn

    from .models import CosFace, UFOSupernet

    torch.manual_seed(seed)
    mod = nn.Module()
    mod.net = UFOSupernet(tasks, moe=moe, **model_from_config(block))
    cf = block["cosface"]
    mod.heads = nn.ModuleDict({t: CosFace(mod.net.dim, n_ids[t], float(cf[t]["s"]), float(cf[t]["m"]))
                               for t in tasks})
    return mod


def augment(x, g, pad: int):
    """Re-ID augmentation: horizontal flip with probability 1/2 and a random crop of the image
    padded by ``pad`` px (edge replicated), one offset per batch."""
    import torch
    import torch.nn.functional as F

    flip = torch.rand(x.shape[0], generator=g) < 0.5
    x = x.clone()
    x[flip] = x[flip].flip(-1)
    if pad:
        h, w = x.shape[-2:]
        dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=g))
        x = F.pad(x, (pad, pad, pad, pad), mode="replicate")[:, :, dy:dy + h, dx:dx + w]
    return x


def task_batches(train: dict, tasks: tuple[str, ...], all_tasks: tuple[str, ...], batch: int, seed: int,
                 pad: int = 0, flip: bool = False):
    """Step i → ({task: (x, y)}, i): each task's images (and augmentation) drawn by a generator of
    (seed, task, i) only, so a single-task run sees exactly the images the multi-task runs see for
    that task."""
    import torch

    from paperzoo.engine.train import step_generator

    def get(i: int):
        out = {}
        for t in tasks:
            x, y = train[t]
            g = step_generator(seed * TASK_SEED + all_tasks.index(t), i)
            idx = torch.randint(len(y), (batch,), generator=g)
            out[t] = (augment(x[idx], g, pad) if flip else x[idx], y[idx])
        return out, i

    return get


def make_loss_fn(space, seed: int, sample: bool, largest_every: int):
    """Σ_t CosFace_t of the step's sub-network (``sample``) or of the largest one."""
    from .models import step_config

    def loss_fn(model, batch):
        data, i = batch
        cfg = step_config(space, seed, int(i), largest_every) if sample else space.largest()
        parts = {f"loss_{t}": model.heads[t](model.net(x, t, cfg), y) for t, (x, y) in data.items()}
        return sum(parts.values()), parts

    return loss_fn


def fit(block: dict, model, train: dict, tasks, all_tasks, *, seed: int, sample: bool, checkpoint, progress: bool,
        desc: str) -> float:
    from paperzoo.engine.train import train as run_train

    o = train_from_config(block)
    t1 = time.perf_counter()
    run_train(model, make_loss_fn(space_from_config(block), seed, sample, o["largest_every"]),
              task_batches(train, tasks, all_tasks, o["batch_per_task"], seed, o["pad"], o["flip"]), steps=o["steps"],
              final=checkpoint,
              lr=o["lr"], weight_decay=o["weight_decay"], clip_grad=0.0, schedule="cosine", warmup=o["warmup"],
              progress=progress, desc=desc)
    return time.perf_counter() - t1


def latency_ms(net, task: str, cfg: dict, block: dict) -> float:
    """Median ms per image of the ``task`` path ``cfg`` at batch ``eval.latency_batch`` (no grad)."""
    import statistics

    import torch

    e, m = block["eval"], model_from_config(block)
    x = torch.randn(int(e["latency_batch"]), 3, m["img_size"], m["img_size"])
    net.eval()
    times = []
    with torch.inference_mode():
        net(x, task, cfg)
        for _ in range(int(e["latency_repeats"])):
            t = time.perf_counter()
            net(x, task, cfg)
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times) / x.shape[0]


def evaluate_path(net, task: str, cfg: dict, data: tuple, block: dict, prefix: str = "") -> dict:
    """Retrieval metrics of one task path on (images, labels), with its params and latency."""
    from .models import embed, retrieval_metrics

    r = retrieval_metrics(embed(net, data[0], task, cfg), data[1])
    return {f"{prefix}R1_{task}": r["R1"], f"{prefix}mAP_{task}": r["mAP"],
            f"{prefix}params_{task}": net.path_params(task, cfg),
            f"{prefix}latency_ms_{task}": latency_ms(net, task, cfg, block)}


def summarise(metrics: dict, tasks) -> dict:
    out = dict(metrics)
    out["R1_mean"] = sum(metrics[f"R1_{t}"] for t in tasks) / len(tasks)
    out["mAP_mean"] = sum(metrics[f"mAP_{t}"] for t in tasks) / len(tasks)
    out["params_path_max"] = max(metrics[f"params_{t}"] for t in tasks)
    return out
