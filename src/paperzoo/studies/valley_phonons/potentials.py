"""Force models: Tersoff (graphene, hBN) and a generic bond-spring model (layer-group scan).

* :func:`tersoff` — ASE's native Tersoff calculator (``ase.calculators.tersoff``) reading a
  parameter file typed from the published papers (``potentials/*.tersoff``, LAMMPS column
  order, citation header in each file). Energies in eV, forces in eV/Å.
* :class:`BondSprings` — harmonic bond springs about a reference structure (our generic model):

      E = ½ Σ_(i<j, d_ij < r_cut) (u_i − u_j)ᵀ K_ij (u_i − u_j),
      K_ij = k(d) r̂r̂ᵀ + t(d) (1 − r̂r̂ᵀ),
      k(d) = s_ab k0 exp(−(d − d0)/λ_k),   t(d) = τ k(d) exp(−(d − d0)/λ_t),

  with d, r̂ the length and direction of the reference bond, u the displacements from the
  reference positions, and s_ab a species-pair factor. Every K_ij is positive definite
  (k, t > 0), so E ≥ 0 and E = 0 only for rigid translations of a connected bond graph:
  no floppy modes, and K_ij depends only on the bond vector, so the model keeps exactly
  the symmetry of the reference structure. Units: k0 in eV/Å², lengths in Å.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.tersoff import Tersoff
from ase.neighborlist import neighbor_list

POTENTIAL_DIR = Path(__file__).with_name("potentials")


def tersoff(filename: str) -> Tersoff:
    """ASE Tersoff calculator from ``potentials/<filename>`` (LAMMPS format, metal units)."""
    path = POTENTIAL_DIR / filename
    if not path.is_file():
        have = sorted(p.name for p in POTENTIAL_DIR.glob("*.tersoff"))
        raise FileNotFoundError(f"{path}: no such Tersoff file (have: {', '.join(have)})")
    return Tersoff.from_lammps(path)


@dataclass(frozen=True)
class SpringLaw:
    """Distance dependence of the bond springs (defaults: our choice, the first law of ``lgscan.spring_models``).

    k(d) = s_ab · k0 · exp(−(d − d0)/decay_long_A) [eV/Å²] along the bond, and
    t(d) = transverse_ratio · k(d) · exp(−(d − d0)/decay_trans_A) across it; bonds longer
    than ``cutoff_A`` carry no spring. ``species_factors`` maps a sorted pair of atomic
    numbers to s_ab (1 when absent).
    """

    k0_eV_A2: float = 10.0
    d0_A: float = 2.0
    decay_long_A: float = 0.6
    transverse_ratio: float = 0.35
    decay_trans_A: float = 1.5
    cutoff_A: float = 6.0
    species_factors: dict = field(default_factory=dict)

    def constants(self, d: np.ndarray, zi: np.ndarray, zj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k, t) in eV/Å² for bonds of length d (Å) between species zi and zj."""
        s = np.array([self.species_factors.get(tuple(sorted((int(a), int(b)))), 1.0) for a, b in zip(zi, zj)])
        k = s * self.k0_eV_A2 * np.exp(-(d - self.d0_A) / self.decay_long_A)
        return k, self.transverse_ratio * k * np.exp(-(d - self.d0_A) / self.decay_trans_A)


def spring_tensors(atoms: Atoms, law: SpringLaw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bond list of ``atoms`` (the reference): (i, j, K) with K of shape (n_bonds, 3, 3) in eV/Å².

    Each unordered bond appears once per periodic image pair (i < j, or i == j for a bond to
    an own image with the image vector taken once).
    """
    i, j, dvec = neighbor_list("ijD", atoms, law.cutoff_A)
    # keep each bond once: i < j, and for i == j (own image) the half with positive first
    # non-zero component of the bond vector
    first = np.where(np.abs(dvec[:, 0]) > 1e-9, dvec[:, 0],
                     np.where(np.abs(dvec[:, 1]) > 1e-9, dvec[:, 1], dvec[:, 2]))
    keep = (i < j) | ((i == j) & (first > 0))
    i, j, dvec = i[keep], j[keep], dvec[keep]
    d = np.linalg.norm(dvec, axis=1)
    rhat = dvec / d[:, None]
    z = atoms.numbers
    k, t = law.constants(d, z[i], z[j])
    rr = rhat[:, :, None] * rhat[:, None, :]  # (n_bonds, 3, 3)
    kmat = k[:, None, None] * rr + t[:, None, None] * (np.eye(3) - rr)
    return i, j, kmat


class BondSprings(Calculator):
    """Harmonic bond-spring calculator about a fixed reference structure (module docstring).

    ``reference`` fixes the bonds and the zero of the displacements; the calculator then
    accepts any Atoms object with the same number of atoms in the same order (for phonopy:
    the perfect supercell as reference, displaced supercells as input).
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, reference: Atoms, law: SpringLaw | None = None, **kwargs):
        super().__init__(**kwargs)
        self.law = law or SpringLaw()
        self.reference = reference.copy()
        self.bond_i, self.bond_j, self.bond_k = spring_tensors(self.reference, self.law)

    def n_isolated_atoms(self) -> int:
        """Atoms with no spring at all (each would be a floppy mode)."""
        bonded = np.zeros(len(self.reference), bool)
        bonded[self.bond_i] = bonded[self.bond_j] = True
        return int((~bonded).sum())

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if len(self.atoms) != len(self.reference):
            raise ValueError(f"BondSprings: {len(self.atoms)} atoms given, reference has {len(self.reference)}")
        u = self.atoms.positions - self.reference.positions
        # displacements are small; undo a wrap by a lattice vector (phonopy wraps positions)
        frac = np.linalg.solve(self.reference.cell.array.T, u.T).T
        u = (frac - np.round(frac)) @ self.reference.cell.array
        du = u[self.bond_i] - u[self.bond_j]  # (n_bonds, 3)
        f_bond = np.einsum("bxy,by->bx", self.bond_k, du)  # force on j from bond, = -force on i
        forces = np.zeros_like(u)
        np.add.at(forces, self.bond_i, -f_bond)
        np.add.at(forces, self.bond_j, f_bond)
        energy = 0.5 * float(np.einsum("bx,bx->", du, f_bond))
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
