"""Group DETR v2 (arXiv 2211.03594; Group DETR: arXiv 2207.13085): encoder pretraining (MAE) →
detector pretraining with query groups → finetuning. See ``docs/studies/group_detr.md``."""
