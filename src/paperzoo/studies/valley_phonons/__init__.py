"""valley_phonons — valley linear Weyl point phonons across the 80 layer groups.

Paper: M. Zhong, H. Liu, J. Wang, C. Xie, H. Yuan, Z. Zhang, X. Wang, G. Zhang, "Accurate
recipe for predicting valley linear Weyl phonons in two dimensions", arXiv 2302.01054
(published in Phys. Rev. B as "Complete list of valley linear Weyl point phonons in two
dimensions"). Official code: none public.

Only the abstract was read: the paper's table and its 11 candidate materials are unknown
and are not typed anywhere.
What is reproduced, DFT-free:

* the headline count: the layer groups that host valley LWPs, from our own scan of all 80
  (``layergroups.py``: a spglib-confirmed structure per group; ``lgscan.py``: generic
  bond-spring phonons, twofold degeneracies at every high-symmetry point, linear splitting,
  quantized single-band Berry phase, valley partner K′ = −K);
* graphene (p6/mmm) hosts valley LWPs with Berry phase ±π at K and ∓π at K′, while hBN
  (p-6m2), hexagonal with C3 at K, does not (``materials.py``; Tersoff potentials typed from
  the literature in ``potentials/``, phonons through phonopy in ``phonons.py``, the valley
  analysis in ``valley.py``, the standard discrete single-band Berry phase
  φ_n = −Im ln Π_k ⟨e_n(q_k)|e_n(q_{k+1})⟩);
* figures (``figures.py``): bands with the K crossings, Berry phase vs loop radius, and
  the 80-group scan.

Units: frequencies in THz (cm⁻¹ where named), lengths in Å, q in 1/Å without 2π.
Entry points: ``steps.py``; claims: ``paper.yaml``; config: the ``valley_phonons:`` block of
``config/config.yaml`` and ``config/scales/*.yaml``.
"""
