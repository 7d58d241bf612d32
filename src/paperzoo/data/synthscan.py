"""``synthscan``: procedural street scenes ray-cast from a spinning LiDAR (CPGNet miniature).

A scene is a straight street along the scene x axis: a road (``|y| < road_half``, z = 0),
raised sidewalks (``sidewalk_height`` above the road, ``sidewalk_width`` wide) and terrain
beyond them (same height, labelled *ignore*); building boxes in rows behind the sidewalks;
cars as yawed boxes on the road; pedestrians as thin cylinders; poles as thinner, taller
cylinders on the sidewalk edges; trees as a trunk cylinder + sphere crown (both
*vegetation*, as the issue asks); small clutter boxes labelled *ignore*.

Sensor: ``beams`` elevations at the row centres of a ``beams``-row image over ``fov_deg``
(so the range view of the same shape has one ray per pixel) × ``azimuths`` columns, mounted
``sensor_height`` m above the road at a random lateral offset and scene yaw. Every ray is
intersected with every primitive at once (numpy, (primitives, rays) arrays); the nearest
hit within ``max_range`` wins. Range noise N(0, ``range_noise``) along the ray, a random
``dropout`` share of returns is removed, intensity = per-class mean + N(0, ``intensity_noise``)
clipped to [0, 1]. Points are in the **sensor frame** (as KITTI: z = −sensor_height on the road).

Labels: 0 = ignore, 1..7 = :data:`CLASSES` (class 0 is ignored by loss and metrics, as in
SemanticKITTI's learning map).

Determinism: scan ``i`` of ``split`` uses ``numpy.random.default_rng([seed, crc32(split), i])``
only, so a scan does not depend on how many were generated before it.

On disk (``write_synthscan``)::

    <root>/classes.json               ["ignore", "road", ...]
    <root>/<split>_points.npy         float32 (P, 4): x, y, z [m], intensity [0, 1]
    <root>/<split>_labels.npy         uint8 (P,)
    <root>/<split>_offsets.npy        int64 (S + 1,): scan s = rows offsets[s]:offsets[s+1]
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperzoo.engine.io import write_json

from .store import save_npy

CLASSES = ("road", "sidewalk", "building", "car", "person", "pole", "vegetation")
IGNORE, ROAD, SIDEWALK, BUILDING, CAR, PERSON, POLE, VEGETATION = range(8)
INTENSITY_MEAN = np.array([0.3, 0.15, 0.25, 0.45, 0.7, 0.35, 0.6, 0.5])  # per label id (0 = ignore)


@dataclass(frozen=True)
class SynthScanSpec:
    """Sensor and scene parameters (metres, degrees)."""

    beams: int = 16                     # our choice: 16 beams × 512 ≈ 8k rays
    azimuths: int = 512
    fov_deg: tuple[float, float] = (-15.0, 5.0)
    sensor_height: float = 1.73         # KITTI's HDL-64 mount height
    max_range: float = 40.0
    range_noise: float = 0.02           # σ along the ray
    dropout: float = 0.1                # share of returns removed
    intensity_noise: float = 0.12
    road_half: float = 5.0              # ± half road width (random 0.8–1.2×)
    sidewalk_width: float = 3.0
    sidewalk_height: float = 0.15
    n_cars: tuple[int, int] = (4, 10)   # inclusive ranges of object counts per scene
    n_persons: tuple[int, int] = (2, 8)
    n_poles: tuple[int, int] = (3, 8)
    n_trees: tuple[int, int] = (2, 7)
    n_clutter: tuple[int, int] = (1, 5)

    def __post_init__(self):
        if self.beams < 1 or self.azimuths < 8:
            raise ValueError(f"synthscan: beams >= 1 and azimuths >= 8, got {self.beams}, {self.azimuths}")
        if not self.fov_deg[0] < self.fov_deg[1] <= 90:
            raise ValueError(f"synthscan: fov_deg must be (down, up) with down < up, got {self.fov_deg}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"synthscan: dropout in [0, 1), got {self.dropout}")


def _split_code(split: str) -> int:
    return zlib.crc32(split.encode())


# --- ray / primitive intersections: o (3,), d (R, 3) → t (M, R), inf on a miss ---------------------

def _hit_boxes(o, d, centre, half, yaw):
    """Yawed boxes (slab method in each box frame); centre/half (M, 3), yaw (M,)."""
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    ox, oy = o[0] - centre[:, 0:1], o[1] - centre[:, 1:2]                         # (M, 1)
    lo = np.stack((c * ox + s * oy, -s * ox + c * oy, (o[2] - centre[:, 2:3]) + 0 * ox), -1)   # (M, 1, 3)
    ld = np.stack((c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], np.broadcast_to(d[:, 2], c.shape[:1] + d[:, 2].shape)), -1)  # (M, R, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / ld
        t1 = (-half[:, None, :] - lo) * inv
        t2 = (half[:, None, :] - lo) * inv
    tn = np.nanmax(np.minimum(t1, t2), -1)
    tf = np.nanmin(np.maximum(t1, t2), -1)
    return np.where((tf >= tn) & (tn > 0), tn, np.inf)


def _hit_cylinders(o, d, xy, radius, z0, z1):
    """Vertical cylinders (side surface only); xy (M, 2), radius/z0/z1 (M,)."""
    px, py = o[0] - xy[:, 0:1], o[1] - xy[:, 1:2]                                 # (M, 1)
    a = d[:, 0] ** 2 + d[:, 1] ** 2                                              # (R,)
    b = 2 * (px * d[:, 0] + py * d[:, 1])                                        # (M, R)
    cc = px ** 2 + py ** 2 - radius[:, None] ** 2
    disc = b ** 2 - 4 * a * cc
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    z = o[2] + t * d[:, 2]
    ok = (disc >= 0) & (t > 0) & (z >= z0[:, None]) & (z <= z1[:, None])
    return np.where(ok, t, np.inf)


def _hit_spheres(o, d, centre, radius):
    p = o - centre                                                               # (M, 3)
    b = 2 * p @ d.T                                                              # (M, R)
    cc = (p ** 2).sum(1) - radius ** 2
    disc = b ** 2 - 4 * cc[:, None]
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / 2
    return np.where((disc >= 0) & (t > 0), t, np.inf)


# --- one scene --------------------------------------------------------------------------------------

def _objects(rng: np.random.Generator, spec: SynthScanSpec, road_half: float, y0: float):
    """Draw the scene's primitives: a list of (kind, label, params, t-function)."""
    R = spec.max_range
    side = road_half + spec.sidewalk_width
    hs = spec.sidewalk_height
    n = lambda rng_, lo_hi: int(rng_.integers(lo_hi[0], lo_hi[1] + 1))  # noqa: E731
    boxes, cyls, sph = [], [], []   # (centre, half, yaw, label) / (xy, r, z0, z1, label) / (centre, r, label)
    # buildings: rows of boxes behind each sidewalk, with gaps
    for sign in (-1.0, 1.0):
        x = -R - rng.uniform(0, 8)
        while x < R:
            w = rng.uniform(6, 20)
            if rng.random() < 0.8:
                setback = rng.uniform(0.5, 4.0)
                depth = rng.uniform(6, 12)
                hgt = rng.uniform(4, 16)
                yc = sign * (side + setback + depth / 2)
                boxes.append(((x + w / 2, yc, hgt / 2), (w / 2, depth / 2, hgt / 2), 0.0, BUILDING))
            x += w + rng.uniform(0, 4)
    # cars: yawed boxes on the road, roughly along the lanes
    for _ in range(n(rng, spec.n_cars)):
        L, W, Hh = rng.uniform(3.8, 4.8), rng.uniform(1.6, 2.0), rng.uniform(1.3, 1.7)
        x = rng.uniform(-R, R)
        y = rng.choice((-1, 1)) * rng.uniform(1.2, max(1.3, road_half - W / 2))
        if abs(x) < 3.5 and abs(y - y0) < 2.0:
            x += 6.0 * np.sign(x if x != 0 else 1.0)
        yaw = rng.normal(0, 0.15) + (np.pi if rng.random() < 0.5 else 0.0)
        boxes.append(((x, y, 0.2 + Hh / 2), (L / 2, W / 2, Hh / 2), yaw, CAR))
    # clutter: small ignore boxes on sidewalks / terrain
    for _ in range(n(rng, spec.n_clutter)):
        s = rng.uniform(0.3, 1.2, 3)
        x, y = rng.uniform(-R, R), rng.choice((-1, 1)) * rng.uniform(road_half + 0.5, side + 1.0)
        boxes.append(((x, y, hs + s[2] / 2), s / 2, rng.uniform(0, np.pi), IGNORE))
    # pedestrians on the sidewalks (and a few on the road)
    for _ in range(n(rng, spec.n_persons)):
        x = rng.uniform(-R * 0.8, R * 0.8)
        on_road = rng.random() < 0.2
        y = rng.choice((-1, 1)) * (rng.uniform(1.0, road_half - 0.5) if on_road else rng.uniform(road_half + 0.4, side - 0.3))
        if abs(x) < 1.5 and abs(y - y0) < 1.5:
            x += 3.0
        z0 = 0.0 if on_road else hs
        cyls.append(((x, y), rng.uniform(0.22, 0.32), z0, z0 + rng.uniform(1.5, 1.9), PERSON))
    # poles on the sidewalk edges
    for _ in range(n(rng, spec.n_poles)):
        x, y = rng.uniform(-R, R), rng.choice((-1, 1)) * (road_half + rng.uniform(0.3, 0.7))
        cyls.append(((x, y), rng.uniform(0.08, 0.14), hs, hs + rng.uniform(4, 7), POLE))
    # trees: trunk + crown, both vegetation
    for _ in range(n(rng, spec.n_trees)):
        x, y = rng.uniform(-R, R), rng.choice((-1, 1)) * (road_half + rng.uniform(1.2, spec.sidewalk_width - 0.3))
        trunk = rng.uniform(2.0, 3.0)
        rc = rng.uniform(1.2, 2.5)
        cyls.append(((x, y), rng.uniform(0.12, 0.2), hs, hs + trunk + 0.5, VEGETATION))
        sph.append(((x, y, hs + trunk + rc * 0.8), rc, VEGETATION))
    return boxes, cyls, sph


def render_scan(spec: SynthScanSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One scan: ``points`` float32 (P, 4) = x, y, z [m, sensor frame], intensity; ``labels`` uint8 (P,)."""
    # beams and columns at the centres of a (beams, azimuths) range image over fov_deg, so that
    # layers.point_grid.rv_coords puts every ray in its own pixel (row 0 = top beam)
    step = (spec.fov_deg[1] - spec.fov_deg[0]) / spec.beams
    elev = np.deg2rad(spec.fov_deg[1] - (np.arange(spec.beams) + 0.5) * step)
    azim = 2 * np.pi * (np.arange(spec.azimuths) + 0.5) / spec.azimuths
    el, az = np.meshgrid(elev, azim, indexing="ij")
    d_sensor = np.stack((np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), -1).reshape(-1, 3)  # (R, 3)
    road_half = spec.road_half * rng.uniform(0.8, 1.2)
    y0 = rng.uniform(-0.6, 0.6) * road_half
    yaw = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    d = d_sensor @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])                          # scene frame
    o = np.array([0.0, y0, spec.sensor_height])
    boxes, cyls, sph = _objects(rng, spec, road_half, y0)

    ts, labs = [], []
    # ground: road plane z = 0 inside the road, raised plane elsewhere (sidewalk, then terrain = ignore)
    with np.errstate(divide="ignore", invalid="ignore"):
        for z_plane, inside in ((0.0, True), (spec.sidewalk_height, False)):
            t = (z_plane - o[2]) / d[:, 2]
            y = o[1] + t * d[:, 1]
            ok = (t > 0) & ((np.abs(y) < road_half) == inside)
            ts.append(np.where(ok, t, np.inf)[None])
            lab = np.full(len(d), ROAD if inside else SIDEWALK)
            if not inside:
                lab[np.abs(y) > road_half + spec.sidewalk_width] = IGNORE
            labs.append(lab[None])
    if boxes:
        centre = np.array([b[0] for b in boxes]); half = np.array([b[1] for b in boxes])
        ts.append(_hit_boxes(o, d, centre, half, np.array([b[2] for b in boxes])))
        labs.append(np.repeat(np.array([b[3] for b in boxes])[:, None], len(d), 1))
    if cyls:
        ts.append(_hit_cylinders(o, d, np.array([q[0] for q in cyls]), np.array([q[1] for q in cyls]),
                                 np.array([q[2] for q in cyls]), np.array([q[3] for q in cyls])))
        labs.append(np.repeat(np.array([q[4] for q in cyls])[:, None], len(d), 1))
    if sph:
        ts.append(_hit_spheres(o, d, np.array([q[0] for q in sph]), np.array([q[1] for q in sph])))
        labs.append(np.repeat(np.array([q[2] for q in sph])[:, None], len(d), 1))
    t_all = np.concatenate(ts)                                                         # (M, R)
    first = np.argmin(t_all, 0)
    t = t_all[first, np.arange(len(d))]
    label = np.concatenate(labs)[first, np.arange(len(d))]
    t = t + rng.normal(0, spec.range_noise, len(d))
    keep = (t < spec.max_range) & (t > 0.5) & (rng.random(len(d)) >= spec.dropout)
    xyz = d_sensor[keep] * t[keep, None]
    label = label[keep].astype(np.uint8)
    inten = np.clip(INTENSITY_MEAN[label] + rng.normal(0, spec.intensity_noise, len(label)), 0, 1)
    return np.concatenate((xyz, inten[:, None]), 1).astype(np.float32), label


def render_split(spec: SynthScanSpec, n_scans: int, *, seed: int, split: str):
    """``(points (P, 4) float32, labels (P,) uint8, offsets (n_scans + 1,) int64)`` of a split."""
    pts, labs = [], []
    for i in range(n_scans):
        p, lab = render_scan(spec, np.random.default_rng([seed, _split_code(split), i]))
        pts.append(p); labs.append(lab)
    offsets = np.concatenate(([0], np.cumsum([len(lab) for lab in labs]))).astype(np.int64)
    points = np.concatenate(pts) if pts else np.zeros((0, 4), np.float32)
    labels = np.concatenate(labs) if labs else np.zeros(0, np.uint8)
    return points, labels, offsets


def write_synthscan(root: str | os.PathLike, spec: SynthScanSpec, *, seed: int, splits: dict[str, int]) -> dict:
    """Write every split under ``root`` (module doc layout); returns ``{split: counts}`` for the manifest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "classes.json", ["ignore", *CLASSES])
    counts = {}
    for split, n in splits.items():
        points, labels, offsets = render_split(spec, n, seed=seed, split=split)
        save_npy(root / f"{split}_points.npy", points)
        save_npy(root / f"{split}_labels.npy", labels)
        save_npy(root / f"{split}_offsets.npy", offsets)
        per = np.bincount(labels, minlength=len(CLASSES) + 1)
        counts[split] = {"scans": n, "points": int(len(labels)),
                         "points_per_class": dict(zip(["ignore", *CLASSES], per.tolist()))}
    return counts


def load_synthscan(root: str | os.PathLike, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """A written split as a list of ``(points (P_s, 4) float32, labels (P_s,) int64)`` per scan."""
    root = Path(root)
    points = np.load(root / f"{split}_points.npy")
    labels = np.load(root / f"{split}_labels.npy").astype(np.int64)
    off = np.load(root / f"{split}_offsets.npy")
    return [(points[a:b], labels[a:b]) for a, b in zip(off[:-1], off[1:])]


def synthscan_spec_from_config(block: dict) -> SynthScanSpec:
    """``data.synthscan`` config block → :class:`SynthScanSpec` (only the look keys; absent keys keep defaults)."""
    fields = SynthScanSpec.__dataclass_fields__
    kw = {}
    for k, v in block.items():
        if k in fields:
            kw[k] = tuple(v) if isinstance(v, (list, tuple)) else v
    return SynthScanSpec(**kw)


def synthscan_from_config(block: dict) -> dict:
    """``data.synthscan`` block → keyword arguments of :func:`write_synthscan` (besides ``root``)."""
    return {"spec": synthscan_spec_from_config(block), "seed": int(block["seed"]),
            "splits": {"train": int(block["n_train"]), "val": int(block["n_val"])}}
