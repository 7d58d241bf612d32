"""``shapes``: procedural COCO-format detection and instance-segmentation set.

Each image is a coloured background (random colour, linear gradient), a few pieces of
*unannotated clutter* (soft Gaussian blobs and one-pixel speckles, never crisp, so they
cannot be mistaken for a class), then 1..K objects painted in order, then per-image
Gaussian noise. Objects (see :mod:`.primitives`):

* class = shape kind only (``classes`` picks kinds from :data:`primitives.KINDS`); colour,
  texture, rotation and aspect are nuisances;
* size = diameter of the object's bounding circle, **log-uniform** in
  ``[min_size, max_size]`` px, so small objects are as common per octave as large ones;
  objects always lie fully inside the image (no truncation);
* colour: random HSV with at least ``min_contrast`` (RGB distance, 0–255) from the
  image's background colour; with probability ``texture_prob`` a stripes / checker / dots
  texture mixes in a darker second colour;
* overlaps: with probability ``p_overlap`` an object is placed next to an earlier one of
  the same image (centre distance 0.3–0.9 × the sum of radii), otherwise uniformly.

Occlusion: later objects occlude earlier ones. Visibility is resolved top-down before
painting: an object whose visible part is below ``min_visible`` of its full mask (or
below ``min_area`` px) is *not painted at all*, so every painted object is annotated and
every annotation is visible. ``segmentation`` (RLE), ``area`` and ``bbox`` describe the
visible part only (as in COCO, where masks cover visible pixels).

Determinism: one ``numpy.random.Generator`` seeded with ``(seed, crc32(split))`` draws all
per-image and per-object parameters; pixel noise comes from one generator per block of
:data:`BLOCK` images seeded with ``(seed, crc32(split), block)``. Same seed, parameters and
package versions → identical bytes (PNG, JSON, npy).

On disk, in COCO's own layout (``coco.py`` reads both)::

    <root>/annotations/instances_<split>.json     COCO JSON (images, annotations, categories)
    <root>/<split>/<image_id:012d>.png           one PNG per image (humans, COCO tools)
    <root>/<split>_images.npy                    uint8 (N, H, W, 3), row i = image id i + 1
"""
from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from paperzoo.engine.io import atomic_path

from .primitives import KINDS, TEXTURES, hsv_to_rgb, object_frame, shape_masks, texture_pattern
from .store import save_npy

if TYPE_CHECKING:
    from .sets import DetectionSet

BLOCK = 64  # images rendered together; bounds memory to ~100 MB at 128 px


@dataclass(frozen=True)
class ShapesSpec:
    """What one ``shapes`` image looks like (all sizes in px)."""

    image_size: int = 64
    classes: tuple[str, ...] = KINDS[:8]
    min_objects: int = 1
    max_objects: int = 3
    min_size: float = 5.0
    max_size: float = 32.0
    aspect_min: float = 0.6
    p_overlap: float = 0.3
    min_visible: float = 0.4
    min_area: int = 4
    texture_prob: float = 0.5
    min_contrast: float = 80.0
    noise_max: float = 10.0
    clutter_max: int = 3

    def __post_init__(self):
        s = self.image_size
        bad = [k for k in self.classes if k not in KINDS]
        if bad:
            raise ValueError(f"shapes: unknown classes {bad}; expected names from {KINDS}")
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 1:
            raise ValueError(f"shapes: classes must be distinct and non-empty, got {self.classes}")
        if not 8 <= s <= 4096:
            raise ValueError(f"shapes: image_size = {s}, expected 8..4096 px")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"shapes: need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if not 2 <= self.min_size <= self.max_size <= s:
            raise ValueError(f"shapes: need 2 <= min_size <= max_size <= image_size, got "
                             f"{self.min_size}, {self.max_size}, {s}")
        if not 0 < self.aspect_min <= 1 or not 0 <= self.p_overlap <= 1 or not 0 <= self.min_visible <= 1:
            raise ValueError("shapes: aspect_min in (0, 1], p_overlap and min_visible in [0, 1]")


@dataclass
class Rendered:
    """In-memory result of :func:`render`: images and the visible instances."""

    images: np.ndarray        # (N, H, W, 3) uint8
    image_index: np.ndarray   # (M,) int64, row of ``images`` of each instance
    labels: np.ndarray        # (M,) int64, index into ``spec.classes``
    rles: list                # M COCO RLE dicts (``counts`` as str) of the visible masks
    areas: np.ndarray         # (M,) visible area, px
    boxes: np.ndarray         # (M, 4) float64 [x, y, w, h] of the visible mask, px
    n_dropped: int            # objects not painted because (almost) fully occluded


def _split_code(split: str) -> int:
    return zlib.crc32(split.encode())


def _draw_objects(rng: np.random.Generator, spec: ShapesSpec, n: int) -> dict[str, np.ndarray]:
    """Per-image and per-object parameters for ``n`` images (objects sorted by image, slot)."""
    s = float(spec.image_size)
    n_obj = rng.integers(spec.min_objects, spec.max_objects + 1, n)
    img = np.repeat(np.arange(n), n_obj)
    m = img.size
    slot = np.arange(m) - np.repeat(np.cumsum(n_obj) - n_obj, n_obj)
    label = rng.integers(0, len(spec.classes), m)
    radius = 0.5 * np.exp(rng.uniform(np.log(spec.min_size), np.log(spec.max_size), m))
    aspect = rng.uniform(spec.aspect_min, 1.0, m)
    angle = rng.uniform(0.0, 2 * np.pi, m)
    cx, cy = rng.uniform(radius, s - radius), rng.uniform(radius, s - radius)
    # overlaps: move some objects next to a random earlier object of the same image
    u_ov, pick, direction = rng.random(m), rng.random(m), rng.uniform(0, 2 * np.pi, m)
    dist = rng.uniform(0.3, 0.9, m)
    for k in range(1, int(slot.max(initial=0)) + 1):
        sel = np.flatnonzero((slot == k) & (u_ov < spec.p_overlap))
        j = sel - k + np.floor(pick[sel] * k).astype(int)
        d = dist[sel] * (radius[j] + radius[sel])
        cx[sel] = np.clip(cx[j] + d * np.cos(direction[sel]), radius[sel], s - radius[sel])
        cy[sel] = np.clip(cy[j] + d * np.sin(direction[sel]), radius[sel], s - radius[sel])
    # background: colour, gradient partner and direction, noise level
    bg = hsv_to_rgb(rng.random(n), rng.uniform(0.0, 0.5, n), rng.uniform(0.1, 0.95, n))      # (n, 3)
    bg2 = np.clip(bg + rng.normal(0.0, 30.0, (n, 3)), 0, 255)
    grad_angle = rng.uniform(0, 2 * np.pi, n)
    noise_std = rng.uniform(0.0, spec.noise_max, n)
    # object colours, resampled until they stand out from the background
    colour = hsv_to_rgb(rng.random(m), rng.uniform(0.35, 1.0, m), rng.uniform(0.35, 1.0, m))
    for _ in range(8):
        low = np.linalg.norm(colour - bg[img], axis=1) < spec.min_contrast
        if not low.any():
            break
        k = int(low.sum())
        colour[low] = hsv_to_rgb(rng.random(k), rng.uniform(0.35, 1.0, k), rng.uniform(0.35, 1.0, k))
    low = np.linalg.norm(colour - bg[img], axis=1) < spec.min_contrast
    colour[low] = 255.0 - bg[img][low]   # last resort: the complement
    textured = rng.random(m) < spec.texture_prob
    texture = np.where(textured, rng.integers(1, len(TEXTURES), m), 0)
    colour2 = colour * rng.uniform(0.35, 0.7, m)[:, None]
    freq, phase = rng.uniform(1.5, 3.0, m), rng.random(m)
    # clutter: soft blobs (one per clutter slot) and speckles
    n_clutter = rng.integers(0, spec.clutter_max + 1, n)
    c_img = np.repeat(np.arange(n), n_clutter)
    c_m = c_img.size
    c_slot = np.arange(c_m) - np.repeat(np.cumsum(n_clutter) - n_clutter, n_clutter)
    return dict(n_obj=n_obj, img=img, slot=slot, label=label, radius=radius, aspect=aspect, angle=angle,
                cx=cx, cy=cy, bg=bg, bg2=bg2, grad_angle=grad_angle, noise_std=noise_std, colour=colour,
                colour2=colour2, texture=texture, freq=freq, phase=phase, c_img=c_img, c_slot=c_slot,
                c_x=rng.uniform(0, s, c_m), c_y=rng.uniform(0, s, c_m),
                c_sigma=rng.uniform(1.0, max(1.5, 0.08 * s), c_m),
                c_colour=rng.uniform(0, 255, (c_m, 3)), c_alpha=rng.uniform(0.3, 0.8, c_m),
                c_speckles=rng.integers(0, 2 * spec.clutter_max + 1, n))


def _render_block(p: dict, spec: ShapesSpec, i0: int, i1: int, rng: np.random.Generator):
    """Render images ``i0:i1``; returns canvas (B, S, S, 3) uint8, object ids, keep, visible masks."""
    s = spec.image_size
    b = i1 - i0
    xs = ys = np.arange(s, dtype=np.float32) + 0.5                             # pixel centres
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731  (float32 throughout: half the memory traffic)
    # background gradient
    ga = p["grad_angle"][i0:i1, None, None]
    t = f32(np.cos(ga)) * xs[None, None, :] + f32(np.sin(ga)) * ys[None, :, None]   # (B, S, S)
    t = (t - t.min((1, 2), keepdims=True)) / np.ptp(t, (1, 2), keepdims=True).clip(1e-6)
    bg, bg2 = f32(p["bg"][i0:i1, None, None, :]), f32(p["bg2"][i0:i1, None, None, :])
    canvas = bg + (bg2 - bg) * t[..., None]                                    # (B, S, S, 3)
    # clutter blobs, one clutter slot at a time (at most one blob per image per slot)
    c_sel = np.flatnonzero((p["c_img"] >= i0) & (p["c_img"] < i1))
    for k in np.unique(p["c_slot"][c_sel]):
        c = c_sel[p["c_slot"][c_sel] == k]
        li = p["c_img"][c] - i0
        d2 = (xs[None, None, :] - f32(p["c_x"][c, None, None])) ** 2 + (ys[None, :, None] - f32(p["c_y"][c, None, None])) ** 2
        g = (f32(p["c_alpha"][c, None, None]) * np.exp(d2 * f32(-0.5 / p["c_sigma"][c, None, None] ** 2)))[..., None]
        canvas[li] += (f32(p["c_colour"][c, None, None, :]) - canvas[li]) * g
    # speckles: single pixels of random colour
    n_sp = p["c_speckles"][i0:i1]
    sp_img = np.repeat(np.arange(b), n_sp)
    canvas[sp_img, rng.integers(0, s, sp_img.size), rng.integers(0, s, sp_img.size)] = \
        rng.uniform(0, 255, (sp_img.size, 3))
    # objects: full masks, then top-down visibility
    o0, o1 = np.searchsorted(p["img"], [i0, i1])
    obj = np.arange(o0, o1)
    kind_ids = np.array([KINDS.index(c) for c in spec.classes])[p["label"][obj]]
    u, v = object_frame(xs, ys, p["cx"][obj], p["cy"][obj], p["radius"][obj], p["angle"][obj], p["aspect"][obj])
    full = shape_masks(kind_ids, u, v)                                         # (m, S, S)
    full_area = full.sum((1, 2))
    slot, li_all = p["slot"][obj], p["img"][obj] - i0
    occluder = np.zeros((b, s, s), bool)
    visible = np.zeros_like(full)
    keep = np.zeros(obj.size, bool)
    for k in range(int(slot.max(initial=-1)), -1, -1):
        j = np.flatnonzero(slot == k)
        vis = full[j] & ~occluder[li_all[j]]
        area = vis.sum((1, 2))
        ok = (area >= spec.min_area) & (area >= spec.min_visible * full_area[j])
        visible[j], keep[j] = vis, ok
        occluder[li_all[j[ok]]] |= full[j[ok]]
    # paint kept objects in slot order, touching only their own pixels
    for k in range(int(slot.max(initial=-1)) + 1):
        j = np.flatnonzero((slot == k) & keep)
        o, py, px = np.nonzero(full[j])                                        # one entry per object pixel
        g = obj[j][o]
        t = texture_pattern(p["texture"][g], u[j][o, py, px], v[j][o, py, px], p["freq"][g], p["phase"][g])
        c1, c2 = p["colour"][g], p["colour2"][g]
        canvas[li_all[j][o], py, px] = c1 + (c2 - c1) * t[:, None]
    noise = rng.standard_normal((b, s, s, 3), dtype=np.float32)
    canvas += p["noise_std"][i0:i1, None, None, None].astype(np.float32) * noise
    return np.rint(np.clip(canvas, 0, 255)).astype(np.uint8), obj, keep, visible


def render(spec: ShapesSpec, n_images: int, *, seed: int, split: str) -> Rendered:
    """Render ``n_images`` images of ``split`` in memory (deterministic in ``seed, split``)."""
    code = _split_code(split)
    p = _draw_objects(np.random.default_rng([seed, code]), spec, n_images)
    images = np.empty((n_images, spec.image_size, spec.image_size, 3), np.uint8)
    empty = np.zeros(0, np.int64)
    image_index, labels, rles, areas, n_dropped = [empty], [empty], [], [empty], 0
    for blk, i0 in enumerate(range(0, n_images, BLOCK)):
        i1 = min(i0 + BLOCK, n_images)
        images[i0:i1], obj, keep, visible = _render_block(p, spec, i0, i1, np.random.default_rng([seed, code, blk]))
        kept = obj[keep]
        n_dropped += int((~keep).sum())
        if kept.size:
            rles += mask_utils.encode(np.asfortranarray(visible[keep].transpose(1, 2, 0).astype(np.uint8)))
        # counted here: pycocotools 2.0.11 ``mask.area`` overflows for lists of > 255 RLEs
        areas.append(visible[keep].sum((1, 2)))
        image_index.append(p["img"][kept])
        labels.append(p["label"][kept])
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    boxes = mask_utils.toBbox(rles) if rles else np.zeros((0, 4))
    return Rendered(images=images, image_index=np.concatenate(image_index).astype(np.int64),
                    labels=np.concatenate(labels).astype(np.int64), rles=rles,
                    areas=np.concatenate(areas).astype(np.int64),
                    boxes=np.asarray(boxes, np.float64).reshape(-1, 4), n_dropped=n_dropped)


def coco_json(r: Rendered, spec: ShapesSpec, *, split: str, seed: int) -> dict:
    """COCO dict of a rendered split: image ids 1..N (file ``<id:012d>.png``), category ids 1..K."""
    h = w = spec.image_size
    images = [{"id": i + 1, "file_name": f"{i + 1:012d}.png", "width": w, "height": h}
              for i in range(len(r.images))]
    anns = [{"id": k + 1, "image_id": int(r.image_index[k]) + 1, "category_id": int(r.labels[k]) + 1,
             "bbox": [float(x) for x in r.boxes[k]], "area": float(r.areas[k]), "iscrowd": 0,
             "segmentation": {"size": [h, w], "counts": r.rles[k]["counts"]}}
            for k in range(len(r.rles))]
    cats = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(spec.classes)]
    info = {"description": f"paperzoo shapes ({split})", "seed": seed, "spec": asdict(spec)}
    return {"info": info, "licenses": [], "images": images, "annotations": anns, "categories": cats}


def write_split(root: str | os.PathLike, spec: ShapesSpec, *, split: str, n_images: int, seed: int,
                png_compress_level: int = 1) -> dict:
    """Render ``split`` and write its PNGs, npy and COCO JSON under ``root`` (see module doc).

    The PNG folder is written next to its final place and renamed into it, so a killed
    run leaves either the old folder or the new one. Returns counts for the manifest.
    """
    root = Path(root)
    r = render(spec, n_images, seed=seed, split=split)
    tmp_dir = root / f".{split}.tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    for i, im in enumerate(r.images):
        Image.fromarray(im).save(tmp_dir / f"{i + 1:012d}.png", format="PNG", compress_level=png_compress_level)
    final = root / split
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp_dir, final)
    save_npy(root / f"{split}_images.npy", r.images)
    coco = coco_json(r, spec, split=split, seed=seed)
    with atomic_path(root / "annotations" / f"instances_{split}.json") as tmp:
        tmp.write_text(json.dumps(coco, separators=(",", ":")))
    per_class = np.bincount(r.labels, minlength=len(spec.classes))
    return {"images": n_images, "instances": len(r.rles), "dropped_occluded": r.n_dropped,
            "instances_per_class": dict(zip(spec.classes, per_class.tolist()))}


def shapes_spec_from_config(block: dict) -> ShapesSpec:
    """``data.shapes`` config block → :class:`ShapesSpec` (the only reader of the block's look keys)."""
    return ShapesSpec(image_size=int(block["image_size"]), classes=tuple(block["classes"]),
                      min_objects=int(block["min_objects"]), max_objects=int(block["max_objects"]),
                      min_size=float(block["min_size"]), max_size=float(block["max_size"]),
                      aspect_min=float(block["aspect_min"]), p_overlap=float(block["p_overlap"]),
                      min_visible=float(block["min_visible"]), min_area=int(block["min_area"]),
                      texture_prob=float(block["texture_prob"]), min_contrast=float(block["min_contrast"]),
                      noise_max=float(block["noise_max"]), clutter_max=int(block["clutter_max"]))


def write_shapes(root: str | os.PathLike, spec: ShapesSpec, *, splits: dict[str, int], seed: int) -> dict:
    """Write every split; returns ``{split: counts}``."""
    return {split: write_split(root, spec, split=split, n_images=n, seed=seed) for split, n in splits.items()}


class DamagedDataError(RuntimeError):
    """A dataset file no longer matches the SHA-256 its manifest recorded."""


def verify_against_manifest(root: str | os.PathLike, names: list[str]) -> None:
    """Check ``names`` (paths relative to ``root``) against ``root/manifest.json``'s SHA-256s.
    A mismatch or a missing file raises :class:`DamagedDataError` naming the file and the way
    out; without a manifest (a hand-made fixture) nothing is checked."""
    from .store import sha256_file

    root = Path(root)
    manifest = root / "manifest.json"
    if not manifest.exists():
        return
    files = json.loads(manifest.read_text()).get("files", {})
    for name in names:
        want = files.get(name)
        path = root / name
        if want is None:
            continue
        got = sha256_file(path) if path.exists() else None
        if got != want:
            raise DamagedDataError(
                f"{path}: {'missing' if got is None else 'SHA-256 ' + got[:12] + '… differs from'} the manifest's "
                f"{want[:12]}… ({manifest}): the dataset is damaged or was changed by hand. Delete {root} and "
                f"rerun (`snakemake --cores 1 {manifest}`) to regenerate it.")


def load_shapes(root: str | os.PathLike, split: str, *, masks: bool = False) -> DetectionSet:
    """A written split as an in-memory :class:`~.sets.DetectionSet` (images from the npy file),
    after checking the split's files against the manifest (:func:`verify_against_manifest`)."""
    from .sets import DetectionSet  # torch is imported only where tensors are wanted

    root = Path(root)
    ann, images = f"annotations/instances_{split}.json", f"{split}_images.npy"
    verify_against_manifest(root, [ann, images])
    return DetectionSet.from_coco(root / ann, np.load(root / images), masks=masks)
