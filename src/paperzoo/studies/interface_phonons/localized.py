"""Interface-localized phonons and their temperature dependence through the quartic bond.

Why an extension is needed: in the plain two-chain model (``chain.interface_device`` with
ordinary interface atoms) the SCPH only stiffens a weak bond (k_eff ≪ k_L, k_R); the
interface LDOS has no peak outside the leads' bands and the device has no bound state
(``n_localized_base`` = 0 in the outputs). We considered three ways to obtain localized
modes: (a) interface atoms of a different (lighter) mass or with an on-site term, (b) a
quasi-1D/2D strip with transverse momentum, (c) an interface potential with cross terms
u_a² u_b². This module uses (a), lighter interface atoms, because it is exactly
solvable and physically standard (e.g. H-terminated surfaces carry out-of-band
C–H-like modes):

* a free chain end of mass m' < m/2 carries a surface mode above the band edge 2sqrt(k/m);
  with light interface atoms a, b (masses m_a, m_b) the two surface modes hybridise
  through the interface bond k_eff, which is where the quartic term enters: Eq. SCPH of
  ``scph.py`` (quantum, zero point included; the Matsubara form of ⟨y²⟩ counts the bound
  states, which hold most of the bond's fluctuation here).
* as T grows, k_eff(T) grows, the anti-phase (a against b) interface mode moves further
  above the continuum, its decay length into the leads shrinks and its weight on the two
  interface atoms rises: the quartic term makes the localization temperature dependent.

Variant (c), a cross term ∝ u_a² u_b² in absolute displacements, is not used:
it breaks translation invariance, and its Hartree pinning ∝ ⟨u²⟩ diverges for a free 1D
chain (⟨u²⟩ of a chain atom is infrared divergent), so it is not a clean minimal model.
On-site springs κ_a, κ_b (variant a') stay available as inputs (default 0).

Quantities (dimensionless units of ``chain.py``):

* bound states: zeros of det A(ω) above the highest lead band edge, A = ω²M − K_D − Σ(ω)
  (real there); the eigenvector v on the device with the lead tails normalised as
  N = Σ_i m_i v_i² − Σ_leads (dΣ/dω²) v_end²                                  (Eq. N)
  gives the exact interface weight W = (m_a v_a² + m_b v_b²)/N and the decay length
  ξ = −1/ln|k g(ω_b)| (sites) into each lead.
* finite-device eigenmodes (``n_side`` lead atoms on each side, free ends): inverse
  participation ratio IPR = Σ_i e_i⁴ of the mass-weighted normalised eigenvector
  (IPR ≈ 1/N for extended modes, O(1) for localized ones) and the participation ratio
  PR = 1/(N·IPR).
* interface LDOS ρ_a(ω) (``chain.local_dos``): a δ peak outside the band for each bound
  state, drawn with a small broadening η.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .chain import (Chain, SemiInfiniteLead, interface_device, local_dos, segment_nodes, self_energy_dz,
                    surface_green)
from .scph import solve_scph


@dataclass(frozen=True)
class BoundState:
    """A bound (localized) state of the semi-infinite system.

    omega: frequency; weight_a/weight_b: mass-weighted weight on atoms a/b (Eq. N);
    weight_device: on the whole device; decay_left/right: decay lengths in sites.
    """

    omega: float
    weight_a: float
    weight_b: float
    weight_device: float
    decay_left: float
    decay_right: float

    @property
    def weight_interface(self) -> float:
        return self.weight_a + self.weight_b


def _system_matrix_real(chain: Chain, omega: float) -> tuple[np.ndarray, np.ndarray]:
    d = chain.system_diagonal(np.array([omega]))[0]
    return d.real, chain.springs


def _determinant(chain: Chain, omega: float) -> float:
    """det A(ω) by the continuant recursion, scaled to avoid overflow (sign is what matters)."""
    d, e = _system_matrix_real(chain, omega)
    p_prev, p = 1.0, d[0]
    for i in range(1, d.size):
        p_prev, p = p, d[i] * p - e[i - 1] ** 2 * p_prev
        scale = max(abs(p), abs(p_prev), 1e-300)
        p_prev, p = p_prev / scale, p / scale
    return p


def _null_vector(chain: Chain, omega: float) -> np.ndarray:
    """Device part v of the bound state at ``omega`` (A(ω)v = 0), from the first row down."""
    d, e = _system_matrix_real(chain, omega)
    v = np.zeros(d.size)
    v[0] = 1.0
    if d.size > 1:
        v[1] = -d[0] * v[0] / e[0]
    for i in range(1, d.size - 1):
        v[i + 1] = -(d[i] * v[i] + e[i - 1] * v[i - 1]) / e[i]
    return v


def bound_states(chain: Chain, *, n_scan: int = 4000) -> list[BoundState]:
    """All bound states above the leads' continuum (both leads must be semi-infinite)."""
    if not all(isinstance(lead, SemiInfiniteLead) for lead in (chain.left, chain.right)):
        raise ValueError("bound_states: needs semi-infinite leads")
    lo = chain.band_top() * (1 + 1e-9)
    diag = chain.force_constant_diagonal()
    # Gershgorin bound on the eigenvalues ω² of M⁻¹K (row sums of |K| ≤ 2 K_ii), leads included
    hi_sq = max(np.max(2 * diag / chain.masses),
                4 * chain.left.spring / chain.left.mass, 4 * chain.right.spring / chain.right.mass)
    hi = np.sqrt(hi_sq) * 1.01
    grid = np.linspace(lo, hi, n_scan)
    det = np.array([_determinant(chain, w) for w in grid])
    states = []
    for i in np.nonzero(np.sign(det[:-1]) * np.sign(det[1:]) < 0)[0]:
        w = optimize.brentq(lambda x: _determinant(chain, x), grid[i], grid[i + 1], xtol=1e-14, rtol=1e-14)
        v = _null_vector(chain, w)
        tail_l = -self_energy_dz(chain.left, np.array([w])).real[0] * v[0] ** 2
        tail_r = -self_energy_dz(chain.right, np.array([w])).real[0] * v[-1] ** 2
        dev = float(np.sum(chain.masses * v**2))
        norm = dev + tail_l + tail_r
        a = chain.bond
        decay = []
        for lead in (chain.left, chain.right):
            kg = abs(lead.spring * surface_green(np.array([w]), lead.mass, lead.spring).real[0])
            decay.append(-1.0 / np.log(kg) if 0 < kg < 1 else 0.0)
        states.append(BoundState(omega=float(w), weight_a=chain.masses[a] * v[a] ** 2 / norm,
                                 weight_b=chain.masses[a + 1] * v[a + 1] ** 2 / norm,
                                 weight_device=dev / norm, decay_left=decay[0], decay_right=decay[1]))
    return states


@dataclass(frozen=True)
class FiniteModes:
    """Eigenmodes of a finite chain: omega (N,), ipr (N,), interface weight (N,) of atoms a, b."""

    omega: np.ndarray
    ipr: np.ndarray
    weight_interface: np.ndarray


def finite_modes(chain: Chain, n_side: int) -> FiniteModes:
    """Diagonalise the device plus ``n_side`` lead atoms on each side (free ends).

    Mass-weighted dynamical matrix D = M^{-1/2} K M^{-1/2}; e = eigenvectors (Σ e_i² = 1).
    """
    left, right = chain.left, chain.right
    masses = np.r_[[left.mass] * n_side, chain.masses, [right.mass] * n_side]
    springs = np.r_[[left.spring] * n_side, chain.springs, [right.spring] * n_side]
    onsite = np.r_[np.zeros(n_side), chain.onsite, np.zeros(n_side)]
    n = masses.size
    k = np.diag(onsite.astype(float))
    idx = np.arange(n - 1)
    k[idx, idx] += springs
    k[idx + 1, idx + 1] += springs
    k[idx, idx + 1] -= springs
    k[idx + 1, idx] -= springs
    s = 1.0 / np.sqrt(masses)
    w2, e = np.linalg.eigh(s[:, None] * k * s[None, :])
    a = n_side + chain.bond
    return FiniteModes(omega=np.sqrt(np.clip(w2, 0, None)), ipr=np.sum(e**4, axis=0),
                       weight_interface=e[a] ** 2 + e[a + 1] ** 2)


def light_interface_device(*, m_left: float, k_left: float, m_right: float, k_right: float,
                           k_int: float, m_a: float, m_b: float, onsite_a: float = 0.0,
                           onsite_b: float = 0.0) -> Chain:
    """Two-atom device [a, b] with masses m_a, m_b (and on-site springs) between the leads."""
    return interface_device(m_left=m_left, k_left=k_left, m_right=m_right, k_right=k_right, k_int=k_int,
                            n_cells=1, m_a=m_a, m_b=m_b, onsite_a=onsite_a, onsite_b=onsite_b)


def localization_vs_temperature(*, m_left: float, k_left: float, m_right: float, k_right: float,
                                k_int: float, lam: float, m_a: float, m_b: float, onsite_a: float,
                                onsite_b: float, temperatures: list[float], n_side: int,
                                ldos_omega: np.ndarray, ldos_eta: float, y2_of_t) -> dict:
    """Localized interface mode versus T through the quantum SCPH spring.

    ``y2_of_t(temperature)`` returns the function chain -> ⟨y²⟩ used inside the SCPH loop
    (``elastic.quantum_keff`` supplies the quantum Matsubara one). Per temperature:
    ``keff``, bound-state count ``n_bound``, and for the interface mode (the bound state with
    the largest weight on a + b): ``omega``, ``weight`` (a + b), ``weight_a``, ``weight_b``,
    ``decay_left``/``decay_right`` (sites), finite-device ``ipr`` and ``pr``; ``ldos_a``,
    ``ldos_b`` (nT, nω) broadened by ``ldos_eta``; ``finite_err``: |ω_finite − ω_bound|.
    Also the harmonic reference (λ = 0) ``omega_harmonic`` and the plain-interface count
    ``n_bound_base`` (m_a = m_L, m_b = m_R, no on-site springs).
    """
    dev = light_interface_device(m_left=m_left, k_left=k_left, m_right=m_right, k_right=k_right,
                                 k_int=k_int, m_a=m_a, m_b=m_b, onsite_a=onsite_a, onsite_b=onsite_b)
    base = interface_device(m_left=m_left, k_left=k_left, m_right=m_right, k_right=k_right,
                            k_int=k_int, n_cells=1)
    rows = {k: [] for k in ("keff", "n_bound", "omega", "weight", "weight_a", "weight_b", "decay_left",
                            "decay_right", "ipr", "pr", "finite_err", "ldos_a", "ldos_b", "ldos_sum_err")}
    for t in temperatures:
        res = solve_scph(dev, k_int=k_int, lam=lam, y2_of=y2_of_t(t))
        chain = dev.with_bond(res.k_eff)
        states = bound_states(chain)
        rows["keff"].append(res.k_eff)
        rows["n_bound"].append(len(states))
        rows["ldos_a"].append(local_dos(chain, ldos_omega, chain.bond, eta=ldos_eta))
        rows["ldos_b"].append(local_dos(chain, ldos_omega, chain.bond + 1, eta=ldos_eta))
        if not states:
            for key in ("omega", "weight", "weight_a", "weight_b", "decay_left", "decay_right", "ipr", "pr",
                        "finite_err", "ldos_sum_err"):
                rows[key].append(np.nan)
            continue
        mode = max(states, key=lambda s: s.weight_interface)
        fm = finite_modes(chain, n_side)
        j = int(np.argmin(np.abs(fm.omega - mode.omega)))
        rows["omega"].append(mode.omega)
        rows["weight"].append(mode.weight_interface)
        rows["weight_a"].append(mode.weight_a)
        rows["weight_b"].append(mode.weight_b)
        rows["decay_left"].append(mode.decay_left)
        rows["decay_right"].append(mode.decay_right)
        rows["ipr"].append(fm.ipr[j])
        rows["pr"].append(1.0 / (fm.ipr[j] * fm.omega.size))
        rows["finite_err"].append(max(abs(fm.omega[np.argmin(np.abs(fm.omega - s.omega))] - s.omega)
                                      for s in states))
        # sum rule: continuum part of ρ_a (η = 0, exact) + δ weights of all bound states = 1
        nodes, wts = segment_nodes([0.0] + chain.continuum_edges(), 400)
        cont = float(np.sum(wts * local_dos(chain, nodes, chain.bond)))
        rows["ldos_sum_err"].append(abs(cont + sum(s.weight_a for s in states) - 1))
    harmonic = bound_states(dev)
    out = {k: np.asarray(v, dtype=float) for k, v in rows.items()}
    out.update(temperatures=np.asarray(temperatures, float), ldos_omega=np.asarray(ldos_omega, float),
               band_top=dev.band_top(), n_bound_base=len(bound_states(base)),
               omega_harmonic=max(harmonic, key=lambda s: s.weight_interface).omega if harmonic else np.nan,
               n_bound_harmonic=len(harmonic))
    return out
