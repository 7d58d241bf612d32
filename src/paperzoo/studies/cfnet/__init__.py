"""CFNet: "Cascade Fusion Network for Dense Prediction" (Zhang et al., arXiv 2302.06052 v1).

CFNet v1 has no released code; the successor CEDNet (arXiv 2302.06052 v2,
github.com/zhanggang001/CEDNet) is the structural reference (``models/cednet.py``:
``Encoder``, ``Decoder``, ``NeXtBlock``, ``DNeXtBlock``; the detection wrapper under
``ced-mmdet``). Read, not copied. Numbers of v2 are never used for v1.

What this package reproduces (miniature on procedural ``shapes_dense``; COCO 2017 at paper
scale): the cascade-fusion backbone (stem, p2 blocks, M stages of encoder + lightweight
transition, focal blocks at 1/32, only the fused 1/8 map flowing on) against a ConvNeXt
backbone + FPN at matched parameters, both under one RetinaNet head (``layers.dense``)
(``models.py``); the abstract's claims as orderings judged on paired seeds (``paper.yaml``);
parameter, FLOP and throughput accounting (``recipe.model_costs``).
"""
