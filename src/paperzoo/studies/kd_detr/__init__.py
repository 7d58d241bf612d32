"""KD-DETR: "Knowledge Distillation for Detection Transformer with Consistent Distillation
Points Sampling" (Wang et al., CVPR 2024), arXiv 2211.08071.

Official code: github.com/Myleswork/KD-DETR (DAB-DETR based; the paper's link
wennyuhey/KD-DETR holds only a README). Read, not copied: ``models/DAB_DETR/kd_loss.py``
(``KDCriterion``), ``kd_dab_detr.py``, ``kd_transformer.py``, ``tools/train.sh``.

What this package reproduces (miniature on procedural ``shapes``; COCO 2017 at paper scale):

* §3.2 distillation points: extra queries shared by teacher and student, decoded in
  separate decoder passes over each model's own memory (``sampling.py``);
* §3.3 general-to-specific sampling: fresh random anchors every iteration (general) and the
  teacher's learned anchors, detached (specific) (``sampling.py``);
* the KD loss of ``KDCriterion`` with the teacher's foreground confidence as point weight
  (FRW) and the official asymmetric normalisation (``losses.py``), plus the naive
  Hungarian-matched logit KD baseline (``losses.naive_kd_loss``);
* the sampling ablation table (AP / AP50 / AP75 per arm; the paper's table is known only from the public slides github.com/CashelF/kd-detr-presentation, unconfirmed) and the
  abstract's headline claim (R18 36.2 -> 41.4 AP) as direction-only claims (``paper.yaml``);
* a consistency diagnostic (teacher-student box IoU and class KL on shared vs matched own
  queries), the paper's consistency premise measured directly (``diagnostics.py``).
"""
