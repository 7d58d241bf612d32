"""Quartic interface bond and its self-consistent phonon (Hartree / SCPH) spring.

Interface potential (atoms a, b; y = u_a − u_b)::

    V_I(y) = ½ k_I y² + ¼ λ y⁴                                            (Eq. V)

Lowest-order (Hartree) treatment, equal to the variational optimum of a trial harmonic
bond (Gibbs–Bogoliubov): replace V_I by ½ k_eff y² with::

    k_eff = ⟨∂²V_I/∂y²⟩ = k_I + 3 λ ⟨y²⟩_T[k_eff]                       (Eq. SCPH)

solved by linear mixing (default 0.5). ⟨y²⟩ is the fluctuation of the bond variable in the
harmonic system that carries k_eff, from the device Green's function of ``chain.py``:

* real-frequency form (fluctuation–dissipation theorem)::

      ⟨y²⟩ = (2ħ/π) ∫₀^∞ dω w(ω) (−Im G_yy(ω)),  w = n_B + ½ (quantum), k_BT/ħω (classical)  (Eq. Y)

* equivalent imaginary-axis (Matsubara) form, used by default because it needs no
  broadening and automatically includes bound (localized) states, which are δ peaks
  on the real axis::

      ⟨y²⟩ = k_BT Σ_{n∈ℤ} C(ξ_n),  C(ξ) = −G_yy(iξ) > 0,  ξ_n = 2πn k_BT/ħ       (Eq. M)
      T → 0:  ⟨y²⟩ = (ħ/π) ∫₀^∞ C(ξ) dξ

  The n = 0 term k_BT·C(0) is the classical result; for a chain without on-site springs
  (a tree) C(0) = 1/k_eff exactly, so classically ⟨y²⟩ = k_BT/k_eff and Eq. SCPH has the
  closed form::

      k_eff = [k_I + sqrt(k_I² + 12 λ k_BT)] / 2                         (Eq. CF)

* non-equilibrium (classical, Langevin baths at T_L ≠ T_R, the NEMD set-up)::

      ⟨y²⟩ = (2/π) Σ_α m_α γ_α T_α ∫₀^∞ |G_{aα} − G_{bα}|² dω               (Eq. NESS)

  (fluctuation–dissipation per bath: Γ_α T_α/ω = 2 m_α γ_α T_α).

The exact classical ⟨y²⟩ of Eq. V: in a chain without on-site springs the bond variables
are independent, so y has the Boltzmann marginal ∝ exp(−V_I(y)/k_BT) (Eq. B). It is the
reference for the Hartree approximation at high T.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import integrate, special

from .chain import Chain, LangevinLead, bond_green, green, panel_nodes, segment_nodes


# --- ⟨y²⟩ of a harmonic chain -----------------------------------------------------------

def bond_compliance_static(chain: Chain) -> float:
    """C(0) = −G_yy(ω = 0): static compliance of the bond variable (1/spring units).

    A chain without on-site springs is a tree, so C(0) = 1/k_bond exactly (the ω → 0
    Green's function is singular there because of the translation mode).
    """
    if not np.any(chain.onsite):
        return 1.0 / chain.k_bond
    return float(-bond_green(chain, np.array([0.0])).real[0])


def y2_classical(chain: Chain, temperature: float) -> float:
    """Eq. M, n = 0 term only: classical ⟨y²⟩ = k_BT·C(0)."""
    return temperature * bond_compliance_static(chain)


def _matsubara_compliance(chain: Chain, xi: np.ndarray) -> np.ndarray:
    return -bond_green(chain, 1j * xi).real


def y2_quantum(chain: Chain, temperature: float, *, xi_cut_factor: float = 50.0,
               n_quad: int = 200, max_terms: int = 400_000) -> float:
    """Eq. M: quantum ⟨y²⟩ (zero point included) on the imaginary frequency axis.

    T = 0: Gauss–Legendre in ξ = s·tan θ (s = largest band edge). T > 0: explicit
    Matsubara sum up to ξ_N ≥ ``xi_cut_factor``·s plus the asymptotic tail
    C(ξ) ≈ (1/m_a + 1/m_b)/ξ², summed exactly with the trigamma function.
    """
    s = chain.band_top()
    a = chain.bond
    c_inf = 1.0 / chain.masses[a] + 1.0 / chain.masses[a + 1]
    if temperature <= 0:
        x, w = np.polynomial.legendre.leggauss(n_quad)
        theta, wt = (x + 1) * np.pi / 4, w * np.pi / 4  # θ ∈ (0, π/2)
        xi = s * np.tan(theta)
        jac = s / np.cos(theta) ** 2
        return float(np.sum(wt * jac * _matsubara_compliance(chain, xi)) / np.pi)
    step = 2 * np.pi * temperature
    n_terms = min(int(math.ceil(xi_cut_factor * s / step)), max_terms)
    xi = step * np.arange(1, n_terms + 1)
    total = bond_compliance_static(chain) + 2.0 * np.sum(_matsubara_compliance(chain, xi))
    tail = 2.0 * c_inf / step**2 * special.polygamma(1, n_terms + 1)
    return float(temperature * (total + tail))


def y2_real_axis(chain: Chain, temperature: float, *, quantum: bool = True,
                 n_per_segment: int = 400) -> float:
    """Eq. Y on the real axis between the lead band edges (no η, exact Im G).

    Valid when the system has no bound states above the leads' bands (they are δ peaks
    that a real-axis quadrature misses); :func:`y2_quantum` covers that case.
    """
    edges = [0.0] + chain.continuum_edges()
    omega, wts = segment_nodes(edges, n_per_segment)
    spec = -bond_green(chain, omega).imag  # ≥ 0
    if quantum:
        if temperature <= 0:
            weight = np.full_like(omega, 0.5)
        else:
            weight = 0.5 / np.tanh(omega / (2 * temperature))  # n_B + ½
    else:
        weight = temperature / omega
    return float(2.0 / np.pi * np.sum(wts * weight * spec))


def y2_ness(chain: Chain, t_left: float, t_right: float, *, omega_max: float | None = None,
            n_panels: int = 200, order: int = 16) -> float:
    """Eq. NESS: classical ⟨y²⟩ between two Langevin baths at T_left, T_right."""
    if not (isinstance(chain.left, LangevinLead) and isinstance(chain.right, LangevinLead)):
        raise ValueError("y2_ness: needs Langevin leads on both ends")
    top = 1.05 * chain.band_top() if omega_max is None else omega_max
    omega, wts = panel_nodes(0.0, top, n_panels, order)
    gf = green(chain, omega)
    a = chain.bond
    gy_left = gf.first[:, a] - gf.first[:, a + 1]  # G_{a,0} − G_{b,0}
    gy_right = gf.last[:, a] - gf.last[:, a + 1]
    drive_l = chain.masses[0] * chain.left.gamma * t_left
    drive_r = chain.masses[-1] * chain.right.gamma * t_right
    integrand = drive_l * np.abs(gy_left) ** 2 + drive_r * np.abs(gy_right) ** 2
    return float(2.0 / np.pi * np.sum(wts * integrand))


# --- self-consistency --------------------------------------------------------------------

@dataclass(frozen=True)
class ScphResult:
    """k_eff (spring units), ⟨y²⟩ (length²) at convergence, iterations used."""

    k_eff: float
    y2: float
    n_iter: int


def solve_scph(chain: Chain, *, k_int: float, lam: float, y2_of: Callable[[Chain], float],
               mixing: float = 0.5, tol: float = 1e-10, max_iter: int = 500) -> ScphResult:
    """Eq. SCPH by linear mixing: k ← (1 − α) k + α [k_I + 3λ⟨y²⟩(k)].

    ``y2_of(chain)`` returns ⟨y²⟩ for the chain carrying the current trial spring.
    λ = 0 returns k_I untouched (the harmonic model takes the same code path).
    """
    k = k_int
    y2 = y2_of(chain.with_bond(k))
    if lam == 0.0:
        return ScphResult(k, y2, 0)
    for it in range(1, max_iter + 1):
        k_new = k_int + 3.0 * lam * y2
        k_next = (1.0 - mixing) * k + mixing * k_new
        converged = abs(k_next - k) <= tol * max(abs(k), 1e-300)
        k = k_next
        y2 = y2_of(chain.with_bond(k))
        if converged:
            return ScphResult(k, y2, it)
    raise RuntimeError(f"SCPH did not converge in {max_iter} iterations (k = {k})")


def keff_closed_form(k_int: float, lam: float, temperature: float) -> float:
    """Eq. CF: classical SCPH spring of a bond in a chain without on-site springs."""
    return 0.5 * (k_int + math.sqrt(k_int**2 + 12.0 * lam * temperature))


def y2_boltzmann(k_int: float, lam: float, temperature: float) -> float:
    """Eq. B: exact classical ⟨y²⟩ = ∫y² e^{−V_I/T} / ∫e^{−V_I/T} of the quartic bond."""
    if temperature <= 0:
        return 0.0
    # integrate in units of the thermal length so the integrand is O(1)
    scale = math.sqrt(temperature / max(k_int, math.sqrt(lam * temperature)))

    def boltz(x, p):
        y = x * scale
        return x**p * math.exp(-(0.5 * k_int * y**2 + 0.25 * lam * y**4) / temperature)

    num = integrate.quad(boltz, 0, np.inf, args=(2,), epsabs=0, epsrel=1e-12)[0]
    den = integrate.quad(boltz, 0, np.inf, args=(0,), epsabs=0, epsrel=1e-12)[0]
    return scale**2 * num / den
