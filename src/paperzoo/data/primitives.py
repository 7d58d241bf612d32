"""Shape kinds, textures and colours shared by the procedural generators.

Every shape lives inside the unit disc of its *object frame* ``(u, v)``: a pixel at
image position ``(x, y)`` maps to ``u, v = R(-angle) [(x - cx) / r, (y - cy) / (r * aspect)]``,
so an object of radius ``r`` never leaves the circle of radius ``r`` around its centre,
whatever its rotation. ``v`` points down (image rows). Textures are drawn in the same
frame, so they rotate and scale with the object.

All functions are vectorised over a leading object axis: ``u, v`` are ``(n, H, W)``
float32 arrays and per-object parameters are ``(n,)`` arrays.
"""
from __future__ import annotations

import numpy as np

# Kinds that do not fill their box (ring, crescent, star, ell, bar, cross) are the point:
# box AP and mask AP then disagree, as on real data.
KINDS = ("disc", "square", "triangle", "ring", "crescent", "star", "ell", "bar", "cross")
TEXTURES = ("solid", "stripes", "checker", "dots")

_SQUARE_HALF = 1 / np.sqrt(2)  # corners on the unit circle
_RING_INNER = 0.55             # hole wide enough to stay visible down to ~8 px objects
_CRESCENT_CUT = (0.5, 0.8)     # centre offset and radius of the disc cut out of the unit disc
_STAR_TIPS, _STAR_INNER = 5, 0.45
_ELL_STROKE = 0.5              # stroke width of the L (a third of its side)
_BAR_HALF_WIDTH = 0.13         # length/width ≈ 7.5: a thin bar
_CROSS_HALF_WIDTH = 0.2


def object_frame(xs: np.ndarray, ys: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray,
                 angle: np.ndarray, aspect: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object-frame coordinates of pixel centres.

    ``xs``: (W,) and ``ys``: (H,) pixel-centre coordinates in px; per-object ``cx, cy, radius``
    in px, ``angle`` in rad, ``aspect`` ≤ 1 squeezes the shape along its own v axis.
    Returns ``u, v`` of shape (n, H, W), float32.
    """
    c, s = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    dx = (xs[None, None, :] - cx[:, None, None]).astype(np.float32)            # (n, 1, W)
    dy = (ys[None, :, None] - cy[:, None, None]).astype(np.float32)            # (n, H, 1)
    inv_r = (1.0 / radius).astype(np.float32)[:, None, None]
    u = (dx * c[:, None, None] + dy * s[:, None, None]) * inv_r                 # (n, H, W)
    v = (-dx * s[:, None, None] + dy * c[:, None, None]) * (inv_r / aspect.astype(np.float32)[:, None, None])
    return u, v


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Regular star polygon: fold the polar angle into one half-spike, test against its edge."""
    sector = 2 * np.pi / _STAR_TIPS
    r = np.sqrt(u * u + v * v)
    phi = np.arctan2(v, u) + np.pi / 2          # one tip points up (−v)
    psi = np.abs(np.mod(phi + sector / 2, sector) - sector / 2)   # angle from the nearest tip, [0, π/m]
    px, py = r * np.cos(psi), r * np.sin(psi)
    tx, ty = 1.0, 0.0                            # tip
    vx, vy = _STAR_INNER * np.cos(sector / 2), _STAR_INNER * np.sin(sector / 2)   # valley
    # inside ⇔ P on the origin's side of the line tip → valley
    cross = (vx - tx) * (py - ty) - (vy - ty) * (px - tx)
    return cross >= 0


def shape_mask(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of ``kind`` (a name in :data:`KINDS`) at object-frame points ``u, v``."""
    au, av = np.abs(u), np.abs(v)
    if kind == "disc":
        return u * u + v * v <= 1.0
    if kind == "square":
        return np.maximum(au, av) <= _SQUARE_HALF
    if kind == "triangle":  # equilateral, vertices on the unit circle, inradius 1/2
        inside = np.ones(u.shape, bool)
        for k in range(3):
            phi = np.pi / 2 + 2 * np.pi * k / 3     # edge normals; one vertex points up
            inside &= u * np.cos(phi) + v * np.sin(phi) <= 0.5
        return inside
    if kind == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= _RING_INNER**2)
    if kind == "crescent":
        off, rad = _CRESCENT_CUT
        return (u * u + v * v <= 1.0) & ((u - off) ** 2 + v * v >= rad**2)
    if kind == "star":
        return _star(u, v)
    if kind == "ell":
        in_square = np.maximum(au, av) <= _SQUARE_HALF
        return in_square & ((u <= -_SQUARE_HALF + _ELL_STROKE) | (v >= _SQUARE_HALF - _ELL_STROKE))
    if kind == "bar":
        return (au <= 0.97) & (av <= _BAR_HALF_WIDTH)
    if kind == "cross":
        return ((au <= _CROSS_HALF_WIDTH) & (av <= 0.95)) | ((av <= _CROSS_HALF_WIDTH) & (au <= 0.95))
    raise ValueError(f"unknown shape kind {kind!r}; expected one of {KINDS}")


def shape_masks(kind_ids: np.ndarray, u: np.ndarray, v: np.ndarray, kinds=KINDS) -> np.ndarray:
    """Masks (n, H, W) bool for objects of mixed kinds (``kind_ids`` index into ``kinds``)."""
    out = np.zeros(u.shape, bool)
    for k in np.unique(kind_ids):
        sel = kind_ids == k
        out[sel] = shape_mask(kinds[int(k)], u[sel], v[sel])
    return out


def texture_pattern(texture_ids: np.ndarray, u: np.ndarray, v: np.ndarray, freq: np.ndarray,
                    phase: np.ndarray, textures=TEXTURES) -> np.ndarray:
    """Blend weight of the second colour, float32 in {0, 1}, elementwise.

    All arguments have one shape (e.g. one entry per object pixel): ``texture_ids`` index
    into ``textures``, ``freq`` is in pattern cycles per unit object radius, ``phase`` in cycles.
    """
    t = np.zeros(u.shape, np.float32)
    for k in np.unique(texture_ids):
        name, sel = textures[int(k)], texture_ids == k
        if name == "solid":
            continue
        uu, vv = u[sel] * freq[sel] + phase[sel], v[sel] * freq[sel] + phase[sel]
        if name == "stripes":
            t[sel] = np.mod(uu, 1.0) < 0.5
        elif name == "checker":
            t[sel] = (np.mod(uu, 1.0) < 0.5) ^ (np.mod(vv, 1.0) < 0.5)
        elif name == "dots":
            du, dv = np.mod(uu, 1.0) - 0.5, np.mod(vv, 1.0) - 0.5
            t[sel] = du * du + dv * dv < 0.3**2
        else:
            raise ValueError(f"unknown texture {name!r}; expected one of {textures}")
    return t


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV → RGB; ``h`` in turns [0, 1), ``s, v`` in [0, 1]. Returns (..., 3) in [0, 255]."""
    h = np.mod(h, 1.0) * 6.0
    i = np.floor(h).astype(int) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack([np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    rgb = np.take_along_axis(table, i[None, ..., None].repeat(3, -1), 0)[0]
    return 255.0 * rgb
