"""Monolayer structures, lattice relaxation with the force model, and layer groups (spglib).

Graphene and hexagonal BN are built with ``ase.build.graphene`` (a1 = a(1, 0),
a2 = a(−1/2, √3/2), c = vacuum axis); the lattice constant a0 (Å) minimises the energy per
atom of the force model at fixed planar geometry. The layer group comes from
``spglib.get_layergroup(cell, aperiodic_dir=2)``; a wrong ``aperiodic_dir`` silently
gives a wrong group (observed with spglib 2.8), so it is pinned here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib
from ase import Atoms
from ase.build import graphene
from ase.calculators.calculator import Calculator
from phonopy.structure.atoms import PhonopyAtoms
from scipy.optimize import minimize_scalar

APERIODIC_DIR = 2  # the layer is periodic in a1, a2; c (index 2) is the vacuum axis


def monolayer(formula: str, a_A: float, vacuum_A: float) -> Atoms:
    """Planar honeycomb monolayer (``'C2'`` graphene, ``'BN'`` hBN) with lattice constant a (Å).

    ``vacuum_A`` is added on each side of the plane, so c = 2·vacuum_A; pbc is set on all
    three axes, as spglib and phonopy expect.
    """
    atoms = graphene(formula=formula, a=a_A, thickness=0.0, size=(1, 1, 1), vacuum=vacuum_A)
    atoms.pbc = True
    return atoms


def energy_per_atom_eV(formula: str, a_A: float, calc: Calculator, vacuum_A: float) -> float:
    atoms = monolayer(formula, a_A, vacuum_A)
    atoms.calc = calc
    return atoms.get_potential_energy() / len(atoms)


def relax_lattice_constant(formula: str, calc: Calculator, *, bounds_A: tuple[float, float],
                           vacuum_A: float, xtol_A: float) -> tuple[float, float]:
    """(a0 in Å, energy per atom in eV) minimising the force model's energy over a.

    The honeycomb positions are fixed by symmetry (no internal coordinate), so a 1D bounded
    minimisation over a is the full relaxation of the planar layer.
    """
    res = minimize_scalar(lambda a: energy_per_atom_eV(formula, a, calc, vacuum_A), bounds=bounds_A,
                          method="bounded", options={"xatol": xtol_A})
    if not res.success:
        raise RuntimeError(f"lattice relaxation of {formula} failed: {res.message}")
    if min(abs(res.x - bounds_A[0]), abs(res.x - bounds_A[1])) < 10 * xtol_A:
        raise RuntimeError(f"a0 of {formula} = {res.x:.5f} Å sits on the bound {bounds_A}: widen a_bounds_A")
    return float(res.x), float(res.fun)


def spglib_cell(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return atoms.cell.array.copy(), atoms.get_scaled_positions(wrap=False), atoms.numbers.copy()


@dataclass(frozen=True)
class LayerGroup:
    """Layer group (1–80) and the space group of the same atoms taken as a 3D crystal."""

    number: int
    symbol: str
    hall_number: int        # negative: index into spglib's 116 layer-group settings
    n_operations: int
    space_group_number: int
    space_group_symbol: str


def layer_group(atoms_or_cell, symprec: float) -> LayerGroup:
    """Layer group of a slab via ``spglib.get_layergroup(cell, aperiodic_dir=2)``."""
    cell = spglib_cell(atoms_or_cell) if isinstance(atoms_or_cell, Atoms) else atoms_or_cell
    lg = spglib.get_layergroup(cell, aperiodic_dir=APERIODIC_DIR, symprec=symprec)
    sg = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if lg is None or sg is None:
        raise RuntimeError(f"spglib found no symmetry dataset (symprec={symprec})")
    return LayerGroup(number=int(lg.number), symbol=str(lg.international).strip(),
                      hall_number=int(lg.hall_number), n_operations=len(lg.rotations),
                      space_group_number=int(sg.number), space_group_symbol=str(sg.international).strip())


def to_phonopy_atoms(atoms: Atoms) -> PhonopyAtoms:
    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())


def to_ase_atoms(cell: PhonopyAtoms) -> Atoms:
    return Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions,
                 masses=cell.masses, pbc=True)
