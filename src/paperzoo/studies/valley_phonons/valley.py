"""Valley analysis at a high-symmetry point: degeneracies, linear splitting, Berry phase.

All functions take a phonopy object with force constants and a reduced q-point.

* Degenerate sets: consecutive frequencies closer than ``tol_THz`` (stated in the config;
  exact degeneracies after force-constant symmetrization are ≤ 1e-13 THz).
* Linear splitting: Δω(r) = ω_{n+1} − ω_n at q0 + r·(cos α, sin α) for several α; a
  linear (Weyl) crossing has d ln Δω / d ln r = 1 in **every** direction, a quadratic one 2,
  and a nodal line 0 (Δω = 0) along the line. Sampled directions can miss a line, so the
  scan also fits the cone (Δω/2r)² = nᵀ MᵀM n and asks for λ_min(MᵀM) > 0
  (``cone_eigenvalues``) and tests the symmetry lines through q0 explicitly.
* Single-band Berry phase on a circle of radius r (the standard discrete Berry phase):

      φ_n = −Im ln Π_{k=0}^{N−1} ⟨e_n(q_k) | e_n(q_{k+1})⟩,   q_N ≡ q_0,

  gauge invariant because the loop closes on the same vector. For a linear twofold crossing
  |φ_n| → π as r → 0 (the 2×2 k·p term maps the circle onto a great circle of the Bloch
  sphere); with PT or C2zT it is exactly π on any loop that stays clear of other bands.
  The sign of an exactly quantized π is a branch choice of the logarithm; time reversal
  gives φ_n(−q0) = −φ_n(q0) (mod 2π), which is the "±π at K, ∓π at K′" statement.
  The two-band Wilson loop of a pair has phases summing to 0 and is not the diagnostic.
* Loop validity: the band (or pair) followed around the loop must keep its identity; we
  require the smallest singular value of P0ᴴ E_k ≥ ``overlap_min`` for every loop point,
  with P0 the eigenvectors of the group at q0 and E_k those of the same band indices at
  q_k. Larger loops in graphene fail this (the TA mode lies 2.3 cm⁻¹ above the LA/LO pair
  at K with the Tersoff potential) and are reported as invalid, not used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib
from phonopy import Phonopy

from .phonons import cartesian_to_reduced, frequencies, modes, reduced_to_cartesian


def degenerate_sets(freq_THz: np.ndarray, tol_THz: float) -> list[list[int]]:
    """Groups of consecutive band indices whose frequencies differ by less than tol_THz."""
    sets = [[0]]
    for n in range(1, len(freq_THz)):
        if freq_THz[n] - freq_THz[n - 1] < tol_THz:
            sets[-1].append(n)
        else:
            sets.append([n])
    return sets


def twofold_pairs(freq_THz: np.ndarray, tol_THz: float) -> list[tuple[int, int]]:
    """Exactly twofold degenerate sets (n, n+1) at one q-point."""
    return [(s[0], s[1]) for s in degenerate_sets(freq_THz, tol_THz) if len(s) == 2]


def circle(ph: Phonopy, q0: np.ndarray, radius_inv_A: float, n_points: int,
           angle0: float = 0.0) -> np.ndarray:
    """Reduced q on a Cartesian circle q0 + r(cos θ, sin θ, 0), θ_k = angle0 + 2πk/N (N, 3)."""
    theta = angle0 + 2 * np.pi * np.arange(n_points) / n_points
    dq = radius_inv_A * np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)], axis=1)
    return np.asarray(q0)[None, :] + cartesian_to_reduced(ph, dq)


def berry_phase(eigvecs: np.ndarray, band: int) -> float:
    """Single-band Berry phase (rad, in [−π, π)) of ``band`` on a closed loop (module docstring).

    ``eigvecs`` (N, nb, nb): eigenvectors at the N loop points, modes as columns.
    """
    e = eigvecs[:, :, band]  # (N, nb)
    overlaps = np.einsum("ki,ki->k", e.conj(), np.roll(e, -1, axis=0))
    # product of unit-modulus phases: avoids under/overflow of Π|⟨·|·⟩| over many points
    return float(-np.angle(np.prod(overlaps / np.abs(overlaps))))


def subspace_overlap(eig0: np.ndarray, eigvecs: np.ndarray, bands: list[int]) -> float:
    """min_k of the smallest singular value of P0ᴴ E_k over the loop (1 = identity kept)."""
    p0 = eig0[:, bands]  # (nb, g)
    sv = np.linalg.svd(np.einsum("ia,kib->kab", p0.conj(), eigvecs[:, :, bands]), compute_uv=False)
    return float(sv.min())


@dataclass
class LoopResult:
    """Berry phases of ``bands`` on one loop; ``valid`` per band (identity kept)."""

    radius_inv_A: float
    phi_rad: np.ndarray     # (n_bands,)
    overlap: np.ndarray     # (n_bands,) min singular value of the band's group
    valid: np.ndarray       # (n_bands,) bool


def berry_loops(ph: Phonopy, q0: np.ndarray, bands: list[int], groups: dict[int, list[int]],
                radii_inv_A: list[float], *, n_points: int, overlap_min: float,
                angle0: float = 0.0) -> list[LoopResult]:
    """Single-band Berry phases of ``bands`` around q0 for every radius.

    ``groups[b]`` is the degenerate set that band b belongs to at q0 (its identity on the
    loop is checked as a subspace).
    """
    _, e0 = modes(ph, q0)
    out = []
    for r in radii_inv_A:
        _, ev = modes(ph, circle(ph, q0, r, n_points, angle0))
        phi = np.array([berry_phase(ev, b) for b in bands])
        ov = np.array([subspace_overlap(e0[0], ev, groups[b]) for b in bands])
        out.append(LoopResult(float(r), phi, ov, ov >= overlap_min))
    return out


def splitting_slopes(ph: Phonopy, q0: np.ndarray, pair: tuple[int, int], radii_inv_A: list[float],
                     n_directions: int, angle0: float = 0.0) -> dict:
    """Log-log slope of Δω = ω_{n+1} − ω_n vs r along ``n_directions`` directions.

    Returns ``slopes`` (n_dir,), ``splitting_THz`` (n_dir, n_r) and ``velocity_THz_A``: the
    mean of Δω/(2r) at the smallest r (the cone slope, THz·Å, q without 2π).
    """
    alphas = angle0 + np.pi * np.arange(n_directions) / n_directions  # ±α give the same |Δω| to linear order
    r = np.asarray(radii_inv_A, float)
    qs = []
    for a in alphas:
        dq = r[:, None] * np.array([np.cos(a), np.sin(a), 0.0])[None, :]
        qs.append(np.asarray(q0)[None, :] + cartesian_to_reduced(ph, dq))
    freq = frequencies(ph, np.concatenate(qs))
    split = (freq[:, pair[1]] - freq[:, pair[0]]).reshape(n_directions, r.size)
    with np.errstate(divide="ignore"):
        logs = np.log(np.maximum(split, 1e-300))
    slopes = np.polyfit(np.log(r), logs.T, 1)[0]
    return {"slopes": slopes, "splitting_THz": split, "velocity_THz_A": float(np.mean(split[:, 0] / (2 * r[0])))}


def symmetry_line_directions(ph: Phonopy, rotations: np.ndarray, q0: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Cartesian unit directions (n, 3) of the symmetry lines through q0.

    A line q0 + sδ is a symmetry line when an operation of the little co-group (R with
    q0·R ≡ q0, or −R: R combined with time reversal) fixes it pointwise, δ(R − 1) = 0 with
    a one-dimensional solution. Nodal lines pinned by symmetry (e.g. by a screw or glide
    with time reversal on a zone-boundary line) lie along such lines.
    """
    dirs = []
    for r in [x[:2, :2] for x in rotations] + [-x[:2, :2] for x in rotations]:
        d = np.asarray(q0)[:2] @ r - np.asarray(q0)[:2]
        if not np.all(np.abs(d - np.rint(d)) < tol):
            continue
        a = (r - np.eye(2)).T
        if np.linalg.matrix_rank(a, tol=1e-8) != 1:
            continue
        delta = np.linalg.svd(a)[2][-1]  # null vector of (R − 1)ᵀ
        v = np.append(delta, 0.0) @ np.linalg.inv(ph.primitive.cell).T
        v /= np.linalg.norm(v)
        if not any(abs(abs(v @ w) - 1) < 1e-8 for w in dirs):
            dirs.append(v)
    return np.array(dirs).reshape(-1, 3)


def splitting_slopes_all(ph: Phonopy, q0: np.ndarray, pairs: list[tuple[int, int]], radii_inv_A: list[float],
                         n_directions: int, angle0: float = 0.0, extra_directions: np.ndarray | None = None) -> dict:
    """``splitting_slopes`` for many pairs from one batch of q-points.

    Directions: ``n_directions`` generic ones plus ``extra_directions`` (Cartesian unit
    vectors, e.g. the symmetry lines through q0). Returns ``slopes`` (n_pairs, n_dir) and
    ``min_splitting_THz`` (n_pairs,): the smallest Δω over all directions and radii.
    """
    alphas = angle0 + np.pi * np.arange(n_directions) / n_directions
    units = np.stack([np.cos(alphas), np.sin(alphas), 0 * alphas], axis=1)
    if extra_directions is not None and len(extra_directions):
        units = np.vstack([units, extra_directions])
    r = np.asarray(radii_inv_A, float)
    dq = (r[None, :, None] * units[:, None, :]).reshape(-1, 3)
    freq = frequencies(ph, np.asarray(q0)[None, :] + cartesian_to_reduced(ph, dq))
    freq = freq.reshape(len(units), r.size, -1)
    slopes, smin, lam = [], [], []
    for lo, hi in pairs:
        split = freq[:, :, hi] - freq[:, :, lo]  # (n_dir, n_r)
        slopes.append(np.polyfit(np.log(r), np.log(np.maximum(split, 1e-300)).T, 1)[0])
        smin.append(float(split.min()))
        lam.append([cone_eigenvalues(units, split[:, k] / (2 * r[k])) for k in range(r.size)])
    return {"slopes": np.array(slopes), "min_splitting_THz": np.array(smin),
            "cone_eigs": np.array(lam)}  # (n_pairs, n_r, 2): λ_min, λ_max of MᵀM in (THz·Å)²


def cone_eigenvalues(units: np.ndarray, half_split: np.ndarray) -> tuple[float, float]:
    """Eigenvalues (λ_min, λ_max) of A = MᵀM fitted to (Δω/2r)² = nᵀ A n over directions n.

    For a linear twofold crossing H = ε(q) + (M q)·σ the half splitting along a unit
    direction n is |M n|, so (Δω/2r)² is a quadratic form in n. A true Weyl cone has
    λ_min > 0 independent of r; a crossing that is linear in one direction only (rank-1 M,
    as found at some zone-boundary TRIMs) has λ_min → 0 as r → 0, even though the splitting
    along a finite set of sampled directions still grows linearly.
    """
    n = units[:, :2]
    design = np.stack([n[:, 0] ** 2, 2 * n[:, 0] * n[:, 1], n[:, 1] ** 2], axis=1)
    a, b, c = np.linalg.lstsq(design, half_split**2, rcond=None)[0]
    ev = np.linalg.eigvalsh(np.array([[a, b], [b, c]]))
    return float(ev[0]), float(ev[1])


def little_cogroup(rotations: np.ndarray, q: np.ndarray, tol: float = 1e-6) -> tuple[str, np.ndarray]:
    """(point-group symbol, rotations) of the little co-group of q: R with q·R ≡ q (mod 1)."""
    keep = []
    for r in rotations:
        d = np.asarray(q) @ r - q
        if np.all(np.abs(d - np.rint(d)) < tol):
            keep.append(r)
    rots = np.array(keep, dtype=int)
    return str(spglib.get_pointgroup(rots)[0]).strip(), rots


def irreps_at(ph: Phonopy, q: np.ndarray, tol_THz: float) -> dict:
    """phonopy's irreps at q: little co-group symbol and the dimensions of the degenerate sets.

    (Characters are left out: at a zone-boundary point they carry phase factors that depend
    on the rotation centre, so they are not comparable between structures.)
    """
    ir = ph.run_irreps(q, degeneracy_tolerance=tol_THz)
    return {"point_group": str(spglib.get_pointgroup(ir.conventional_rotations)[0]).strip(),
            "degenerate_sets": [list(map(int, s)) for s in ir.band_indices],
            "dims": [len(s) for s in ir.band_indices]}


def valley_partner(q: np.ndarray) -> np.ndarray:
    """The time-reversed point −q, wrapped into [0, 1) (K′ = −K)."""
    return np.mod(-np.asarray(q, float), 1.0)


def is_time_reversal_invariant(q: np.ndarray, tol: float = 1e-8) -> bool:
    """q ≡ −q (mod 1): a TRIM. Valleys are the HSPs that are not."""
    d = 2 * np.asarray(q, float)
    return bool(np.all(np.abs(d - np.rint(d)) < tol))


def q_length_inv_A(ph: Phonopy, q: np.ndarray) -> float:
    """|q| in 1/Å (no 2π) of the reduced point q."""
    return float(np.linalg.norm(reduced_to_cartesian(ph, q)))
