"""Harmonic phonons through phonopy: displacements → forces → force constants → D(q).

Life cycle (phonopy verbs): ``generate_displacements`` → forces from an ASE calculator on
every displaced supercell → ``produce_force_constants`` → ``symmetrize_force_constants``
→ ``run_band_structure`` / ``run_qpoints``; ``save`` writes ``phonopy_params.yaml``.

Units: frequencies in THz (1 THz = 33.35641 cm⁻¹); q in reduced coordinates of the
primitive reciprocal lattice, Cartesian q = q_frac · inv(cell)ᵀ in 1/Å **without** 2π
(phonopy's convention). Eigenvectors are phonopy's: mass-weighted, in the gauge that
carries the atomic positions, D_ij(q) = Σ_l Φ_ij(l) e^{2πi q·(r_jl − r_i)} / √(m_i m_j),
analytic in q (what the Berry-phase loops of ``valley.py`` need), with modes as **columns**.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from phonopy import Phonopy
from phonopy.phonon.band_structure import get_band_qpoints

from .structures import to_ase_atoms, to_phonopy_atoms

THZ_TO_CM1 = 33.35641  # 1 THz in cm⁻¹


def build_phonopy(unitcell: Atoms, supercell: Sequence[int], *, symprec: float) -> Phonopy:
    """Phonopy object for a primitive ``unitcell`` and an in-plane supercell (n1, n2, 1).

    ``primitive_matrix='P'`` keeps the given cell: phonopy's 'auto' may mix the vacuum axis
    into the in-plane vectors for some slabs (observed with phonopy 4.10).
    """
    n1, n2 = (int(s) for s in supercell)
    return Phonopy(to_phonopy_atoms(unitcell), supercell_matrix=np.diag([n1, n2, 1]),
                   primitive_matrix="P", symprec=symprec)


def compute_force_constants(ph: Phonopy, calculator_for: Callable[[Atoms], Calculator], *,
                            distance_A: float, symmetrize: bool = True) -> Phonopy:
    """Finite displacements of ``distance_A`` (Å) → forces (eV/Å) → force constants (eV/Å²).

    ``calculator_for(perfect_supercell)`` returns the calculator to use on the displaced
    supercells (a reference-based model such as ``BondSprings`` needs the perfect one).
    ``symmetrize`` imposes translational invariance and index symmetry; exact degeneracies
    at K are then exact to ~1e-10 THz instead of ~1e-6 (measured).
    """
    ph.generate_displacements(distance=distance_A, is_plusminus="auto")
    calc = calculator_for(to_ase_atoms(ph.supercell))
    forces = []
    for sc in ph.supercells_with_displacements:
        atoms = to_ase_atoms(sc)
        atoms.calc = calc
        forces.append(atoms.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    if symmetrize:
        ph.symmetrize_force_constants()
    return ph


def modes(ph: Phonopy, qpoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies (nq, nb) in THz, eigenvectors (nq, nb, nb), column n = mode n) at q (nq, 3)."""
    ph.run_qpoints(np.atleast_2d(qpoints), with_eigenvectors=True)
    return np.array(ph.qpoints.frequencies), np.array(ph.qpoints.eigenvectors)


def frequencies(ph: Phonopy, qpoints: np.ndarray) -> np.ndarray:
    """Frequencies (nq, nb) in THz; negative values stand for imaginary modes (ω² < 0)."""
    ph.run_qpoints(np.atleast_2d(qpoints), with_eigenvectors=False)
    return np.array(ph.qpoints.frequencies)


def cartesian_to_reduced(ph: Phonopy, q_cart: np.ndarray) -> np.ndarray:
    """Reduced q of Cartesian q (1/Å, no 2π): q_frac = q_cart · cell."""
    return np.asarray(q_cart) @ ph.primitive.cell.T


def reduced_to_cartesian(ph: Phonopy, q_frac: np.ndarray) -> np.ndarray:
    return np.asarray(q_frac) @ np.linalg.inv(ph.primitive.cell).T


def run_band_structure(ph: Phonopy, path: Sequence[Sequence[float]], labels: Sequence[str],
                       n_points: int) -> dict:
    """Bands along one connected path of reduced q-points (e.g. Γ–M–K–Γ).

    Returns ``distance_inv_A`` (nq,) cumulative |Δq| in 1/Å (no 2π), ``freq_THz`` (nq, nb),
    ``qpoints`` (nq, 3) and ``label_distance_inv_A`` (len(path),) with ``labels``.
    """
    qs = get_band_qpoints([[list(q) for q in path]], n_points)  # one segment per pair of points
    ph.run_band_structure(qs, path_connections=[True] * (len(qs) - 1) + [False], labels=list(labels))
    bs = ph.band_structure
    dist = np.concatenate(bs.distances)
    freq = np.concatenate(bs.frequencies)
    qpts = np.concatenate(bs.qpoints)
    ticks = [bs.distances[0][0]] + [d[-1] for d in bs.distances]
    return {"distance_inv_A": dist, "freq_THz": freq, "qpoints": qpts,
            "label_distance_inv_A": np.array(ticks), "labels": np.array(labels)}
