"""DRKD: "Dual Relation Knowledge Distillation for Object Detection" (Ni et al., IJCAI 2023),
arXiv 2302.05637. WORK IN PROGRESS: only the building blocks and losses exist so far.

Official code: github.com/nizhenliang/Dual-Relation-Knowledge-Distillation (mmdet 2.x). Read,
not copied: ``mmdet/models/detectors/two_stage.py`` (``TwoStageDetector.forward_train``,
``ObjectRelation_1``; the complete method), ``single_stage.py`` (IRD only, does not run as
released), ``GloRe.py`` (``GloRe_Unit_2D``, a copy of facebookresearch/GloRe
``network/global_reasoning_unit.py``), ``mmdet/apis/train.py`` (teacher build).

Reproduced so far (``modules.py``, ``losses.py``):

* PRD, pixel-wise relation distillation: a trainable GloRe unit per FPN level on each side,
  1x1 adapter on the student, unsquared Frobenius distance (``torch.dist``) summed over levels;
* IRD, instance-wise relation distillation: 3x3 RoIAlign of all GT boxes on the two largest
  levels, a trainable instance-relation module per side and level with the released
  per-call random "relation filter", adapter on the student, ``torch.dist`` per image;
* INS: direct RoI-feature imitation; a FitNet control on the raw pyramid maps; the
  ``relation_share`` diagnostic (does PRD/IRD degenerate into plain feature imitation?).
"""
