"""Models of the study by registry name: DETR-lite at the embedded scales, DAB-DETR-like
R50 teacher / R18 student at paper scale (timm ResNets, ``pretrained=False`` offline).

Paper scale (official ``tools/train.sh``, DAB-DETR defaults): d 256, 8 heads, 6 encoder and
6 decoder layers, FFN 2048, 300 queries, 91 COCO class logits (focal), ResNet C5 (stride
32). DAB-DETR's published sizes: R50 44M parameters (DAB-DETR README model zoo); the R18
student size: we found no published count. ``dab_detr_r50`` / ``dab_detr_r18`` reuse
DETR-lite's DAB-style decoder, so their counts differ from the official modules by the
parts DETR-lite leaves out (no dropout, single-scale, shared heads): see ``paper.yaml``.
"""
from __future__ import annotations

from paperzoo.layers import create_model
from paperzoo.layers.backbones import TimmBackbone
from paperzoo.layers.detr_lite import DETRLite
from paperzoo.layers.registry import is_model, register_model

PAPER = dict(d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
             num_queries=300, num_classes=91, anchor_wh=0.1)


if not is_model("dab_detr_r50"):
    @register_model
    def dab_detr_r50(**kw) -> DETRLite:
        """Paper-scale teacher: timm resnet50 C5 (stride 32) + DAB-style DETR, 300 queries."""
        return DETRLite(**{"backbone": TimmBackbone("resnet50", stride=32), **PAPER, **kw})

    @register_model
    def dab_detr_r18(**kw) -> DETRLite:
        """Paper-scale student: timm resnet18 C5 (stride 32) + DAB-style DETR, 300 queries."""
        return DETRLite(**{"backbone": TimmBackbone("resnet18", stride=32), **PAPER, **kw})


def build_model(name: str, num_classes: int | None = None, **kw):
    """Registry model ``name``; ``num_classes`` and ``kw`` (e.g. the anchor law:
    ``anchor_init``, ``anchor_mean``, ``anchor_std``, ``anchor_seed``) override the entry's
    defaults when given."""
    return create_model(name, **({} if num_classes is None else {"num_classes": num_classes}), **kw)
