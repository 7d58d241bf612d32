"""Classical non-equilibrium MD (NEMD) of the two-chain junction with the full quartic bond.

Set-up: a finite chain of ``n_left`` atoms (m_L, k_L) and ``n_right`` atoms (m_R, k_R)
with free ends, joined by V_I(y) = ½ k_I y² + ¼ λ y⁴ (y = u_a − u_b, ``scph.py`` Eq. V).
Atom 0 is coupled to a Langevin bath at T_hot, atom N−1 to one at T_cold (friction
γ_L, γ_R; impedance-matched γ = sqrt(k/m) by default). Units: ħ = k_B = 1 as in
``chain.py``; MD is classical, so it is compared with the *classical* Landauer formula
and the classical non-equilibrium SCPH (``scph.y2_ness``) for the same Langevin leads.

Integrator: BAOAB splitting (Leimkuhler & Matthews 2013) with the O step (exact
Ornstein–Uhlenbeck update v ← c₁v + c₂ sqrt(T/m) ξ, c₁ = e^{−γ dt}, c₂ = sqrt(1 − c₁²))
acting on the two bath atoms only. With γ = 0 it reduces to velocity Verlet, which is
symplectic: the energy test in the test-suite checks that.

Heat current through the interface bond, from left to right (energy per unit time)::

    J = −⟨t_I (v_a + v_b)⟩/2,   t_I = dV_I/d(u_b − u_a) = k_I d + λ d³,  d = u_b − u_a   (Eq. J)

(symmetrised work done by the bond on its two atoms; both halves agree on average in a
steady state). Conductance G = J/(T_hot − T_cold).

Statistics: ``n_replicas`` independent chains are integrated together (numpy arrays of
shape (R, N)). After ``n_equil_blocks`` discarded blocks, J is averaged in ``n_blocks``
blocks of ``block_len`` steps for every replica; the standard error of G uses the
R·n_blocks block means as independent samples (blocks ≫ correlation time).

Random numbers are counter-based: block ``j`` of run ``r`` draws from
``default_rng([seed, r, j])``. The stream is therefore fixed by (seed, run, block), and a
resumed run needs no saved generator state: the checkpoint holds positions, velocities
and accumulators only, and a killed-and-resumed run gives bit-identical numbers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from paperzoo.engine.checkpoint import run_resumable


@dataclass(frozen=True)
class NemdSetup:
    """Chain, bond, baths and integration parameters shared by all runs of one series."""

    n_left: int
    n_right: int
    m_left: float
    k_left: float
    m_right: float
    k_right: float
    k_int: float
    gamma_left: float
    gamma_right: float
    dt: float
    n_replicas: int
    block_len: int
    n_blocks: int
    n_equil_blocks: int

    @property
    def n(self) -> int:
        return self.n_left + self.n_right

    @property
    def bond(self) -> int:
        return self.n_left - 1

    def masses(self) -> np.ndarray:
        return np.array([self.m_left] * self.n_left + [self.m_right] * self.n_right)

    def springs(self) -> np.ndarray:
        return np.array([self.k_left] * (self.n_left - 1) + [self.k_int] + [self.k_right] * (self.n_right - 1))


@dataclass(frozen=True)
class NemdRun:
    """One NEMD run: quartic coefficient and bath temperatures; ``label`` names it."""

    label: str
    lam: float
    t_hot: float
    t_cold: float


@dataclass
class NemdState:
    """Integrator state: positions u, velocities v, forces f, all (R, N)."""

    u: np.ndarray
    v: np.ndarray
    f: np.ndarray
    # accumulators over the production blocks
    j_blocks: np.ndarray  # (n_blocks, R) block means of Eq. J
    y2_sum: float = 0.0   # Σ over production steps and replicas of y²
    ekin_sum: np.ndarray = field(default=None)  # (N,) Σ m v² per atom (kinetic temperature)


def forces(u: np.ndarray, f: np.ndarray, springs: np.ndarray, bond: int, lam: float) -> np.ndarray:
    """F = −∂V/∂u for the chain (R, N) in place into ``f``; returns the interface tension t_I (R,)."""
    d = u[:, 1:] - u[:, :-1]  # (R, N−1) bond extensions u_{i+1} − u_i
    t = d * springs  # (R, N−1) tensions dV/dd
    if lam:
        t[:, bond] += lam * d[:, bond] ** 3
    f[:, :-1] = t
    f[:, -1] = 0.0
    f[:, 1:] -= t
    return t[:, bond].copy()


def energy(u: np.ndarray, v: np.ndarray, masses: np.ndarray, springs: np.ndarray,
           bond: int, lam: float) -> np.ndarray:
    """Total energy per replica (R,): kinetic + harmonic springs + ¼ λ y⁴ of the interface."""
    d = u[:, 1:] - u[:, :-1]
    e = 0.5 * np.sum(masses * v**2, axis=1) + 0.5 * np.sum(springs * d**2, axis=1)
    return e + 0.25 * lam * d[:, bond] ** 4


def integrate_block(state: NemdState, setup: NemdSetup, run: NemdRun, noise: np.ndarray | None,
                    n_steps: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Advance ``n_steps`` BAOAB steps; returns (Σ y², Σ_t J per replica (R,), Σ_t m v² (N,)).

    ``noise``: (n_steps, 2, R) standard normals for the two baths, or None for γ = 0
    (plain velocity Verlet, used by the energy-conservation test).
    """
    u, v, f = state.u, state.v, state.f
    m = setup.masses()
    springs = setup.springs()
    a = setup.bond
    hdt = 0.5 * setup.dt
    hdt_over_m = hdt / m  # (N,)
    c1l, c1r = np.exp(-setup.gamma_left * setup.dt), np.exp(-setup.gamma_right * setup.dt)
    c2l = np.sqrt((1 - c1l**2) * run.t_hot / m[0])
    c2r = np.sqrt((1 - c1r**2) * run.t_cold / m[-1])
    j_sum = np.zeros(u.shape[0])
    y2_sum = 0.0
    ekin = np.zeros(u.shape[1])
    t_int = forces(u, f, springs, a, run.lam)
    for s in range(n_steps):
        v += hdt_over_m * f  # B
        u += hdt * v  # A
        if noise is not None:  # O: exact OU step on the bath atoms only
            v[:, 0] = c1l * v[:, 0] + c2l * noise[s, 0]
            v[:, -1] = c1r * v[:, -1] + c2r * noise[s, 1]
        u += hdt * v  # A
        t_int = forces(u, f, springs, a, run.lam)
        v += hdt_over_m * f  # B
        j_sum -= 0.5 * t_int * (v[:, a] + v[:, a + 1])  # Eq. J
        y = u[:, a] - u[:, a + 1]
        y2_sum += float(y @ y)
        if s % 8 == 0:  # the profile is a diagnostic: sample it sparsely
            ekin += m * np.einsum("rn,rn->n", v, v)
    return y2_sum, j_sum, ekin


@dataclass(frozen=True)
class NemdResult:
    """Outcome of one run: conductance G (k_B ω0 units) with its standard error, mean y²,
    kinetic temperature profile (N,)."""

    label: str
    g: float
    g_se: float
    y2: float
    t_profile: np.ndarray
    j: float


def _init_state(setup: NemdSetup, run: NemdRun, rng: np.random.Generator) -> NemdState:
    t_mean = 0.5 * (run.t_hot + run.t_cold)
    r, n = setup.n_replicas, setup.n
    v = rng.standard_normal((r, n)) * np.sqrt(t_mean / setup.masses())
    return NemdState(u=np.zeros((r, n)), v=v, f=np.zeros((r, n)),
                     j_blocks=np.zeros((setup.n_blocks, r)), ekin_sum=np.zeros(n))


def _result(state: NemdState, setup: NemdSetup, run: NemdRun) -> NemdResult:
    dtemp = run.t_hot - run.t_cold
    jb = state.j_blocks / dtemp  # (n_blocks, R) block means of J/ΔT
    n_samples = jb.size
    n_steps = setup.n_blocks * setup.block_len
    n_prof = setup.n_blocks * len(range(0, setup.block_len, 8)) * setup.n_replicas
    return NemdResult(label=run.label, g=float(jb.mean()), g_se=float(jb.std(ddof=1) / np.sqrt(n_samples)),
                      y2=state.y2_sum / (n_steps * setup.n_replicas), t_profile=state.ekin_sum / n_prof,
                      j=float(state.j_blocks.mean()))


def run_series(setup: NemdSetup, runs: list[NemdRun], *, seed: int, final: str | os.PathLike,
               every_s: float = 120.0, progress: bool = True) -> list[NemdResult]:
    """Integrate all ``runs`` one after another through one resumable loop.

    One loop step = one block of one run; the checkpoint ``<final>.partial`` holds the
    current run's state and the results of the finished runs. The caller writes ``final``
    and then calls ``engine.checkpoint.finish(final)``.
    """
    per_run = setup.n_equil_blocks + setup.n_blocks
    box: dict = {"state": None, "done": []}

    def step(i: int) -> None:
        r, blk = divmod(i, per_run)
        run = runs[r]
        rng = np.random.default_rng([seed, r, blk])
        if blk == 0:
            box["state"] = _init_state(setup, run, rng)
        st = box["state"]
        noise = rng.standard_normal((setup.block_len, 2, setup.n_replicas))
        y2, j_sum, ekin = integrate_block(st, setup, run, noise, setup.block_len)
        if blk >= setup.n_equil_blocks:
            st.j_blocks[blk - setup.n_equil_blocks] = j_sum / setup.block_len
            st.y2_sum += y2
            st.ekin_sum += ekin
        if blk == per_run - 1:
            res = _result(st, setup, run)
            box["done"].append({"g": res.g, "g_se": res.g_se, "y2": res.y2, "j": res.j,
                                "t_profile": res.t_profile})
            box["state"] = None

    def get_state() -> dict:
        st = box["state"]
        cur = None if st is None else {"u": st.u, "v": st.v, "f": st.f, "j_blocks": st.j_blocks,
                                       "y2_sum": st.y2_sum, "ekin_sum": st.ekin_sum}
        return {"current": cur, "done": box["done"]}

    def set_state(saved: dict) -> None:
        cur = saved["current"]
        box["state"] = None if cur is None else NemdState(**cur)
        box["done"] = list(saved["done"])

    run_resumable(per_run * len(runs), step, get_state, set_state, final, every_s=every_s,
                  desc=f"NEMD seed {seed}", progress=progress)
    return [NemdResult(label=run.label, g=d["g"], g_se=d["g_se"], y2=d["y2"], j=d["j"],
                       t_profile=np.asarray(d["t_profile"])) for run, d in zip(runs, box["done"])]
