"""Group DETR v2 models: a plain-ViT detection backbone for DETR-lite, its masked-image
pretraining (MAE), and the checkpoint transfers between the three stages.

* :class:`ViTDetBackbone` — a timm ``VisionTransformer`` without CLS token; the patch tokens
  of the last block, reshaped to (B, C, H/p, W/p), are the single-level "simple feature
  pyramid" DETR-lite reads (v2: ViT-Huge + ``SimpleFeaturePyramid``; one level here).
* :class:`MAE` — He et al., *Masked Autoencoders Are Scalable Vision Learners* (arXiv
  2111.06377, §3): random masking of ``mask_ratio`` of the patches per image, the encoder on the
  visible patches only, a light decoder on encoded + mask tokens, and the mean squared error of
  the per-patch-normalised pixels on the masked patches (Eq. in §3, "normalized pixels").
  Group DETR v2 (arXiv 2211.03594, §3) starts from such a self-supervised ViT encoder.
* ``transfer_*`` — stage E → D (the encoder into the detector's backbone) and D → F (the whole
  detector except the class head, re-initialised for the target's classes, as for Objects365 →
  COCO).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from paperzoo.layers.detr_lite import DETRLite
from paperzoo.layers.registry import register_presets

# --- the ViT detection backbone -------------------------------------------------------------

VITS = {
    # mini: 64-px images, patch 8 -> 8 x 8 tokens, d 64, 4 blocks, 2 heads (150 k parameters)
    "vit_mini_det": dict(img_size=64, patch_size=8, embed_dim=64, depth=4, num_heads=2, mlp_ratio=2.0),
    # tests: 64-px images, patch 16 -> 4 x 4 tokens, d 16, 1 block
    "test_vit_det": dict(img_size=64, patch_size=16, embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0),
    # paper: ViT-Huge/14 (Group DETR v2's encoder size; 632 M parameters as built, no weights here)
    "vit_huge_det": dict(img_size=224, patch_size=14, embed_dim=1280, depth=32, num_heads=16, mlp_ratio=4.0),
}


class ViTDetBackbone(nn.Module):
    """Plain ViT -> (B, C, H/p, W/p) feature map (``num_channels`` = C).

    ``vit``: a timm ``VisionTransformer`` built with ``class_token=False``, ``global_pool=""``,
    ``num_classes=0``; ``pool``: optional average pooling of the token map (``pool`` x ``pool``)."""

    def __init__(self, img_size: int = 64, patch_size: int = 8, embed_dim: int = 64, depth: int = 4,
                 num_heads: int = 2, mlp_ratio: float = 2.0, pool: int = 1):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.vit = VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                                     num_heads=num_heads, mlp_ratio=mlp_ratio, num_classes=0, class_token=False,
                                     global_pool="", qkv_bias=True)
        self.num_channels, self.patch_size, self.grid = embed_dim, patch_size, img_size // patch_size
        self.pool = nn.AvgPool2d(pool) if pool > 1 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.vit.forward_features(x)                     # (B, N, C), final norm applied
        b, n, c = tokens.shape
        h = x.shape[-2] // self.patch_size
        return self.pool(tokens.transpose(1, 2).reshape(b, c, h, n // h))


# --- detectors: the DETR-lite transformer of kd_detr's student on the ViT map ---------------

DETECTORS = {
    # mini: the detr_lite_s transformer (d64, 1 encoder / 2 decoder layers, ff 128, 16 queries)
    "gdetr_vit_mini": dict(backbone="vit_mini_det", d_model=64, nhead=4, num_encoder_layers=1,
                           num_decoder_layers=2, dim_feedforward=128, num_queries=16),
    "test_gdetr_vit": dict(backbone="test_vit_det", d_model=16, nhead=2, num_encoder_layers=1,
                           num_decoder_layers=2, dim_feedforward=32, num_queries=4),
}


register_presets(__name__, ViTDetBackbone, VITS, "ViT detection backbone {defaults} (no CLS; token map as features).")
register_presets(__name__, DETRLite, DETECTORS, "DETR-lite on a plain ViT: {defaults}.")


# --- MAE ---------------------------------------------------------------------------------------

def patchify(images: Tensor, p: int) -> Tensor:
    """(B, 3, H, W) -> (B, N, p*p*3), patches row-major, pixels (p, p, 3) within a patch."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def sincos_pos_embed(dim: int, grid: int) -> Tensor:
    """(grid*grid, dim) fixed 2-D sine-cosine embedding (MAE's decoder positions)."""
    assert dim % 4 == 0, "sincos_pos_embed: dim must be a multiple of 4"
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                            indexing="ij")
    out = [f(v.flatten()[:, None] * omega[None]) for v in (xs, ys) for f in (torch.sin, torch.cos)]
    return torch.cat(out, dim=1)


class MAE(nn.Module):
    """Masked autoencoder around a :class:`ViTDetBackbone`'s ViT (arXiv 2111.06377, §3).

    forward(images, generator) -> (loss, parts): per image a random permutation of the N
    patches (argsort of uniform noise) keeps the first ``N (1 - mask_ratio)`` visible; the ViT's
    blocks encode visible tokens (with their positional embeddings); the decoder (a linear map
    to ``decoder_dim``, mask tokens, fixed sin-cos positions, ``decoder_depth`` transformer
    blocks, a linear map to p*p*3 pixels) reconstructs every patch; the loss is the mean
    squared error on masked patches of the targets normalised per patch (zero mean, unit
    variance over the patch's p*p*3 values: MAE's ``norm_pix_loss``)."""

    def __init__(self, backbone: ViTDetBackbone, mask_ratio: float = 0.75, decoder_dim: int = 48,
                 decoder_depth: int = 1, decoder_heads: int = 2):
        super().__init__()
        from timm.models.vision_transformer import Block

        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"MAE: mask_ratio {mask_ratio} must lie in (0, 1)")
        self.backbone, self.mask_ratio = backbone, mask_ratio
        vit, p = backbone.vit, backbone.patch_size
        self.num_patches, self.p = vit.patch_embed.num_patches, p
        self.decoder_embed = nn.Linear(vit.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("decoder_pos", sincos_pos_embed(decoder_dim, backbone.grid)[None], persistent=False)
        self.decoder = nn.Sequential(*[Block(decoder_dim, decoder_heads, mlp_ratio=4.0, qkv_bias=True)
                                       for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, p * p * 3)

    def encode_visible(self, images: Tensor, keep: Tensor) -> Tensor:
        """Encoder on the visible patches ``keep`` (B, n_vis) -> (B, n_vis, C)."""
        vit = self.backbone.vit
        x = vit.patch_embed(images) + vit.pos_embed                          # (B, N, C), no CLS
        x = torch.gather(x, 1, keep[..., None].expand(-1, -1, x.shape[-1]))
        x = vit.norm_pre(x)
        x = vit.blocks(x)
        return vit.norm(x)

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        b, n = images.shape[0], self.num_patches
        n_vis = max(1, int(round(n * (1 - self.mask_ratio))))
        noise = torch.rand(b, n, generator=generator).to(images.device)
        order = noise.argsort(dim=1)                      # ascending: the first n_vis are kept
        restore = order.argsort(dim=1)
        keep = order[:, :n_vis]
        latent = self.encode_visible(images, keep)
        x = self.decoder_embed(latent)
        x = torch.cat([x, self.mask_token.expand(b, n - n_vis, -1)], dim=1)   # (B, N, D) in shuffled order
        x = torch.gather(x, 1, restore[..., None].expand(-1, -1, x.shape[-1]))  # back to patch order
        x = self.decoder_norm(self.decoder(x + self.decoder_pos))
        pred = self.decoder_pred(x)                                          # (B, N, p*p*3)
        target = patchify(images, self.p)
        mu, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mu) / (var + 1e-6).sqrt()
        mask = torch.ones(b, n, device=images.device)
        mask[:, :n_vis] = 0
        mask = torch.gather(mask, 1, restore)                                # 1 = masked, patch order
        per_patch = (pred - target).pow(2).mean(-1)
        loss = (per_patch * mask).sum() / mask.sum()
        return loss, {"loss_mae": loss}


# --- transfers between stages --------------------------------------------------------------------

def encoder_state(mae_or_backbone: nn.Module) -> dict[str, Tensor]:
    """The ViT encoder's weights (``vit.*``) of an MAE or a backbone."""
    bb = mae_or_backbone.backbone if isinstance(mae_or_backbone, MAE) else mae_or_backbone
    return {k: v.detach().clone() for k, v in bb.vit.state_dict().items()}


def load_encoder(detector: DETRLite, state: dict[str, Tensor]) -> None:
    """Stage E -> D/F: the pretrained ViT into ``detector.backbone.vit`` (strict: every key)."""
    detector.backbone.vit.load_state_dict(state, strict=True)


def transfer_detector(target: DETRLite, source_state: dict[str, Tensor], skip: tuple[str, ...] = ("class_head.",)
                      ) -> list[str]:
    """Stage D -> F: every weight of the pretrained detector except those starting with a
    ``skip`` prefix (the class head: a new label space, re-initialised). Shapes must agree
    (same architecture and number of query groups). Returns the skipped keys."""
    own = target.state_dict()
    skipped = [k for k in source_state if k.startswith(skip)]
    missing = [k for k in own if k not in source_state and not k.startswith(skip)]
    if missing:
        raise KeyError(f"transfer_detector: the pretrained detector lacks {missing[:5]}")
    bad = [k for k in own if not k.startswith(skip) and own[k].shape != source_state[k].shape]
    if bad:
        raise ValueError(f"transfer_detector: shape mismatch at {bad[:5]} (same model and groups needed)")
    target.load_state_dict({**own, **{k: v for k, v in source_state.items() if not k.startswith(skip)}})
    return skipped


def inference_params(detector: DETRLite) -> int:
    """Parameters used at inference: all but the anchors of groups 1..G-1 (group 0 decodes)."""
    total = sum(p.numel() for p in detector.parameters())
    return total - (detector.num_groups - 1) * detector.num_queries * detector.anchors.shape[-1]


def vit_params(name: str) -> int:
    """Parameters of a registered ViT backbone, counted on the built module (the meta device
    would do for ViT-Huge; building it on CPU takes a few GB)."""
    from paperzoo.layers import create_model

    with torch.device("meta"):
        m = create_model(name)
    return sum(p.numel() for p in m.parameters())

