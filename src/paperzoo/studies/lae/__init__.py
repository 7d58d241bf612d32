"""LAE: "A Unified Continual Learning Framework with General Parameter-Efficient Tuning"
(Gao, Zhao, Wang, Cao, Song, Shan; ICCV 2023), arXiv 2303.10070; official code github gqk/LAE.

Class-incremental learning on a frozen pretrained ViT with a parameter-efficient tuning
(PET) module (Adapter, LoRA or Prefix, ``paperzoo.layers.pet``) and per-task linear heads:

* **Learning** (:func:`.learner.learn_task`): one online PET θ_on, never re-initialised,
  trained with CE on the current task's logits only; for every task after the first the PET
  is frozen for the first epochs (head only). For Prefix, the adaptation-speed calibration
  (the compensation ``(1−λ)·Attn + PrefixAttn``) aligns its speed with Adapter/LoRA.
* **Accumulation** (Eq. 4, :class:`.learner.PETAccumulator`): the offline PET is a copy of
  the online one at the start of task 2, then ``θ_off ← d·θ_off + (1−d)·θ_on`` after every
  optimizer step (official d = 0.9999; rescaled here as d = 1 − c/steps_per_task).
* **Ensemble** (Eq. 5, :func:`.learner.ensemble_probs`): ``p(y|x) = max(p_on(y|x), p_off(y|x))``
  element-wise, then argmax.

Reproduced (as directions on CPU miniatures, never the paper's absolute numbers): the main
table's layout (A_T and Ā per PET × method; Seq-PET vs LAE, linear probe, joint upper bound;
:mod:`.figures`), the online/offline old-vs-new split behind the ensemble, the ablations
"accumulation off" (online expert) and "ensemble off" (offline expert) from the same runs,
and the Prefix calibration ablation (adaptation speed). Metrics: :mod:`.benchmark`.
Runs: :mod:`.runs`; CLI: :mod:`.steps`; backbone pretraining / official weights: :mod:`.pretrain`.
"""
