"""A test structure for every one of the 80 layer groups, confirmed by spglib.

For layer group n we take the symmetry operations of its default setting in spglib's
layer-group database (``spglib.get_symmetry_from_database(hall)`` with the negative Hall
numbers −1…−116 that index the 116 layer-group settings). Every operation maps z → ±z
without mixing z into x, y and without a z-translation, so the layer lies at z = 0 and the
aperiodic axis is c (``aperiodic_dir=2``). The structure is:

* lattice: the most generic in-plane metric the rotations keep (oblique, rectangular,
  square or hexagonal, tested as Rᵀ G R = G), scaled to ``area_per_atom_A2``;
* atoms: two general-position orbits of different species at heights +z_A and −z_B
  (z_A ≠ z_B, 0.5–1.5 Å). Two species keep the orbits from being swapped by an extra
  operation; two heights keep a polar group from gaining a horizontal mirror, which is
  what a single flat orbit does (spglib then reports the higher group).

Acceptance uses geometry only (every orbit has |G| points, no two atoms closer than
``min_distance_A``; of ``n_candidates`` such seeds the most evenly spread one, largest
minimum distance, is kept), so spglib's verdict is a test, not a filter: a structure is
**confirmed** when ``spglib.get_layergroup`` returns number n, the symbol of the table and
exactly the generating operations (same set, same count: no accidental extra symmetry).

``LAYER_GROUPS`` is data: for each layer group (ITE Vol. E numbering and symbol, in spglib's
notation) the Hall number of its default setting in spglib's database.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib
from ase import Atoms

from .structures import APERIODIC_DIR

# n: (layer-group Hall number in spglib's database (default setting), ITE symbol)
LAYER_GROUPS: dict[int, tuple[int, str]] = {
    1: (-1, "p1"), 2: (-2, "p-1"), 3: (-3, "p112"), 4: (-4, "p11m"), 5: (-5, "p11a"),
    6: (-8, "p112/m"), 7: (-9, "p112/a"), 8: (-12, "p211"), 9: (-14, "p2_111"), 10: (-16, "c211"),
    11: (-18, "pm11"), 12: (-20, "pb11"), 13: (-22, "cm11"), 14: (-24, "p2/m11"), 15: (-26, "p2_1/m11"),
    16: (-28, "p2/b11"), 17: (-30, "p2_1/b11"), 18: (-32, "c2/m11"), 19: (-34, "p222"), 20: (-35, "p2_122"),
    21: (-37, "p2_12_12"), 22: (-38, "c222"), 23: (-39, "pmm2"), 24: (-40, "pma2"), 25: (-42, "pba2"),
    26: (-43, "cmm2"), 27: (-44, "pm2m"), 28: (-46, "pm2_1b"), 29: (-48, "pb2_1m"), 30: (-50, "pb2b"),
    31: (-52, "pm2a"), 32: (-54, "pm2_1n"), 33: (-56, "pb2_1a"), 34: (-58, "pb2n"), 35: (-60, "cm2m"),
    36: (-62, "cm2e"), 37: (-64, "pmmm"), 38: (-65, "pmaa"), 39: (-67, "pban"), 40: (-68, "pmam"),
    41: (-70, "pmma"), 42: (-72, "pman"), 43: (-74, "pbaa"), 44: (-76, "pbam"), 45: (-77, "pbma"),
    46: (-79, "pmmn"), 47: (-80, "cmmm"), 48: (-81, "cmme"), 49: (-82, "p4"), 50: (-83, "p-4"),
    51: (-84, "p4/m"), 52: (-85, "p4/n"), 53: (-87, "p422"), 54: (-88, "p42_12"), 55: (-89, "p4mm"),
    56: (-90, "p4bm"), 57: (-91, "p-42m"), 58: (-92, "p-42_1m"), 59: (-93, "p-4m2"), 60: (-94, "p-4b2"),
    61: (-95, "p4/mmm"), 62: (-96, "p4/nbm"), 63: (-98, "p4/mbm"), 64: (-99, "p4/nmm"), 65: (-101, "p3"),
    66: (-102, "p-3"), 67: (-103, "p312"), 68: (-104, "p321"), 69: (-105, "p3m1"), 70: (-106, "p31m"),
    71: (-107, "p-31m"), 72: (-108, "p-3m1"), 73: (-109, "p6"), 74: (-110, "p-6"), 75: (-111, "p6/m"),
    76: (-112, "p622"), 77: (-113, "p6mm"), 78: (-114, "p-6m2"), 79: (-115, "p-62m"), 80: (-116, "p6/mmm"),
}

# (family, a, b, γ in degrees): most generic first; the first metric all rotations keep wins
METRICS = (("oblique", 1.0, 1.23, 104.0), ("rectangular", 1.0, 1.23, 90.0),
           ("square", 1.0, 1.0, 90.0), ("hexagonal", 1.0, 1.0, 120.0))
SPECIES = ("C", "N")  # one species per orbit (masses 12.011 and 14.007 amu)


def operations(lg_number: int) -> tuple[np.ndarray, np.ndarray]:
    """(rotations (n_ops, 3, 3) int, translations (n_ops, 3)) of the default setting."""
    sym = spglib.get_symmetry_from_database(LAYER_GROUPS[lg_number][0])
    return np.array(sym["rotations"], int), np.array(sym["translations"], float)


def lattice_vectors(a: float, b: float, gamma_deg: float, c: float) -> np.ndarray:
    g = np.radians(gamma_deg)
    return np.array([[a, 0.0, 0.0], [b * np.cos(g), b * np.sin(g), 0.0], [0.0, 0.0, c]])


def lattice_family(rotations: np.ndarray) -> tuple[str, float, float, float]:
    """Most generic (family, a, b, γ) whose metric G = L Lᵀ satisfies Rᵀ G R = G for all R."""
    for family, a, b, gamma in METRICS:
        lat = lattice_vectors(a, b, gamma, 1.0)
        metric = lat @ lat.T
        if all(np.allclose(r.T @ metric @ r, metric) for r in rotations):
            return family, a, b, gamma
    raise ValueError("no 2D metric is invariant under these rotations")


def orbit(rotations: np.ndarray, translations: np.ndarray, x: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Distinct images R x + t (in-plane coordinates wrapped to [0, 1)) of a point x (n, 3)."""
    images = np.einsum("oij,j->oi", rotations, x) + translations  # (n_ops, 3)
    images[:, :2] %= 1.0
    d = images[:, None, :] - images[None, :, :]
    d[..., :2] -= np.rint(d[..., :2])
    same = np.all(np.abs(d) < tol, axis=-1)  # (n_ops, n_ops)
    first = [i for i in range(len(images)) if not same[i, :i].any()]
    return images[first]


def min_distance_A(lattice: np.ndarray, frac: np.ndarray) -> float:
    """Shortest interatomic distance (Å) including in-plane periodic images."""
    shifts = np.array([[i, j, 0] for i in (-1, 0, 1) for j in (-1, 0, 1)], float)
    d = frac[:, None, :] - frac[None, :, :]
    d[..., :2] -= np.rint(d[..., :2])
    vec = (d[:, :, None, :] + shifts[None, None]) @ lattice  # (n, n, 9, 3)
    dist = np.linalg.norm(vec, axis=-1)
    return float(dist[dist > 1e-9].min())


@dataclass
class LayerStructure:
    """Test structure of one layer group: conventional cell and its primitive reduction."""

    lg_number: int
    family: str
    conventional: Atoms
    primitive: Atoms
    rotations: np.ndarray        # generating rotations in the conventional basis
    translations: np.ndarray
    prim_rotations: np.ndarray   # the same group in the primitive basis (mod primitive lattice)
    prim_translations: np.ndarray
    attempts: int


def build(lg_number: int, *, area_per_atom_A2: float, c_A: float, z_range_A: tuple[float, float],
          min_distance: float, seed: int, n_candidates: int = 20, max_attempts: int = 2000) -> LayerStructure:
    """Two general-position orbits in layer group ``lg_number`` (module docstring)."""
    rots, trans = operations(lg_number)
    family, a, b, gamma = lattice_family(rots)
    rng = np.random.default_rng([seed, lg_number])
    unit = lattice_vectors(a, b, gamma, 1.0)
    best, n_ok = None, 0
    for attempt in range(1, max_attempts + 1):
        z_a, z_b = rng.uniform(*z_range_A, size=2)
        if abs(z_a - z_b) < 0.2:  # distinct heights, else a mirror could swap the orbits' roles
            continue
        seeds = [np.array([*rng.uniform(0, 1, 2), z_a / c_A]), np.array([*rng.uniform(0, 1, 2), -z_b / c_A])]
        orbits = [orbit(rots, trans, x) for x in seeds]
        if any(len(o) != len(rots) for o in orbits):  # a seed on a symmetry element
            continue
        n_atoms = sum(len(o) for o in orbits)
        scale = np.sqrt(n_atoms * area_per_atom_A2 / abs(np.linalg.det(unit[:2, :2])))
        lattice = lattice_vectors(a * scale, b * scale, gamma, c_A)
        frac = np.vstack(orbits)
        dmin = min_distance_A(lattice, frac)
        if dmin < min_distance:
            continue
        # keep the most evenly spread candidate: clustered orbits couple weakly to each
        # other and give near-flat bands with accidental near-degeneracies
        if best is None or dmin > best[0]:
            best = (dmin, lattice, orbits, attempt)
        n_ok += 1
        if n_ok >= n_candidates:
            break
    if best is None:
        raise RuntimeError(f"layer group {lg_number}: no structure after {max_attempts} attempts")
    _, lattice, orbits, attempt = best
    symbols = [SPECIES[0]] * len(orbits[0]) + [SPECIES[1]] * len(orbits[1])
    conv = Atoms(symbols, cell=lattice, scaled_positions=np.vstack(orbits), pbc=True)
    prim, pr, pt = primitive_reduction(conv, rots, trans)
    return LayerStructure(lg_number, family, conv, prim, rots, trans, pr, pt, attempt)


def primitive_reduction(conv: Atoms, rots: np.ndarray, trans: np.ndarray):
    """Primitive cell and operations of a conventional cell with in-plane centring.

    Centring vectors are the pure translations among the operations; with one centring
    vector (1/2, 1/2, 0) (c-rectangular groups) the primitive vectors are (a − b)/2,
    (a + b)/2 (phonopy's 'C'). Operations transform as R' = M⁻ᵀ R Mᵀ, t' = M⁻ᵀ t with M the
    rows of the primitive vectors in conventional reduced coordinates.
    """
    centring = [t for r, t in zip(rots, trans) if np.array_equal(r, np.eye(3, dtype=int)) and np.any(np.abs(t) > 1e-8)]
    if not centring:
        return conv.copy(), rots.copy(), trans.copy()
    if len(centring) != 1 or not np.allclose(centring[0], [0.5, 0.5, 0.0]):
        raise ValueError(f"unexpected centring vectors {centring}")
    m = np.array([[0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    cell = m @ conv.cell.array
    frac = conv.positions @ np.linalg.inv(cell)
    frac[:, :2] %= 1.0
    keep = []
    for i, f in enumerate(frac):
        if not any(np.all(np.abs((f - frac[k] + 0.5) % 1.0 - 0.5) < 1e-8) for k in keep):
            keep.append(i)
    prim = Atoms([conv.symbols[i] for i in keep], cell=cell, scaled_positions=frac[keep], pbc=True)
    minv_t = np.linalg.inv(m).T
    pr, pt = [], []
    for r, t in zip(rots, trans):
        r2 = np.rint(minv_t @ r @ m.T).astype(int)
        t2 = (minv_t @ t) % 1.0
        if not any(np.array_equal(r2, q) and np.allclose((t2 - s + 0.5) % 1.0 - 0.5, 0) for q, s in zip(pr, pt)):
            pr.append(r2)
            pt.append(t2)
    return prim, np.array(pr), np.array(pt)


def same_operations(r1, t1, r2, t2, tol: float = 1e-6) -> bool:
    """Equal sets of operations (rotation, translation mod 1)."""
    if len(r1) != len(r2):
        return False
    for r, t in zip(r1, t1):
        if not any(np.array_equal(r, q) and np.all(np.abs((t - s + 0.5) % 1.0 - 0.5) < tol) for q, s in zip(r2, t2)):
            return False
    return True


def confirm(structure: LayerStructure, symprec: float) -> dict:
    """spglib's layer group of the conventional cell against the intended group.

    ``confirmed``: same number and symbol as ``LAYER_GROUPS`` and exactly the generating
    operations (in the conventional basis, same origin).
    """
    atoms = structure.conventional
    cell = (atoms.cell.array, atoms.get_scaled_positions(wrap=False), atoms.numbers)
    ds = spglib.get_layergroup(cell, aperiodic_dir=APERIODIC_DIR, symprec=symprec)
    n, symbol = structure.lg_number, LAYER_GROUPS[structure.lg_number][1]
    if ds is None:
        return {"lg_spglib": 0, "lg_symbol_spglib": "", "n_ops_spglib": 0, "same_operations": False, "confirmed": False}
    same = same_operations(np.array(ds.rotations), np.array(ds.translations), structure.rotations, structure.translations)
    sym = str(ds.international).strip()
    return {"lg_spglib": int(ds.number), "lg_symbol_spglib": sym, "n_ops_spglib": len(ds.rotations),
            "same_operations": bool(same), "confirmed": bool(same and ds.number == n and sym == symbol)}


def high_symmetry_points(rotations: np.ndarray, denominator: int = 6, tol: float = 1e-8) -> list[np.ndarray]:
    """High-symmetry points of the 2D BZ (reduced, primitive basis), one per orbit of the group.

    q is high-symmetry when the operations that fix it, q·R ≡ q (mod 1) for R in G ∪ (−G)
    (−R: the operation combined with time reversal, q → −q), leave no continuous freedom:
    the common fixed space of those R is the point itself. Candidates are the grid
    q = (i, j, 0)/denominator (6 covers 1/2, 1/3, 2/3). Points related by a spatial operation
    are merged (K and K′ stay apart unless an operation of G maps one onto the other).
    """
    grid = [np.array([i, j, 0.0]) / denominator for i in range(denominator) for j in range(denominator)]
    rots2 = [r[:2, :2] for r in rotations]
    with_t = rots2 + [-r for r in rots2]
    found: list[np.ndarray] = []
    for q in grid:
        stab = [r for r in with_t if _equiv(q[:2] @ r, q[:2], tol)]
        fixed = np.vstack([r.T - np.eye(2) for r in stab])  # (q+δ)R ≡ q+δ ⇔ δ(R − 1) = 0
        if np.linalg.matrix_rank(fixed, tol=1e-8) < 2:
            continue
        if any(_equiv(q[:2] @ r, p[:2], tol) for p in found for r in rots2):
            continue
        found.append(q)
    return found


def _equiv(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    d = np.asarray(a) - np.asarray(b)
    return bool(np.all(np.abs(d - np.rint(d)) < tol))


def point_label(q: np.ndarray) -> str:
    """'G' for Γ, else the reduced coordinates as fractions, e.g. '1/3,1/3'."""
    if np.allclose(q, 0):
        return "G"
    from fractions import Fraction
    return ",".join(str(Fraction(float(x)).limit_denominator(12)) for x in q[:2])
