"""Plain timm ``VisionTransformer`` variants by name (LAE's backbones), no classifier head.

Every entry returns a ``timm.models.vision_transformer.VisionTransformer`` with
``num_classes=0`` and CLS-token pooling: ``forward(x)`` gives features (B, embed_dim).
No weights are loaded here (offline); the paper-scale backbone gets the official IN-21k
ViT-B/16 ``.npz`` through ``paperzoo.studies.lae.pretrain``.
"""
from __future__ import annotations

from .registry import register_model


def _vit(**kw):
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(**{"num_classes": 0, "global_pool": "token", "class_token": True,
                                "qkv_bias": True, **kw})


@register_model
def vit_base_patch16_224_in21k_lae(**overrides):
    """ViT-B/16 at 224 px (86M parameters, the paper's backbone; weights loaded separately)."""
    return _vit(**{"img_size": 224, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, **overrides})


@register_model
def vit_mini_p8(**overrides):
    """32-px images, patch 8 → 16 tokens (+CLS), d 96, depth 4: the CPU miniature backbone."""
    return _vit(**{"img_size": 32, "patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 4,
                   "mlp_ratio": 4.0, **overrides})


@register_model
def test_vit(**overrides):
    """16-px images, patch 8 → 4 tokens, d 32, depth 2: unit tests only."""
    return _vit(**{"img_size": 16, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2,
                   "mlp_ratio": 2.0, **overrides})
