"""interface_phonons — quartic interface potential and elastic phonon transmission.

Paper: Hangbo Zhou, Gang Zhang, Yong-Wei Zhang, "Effects of high order interatomic
potential on elastic phonon scatterings", arXiv 2202.11037. Official code: none public.

Only the abstract and the start of the introduction of arXiv 2202.11037 could be read: the
paper's Hamiltonian, parameters,
temperatures and figure numbers are unknown. Everything here is a **minimal model in the
spirit of the paper**, not a reproduction of its numbers; every parameter comes from the
config block, and no number of the paper is typed anywhere.

What is reproduced (the abstract's qualitative claims, tested on the model):

* a quartic interface term ¼λy⁴ changes the *elastic* transmission: at lowest order it
  renormalises the interface spring through the correlation of the interface atoms,
  k_eff = k_I + 3λ⟨(u_a − u_b)²⟩_T (self-consistent phonon / Hartree, ``scph.py``), so the
  Caroli transmission and the Landauer conductance (``chain.py``) grow with T, while a
  purely quadratic interface gives a T-independent transmission (``elastic.py``);
* the quartic term makes interface-localized phonons temperature dependent (frequency,
  interface weight, participation ratio), in an extension with light interface atoms
  (``localized.py``; the plain 1D model has no localized modes);
* classical NEMD with the full quartic force (``md.py``) against the mean-field
  SCPH-Landauer prediction for the same Langevin leads (``nemd_theory.py``).

Physical units (amu, eV/Å², eV/Å⁴, K, THz, pW/K) for an illustrative weak vdW-like
interface between two carbon-like chains: ``units.py``. Entry points: ``steps.py``;
figures: ``figures.py``; claims: ``paper.yaml``; config: the ``interface_phonons:`` block of ``config/config.yaml`` and ``config/scales/*.yaml``.
"""
