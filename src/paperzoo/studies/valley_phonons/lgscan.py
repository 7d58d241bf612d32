"""Scan of the 80 layer groups for valley linear Weyl points (LWPs) of phonons.

For every layer group: the spglib-confirmed test structure of ``layergroups.py``, a generic
symmetry-preserving bond-spring model (``potentials.BondSprings``), phonons through phonopy,
then at every high-symmetry point (HSP) of its 2D Brillouin zone:

1. twofold degenerate sets (exactly two bands within ``tol_THz``);
2. linear splitting: log-log slope of ω_{n+1} − ω_n vs r within ``slope_range`` along
   ``n_directions`` generic directions **and** along every symmetry line through the HSP
   (a nodal line pinned by symmetry runs along one of those, and fails there), and a
   rank-2 cone: the fitted (Δω/2r)² = nᵀ MᵀM n has λ_min(MᵀM) > 0 independent of r
   (``valley.cone_eigenvalues``), which rejects crossings linear along one direction only;
3. quantized single-band Berry phase of the lower band, ||φ|/π − 1| ≤ ``quant_atol``, on
   the two largest loop radii (inside the pair's linear regime) that keep the pair's
   identity (``valley.subspace_overlap``).

A crossing passing 1–3 is an LWP. It is a **valley** LWP when the HSP is not a
time-reversal-invariant momentum (q ≢ −q): its partner −q (K′ = −K) is then checked too, with
φ(q) + φ(−q) ≡ 0 (mod 2π) within ``quant_atol``·π. A layer group **hosts** valley LWPs when
every spring model of the config finds one (two independent laws: the degeneracy is then
enforced by symmetry, not accidental). Nothing about which groups host is put in by hand.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from phonopy import Phonopy

from . import layergroups, valley
from .phonons import build_phonopy, compute_force_constants, frequencies, modes
from .potentials import BondSprings, SpringLaw


@dataclass(frozen=True)
class ScanSettings:
    """Numerics of the scan (defaults: config block ``lgscan``)."""

    area_per_atom_A2: float = 6.0
    c_A: float = 20.0
    z_range_A: tuple = (0.5, 1.5)
    min_distance_A: float = 1.4
    n_candidates: int = 20
    seed: int = 0
    symprec: float = 1e-5
    displacement_A: float = 0.01
    tol_THz: float = 1e-9           # exact degeneracies: <= 1e-13 THz; accidental ones seen down to 3e-7 THz
    slope_scales_rel: tuple = (1e-4, 1e-5, 1e-6)    # of |b|_min: linearity tested at r, 2r, 4r, largest r first
    slope_range: tuple = (0.9, 1.1)
    cone_stability: float = 0.2     # λ_min(MᵀM) may change by at most 20% over the radii
    cone_isotropy_min: float = 1e-4  # λ_min/λ_max below this is unresolved from a rank-1 (line-like) crossing
    acoustic_floor_THz: float = 1e-3
    split_floor_THz: float = 1e-12  # exact degeneracies split by <= 1e-13 THz of round-off (a nodal line stays there)
    n_directions: int = 6
    berry_radii_rel: tuple = (1e-3, 1e-4, 1e-5, 1e-6)  # of |b|_min, tried from the largest down
    loop_points: int = 48
    overlap_min: float = 0.9
    quant_atol: float = 1e-2
    generic_q: tuple = ((0.1234, 0.3171, 0.0), (0.4103, 0.0702, 0.0))
    models: tuple = field(default_factory=lambda: (SpringLaw(),))


def supercell_for(atoms, cutoff_A: float) -> tuple[int, int]:
    """In-plane supercell whose widths exceed 2·cutoff: every spring maps to one image pair,
    so phonopy's force constants reproduce the model's D(q) exactly at every q."""
    a1, a2 = atoms.cell.array[0, :2], atoms.cell.array[1, :2]
    area = abs(a1[0] * a2[1] - a1[1] * a2[0])
    w1, w2 = area / np.linalg.norm(a2), area / np.linalg.norm(a1)  # widths across a2, across a1
    return int(np.ceil(2.05 * cutoff_A / w1)), int(np.ceil(2.05 * cutoff_A / w2))


def spring_phonons(atoms, law: SpringLaw, s: ScanSettings) -> tuple[Phonopy, int]:
    """(phonopy with force constants of the bond-spring model, isolated atoms in the supercell)."""
    ph = build_phonopy(atoms, supercell_for(atoms, law.cutoff_A), symprec=s.symprec)
    holder = {}

    def calc_for(sc):
        holder["calc"] = BondSprings(sc, law)
        return holder["calc"]

    compute_force_constants(ph, calc_for, distance_A=s.displacement_A)
    return ph, holder["calc"].n_isolated_atoms()


def is_weyl_cone(eigs: np.ndarray, stability: float, isotropy_min: float) -> bool:
    """A rank-2 linear cone, not a crossing linear along one direction only.

    ``eigs`` (n_r, 2): (λ_min, λ_max) of the fitted MᵀM at each radius. λ_min must be
    resolved (λ_min/λ_max ≥ ``isotropy_min``; below, the fit cannot tell it from 0) and
    unchanged within ``stability`` from the smallest to the largest radius.
    """
    lam, lam_max = eigs[:, 0], eigs[:, 1]
    return bool(np.all(lam >= isotropy_min * lam_max) and abs(lam[0] / lam[-1] - 1) <= stability)


def min_omega2_THz2(ph: Phonopy, qs) -> float:
    """Smallest ω² (THz², negative for an unstable mode) at generic q-points."""
    f = frequencies(ph, np.array(qs, float))
    return float(np.min(np.sign(f) * f**2))


def b_min_inv_A(ph: Phonopy) -> float:
    rec = np.linalg.inv(ph.primitive.cell).T  # rows: b1, b2, b3 (1/Å, no 2π)
    return float(min(np.linalg.norm(rec[0]), np.linalg.norm(rec[1])))


def analyse_point(ph: Phonopy, q: np.ndarray, rotations: np.ndarray, s: ScanSettings) -> dict:
    """Twofold sets, linearity and Berry phases at one HSP (and at −q for a valley point).

    All pairs share the q-points: one batch for the slopes, and per radius one loop around
    q (and −q); a pair takes the largest radius on which it keeps its identity.
    """
    freq, e0 = modes(ph, q)
    sets = valley.degenerate_sets(freq[0], s.tol_THz)
    # the acoustic modes at Γ (ω = 0) split linearly in |q| but are no crossing: left out
    pairs = [tuple(x) for x in sets if len(x) == 2 and abs(freq[0][x[1]]) > s.acoustic_floor_THz]
    is_valley = not valley.is_time_reversal_invariant(q)
    b = b_min_inv_A(ph)
    out = {"n_twofold": len(pairs), "n_higher": sum(len(x) > 2 for x in sets), "is_valley": is_valley,
           "n_linear": 0, "n_lwp": 0, "n_unresolved": 0, "phi_abs_over_pi": [], "radius_rel": []}
    if not pairs:
        return out
    lines = valley.symmetry_line_directions(ph, rotations, q)
    # a pair is linear if at some scale every slope is in range: a nearby band bends a slow
    # cone at larger r, so smaller scales are tried (the linear regime is the r → 0 limit)
    linear, left = {}, list(pairs)  # pair -> scale at which it passed
    for scale in s.slope_scales_rel:
        if not left:
            break
        sl = valley.splitting_slopes_all(ph, q, left, [scale * b * k for k in (1, 2, 4)], s.n_directions,
                                         angle0=0.1, extra_directions=lines)
        ok = [bool(np.all((sp >= s.slope_range[0]) & (sp <= s.slope_range[1])) and smin > s.split_floor_THz
                   and is_weyl_cone(eigs, s.cone_stability, s.cone_isotropy_min))
              for sp, smin, eigs in zip(sl["slopes"], sl["min_splitting_THz"], sl["cone_eigs"])]
        linear.update({p: scale for p, k in zip(left, ok) if k})
        left = [p for p, k in zip(left, ok) if not k]
    out["n_linear"] = len(linear)
    centres = [q, valley.valley_partner(q)] if is_valley else [q]
    e_centre = [e0[0]] + ([modes(ph, centres[1])[1][0]] if is_valley else [])
    # phases on every radius inside the pair's linear regime where it keeps its identity;
    # quantization must hold on the two largest such loops (a crossing linear along one
    # direction only can hit |φ| ≈ π on one loop by chance, not on two)
    found: dict[tuple, list] = {p: [] for p in linear}
    for r_rel in s.berry_radii_rel:
        todo = [p for p, scale in linear.items() if r_rel <= 4 * scale * (1 + 1e-9) and len(found[p]) < 2]
        if not todo:
            continue
        loops = [modes(ph, valley.circle(ph, c, r_rel * b, s.loop_points, angle0=0.1))[1] for c in centres]
        for pair in todo:
            if min(valley.subspace_overlap(ec, ev, list(pair)) for ec, ev in zip(e_centre, loops)) >= s.overlap_min:
                found[pair].append((r_rel, np.array([valley.berry_phase(ev, pair[0]) for ev in loops])))
    for pair, hits in found.items():
        if not hits:
            out["n_unresolved"] += 1  # no loop kept the pair's identity
            continue
        quantized = True
        for _, phis in hits:
            quantized &= bool(np.all(np.abs(np.abs(phis) / np.pi - 1) <= s.quant_atol))
            if is_valley:  # φ(q) + φ(−q) wrapped to (−1, 1]
                quantized &= bool(abs(np.angle(np.exp(1j * phis.sum())) / np.pi) <= s.quant_atol)
        out["phi_abs_over_pi"].append(float(np.abs(hits[0][1][0]) / np.pi))
        out["radius_rel"].append(hits[0][0])
        out["n_lwp"] += int(quantized)
    return out


def scan_group(lg_number: int, s: ScanSettings) -> dict:
    """One row of the scan table.

    Columns: ``lg_number``, ``lg_symbol`` (intended, ITE), ``lg_spglib``, ``lg_symbol_spglib``,
    ``lg_confirmed`` (``layergroups.confirm``), ``hall_number``, ``lattice``, ``n_atoms`` and
    ``n_operations`` (primitive cell), ``supercell``, ``min_omega2_THz2`` (generic q, all
    models), ``floppy``; per HSP (label ``G`` or reduced coordinates, ``(+-)`` = valley point
    analysed with its partner −q) in ``hsps_tested``, ``little_cogroups``, ``degeneracies``
    (twofold sets, acoustic modes at Γ left out), ``linear_crossings``, ``lwp_count`` and
    ``berry_phases`` (min–max of |φ|/π over the linear crossings, first model); then
    ``host``, ``host_hsps``, ``lwp_at_trim``, ``models_agree``, ``n_models``.
    """
    st = layergroups.build(lg_number, area_per_atom_A2=s.area_per_atom_A2, c_A=s.c_A, z_range_A=s.z_range_A,
                           min_distance=s.min_distance_A, seed=s.seed, n_candidates=s.n_candidates)
    conf = layergroups.confirm(st, s.symprec)
    hsps = layergroups.high_symmetry_points(st.prim_rotations)
    # one analysis per valley pair {q, −q}: drop −q when it is itself a listed HSP
    todo: list[np.ndarray] = []
    for q in hsps:
        if not any(np.allclose(np.mod(-q, 1.0), p) or np.allclose(q, p) for p in todo):
            todo.append(q)
    per_model = []
    for law in s.models:
        ph, n_isolated = spring_phonons(st.primitive, law, s)
        res = {layergroups.point_label(q): analyse_point(ph, q, st.prim_rotations, s) for q in todo}
        per_model.append({"min_omega2_THz2": min_omega2_THz2(ph, s.generic_q), "n_isolated": n_isolated,
                          "points": res, "supercell": ph.supercell_matrix.diagonal()[:2].tolist()})
    ref = per_model[0]
    host_each = [any(r["is_valley"] and r["n_lwp"] > 0 for r in m["points"].values()) for m in per_model]
    trim_each = [any((not r["is_valley"]) and r["n_lwp"] > 0 for r in m["points"].values()) for m in per_model]
    agree = all({k: (v["n_twofold"], v["n_lwp"]) for k, v in m["points"].items()}
                == {k: (v["n_twofold"], v["n_lwp"]) for k, v in ref["points"].items()} for m in per_model)
    labels = list(ref["points"])
    lcg = {layergroups.point_label(q): valley.little_cogroup(st.prim_rotations, q)[0] for q in todo}
    fmt_phi = lambda v: (f"{min(v):.4f}-{max(v):.4f}" if v else "-")  # noqa: E731
    return {
        "lg_number": lg_number, "lg_symbol": layergroups.LAYER_GROUPS[lg_number][1],
        "lg_spglib": conf["lg_spglib"], "lg_symbol_spglib": conf["lg_symbol_spglib"],
        "lg_confirmed": conf["confirmed"], "hall_number": layergroups.LAYER_GROUPS[lg_number][0],
        "lattice": st.family, "n_atoms": len(st.primitive), "n_operations": len(st.prim_rotations),
        "supercell": "x".join(map(str, ref["supercell"])),
        "min_omega2_THz2": min(m["min_omega2_THz2"] for m in per_model),
        "floppy": any(m["min_omega2_THz2"] <= 0 or m["n_isolated"] > 0 for m in per_model),
        "hsps_tested": ";".join(f"{k}{'(+-)' if ref['points'][k]['is_valley'] else ''}" for k in labels),
        "little_cogroups": ";".join(f"{k}:{lcg[k]}" for k in labels),
        "degeneracies": ";".join(f"{k}:{v['n_twofold']}" for k, v in ref["points"].items()),
        "linear_crossings": ";".join(f"{k}:{v['n_linear']}" for k, v in ref["points"].items()),
        "lwp_count": ";".join(f"{k}:{v['n_lwp']}" for k, v in ref["points"].items()),
        "berry_phases": ";".join(f"{k}:{fmt_phi(v['phi_abs_over_pi'])}" for k, v in ref["points"].items()),
        "host": all(host_each),
        "host_hsps": ";".join(k for k, v in ref["points"].items() if v["is_valley"] and v["n_lwp"] > 0),
        "lwp_at_trim": all(trim_each),
        "models_agree": bool(agree and len(set(host_each)) == 1),
        "n_models": len(per_model),
    }
