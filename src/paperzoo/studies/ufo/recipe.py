"""UFO study: config → explicit keyword arguments, the study's constants, and its deviations
from the paper's recipe (``steps`` holds the entry points, ``training`` the loop and evaluation)."""
from __future__ import annotations

STUDY = "ufo"
PACKAGES = ("numpy", "torch")
MEAN, STD = [0.5] * 3, [0.25] * 3
TASK_SEED = 31            # task t's batches at step i: step_generator(seed * TASK_SEED + index(t), i)
ARMS = ("single", "allinone", "ufo_largest", "ufo_trimmed")


# --- config → explicit keyword arguments -------------------------------------------------

def tasks_from_config(block: dict) -> tuple[str, ...]:
    from paperzoo.data.synthid import TASKS

    tasks = tuple(block["tasks"])
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"ufo.tasks: unknown task(s) {bad}; expected some of {TASKS}")
    missing = [t for t in tasks if t not in block["cosface"]]
    if missing:
        raise KeyError(f"ufo.cosface: no s/m for task(s) {missing}")
    return tasks


def space_from_config(block: dict):
    from .models import Space

    s = block["space"]
    return Space(depths=tuple(int(d) for d in s["depths"]), heads=tuple(int(h) for h in s["heads"]),
                 mlp_ratios=tuple(float(r) for r in s["mlp_ratios"]))


def model_from_config(block: dict) -> dict:
    m, space = block["model"], space_from_config(block)
    out = {"img_size": int(m["img_size"]), "patch_size": int(m["patch_size"]), "dim": int(m["dim"]),
           "head_dim": int(m["head_dim"]), "tau": float(m["tau"]), "stem": str(m.get("stem", "patch")),
           "max_depth": max(space.depths),
           "max_heads": max(space.heads), "max_mlp_ratio": max(space.mlp_ratios)}
    if out["img_size"] % out["patch_size"]:
        raise ValueError(f"ufo.model.img_size = {out['img_size']} is not a multiple of patch_size {out['patch_size']}")
    return out


def train_from_config(block: dict) -> dict:
    t = block["train"]
    steps = int(t["steps"])
    return {"steps": steps, "batch_per_task": int(t["batch_per_task"]), "lr": float(t["lr"]),
            "weight_decay": float(t["weight_decay"]), "warmup": int(round(float(t["warmup_frac"]) * steps)),
            "largest_every": int(t["largest_every"]), "flip": bool(t["augment"]["flip"]),
            "pad": int(t["augment"]["crop_pad"])}


def search_from_config(block: dict) -> dict:
    s = block["search"]
    out = {"param_cap": float(s["param_cap"]), "n_random": int(s["n_random"]), "n_evolve": int(s["n_evolve"]),
           "top_k": int(s["top_k"]), "seed": int(s["seed"])}
    if not 0 < out["param_cap"] <= 1:
        raise ValueError(f"ufo.search.param_cap = {out['param_cap']}: a fraction in (0, 1] expected")
    return out


def deviations(block: dict, scale: str, arm: str) -> list[str]:
    out = ["elastic sub-network sampling switched on in training (the released OneForAll training config fixes "
           "ViT-B; its eval config holds the elastic choices); the largest sub-network every "
           f"{block['train']['largest_every']} steps (ours)",
           "no BN-neck and no triplet loss (the released training config: CosFace / CE only)",
           "one task expert per task in every layer, the MLP ratio of the task experts sampled once per layer "
           "and step for all tasks"]
    if arm == "ufo_trimmed":
        out.append("trimming: random + evolutionary search on validation identities, score (R1 + mAP) / 2, "
                   "under a parameter cap; UFO v1's NAS method (and v2's GP-NAS predictor) not reimplemented")
    if scale != "paper":
        out.append("procedural 32-px four-task identity set (synthid) with built-in shared and conflicting "
                   "factors instead of MS1M / Market-1501 / VeRi / SOP; a 6-block d64 ViT instead of ViT-B/L")
    return out
