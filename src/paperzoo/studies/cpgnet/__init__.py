"""CPGNet: Cascade Point-Grid Fusion Network for Real-Time LiDAR Semantic Segmentation
(Li, Zhang et al., ICRA 2022, arXiv 2204.09914). Official code: GangZhang842/CPGNet.

Reproduces (miniature on ``synthscan``, paper scale on SemanticKITTI): the view ablation
(BEV-only / RV-only / fusion), 1 vs 2 point-grid stages, the transformation consistency
loss (TCL) vs 4-flip test-time augmentation, and latency single pass vs TTA.

* :mod:`.model` — PG-fusion stages (point MLP → scatter-max → BEV/RV 2D nets → bilinear
  gather → CatFusion → head), registered as ``cpgnet_*`` / ``test_cpgnet``.
* :mod:`.losses` — CE-OHEM + 2·Lovász-softmax per stage, TCL, the engine ``loss_fn``.
* :mod:`.augment` — scan resampling and the rigid/scale/shift augmentation of TCL.
* :mod:`.metrics` — confusion, per-class IoU, mIoU, 4-flip TTA, flip consistency.

Its models are registered in :mod:`.model` (``paperzoo.layers.create_model`` finds them).
"""
