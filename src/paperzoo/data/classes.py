"""``classes``: a many-class procedural classification set (backbone pretraining, CIL).

A class is one combination of shape kind × texture × colour layout (9 × 4 × 4 = 144 with
the defaults, see :mod:`.primitives`); a colour layout is an object hue on a dark or a
light background. Per image, everything else is nuisance: position, scale, rotation,
aspect, hue/saturation/value jitter, background tint and Gaussian noise. One object per
image, fully inside it.

Two **disjoint** class subsets are drawn once from a permutation seeded by ``class_seed``:
``upstream`` (pretraining) and ``downstream`` (the class-incremental tasks, in the
permutation's order: task t holds downstream labels ``t*c .. (t+1)*c-1``, see
:func:`.sets.class_incremental_tasks`). Each subset has a train and a test split; labels
are local to the subset (0..K-1) and ``classes.json`` maps them back to global classes.

Determinism: per split, one generator seeded with ``(seed, crc32(split))`` draws all
per-image parameters; noise uses one generator per block of :data:`BLOCK` images.
"""
from __future__ import annotations

import itertools
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperzoo.engine.io import write_json

from .primitives import KINDS, TEXTURES, hsv_to_rgb, object_frame, shape_masks, texture_pattern
from .store import save_classification

BLOCK = 512
# colour layout → (object hue in turns, background value); hues 0.25 turn apart survive
# the ±hue_jitter nuisance, and dark/light backgrounds double the layouts
LAYOUTS = {"red_on_dark": (0.0, 0.18), "green_on_light": (0.33, 0.85), "blue_on_light": (0.62, 0.85),
           "yellow_on_dark": (0.15, 0.18), "red_on_light": (0.0, 0.85), "green_on_dark": (0.33, 0.18),
           "blue_on_dark": (0.62, 0.18), "yellow_on_light": (0.15, 0.85)}
DEFAULT_LAYOUTS = ("red_on_dark", "green_on_light", "blue_on_light", "yellow_on_dark")
TEXTURE_FREQ = 1.6  # pattern cycles per object radius: ≥ 3 px period at the smallest scale of 32-px images


@dataclass(frozen=True)
class ClassesSpec:
    """Class vocabulary and per-image nuisances (sizes in px, angles in rad, hues in turns)."""

    image_size: int = 32
    kinds: tuple[str, ...] = KINDS
    textures: tuple[str, ...] = TEXTURES
    layouts: tuple[str, ...] = DEFAULT_LAYOUTS
    scale_min: float = 0.5      # object diameter / image size
    scale_max: float = 0.95
    aspect_min: float = 0.8
    hue_jitter: float = 0.04
    noise_max: float = 12.0

    def __post_init__(self):
        for name, have, allowed in (("kinds", self.kinds, KINDS), ("textures", self.textures, TEXTURES),
                                    ("layouts", self.layouts, tuple(LAYOUTS))):
            bad = [x for x in have if x not in allowed]
            if bad or len(set(have)) != len(have) or not have:
                raise ValueError(f"classes: {name} must be distinct names from {allowed}, got {have}")
        if not 8 <= self.image_size <= 4096:
            raise ValueError(f"classes: image_size = {self.image_size}, expected 8..4096 px")
        if not 0 < self.scale_min <= self.scale_max <= 1:
            raise ValueError(f"classes: need 0 < scale_min <= scale_max <= 1, got {self.scale_min}, {self.scale_max}")

    def vocabulary(self) -> list[tuple[str, str, str]]:
        """All classes as (kind, texture, layout), in a fixed order (index = global class id)."""
        return list(itertools.product(self.kinds, self.textures, self.layouts))


def class_name(kind: str, texture: str, layout: str) -> str:
    return f"{kind}-{texture}-{layout}"


def split_classes(n_total: int, n_upstream: int, n_downstream: int, *, class_seed: int) -> tuple[list[int], list[int]]:
    """Disjoint global class ids for upstream and downstream (a seeded permutation, cut in two)."""
    if n_upstream + n_downstream > n_total:
        raise ValueError(f"classes: {n_upstream} upstream + {n_downstream} downstream > {n_total} classes")
    perm = np.random.default_rng(class_seed).permutation(n_total)
    return perm[:n_upstream].tolist(), perm[n_upstream:n_upstream + n_downstream].tolist()


def render(spec: ClassesSpec, class_ids: list[int], n_per_class: int, *, seed: int, split: str
           ) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, S, S, 3) and local labels int64 (N,) (label i = ``class_ids[i]``), N = K·n."""
    vocab = spec.vocabulary()
    s = spec.image_size
    code = zlib.crc32(split.encode())
    rng = np.random.default_rng([seed, code])
    labels = np.repeat(np.arange(len(class_ids)), n_per_class)
    rng.shuffle(labels)
    n = labels.size
    gid = np.asarray(class_ids)[labels]
    kind = np.array([KINDS.index(vocab[g][0]) for g in gid], dtype=int)
    texture = np.array([TEXTURES.index(vocab[g][1]) for g in gid], dtype=int)
    hue, bg_v = np.array([LAYOUTS[vocab[g][2]] for g in gid]).T
    radius = 0.5 * s * rng.uniform(spec.scale_min, spec.scale_max, n)
    cx, cy = rng.uniform(radius, s - radius), rng.uniform(radius, s - radius)
    angle, aspect = rng.uniform(0, 2 * np.pi, n), rng.uniform(spec.aspect_min, 1.0, n)
    fg = hsv_to_rgb(hue + rng.uniform(-spec.hue_jitter, spec.hue_jitter, n), rng.uniform(0.6, 1.0, n),
                    rng.uniform(0.65, 1.0, n))                                  # (N, 3)
    fg2 = fg * rng.uniform(0.3, 0.55, n)[:, None]
    bg = hsv_to_rgb(rng.random(n), rng.uniform(0.0, 0.25, n), np.clip(bg_v + rng.uniform(-0.1, 0.1, n), 0, 1))
    phase, noise_std = rng.random(n), rng.uniform(0, spec.noise_max, n)
    xs = np.arange(s, dtype=np.float32) + 0.5
    images = np.empty((n, s, s, 3), np.uint8)
    for blk, i0 in enumerate(range(0, n, BLOCK)):
        sl = slice(i0, min(i0 + BLOCK, n))
        u, v = object_frame(xs, xs, cx[sl], cy[sl], radius[sl], angle[sl], aspect[sl])
        mask = shape_masks(kind[sl], u, v)[..., None]                               # (B, S, S, 1)
        per_pixel = lambda a: np.broadcast_to(a[sl, None, None], u.shape)  # noqa: E731
        t = texture_pattern(per_pixel(texture), u, v, np.full(u.shape, TEXTURE_FREQ, np.float32),
                            per_pixel(phase))[..., None]
        obj = fg[sl, None, None, :] + (fg2 - fg)[sl, None, None, :] * t             # (B, S, S, 3)
        img = np.where(mask, obj, bg[sl, None, None, :]).astype(np.float32)
        noise = np.random.default_rng([seed, code, blk]).standard_normal(img.shape, dtype=np.float32)
        img += noise_std[sl, None, None, None].astype(np.float32) * noise
        images[sl] = np.rint(np.clip(img, 0, 255)).astype(np.uint8)
    return images, labels.astype(np.int64)


def classes_spec_from_config(block: dict) -> ClassesSpec:
    """``data.classes`` config block → :class:`ClassesSpec`."""
    return ClassesSpec(image_size=int(block["image_size"]), kinds=tuple(block["kinds"]),
                       textures=tuple(block["textures"]), layouts=tuple(block["layouts"]),
                       scale_min=float(block["scale_min"]), scale_max=float(block["scale_max"]),
                       aspect_min=float(block["aspect_min"]), hue_jitter=float(block["hue_jitter"]),
                       noise_max=float(block["noise_max"]))


def write_classes(root: str | os.PathLike, spec: ClassesSpec, *, n_upstream: int, n_downstream: int,
                  n_train_per_class: int, n_test_per_class: int, seed: int, class_seed: int,
                  n_upstream_train_per_class: int | None = None) -> dict:
    """Write the four splits and ``classes.json``; returns counts for the manifest.

    ``n_upstream_train_per_class`` (default ``n_train_per_class``) sizes the pretraining split
    alone; every split is seeded by its own name, so it leaves the downstream splits unchanged.
    """
    root = Path(root)
    vocab = spec.vocabulary()
    up, down = split_classes(len(vocab), n_upstream, n_downstream, class_seed=class_seed)
    subsets = {"upstream": up, "downstream": down}
    splits, counts = {}, {}
    for subset, ids in subsets.items():
        names = [class_name(*vocab[g]) for g in ids]
        n_train = n_upstream_train_per_class if subset == "upstream" and n_upstream_train_per_class else n_train_per_class
        for part, n_per in (("train", n_train), ("test", n_test_per_class)):
            split = f"{subset}_{part}"
            images, labels = render(spec, ids, n_per, seed=seed, split=split)
            save_classification(root, split, images, labels)
            splits[split] = {"class_names": names, "global_ids": ids, "n": int(labels.size)}
            counts[split] = int(labels.size)
    write_json(root / "classes.json", {
        "dataset": "classes", "splits": splits,
        "classes": [{"id": g, "name": class_name(*c), "kind": c[0], "texture": c[1], "layout": c[2]}
                    for g, c in enumerate(vocab)],
        "upstream": up, "downstream": down})
    counts["classes_total"], counts["upstream_classes"], counts["downstream_classes"] = len(vocab), len(up), len(down)
    return counts
