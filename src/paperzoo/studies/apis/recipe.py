"""APIS recipe: the ``apis`` config block → explicit keyword arguments, and the deviations
every run records (``steps`` wires them into the rules' entry points).

Only the ``*_from_config`` functions read the block.
"""
from __future__ import annotations

STRATEGIES = ("random", "entropy", "bald", "oracle")


def _train_cfg(b: dict, where: str) -> dict:
    out = {"steps": int(b["steps"]), "batch_size": int(b["batch_size"]), "lr": float(b["lr"]),
           "weight_decay": float(b["weight_decay"]), "drop_at": [float(x) for x in b["drop_at"]]}
    if any(not 0 < x < 1 for x in out["drop_at"]):
        raise ValueError(f"apis.{where}.drop_at = {out['drop_at']}: fractions of the run in (0, 1) expected")
    return out


def p0_from_config(block: dict) -> dict:
    return _train_cfg(block["p0"], "p0")


def rounds_from_config(block: dict) -> dict:
    r = block["rounds"]
    out = {**_train_cfg(r, "rounds"), "n": int(r["n"])}
    if out["n"] + 1 > int(block["points_per_instance"]):
        raise ValueError(f"apis.rounds.n = {out['n']}: the random strategy needs n + 1 <= "
                         f"apis.points_per_instance = {block['points_per_instance']} drawn points")
    return out


def fullmask_from_config(block: dict) -> dict:
    """The reference's schedule: as many steps as P0 + every round (unless ``fullmask.steps``)."""
    f, p0, r = block["fullmask"], p0_from_config(block), rounds_from_config(block)
    steps = f["steps"] if f["steps"] is not None else p0["steps"] + r["n"] * r["steps"]
    return {**_train_cfg({**f, "steps": steps}, "fullmask")}


def head_from_config(block: dict) -> dict:
    c = block["crop"]
    if int(c["size"]) % 4:
        raise ValueError(f"apis.crop.size = {c['size']}: must be divisible by 4 (the U-Net pools twice)")
    return {"model": str(block["model"]), "size": int(c["size"]), "expand": float(c["expand"])}


def selection_from_config(block: dict) -> dict:
    s = block["selection"]
    j = float(s["jitter"])
    shifts = [(0.0, 0.0)] if j == 0 else [(j, j), (-j, -j), (j, -j), (-j, j)]
    return {"shifts": shifts, "hflip": bool(s["hflip"])}


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise KeyError(f"apis: unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    return strategy


def deviations(block: dict, scale: str) -> list[str]:
    out = ["mask head given the ground-truth box (APIS gives boxes as annotation): a RoIAlign crop + U-Net "
           "instead of CondInst's detector and dynamic mask head; masks evaluated with GT boxes "
           "(miou, segmAP), not detector mask AP",
           "uncertainty from an ensemble of crop views (box shifts x horizontal flip) instead of the mean over "
           "the CondInst proposals assigned to a ground truth; every instance has views, so no random fallback",
           "the point-loss weight (0.1 at P0, 1.0 in the rounds, official) is left out: the head has no other "
           "loss and AdamW's step does not depend on the loss scale",
           "class-agnostic mask head"]
    if scale != "paper":
        out += [f"procedural 64-px '{block['dataset']}' instances (masks with occlusion holes and two-tone "
                "objects) instead of COCO; rounds of "
                f"{block['rounds']['steps']} steps instead of 30k iterations"]
    return out
