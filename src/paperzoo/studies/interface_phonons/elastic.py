"""Elastic transmission with and without the quartic interface term, versus temperature.

Harmonic model: interface spring k_I at every T (𝒯 does not depend on T by construction).
Quartic model: the same chain with the quantum SCPH spring k_eff(T) (``scph.py`` Eq. SCPH
with Eq. M, zero point included), so 𝒯(ω; T) and the Landauer conductance change with T
through the interface correlation ⟨y²⟩_T = ⟨(u_a − u_b)²⟩_T.

Two parameter sets run through the same code:

* the reduced model of ``config/config.yaml`` (ħ = k_B = m_L = k_L = 1) with its analytic checks,
* an illustrative physical interface (``units.PhysicalInterface``) at T in K, with
  frequencies in THz and conductances in pW/K.

Band-averaged transmission ⟨𝒯⟩ = (1/ω_c) ∫₀^{ω_c} 𝒯 dω (ω_c: the lower lead band edge) is
the occupation-free measure of elastic transmission; the quantum Landauer conductance
(``chain.py`` Eq. L) weighs 𝒯 with ħω∂n_B/∂T and vanishes at T = 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import scph
from .chain import (Chain, continuum_quadrature, interface_device, landauer_quantum, transmission)
from .units import PhysicalInterface


@dataclass(frozen=True)
class ScphSettings:
    """Numerics of the SCPH loop and of ⟨y²⟩ (no physics here)."""

    mixing: float = 0.5
    tol: float = 1e-10
    max_iter: int = 500
    n_quad: int = 200  # Gauss–Legendre nodes of the T = 0 imaginary-axis integral
    xi_cut_factor: float = 50.0  # Matsubara sum up to ξ_N ≥ factor·(band top)
    n_per_segment: int = 400  # real-axis quadrature nodes per band segment


def quantum_keff(chain: Chain, *, k_int: float, lam: float, temperature: float,
                 s: ScphSettings) -> scph.ScphResult:
    """Quantum SCPH spring (Eq. SCPH with Eq. M) at one temperature."""
    return scph.solve_scph(chain, k_int=k_int, lam=lam, mixing=s.mixing, tol=s.tol, max_iter=s.max_iter,
                           y2_of=lambda c: scph.y2_quantum(c, temperature, xi_cut_factor=s.xi_cut_factor,
                                                           n_quad=s.n_quad))


def band_average(chain: Chain, n_per_segment: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(⟨𝒯⟩, nodes, weights, 𝒯 at nodes) on [0, ω_c]."""
    nodes, weights = continuum_quadrature(chain, n_per_segment)
    trans = transmission(chain, nodes)
    return float(np.sum(weights * trans) / chain.continuum_edges()[0]), nodes, weights, trans


def reduced_model(*, m_left: float, k_left: float, m_right: float, k_right: float, k_int: float,
                  lam: float, n_cells: int, temperatures: list[float], n_omega: int,
                  settings: ScphSettings) -> dict:
    """SCPH table, transmission curves and analytic checks for the reduced model.

    Returns a dict of arrays (per temperature: ``keff_quantum``, ``keff_classical`` (real-axis
    GF ⟨y²⟩), ``keff_closed`` (Eq. CF), ``keff_boltzmann`` (k_I + 3λ⟨y²⟩_exact), ``y2_quantum``,
    ``tavg_harmonic``, ``tavg_quartic``; curves ``omega`` (n_omega,), ``trans_harmonic``,
    ``trans_quartic`` (nT, n_omega)) and a dict ``checks`` of scalar errors.
    """
    s = settings
    dev = interface_device(m_left=m_left, k_left=k_left, m_right=m_right, k_right=k_right,
                           k_int=k_int, n_cells=n_cells)
    top, cut = dev.band_top(), dev.continuum_edges()[0]
    omega = np.linspace(1e-3 * top, 1.1 * top, n_omega)  # ω = 0 itself is singular (translation mode)
    trans_h = transmission(dev, omega)
    tavg_h = band_average(dev, s.n_per_segment)[0]
    rows = {k: [] for k in ("keff_quantum", "keff_classical", "keff_closed", "keff_boltzmann", "y2_quantum",
                            "tavg_harmonic", "tavg_quartic", "tavg_harmonic_scph_path")}
    trans_q, y2_mismatch, y2_cl_err = [], [], []
    for t in temperatures:
        q = quantum_keff(dev, k_int=k_int, lam=lam, temperature=t, s=s)
        quartic = dev.with_bond(q.k_eff)
        rows["keff_quantum"].append(q.k_eff)
        rows["y2_quantum"].append(q.y2)
        trans_q.append(transmission(quartic, omega))
        rows["tavg_quartic"].append(band_average(quartic, s.n_per_segment)[0])
        # the harmonic model through the same SCPH code path (λ = 0): must not depend on T
        h = quantum_keff(dev, k_int=k_int, lam=0.0, temperature=t, s=s)
        rows["tavg_harmonic_scph_path"].append(band_average(dev.with_bond(h.k_eff), s.n_per_segment)[0])
        rows["tavg_harmonic"].append(tavg_h)
        # Matsubara (Eq. M) against the real-axis form (Eq. Y): no bound states here
        y2_mismatch.append(abs(scph.y2_real_axis(quartic, t, n_per_segment=s.n_per_segment) / q.y2 - 1))
        if t > 0:
            c = scph.solve_scph(dev, k_int=k_int, lam=lam, mixing=s.mixing, tol=1e-9, max_iter=s.max_iter,
                                y2_of=lambda ch: scph.y2_real_axis(ch, t, quantum=False,
                                                                   n_per_segment=s.n_per_segment))
            rows["keff_classical"].append(c.k_eff)
            y2_cl_err.append(abs(c.y2 * c.k_eff / t - 1))  # Eq. Y (classical) vs k_BT/k_eff
            rows["keff_closed"].append(scph.keff_closed_form(k_int, lam, t))
            rows["keff_boltzmann"].append(k_int + 3 * lam * scph.y2_boltzmann(k_int, lam, t))
        else:
            for key in ("keff_classical", "keff_closed", "keff_boltzmann"):
                rows[key].append(k_int)  # classical limit at T = 0: no fluctuation
    out = {k: np.asarray(v) for k, v in rows.items()}
    positive = np.asarray(temperatures) > 0
    z_l, z_r = np.sqrt(k_left * m_left), np.sqrt(k_right * m_right)
    t_low = float(transmission(dev, np.array([1e-4]))[0])
    above = np.linspace(cut * (1 + 1e-9), 1.2 * top, 200)
    t_above = [transmission(dev.with_bond(k), above) for k in np.r_[k_int, out["keff_quantum"]]]
    cf_err = np.abs(out["keff_classical"][positive] / out["keff_closed"][positive] - 1)
    checks = {
        # T(ω→0) → 4 Z_L Z_R/(Z_L + Z_R)² (acoustic mismatch limit)
        "check_impedance_err": abs(t_low / (4 * z_l * z_r / (z_l + z_r) ** 2) - 1),
        "check_above_cutoff_max": float(np.max(np.abs(t_above))),
        "check_y2_classical_err": float(max(y2_cl_err, default=0.0)),
        "check_closed_form_err": float(cf_err.max(initial=0.0)),
        "check_matsubara_vs_real_err": float(max(y2_mismatch)),
        "check_keff_monotone": float(np.min(np.diff(out["keff_quantum"]))) if len(temperatures) > 1 else 0.0,
    }
    out.update(omega=omega, trans_harmonic=trans_h, trans_quartic=np.asarray(trans_q),
               temperatures=np.asarray(temperatures, float))
    return {"arrays": out, "checks": checks}


def keff_curves(*, m_left: float, k_left: float, m_right: float, k_right: float, k_int: float, lam: float,
                n_cells: int, temperatures: np.ndarray, settings: ScphSettings) -> dict:
    """k_eff(T) on a dense reduced-T grid for the figure: quantum, classical (Eq. CF), Boltzmann."""
    dev = interface_device(m_left=m_left, k_left=k_left, m_right=m_right, k_right=k_right,
                           k_int=k_int, n_cells=n_cells)
    quantum = [quantum_keff(dev, k_int=k_int, lam=lam, temperature=t, s=settings).k_eff for t in temperatures]
    closed = [scph.keff_closed_form(k_int, lam, t) for t in temperatures]
    boltz = [k_int + 3 * lam * scph.y2_boltzmann(k_int, lam, t) for t in temperatures]
    return {"keff_T": np.asarray(temperatures, float), "keff_quantum_line": np.asarray(quantum),
            "keff_closed_line": np.asarray(closed), "keff_boltzmann_line": np.asarray(boltz)}


def physical_model(phys: PhysicalInterface, *, n_cells: int, temperatures_K: list[float],
                   line_temperatures_K: np.ndarray, n_omega: int, settings: ScphSettings) -> dict:
    """Harmonic vs quartic-SCPH transmission and quantum Landauer conductance in physical units.

    Returns arrays: ``freq_THz`` (n_omega,), ``trans_harmonic_phys`` (n_omega,),
    ``trans_quartic_phys`` (nT, n_omega) at ``temperatures_K``; per temperature
    ``keff_eV_per_A2``, ``G_harmonic_pW_per_K``, ``G_quartic_pW_per_K``, ``tavg_*``; the same
    on ``line_temperatures_K`` for the conductance figure (``line_*``); plus ``units``.
    """
    u = phys.units()
    red = phys.dimensionless()
    lam, k_int = red.pop("lam"), red["k_int"]
    dev = interface_device(**red, n_cells=n_cells)
    top = dev.band_top()
    omega = np.linspace(1e-3 * top, 1.1 * top, n_omega)  # ω = 0 itself is singular (translation mode)
    tavg_h, nodes, weights, trans_nodes_h = band_average(dev, settings.n_per_segment)

    def at(t_kelvin: float) -> dict:
        t = float(u.temperature(t_kelvin))
        q = quantum_keff(dev, k_int=k_int, lam=lam, temperature=t, s=settings)
        quartic = dev.with_bond(q.k_eff)
        tavg_q, _, _, trans_nodes_q = band_average(quartic, settings.n_per_segment)
        return {"keff": q.k_eff, "tavg_q": tavg_q,
                "g_h": landauer_quantum(nodes, weights, trans_nodes_h, t),
                "g_q": landauer_quantum(nodes, weights, trans_nodes_q, t),
                "trans": transmission(quartic, omega)}

    main = [at(t) for t in temperatures_K]
    line = [at(t) for t in line_temperatures_K]
    to_pw = u.conductance_to_pW_per_K
    return {
        "freq_THz": u.omega_to_THz(omega), "trans_harmonic_phys": transmission(dev, omega),
        "trans_quartic_phys": np.array([r["trans"] for r in main]),
        "temperatures_K": np.asarray(temperatures_K, float),
        "keff_eV_per_A2": u.spring_to_eV_per_A2([r["keff"] for r in main]),
        "G_harmonic_pW_per_K": to_pw([r["g_h"] for r in main]),
        "G_quartic_pW_per_K": to_pw([r["g_q"] for r in main]),
        "tavg_harmonic_phys": np.full(len(main), tavg_h),
        "tavg_quartic_phys": np.array([r["tavg_q"] for r in main]),
        "line_temperatures_K": np.asarray(line_temperatures_K, float),
        "line_keff_eV_per_A2": u.spring_to_eV_per_A2([r["keff"] for r in line]),
        "line_G_harmonic_pW_per_K": to_pw([r["g_h"] for r in line]),
        "line_G_quartic_pW_per_K": to_pw([r["g_q"] for r in line]),
        "reduced_params": {**red, "lam": lam}, "units": u.describe(),
    }
