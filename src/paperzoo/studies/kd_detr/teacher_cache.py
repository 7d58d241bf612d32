"""The frozen teacher's distillation targets of one seed, computed once for every arm.

Every KD arm of seed *k* feeds the teacher the same thing at step *i*: the step's batch
(``StepBatches`` of seed *k*: same images, same flips) and, where the arm uses general
points, the same fresh points (``general_points(seed=k, step=i)``). The teacher is frozen,
so its outputs are a function of ``(k, i)`` alone, and seven arms computing them again is
about a fifth of each KD step at mini (``benchmarks/bench_kd_detr.py``). ``build`` runs the
teacher once per step, exactly as the arms' loss would (``teacher_pass``), and ``TeacherTargets``
hands the stored tensors back: the arms' losses, and so their metrics, are bit-identical to
computing the teacher inline (``tests/studies/test_kd_detr.py``).

Two passes are stored, because the fused pass (own anchors + general points decoded in one
call, group-wise self-attention) equals the plain pass only up to float rounding:

* ``fused``: own queries and general points (arms with general points);
* ``plain``: own queries only (``specific`` / ``naive`` arms without general points).

Per pass and point set: ``pred_logits`` and ``pred_boxes`` of every decoder layer, stacked
over steps, so the file grows with the arms' steps: 74 MB per seed for 1000 steps at batch 16
with 16 queries, 4 classes and 3 layers (mini until 2026-12-03; 500 steps since). It is a
Snakemake ``temp`` output deleted once the seed's arms have read it. Configured by
``kd_detr.kd.teacher_cache`` (off at paper scale: COCO's 91,650 steps of 300 points would
not fit).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from .recipe import distils
from .sampling import forward_with_points, general_points

KEYS = ("pred_logits", "pred_boxes")


def passes_needed(arms: dict[str, dict]) -> list[str]:
    """The teacher passes the arms of a seed use: ``fused`` if any arm has general points,
    ``plain`` if any distilling arm has none."""
    out = []
    if any(a.get("general") for a in arms.values()):
        out.append("fused")
    if any(distils(a) and not a.get("general") for a in arms.values()):
        out.append("plain")
    return out


def teacher_pass(teacher: nn.Module, images: Tensor, general: Tensor | None) -> tuple[dict, dict]:
    """The teacher's no-grad ``forward_with_points``: the one call the arms' loss makes."""
    with torch.no_grad():
        return forward_with_points(teacher, images, {"general": general} if general is not None else {})


def _layers(out: dict) -> list[dict]:
    return [out] + list(out.get("aux_outputs", []))


def build(teacher: nn.Module, batches, *, steps: int, seed: int, kd: dict, passes: list[str],
          progress: bool = True) -> dict:
    """``{"seed", "steps", "passes": {pass: {set: {key: [per-layer (steps, B, N, .) tensors]}}}}``."""
    from tqdm import tqdm

    store: dict = {p: {} for p in passes}
    for step in tqdm(range(steps), desc=f"kd_detr teacher targets seed{seed}", disable=not progress, mininterval=2):
        images = batches(step)[0]
        for p in passes:
            general = (general_points(kd["num_general"], seed, step, kd["general_mean"], kd["general_std"])
                       if p == "fused" else None)
            own, extra = teacher_pass(teacher, images, general)
            for name, out in {"own": own, **extra}.items():
                dst = store[p].setdefault(name, {k: [[] for _ in _layers(out)] for k in KEYS})
                for li, layer in enumerate(_layers(out)):
                    for k in KEYS:
                        dst[k][li].append(layer[k])
    packed = {p: {name: {k: [torch.stack(v) for v in sets[name][k]] for k in KEYS} for name in sets}
              for p, sets in store.items()}
    return {"seed": int(seed), "steps": int(steps), "passes": packed}


def save(targets: dict, path) -> None:
    from paperzoo.engine.io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(targets, tmp)


class TeacherTargets:
    """Stored teacher outputs of one seed; ``(step, general)`` -> ``(own, extra)`` as
    ``teacher_pass`` returns them (only ``pred_logits`` / ``pred_boxes`` per layer, the keys
    the KD losses read)."""

    def __init__(self, path, *, seed: int, steps: int):
        self.path = Path(path)
        data = torch.load(self.path, map_location="cpu", weights_only=True)
        if data.get("seed") != seed or data.get("steps", -1) < steps:
            raise ValueError(f"{self.path}: teacher targets of seed {data.get('seed')} for {data.get('steps')} steps; "
                             f"this run needs seed {seed} and {steps} steps (rebuild with the kd_detr_teacher_targets rule)")
        self.passes = data["passes"]

    def __call__(self, step: int, general: bool) -> tuple[dict, dict]:
        p = "fused" if general else "plain"
        if p not in self.passes:
            raise ValueError(f"{self.path}: no '{p}' teacher pass stored (has {sorted(self.passes)}); the arms "
                             "the file was built for differ from this arm")
        sets = {name: self._dict(v, step) for name, v in self.passes[p].items()}
        own = sets.pop("own")
        own["num_groups"] = 1
        return own, sets

    @staticmethod
    def _dict(v: dict, step: int) -> dict:
        n = len(v["pred_logits"])
        layers = [{k: v[k][li][step] for k in KEYS} for li in range(n)]
        out = dict(layers[0])
        if n > 1:
            out["aux_outputs"] = layers[1:]
        return out
