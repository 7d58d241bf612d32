"""``synthid``: a procedural four-task identity set (the UFO study's stand-in for face, person,
vehicle and product retrieval).

Every identity is a seeded parameter vector; every image of it adds nuisance. One renderer
draws a textured body (a shape of :data:`.primitives.KINDS`) with a small second part on a
plain background. Which parameters are identity and which are nuisance differs by task, so the
tasks share some factors and conflict on one **by construction**:

============ ============================================== ========================================
task         identity                                       nuisance
============ ============================================== ========================================
``face``     aspect, skin hue / value, part ("eyes")        ±15° rotation, ±10 % scale, ±2 px shift,
             offset and hue                                 gain, noise, background; disc body
``person``   body hue, second hue, texture (solid / stripes pose (±10°), scale, shift, gain,
             / checker) and its frequency, aspect, part     background, texture phase; square body
             ("bag") offset
``vehicle``  **body hue** and value, aspect, body kind      left/right mirror, scale, shift, gain,
             (square / ell / bar), part ("window") offset   background
``product``  kind (any), texture kind and frequency, part    **random colours**, ±30° rotation,
             ("logo") offset                                scale, shift, background, texture phase
============ ============================================== ========================================

Colour is identity for ``vehicle`` (and ``person``, ``face``) but nuisance for ``product``: a
representation shared across tasks has to keep colour for one and discard it for another.
Textures are shared by ``person`` and ``product``, shapes by ``vehicle`` and ``product``.

Per task, three disjoint identity sets: ``train`` (``train_ids`` × ``per_id`` images),
``val`` (``val_ids`` × ``eval_per_id``; only the UFO search reads it) and ``test``
(``test_ids`` × ``eval_per_id``; scored all-vs-all). Files:
``<task>_<split>_images.npy`` (uint8 N, S, S, 3) and ``<task>_<split>_labels.npy`` (identity
index within the split), ``synthid.json`` (the counts and the factor table).

Determinism: per task and split, one generator seeded with ``(seed, crc32(task/split))``.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from paperzoo.engine.io import write_json

from .primitives import KINDS, TEXTURES, hsv_to_rgb, object_frame, shape_masks, texture_pattern
from .store import save_classification

TASKS = ("face", "person", "vehicle", "product")
SPLITS = ("train", "val", "test")
_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


def _identities(task: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The identity parameters of ``n`` identities of ``task`` (arrays of length n)."""
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    if task == "face":
        return {"kind": np.full(n, KINDS.index("disc")), "aspect": u(0.6, 1.0), "hue": u(0.0, 0.14),
                "sat": u(0.3, 0.7), "val": u(0.5, 0.95), "texture": np.zeros(n, int), "freq": np.ones(n),
                "phase": np.zeros(n), "hue2": u(0, 1), "part_u": u(-0.45, 0.45), "part_v": u(-0.5, 0.1),
                "part_r": u(0.18, 0.32), "part_hue": u(0, 1)}
    if task == "person":
        return {"kind": np.full(n, KINDS.index("square")), "aspect": u(0.45, 0.9), "hue": u(0, 1), "sat": u(0.5, 1.0),
                "val": u(0.5, 1.0), "texture": rng.integers(0, 3, n), "freq": rng.choice([1.2, 2.0], n), "phase": u(0, 1),
                "hue2": u(0, 1), "part_u": u(-0.6, 0.6), "part_v": u(-0.2, 0.5), "part_r": u(0.2, 0.3),
                "part_hue": u(0, 1)}
    if task == "vehicle":
        kinds = np.array([KINDS.index(k) for k in ("square", "ell", "bar")])
        return {"kind": kinds[rng.integers(0, 3, n)], "aspect": u(0.5, 0.9), "hue": u(0, 1), "sat": u(0.5, 1.0),
                "val": u(0.45, 1.0), "texture": np.zeros(n, int), "freq": np.ones(n), "phase": np.zeros(n),
                "hue2": u(0, 1), "part_u": u(-0.4, 0.4), "part_v": u(-0.4, 0.0), "part_r": u(0.15, 0.3),
                "part_hue": u(0.5, 0.7)}
    if task == "product":
        return {"kind": rng.integers(0, len(KINDS), n), "aspect": u(0.7, 1.0), "hue": np.zeros(n), "sat": np.zeros(n),
                "val": np.zeros(n), "texture": rng.integers(1, len(TEXTURES), n), "freq": rng.choice([1.0, 1.8], n),
                "phase": u(0, 1), "hue2": np.zeros(n), "part_u": u(-0.5, 0.5), "part_v": u(-0.5, 0.5),
                "part_r": u(0.22, 0.32), "part_hue": np.zeros(n)}
    raise ValueError(f"synthid: unknown task {task!r}; expected one of {TASKS}")


def _images_params(task: str, ident: dict[str, np.ndarray], labels: np.ndarray, size: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image parameters: the identity's, plus this task's nuisance."""
    n = labels.size
    p = {k: v[labels] for k, v in ident.items()}
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    base_r = 0.34 * size
    if task == "face":
        p["angle"], scale, shift = np.deg2rad(u(-15, 15)), u(0.9, 1.1), 2.0
    elif task == "person":
        p["angle"], scale, shift = np.pi / 2 + np.deg2rad(u(-10, 10)), u(0.85, 1.15), 3.0
    elif task == "vehicle":
        p["angle"], scale, shift = np.where(rng.random(n) < 0.5, 0.0, np.pi), u(0.85, 1.15), 3.0
    else:
        p["angle"], scale, shift = np.deg2rad(u(-30, 30)), u(0.85, 1.15), 3.0
        p["hue"], p["sat"], p["val"] = u(0, 1), u(0.4, 1.0), u(0.45, 1.0)      # colour: nuisance here
        p["hue2"], p["part_hue"] = p["hue"], u(0, 1)
        p["sat2"], p["val2"] = p["sat"], 0.35 * p["val"]     # the texture: a darker shade of the body colour
    p["radius"] = base_r * scale
    p["cx"], p["cy"] = size / 2 + u(-shift, shift), size / 2 + u(-shift, shift)
    p["phase"] = u(0, 1)                      # the texture's phase: nuisance (invisible as identity at 32 px)
    p["gain"] = u(0.8, 1.2)
    p["bg"] = hsv_to_rgb(u(0, 1), u(0.0, 0.3), u(0.1, 0.9))
    return p


def render(task: str, ident: dict[str, np.ndarray], labels: np.ndarray, *, size: int, noise_max: float,
           rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, S, S, 3) images of identities ``labels`` (indices into ``ident``)."""
    p = _images_params(task, ident, labels, size, rng)
    n = labels.size
    xs = np.arange(size, dtype=np.float32) + 0.5
    u, v = object_frame(xs, xs, p["cx"], p["cy"], p["radius"], p["angle"], p["aspect"])
    body = shape_masks(p["kind"].astype(int), u, v)[..., None]
    per_px = lambda a: np.broadcast_to(a[:, None, None], u.shape)  # noqa: E731
    t = texture_pattern(per_px(p["texture"].astype(int)), u, v, per_px(p["freq"]).astype(np.float32),
                        per_px(p["phase"]).astype(np.float32))[..., None]
    c1 = hsv_to_rgb(p["hue"], p["sat"], p["val"])
    c2 = hsv_to_rgb(p["hue2"], p.get("sat2", np.full(n, 0.8)), p.get("val2", 0.6 * p["val"] + 0.2))
    obj = c1[:, None, None, :] + (c2 - c1)[:, None, None, :] * t
    pu, pv = u - p["part_u"][:, None, None], v - p["part_v"][:, None, None]
    part = ((pu * pu + pv * pv) < (p["part_r"] ** 2)[:, None, None])[..., None] & (p["part_r"] > 0)[:, None, None, None]
    c3 = hsv_to_rgb(p["part_hue"], np.full(n, 0.9), np.full(n, 0.9))
    img = np.where(body, obj, p["bg"][:, None, None, :])
    img = np.where(part & body, c3[:, None, None, :], img) * p["gain"][:, None, None, None]
    img = img + rng.uniform(0, noise_max, n)[:, None, None, None] * rng.standard_normal(img.shape)
    return np.rint(np.clip(img, 0, 255)).astype(np.uint8)


def synthid_from_config(block: dict) -> dict:
    """``data.synthid`` config block → keyword arguments of :func:`write_synthid`."""
    tasks = block["tasks"]
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"data.synthid.tasks: unknown task(s) {sorted(unknown)}; expected some of {TASKS}")
    return {"seed": int(block["seed"]), "size": int(block["image_size"]), "noise_max": float(block["noise_max"]),
            "tasks": {t: {"train_ids": int(v["train_ids"]), "per_id": int(v["per_id"])} for t, v in tasks.items()},
            "val_ids": int(block["val_ids"]), "test_ids": int(block["test_ids"]),
            "eval_per_id": int(block["eval_per_id"])}


def write_synthid(root: str | os.PathLike, *, seed: int, size: int, noise_max: float, tasks: dict, val_ids: int,
                  test_ids: int, eval_per_id: int) -> dict:
    """Write every task's three splits and ``synthid.json``; returns the counts."""
    root = Path(root)
    counts: dict = {}
    for task, t in tasks.items():
        rng_id = np.random.default_rng([seed, zlib.crc32(task.encode())])
        n_ids = {"train": t["train_ids"], "val": val_ids, "test": test_ids}
        ident_all = _identities(task, sum(n_ids.values()), rng_id)    # one pool: the splits' identities are disjoint
        start = 0
        for split in SPLITS:
            k = n_ids[split]
            ident = {name: a[start:start + k] for name, a in ident_all.items()}
            start += k
            per = t["per_id"] if split == "train" else eval_per_id
            rng = np.random.default_rng([seed, zlib.crc32(f"{task}/{split}".encode())])
            labels = np.repeat(np.arange(k), per)
            rng.shuffle(labels)
            images = render(task, ident, labels, size=size, noise_max=noise_max, rng=rng)
            save_classification(root, f"{task}_{split}", images, labels)
            counts[f"{task}_{split}"] = {"identities": k, "images": int(labels.size)}
    write_json(root / "synthid.json", {"dataset": "synthid", "tasks": list(tasks), "counts": counts,
                                       "note": "shared and conflicting factors are built in (module doc)"})
    return counts


def load_synthid(root: str | os.PathLike, task: str, split: str):
    """(images uint8 (N, 3, S, S) tensor, labels int64 (N,) tensor) of one task's split, after
    checking its files against the manifest (:func:`.shapes.verify_against_manifest`)."""
    import torch

    from .shapes import verify_against_manifest

    root = Path(root)
    names = [f"{task}_{split}_images.npy", f"{task}_{split}_labels.npy"]
    if not (root / names[0]).exists():
        raise FileNotFoundError(f"{root / names[0]}: no {task!r} {split!r} split in this synthid dataset "
                                f"(tasks are set in config data.synthid.tasks; regenerate with "
                                f"`snakemake --cores 1 {root / 'manifest.json'}`)")
    verify_against_manifest(root, names)
    images = torch.from_numpy(np.load(root / names[0])).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(np.load(root / names[1]))
