"""1D harmonic chains: lead self-energies, device Green's function, Caroli transmission,
Landauer thermal conductance (the AGF/NEGF core of the minimal model).

Units: dimensionless, ħ = k_B = 1 (see ``units.py``). Displacements u_i are longitudinal;
a chain is a list of masses m_i, nearest-neighbour springs k_i between atoms i and i+1,
and optional on-site springs κ_i. The *device* is the finite part; it is attached at its
first and last atom to either

* a semi-infinite chain lead (mass m, spring k), coupled by the lead's own spring k, or
* a Langevin bath on the end atom (friction γ, the lead of the NEMD runs in ``md.py``).

Green's function convention (retarded, u ~ e^{-iωt})::

    G(ω) = [ω² M − K_D − Σ_L(ω) − Σ_R(ω)]⁻¹                          (Eq. G)

with K_D the device force-constant matrix (it includes the springs to the leads).

* Semi-infinite lead, surface Green's function of the isolated lead with z = ω²::

      g = [a − sqrt(a − 2k)·sqrt(a + 2k)] / (2k²),   a = z m − 2k       (Eq. g)

  the root of k²g² − a g + 1 = 0 with |k g| ≤ 1. Writing the square root as the product
  of two principal roots gives the retarded branch for every ω in the closed upper half
  plane (Im g ≤ 0 inside the band ω² < 4k/m, real and decaying outside it) and the
  decaying root on the imaginary axis ω = iξ used by the Matsubara sums in ``scph.py``,
  so no broadening η is needed. Σ = k² g on the end atom.
* Langevin bath on an end atom of mass m: Σ = −i γ m ω                (Eq. Σ_γ)
  (friction force −mγu̇); impedance matching to a chain (m, k) is γ = sqrt(k/m), which makes
  Γ(ω→0) equal to the lead's 2ω sqrt(k m).

Broadening Γ = i(Σ − Σ†) = −2 Im Σ; Caroli transmission (1D: scalar Γ on the two ends)::

    𝒯(ω) = Tr[Γ_L G Γ_R G†] = Γ_L Γ_R |G_{1N}|²                       (Eq. Caroli)

Landauer conductance per channel::

    G_q(T) = ∫₀^∞ dω/2π · ħω ∂n_B/∂T · 𝒯(ω),   G_cl = (k_B/2π) ∫₀^∞ 𝒯(ω) dω   (Eq. L)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class SemiInfiniteLead:
    """A semi-infinite monatomic chain (mass, spring) coupled to the device by ``spring``."""

    mass: float
    spring: float

    @property
    def band_top(self) -> float:
        """Upper band edge 2 sqrt(k/m) of the lead (rad/time unit)."""
        return 2.0 * np.sqrt(self.spring / self.mass)

    @property
    def impedance(self) -> float:
        """Acoustic impedance Z = sqrt(k m) (long-wavelength limit)."""
        return float(np.sqrt(self.spring * self.mass))


@dataclass(frozen=True)
class LangevinLead:
    """A Langevin bath on the end atom: friction rate ``gamma`` (force −m γ u̇)."""

    gamma: float


Lead = SemiInfiniteLead | LangevinLead


def _upper(x: np.ndarray) -> np.ndarray:
    """Force Im x ≥ 0 with a +0.0 imaginary zero, so principal square roots pick the
    retarded branch also where rounding produced −0.0 (real ω, η = 0)."""
    x = np.asarray(x, dtype=complex)
    return x.real + 1j * np.where(x.imag > 0, x.imag, 0.0)


def surface_green(omega, mass: float, spring: float) -> np.ndarray:
    """Eq. g: surface Green's function of a semi-infinite chain at complex ``omega``.

    ``omega``: array of frequencies in the first quadrant (real ω ≥ 0, or ω = iξ).
    Returns g with the same shape, in units of 1/spring.
    """
    omega = np.asarray(omega, dtype=complex)
    zm = _upper(omega**2 * mass)  # a + 2k, formed directly so small ω keeps its digits
    a = zm - 2.0 * spring
    return (a - np.sqrt(zm - 4.0 * spring) * np.sqrt(zm)) / (2.0 * spring**2)


def self_energy(lead: Lead, omega, end_mass: float) -> np.ndarray:
    """Σ(ω) on the device end atom (mass ``end_mass``) for a lead of either kind."""
    omega = np.asarray(omega, dtype=complex)
    if isinstance(lead, SemiInfiniteLead):
        return lead.spring**2 * surface_green(omega, lead.mass, lead.spring)
    return -1j * lead.gamma * end_mass * omega  # Eq. Σ_γ


def self_energy_dz(lead: SemiInfiniteLead, omega) -> np.ndarray:
    """dΣ/d(ω²) of a semi-infinite lead (needed to normalise bound states).

    From k²g² − a g + 1 = 0: dg/da = g/(2k²g − a), and da/dz = m.
    """
    g = surface_green(omega, lead.mass, lead.spring)
    a = np.asarray(omega, dtype=complex) ** 2 * lead.mass - 2.0 * lead.spring
    return lead.spring**2 * lead.mass * g / (2.0 * lead.spring**2 * g - a)


@dataclass(frozen=True)
class Chain:
    """A finite device chain between two leads.

    masses: (N,); springs: (N−1,) between i and i+1; onsite: (N,) on-site springs κ_i;
    bond: index i of the interface bond (atoms a = i and b = i + 1), y = u_a − u_b.
    """

    masses: np.ndarray
    springs: np.ndarray
    left: Lead
    right: Lead
    bond: int
    onsite: np.ndarray = field(default=None)

    def __post_init__(self):
        object.__setattr__(self, "masses", np.asarray(self.masses, dtype=float))
        object.__setattr__(self, "springs", np.asarray(self.springs, dtype=float))
        onsite = np.zeros_like(self.masses) if self.onsite is None else np.asarray(self.onsite, float)
        object.__setattr__(self, "onsite", onsite)
        if self.springs.shape != (self.n - 1,) or onsite.shape != (self.n,):
            raise ValueError("Chain: need masses (N,), springs (N-1,), onsite (N,)")
        if not 0 <= self.bond < self.n - 1:
            raise ValueError(f"Chain: interface bond {self.bond} outside 0..{self.n - 2}")

    @property
    def n(self) -> int:
        return self.masses.size

    @property
    def k_bond(self) -> float:
        return float(self.springs[self.bond])

    def with_bond(self, k: float) -> "Chain":
        """The same chain with the interface spring replaced by ``k`` (SCPH k_eff)."""
        springs = self.springs.copy()
        springs[self.bond] = k
        return replace(self, springs=springs)

    def force_constant_diagonal(self) -> np.ndarray:
        """Diagonal of K_D (N,): springs to neighbours, to semi-infinite leads, on-site."""
        diag = self.onsite.copy()
        diag[:-1] += self.springs
        diag[1:] += self.springs
        for lead, end in ((self.left, 0), (self.right, -1)):
            if isinstance(lead, SemiInfiniteLead):
                diag[end] += lead.spring
        return diag

    def band_top(self) -> float:
        """Largest lead band edge: above it a semi-infinite system has only bound states.
        For Langevin leads: a Gershgorin bound on the device spectrum."""
        tops = [lead.band_top for lead in (self.left, self.right) if isinstance(lead, SemiInfiniteLead)]
        if not tops:
            return float(np.sqrt(np.max(2 * self.force_constant_diagonal() / self.masses)))
        return float(max(tops))

    def continuum_edges(self) -> list[float]:
        """Sorted band edges of the semi-infinite leads (breakpoints of the spectral integrands)."""
        return sorted(lead.band_top for lead in (self.left, self.right) if isinstance(lead, SemiInfiniteLead))

    def system_diagonal(self, omega) -> np.ndarray:
        """Diagonal of A(ω) = ω²M − K_D − Σ (nω, N); the off-diagonal is +springs."""
        omega = np.asarray(omega, dtype=complex).reshape(-1)
        d = omega[:, None] ** 2 * self.masses[None, :] - self.force_constant_diagonal()[None, :]
        d = d.astype(complex)
        d[:, 0] -= self_energy(self.left, omega, self.masses[0])
        d[:, -1] -= self_energy(self.right, omega, self.masses[-1])
        return d


@dataclass
class TridiagGreen:
    """Selected elements of G = A⁻¹ for a complex-symmetric tridiagonal A (vectorised over ω).

    diag: (nω, N) G_ii; first: (nω, N) column G_{i,0}; last: (nω, N) column G_{i,N−1};
    upper: (nω, N−1) G_{i,i+1}.
    """

    diag: np.ndarray
    first: np.ndarray
    last: np.ndarray
    upper: np.ndarray


def tridiag_green(d: np.ndarray, e: np.ndarray) -> TridiagGreen:
    """Recursive Green's function of A with diagonal ``d`` (nω, N), off-diagonal ``e`` (N−1,).

    Left/right-connected functions g^L_i = [d_i − e²_{i−1} g^L_{i−1}]⁻¹ and
    g^R_i = [d_i − e²_i g^R_{i+1}]⁻¹; then G_ii = [d_i − e²_{i−1}g^L_{i−1} − e²_i g^R_{i+1}]⁻¹,
    G_{i,N−1} = −g^L_i e_i G_{i+1,N−1}, G_{i,0} = −g^R_i e_{i−1} G_{i−1,0}.
    Cost O(N nω); exact (no η) wherever A is invertible.
    """
    nw, n = d.shape
    gl = np.empty_like(d)
    gr = np.empty_like(d)
    gl[:, 0] = 1.0 / d[:, 0]
    for i in range(1, n):
        gl[:, i] = 1.0 / (d[:, i] - e[i - 1] ** 2 * gl[:, i - 1])
    gr[:, -1] = 1.0 / d[:, -1]
    for i in range(n - 2, -1, -1):
        gr[:, i] = 1.0 / (d[:, i] - e[i] ** 2 * gr[:, i + 1])
    diag = np.empty_like(d)
    for i in range(n):
        s = d[:, i].copy()
        if i > 0:
            s -= e[i - 1] ** 2 * gl[:, i - 1]
        if i < n - 1:
            s -= e[i] ** 2 * gr[:, i + 1]
        diag[:, i] = 1.0 / s
    last = np.empty_like(d)
    last[:, -1] = gl[:, -1]
    for i in range(n - 2, -1, -1):
        last[:, i] = -gl[:, i] * e[i] * last[:, i + 1]
    first = np.empty_like(d)
    first[:, 0] = gr[:, 0]
    for i in range(1, n):
        first[:, i] = -gr[:, i] * e[i - 1] * first[:, i - 1]
    upper = -gl[:, :-1] * e[None, :] * diag[:, 1:]
    return TridiagGreen(diag=diag, first=first, last=last, upper=upper)


def tridiag_solve(d: np.ndarray, e: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve A x = rhs (Thomas algorithm, vectorised over ω): d (nω, N), e (N−1,), rhs (N,).

    Used for the bond response: with rhs = e_a − e_b the near-null translation mode of A at
    ω → 0 is not excited, so G_yy keeps full precision where G_aa + G_bb − 2G_ab would cancel.
    """
    nw, n = d.shape
    cp = np.empty_like(d)
    rp = np.empty_like(d)
    cp[:, 0] = e[0] / d[:, 0] if n > 1 else 0.0
    rp[:, 0] = rhs[0] / d[:, 0]
    for i in range(1, n):
        den = d[:, i] - e[i - 1] * cp[:, i - 1]
        if i < n - 1:
            cp[:, i] = e[i] / den
        rp[:, i] = (rhs[i] - e[i - 1] * rp[:, i - 1]) / den
    x = np.empty_like(d)
    x[:, -1] = rp[:, -1]
    for i in range(n - 2, -1, -1):
        x[:, i] = rp[:, i] - cp[:, i] * x[:, i + 1]
    return x


def green(chain: Chain, omega) -> TridiagGreen:
    """Device Green's function elements (Eq. G) at frequencies ``omega`` (nω,)."""
    return tridiag_green(chain.system_diagonal(omega), chain.springs)


def broadening(chain: Chain, omega) -> tuple[np.ndarray, np.ndarray]:
    """Γ_L, Γ_R = −2 Im Σ at real ω (nω,) each."""
    omega = np.asarray(omega, dtype=float)
    gl = -2.0 * self_energy(chain.left, omega, chain.masses[0]).imag
    gr = -2.0 * self_energy(chain.right, omega, chain.masses[-1]).imag
    return gl, gr


def transmission(chain: Chain, omega) -> np.ndarray:
    """Eq. Caroli: phonon transmission 𝒯(ω) (dimensionless, 0..1) at real ω (nω,)."""
    omega = np.asarray(omega, dtype=float)
    gf = green(chain, omega)
    gam_l, gam_r = broadening(chain, omega)
    return gam_l * gam_r * np.abs(gf.first[:, -1]) ** 2


def bond_green(chain: Chain, omega) -> np.ndarray:
    """G_yy = (e_a − e_b)ᵀ G (e_a − e_b) of the interface bond variable y = u_a − u_b (nω,)."""
    a = chain.bond
    v = np.zeros(chain.n)
    v[a], v[a + 1] = 1.0, -1.0
    x = tridiag_solve(chain.system_diagonal(omega), chain.springs, v)
    return x[:, a] - x[:, a + 1]


def local_dos(chain: Chain, omega, site: int, eta: float = 0.0) -> np.ndarray:
    """Projected phonon DOS ρ_i(ω) = −(2 ω m_i/π) Im G_ii(ω + iη), normalised to ∫₀^∞ ρ_i dω = 1.

    A bound state appears as a δ peak; give ``eta`` > 0 to draw it with width η.
    """
    omega = np.asarray(omega, dtype=float)
    g = green(chain, omega + 1j * eta).diag[:, site]
    return -(2.0 * omega * chain.masses[site] / np.pi) * g.imag


def interface_device(*, m_left: float, k_left: float, m_right: float, k_right: float, k_int: float,
                     n_cells: int = 3, m_a: float | None = None, m_b: float | None = None,
                     onsite_a: float = 0.0, onsite_b: float = 0.0) -> Chain:
    """Device of ``n_cells`` left + ``n_cells`` right atoms between semi-infinite leads.

    The interface bond joins a (last left atom) and b (first right atom) with spring k_int;
    ``m_a``/``m_b`` and ``onsite_a``/``onsite_b`` optionally change those two atoms
    (the localized-mode extension, ``localized.py``).
    """
    masses = np.array([m_left] * n_cells + [m_right] * n_cells, dtype=float)
    springs = np.array([k_left] * (n_cells - 1) + [k_int] + [k_right] * (n_cells - 1), dtype=float)
    onsite = np.zeros(2 * n_cells)
    a = n_cells - 1
    if m_a is not None:
        masses[a] = m_a
    if m_b is not None:
        masses[a + 1] = m_b
    onsite[a], onsite[a + 1] = onsite_a, onsite_b
    return Chain(masses, springs, SemiInfiniteLead(m_left, k_left), SemiInfiniteLead(m_right, k_right),
                 bond=a, onsite=onsite)


def langevin_chain(*, n_left: int, n_right: int, m_left: float, k_left: float, m_right: float,
                   k_right: float, k_int: float, gamma_left: float, gamma_right: float) -> Chain:
    """The finite NEMD chain (free ends) with Langevin baths on atoms 0 and N−1 (Eq. Σ_γ)."""
    masses = np.array([m_left] * n_left + [m_right] * n_right, dtype=float)
    springs = np.array([k_left] * (n_left - 1) + [k_int] + [k_right] * (n_right - 1), dtype=float)
    return Chain(masses, springs, LangevinLead(gamma_left), LangevinLead(gamma_right), bond=n_left - 1)


# --- quadrature and Landauer integrals -------------------------------------------------

def segment_nodes(edges, n_per_segment: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes/weights on [e0, e1], [e1, e2], … in ω = lo + (hi−lo)(1 − cos φ)/2.

    The cosine map clusters nodes at both ends of each segment, which makes the square-root
    behaviour of 1D spectra at band edges smooth in φ (spectral convergence).
    """
    x, w = np.polynomial.legendre.leggauss(n_per_segment)
    phi, wphi = (x + 1) * np.pi / 2, w * np.pi / 2
    nodes, weights = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        nodes.append(lo + (hi - lo) * (1 - np.cos(phi)) / 2)
        weights.append(wphi * (hi - lo) * np.sin(phi) / 2)
    return np.concatenate(nodes), np.concatenate(weights)


def panel_nodes(lo: float, hi: float, n_panels: int, order: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre on [lo, hi] (for resonance-rich finite-chain spectra)."""
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(lo, hi, n_panels + 1)
    h = np.diff(edges)[:, None]
    nodes = edges[:-1, None] + (x[None, :] + 1) * h / 2
    return nodes.ravel(), (w[None, :] * h / 2).ravel()


def occupation_derivative(omega, temperature: float) -> np.ndarray:
    """ħω ∂n_B/∂T in units of k_B: x² eˣ/(eˣ − 1)², x = ħω/k_BT (→ 1 classically, 0 at T = 0)."""
    omega = np.asarray(omega, dtype=float)
    if temperature <= 0:
        return np.zeros_like(omega)
    x = omega / temperature
    with np.errstate(over="ignore"):
        em = np.expm1(-x)  # e^{-x} − 1, stable for small and large x
        out = x**2 * np.exp(-x) / em**2
    return np.where(x > 700, 0.0, np.where(x < 1e-8, 1.0, out))


def landauer_quantum(nodes, weights, trans, temperature: float) -> float:
    """Eq. L (quantum), per channel, in units k_B ω0 (dimensionless G)."""
    return float(np.sum(weights * trans * occupation_derivative(nodes, temperature)) / (2 * np.pi))


def landauer_classical(weights, trans) -> float:
    """Eq. L (classical limit ħω∂n/∂T → k_B), in units k_B ω0."""
    return float(np.sum(weights * trans) / (2 * np.pi))


def continuum_quadrature(chain: Chain, n_per_segment: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes/weights covering [0, lowest lead band top]: where 𝒯(ω) can be non-zero."""
    edges = chain.continuum_edges()
    return segment_nodes([0.0, edges[0]], n_per_segment)
