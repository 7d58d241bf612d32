"""One material end to end: structure → layer group → Tersoff phonons → valley analysis at K, K′.

Graphene (Lindsay–Broido C) and hBN (Sevik/Kınacı B–N) are the two materials computed here
(potentials cited in ``potentials/*.tersoff``). The valley analysis follows ``valley.py``:
degenerate pairs at K and K′ with a stated tolerance, the linear-splitting slope of chosen
band pairs, phonopy's little co-group and degenerate-set dimensions at K, and single-band
Berry phases on circles of several radii (in units of |K|) around K and K′ = −K.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import phonons, potentials, structures, valley

K_POINT = np.array([1.0 / 3.0, 1.0 / 3.0, 0.0])  # BZ corner for a1 = a(1, 0), a2 = a(−1/2, √3/2)
PATH = {"G": [0.0, 0.0, 0.0], "M": [0.5, 0.0, 0.0], "K": list(K_POINT)}  # reduced coordinates


@dataclass(frozen=True)
class MaterialSpec:
    """What to compute for one material (config block ``materials.<name>``)."""

    name: str
    formula: str                 # ase.build.graphene formula: 'C2' or 'BN'
    potential: str               # file in potentials/
    a_bounds_A: tuple            # bracket of the lattice-constant search (Å)
    berry_bands: tuple           # bands whose single-band Berry phase is computed at K, K′
    probe_pairs: tuple           # band pairs (n, m) whose splitting vs |q − K| is fitted


@dataclass(frozen=True)
class MaterialSettings:
    """Numerics shared by the materials (config blocks ``structure``, ``phonons``, ``valley``)."""

    vacuum_A: float = 10.0
    relax_xtol_A: float = 1e-7
    symprec: float = 1e-5
    supercell: int = 6
    displacement_A: float = 0.01
    band_points: int = 101
    tol_THz: float = 1e-9
    radii_rel: tuple = (1e-4, 1e-3, 1e-2, 2e-2)   # loop radius / |K|
    loop_points: int = 64
    slope_radii_rel: tuple = (1e-5, 2e-5, 4e-5)   # |q − K| / |K| for the splitting fit
    n_directions: int = 6
    overlap_min: float = 0.9


def run(spec: MaterialSpec, s: MaterialSettings) -> dict:
    """Compute everything for one material; returns plain arrays and numbers (units in keys)."""
    calc = potentials.tersoff(spec.potential)
    a0, e0 = structures.relax_lattice_constant(spec.formula, calc, bounds_A=tuple(spec.a_bounds_A),
                                               vacuum_A=s.vacuum_A, xtol_A=s.relax_xtol_A)
    atoms = structures.monolayer(spec.formula, a0, s.vacuum_A)
    lg = structures.layer_group(atoms, s.symprec)
    ph = phonons.build_phonopy(atoms, (s.supercell, s.supercell), symprec=s.symprec)
    phonons.compute_force_constants(ph, lambda _sc: calc, distance_A=s.displacement_A)
    bands = phonons.run_band_structure(ph, [PATH["G"], PATH["M"], PATH["K"], PATH["G"]], ["G", "M", "K", "G"],
                                       s.band_points)

    kp = valley.valley_partner(K_POINT)
    freq_k = phonons.frequencies(ph, np.array([K_POINT, kp]))  # (2, nb) THz
    sets_k = valley.degenerate_sets(freq_k[0], s.tol_THz)
    pairs_k = valley.twofold_pairs(freq_k[0], s.tol_THz)
    pairs_kp = valley.twofold_pairs(freq_k[1], s.tol_THz)
    irreps = valley.irreps_at(ph, K_POINT, s.tol_THz)
    k_len = valley.q_length_inv_A(ph, K_POINT)

    slopes = {}
    for pair in spec.probe_pairs:
        sl = valley.splitting_slopes(ph, K_POINT, tuple(pair), [r * k_len for r in s.slope_radii_rel],
                                     s.n_directions, angle0=0.1)
        slopes[tuple(pair)] = sl

    groups = {n: list(g) for g in sets_k for n in g}
    radii = [r * k_len for r in s.radii_rel]
    loops = {name: valley.berry_loops(ph, q, list(spec.berry_bands), groups, radii, n_points=s.loop_points,
                                      overlap_min=s.overlap_min, angle0=0.1)
             for name, q in (("K", K_POINT), ("Kp", kp))}
    return {"spec": spec, "ph": ph, "a0_A": a0, "energy_per_atom_eV": e0, "layer_group": lg,
            "bands": bands, "freq_K_THz": freq_k[0], "freq_Kp_THz": freq_k[1], "pairs_K": pairs_k,
            "pairs_Kp": pairs_kp, "irreps_K": irreps, "K_length_inv_A": k_len, "slopes": slopes, "loops": loops,
            "tol_THz": s.tol_THz}


def berry_rows(res: dict, radii_rel) -> list[dict]:
    """Rows of the Berry-phase table: one per valley × band × radius."""
    rows = []
    spec = res["spec"]
    for valley_name, loops in res["loops"].items():
        for lp, r_rel in zip(loops, radii_rel):
            for b, phi, ov, ok in zip(spec.berry_bands, lp.phi_rad, lp.overlap, lp.valid):
                rows.append({"material": spec.name, "valley": valley_name, "band": int(b),
                             "radius_over_K": r_rel, "radius_inv_A": lp.radius_inv_A,
                             "phi_over_pi": phi / np.pi, "abs_phi_over_pi": abs(phi) / np.pi,
                             "overlap_min": float(ov), "valid": int(bool(ok))})
    return rows


def radius_tag(r: float) -> str:
    """Metric-name tag of a relative radius: 1e-3 → 'r1em03', 2e-2 → 'r2em02'."""
    return "r" + f"{r:.0e}".replace("-", "m").replace("+", "p")


def metrics(res: dict, radii_rel) -> dict[str, float]:
    """Flat run metrics of one material (names are the ones the claims use)."""
    spec, lg = res["spec"], res["layer_group"]
    f_k = res["freq_K_THz"]
    m = {"a0_A": res["a0_A"], "energy_per_atom_eV": res["energy_per_atom_eV"], "lg_number": lg.number,
         "sg_number": lg.space_group_number, "n_lg_operations": lg.n_operations,
         "n_pairs_K": len(res["pairs_K"]), "n_pairs_Kp": len(res["pairs_Kp"]),
         "n_2d_sets_K_phonopy": sum(d == 2 for d in res["irreps_K"]["dims"]),
         "min_freq_path_THz": float(res["bands"]["freq_THz"].min()),
         "gap_K_b0b1_cm1": (f_k[1] - f_k[0]) * phonons.THZ_TO_CM1,
         "K_length_inv_A": res["K_length_inv_A"]}
    for n, f in enumerate(f_k):
        m[f"omega_K_b{n}_cm1"] = f * phonons.THZ_TO_CM1
    for (lo, hi), sl in res["slopes"].items():
        m[f"split_slope_b{lo}b{hi}_min"] = float(sl["slopes"].min())
        m[f"split_slope_b{lo}b{hi}_max"] = float(sl["slopes"].max())
        if abs(f_k[hi] - f_k[lo]) < res["tol_THz"]:  # a cone slope only where the pair touches at K
            m[f"cone_velocity_b{lo}b{hi}_THzA"] = sl["velocity_THz_A"]
    phis = {}  # (valley, band, radius index) -> (phi_rad, valid)
    for vname, loops in res["loops"].items():
        for i, (lp, r_rel) in enumerate(zip(loops, radii_rel)):
            for b, phi, ok in zip(spec.berry_bands, lp.phi_rad, lp.valid):
                m[f"phi_over_pi_{vname}_b{b}_{radius_tag(r_rel)}"] = phi / np.pi
                m[f"loop_valid_{vname}_b{b}_{radius_tag(r_rel)}"] = float(ok)
                phis[(vname, b, i)] = (phi, bool(ok))
    valid = [abs(p) / np.pi for p, ok in phis.values() if ok]
    m["n_valid_loops"] = len(valid)
    m["n_loops"] = len(phis)
    # worst case over every valid loop, both valleys, all berry bands (NaN-free: 1 if none)
    m["berry_abs_dev_max"] = max((abs(v - 1) for v in valid), default=1.0)
    m["berry_abs_max"] = max(valid, default=0.0)
    spreads, sums = [], []
    for vname in res["loops"]:
        for b in spec.berry_bands:
            vals = [abs(phis[(vname, b, i)][0]) / np.pi for i in range(len(radii_rel)) if phis[(vname, b, i)][1]]
            if len(vals) > 1:
                spreads.append(max(vals) - min(vals))
    for b in spec.berry_bands:
        for i in range(len(radii_rel)):
            (pk, ok1), (pkp, ok2) = phis[("K", b, i)], phis[("Kp", b, i)]
            if ok1 and ok2:  # time reversal: φ(K) + φ(K′) ≡ 0 (mod 2π)
                sums.append(abs(np.angle(np.exp(1j * (pk + pkp)))) / np.pi)
    m["berry_radius_spread"] = max(spreads, default=0.0)
    m["berry_valley_sum_max"] = max(sums, default=1.0)
    return {k: float(v) for k, v in m.items()}
