"""Mean-field predictions for the NEMD set-up of ``md.py`` (same chain, same Langevin leads).

* harmonic: classical Landauer conductance G_cl = (1/2π) ∫ 𝒯(ω) dω (``chain.py`` Eq. L)
  of the finite chain with Σ = −iγmω on its end atoms (Eq. Σ_γ); exact for harmonic MD.
* quartic: the same with the interface spring k_eff from the classical *non-equilibrium*
  SCPH, k_eff = k_I + 3λ⟨y²⟩_NESS[k_eff] (``scph.py`` Eq. SCPH with Eq. NESS) at the run's
  bath temperatures T_hot, T_cold. This is the elastic (mean-field) picture that the MD,
  which carries the full quartic force and hence also inelastic scattering, is tested on.
"""
from __future__ import annotations

import numpy as np

from . import scph
from .chain import Chain, landauer_classical, langevin_chain, panel_nodes, transmission
from .md import NemdSetup


def nemd_chain(setup: NemdSetup) -> Chain:
    """The NEMD chain as a ``chain.Chain`` with Langevin leads."""
    return langevin_chain(n_left=setup.n_left, n_right=setup.n_right, m_left=setup.m_left,
                          k_left=setup.k_left, m_right=setup.m_right, k_right=setup.k_right,
                          k_int=setup.k_int, gamma_left=setup.gamma_left, gamma_right=setup.gamma_right)


def classical_conductance(chain: Chain, *, n_panels: int) -> float:
    """G_cl of Eq. L for a Langevin-lead chain (composite Gauss–Legendre up to 1.05·band top)."""
    nodes, weights = panel_nodes(0.0, 1.05 * chain.band_top(), n_panels)
    return landauer_classical(weights, transmission(chain, nodes))


def predict(setup: NemdSetup, *, lam: float, t_hot: float, t_cold: float, n_panels: int = 200,
            mixing: float = 0.5, tol: float = 1e-10) -> dict:
    """Predictions for one run: ``g_landauer`` (k_I), ``g_scph`` (k_eff), ``keff``, ``y2_scph``
    (⟨y²⟩_NESS with k_eff) and ``y2_harmonic`` (with k_I), all in reduced units."""
    chain = nemd_chain(setup)
    res = scph.solve_scph(chain, k_int=setup.k_int, lam=lam, mixing=mixing, tol=tol,
                          y2_of=lambda c: scph.y2_ness(c, t_hot, t_cold, n_panels=n_panels))
    return {"g_landauer": classical_conductance(chain, n_panels=n_panels),
            "g_scph": classical_conductance(chain.with_bond(res.k_eff), n_panels=n_panels),
            "keff": res.k_eff, "y2_scph": res.y2,
            "y2_harmonic": scph.y2_ness(chain, t_hot, t_cold, n_panels=n_panels)}


def equilibrium_check(setup: NemdSetup, *, temperature: float, n_panels: int = 200) -> float:
    """Quadrature check of Eq. NESS: at T_hot = T_cold, ⟨y²⟩ must equal k_BT/k_I (free chain)."""
    y2 = scph.y2_ness(nemd_chain(setup), temperature, temperature, n_panels=n_panels)
    return abs(y2 * setup.k_int / temperature - 1)


def prediction_lines(setup: NemdSetup, *, lam: float, temperatures: np.ndarray, dt_rel: float,
                     n_panels: int = 200) -> dict:
    """G_landauer and G_scph along a grid of mean temperatures (T_hot,cold = T(1 ± dt_rel/2))."""
    rows = [predict(setup, lam=lam, t_hot=t * (1 + dt_rel / 2), t_cold=t * (1 - dt_rel / 2), n_panels=n_panels)
            for t in temperatures]
    return {"md_line_T": np.asarray(temperatures, float),
            "md_line_G_landauer": np.array([r["g_landauer"] for r in rows]),
            "md_line_G_scph": np.array([r["g_scph"] for r in rows]), "dt_rel": dt_rel}
