"""Parameter-efficient tuning (PET) modules for a frozen timm ``VisionTransformer``.

The three PETs of LAE (arXiv 2303.10070, official code github gqk/LAE, ``libml/model/pet``),
each a small module per transformer block; the backbone itself is never modified:

* :class:`Adapter` — parallel to the attention sub-layer:
  ``x + Attn(LN1 x) + s·Up(GELU(Down(LN1 x)))``; Up is zero-initialised (the model equals
  the pretrained one at step 0), ``s`` a learnable scalar initialised to 1.
* :class:`KVLoRA` — rank-``r`` updates ``s_k·B_k A_k`` and ``s_v·B_v A_v`` on the **K and V**
  rows of timm's fused ``qkv`` only (Q untouched); B zero-initialised, learnable ``s_k``, ``s_v``.
* :class:`Prefix` — ``L`` learnable key and value tokens per block prepended to K and V
  (never to Q), initialised U(0, 0.01) times learnable scalars (one for the keys, one for
  the values). With ``compensatory``
  the prefix slice of the attention is divided by its own mass λ(x):
  ``(1−λ)·Attn_orig + PrefixAttn`` instead of ``(1−λ)·Attn_orig + λ·PrefixAttn`` — the
  paper's adaptation-speed calibration (Sec. 3.2: a prefix is an adapter gated by λ).

:class:`PETViT` wraps a frozen backbone and runs it with any PET set (a ``ModuleList`` of
per-block modules, see :func:`make_pet`) attached to its first ``n_blocks`` blocks, so the
online and the offline PET of LAE share one backbone: ``features = vit(x, pet)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PET_KINDS = ("adapter", "lora", "prefix")


class Adapter(nn.Module):
    """Bottleneck adapter ``s·Up(GELU(Down(x)))``: (B, N, D) → (B, N, D)."""

    def __init__(self, dim: int, bottleneck: int = 5, scale: float | None = None):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)          # Kaiming-uniform weight (torch's default init) ...
        nn.init.zeros_(self.down.bias)                  # ... and a zero bias (official Adapter.reset_parameters)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)                  # zero output at init: pretrained model unchanged
        nn.init.zeros_(self.up.bias)
        # scale None = learnable scalar (official ``scale: null``), else a fixed number
        self.scale = nn.Parameter(torch.ones(())) if scale is None else float(scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * self.up(F.gelu(self.down(x)))


class KVLoRA(nn.Module):
    """Low-rank K/V update of a fused qkv projection: returns Δqkv (B, N, 3D), zero on the Q third."""

    def __init__(self, dim: int, rank: int = 5):
        super().__init__()
        self.dim = dim
        self.a_k, self.a_v = nn.Parameter(torch.empty(rank, dim)), nn.Parameter(torch.empty(rank, dim))
        for a in (self.a_k, self.a_v):
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        self.b_k, self.b_v = nn.Parameter(torch.zeros(dim, rank)), nn.Parameter(torch.zeros(dim, rank))
        self.s_k, self.s_v = nn.Parameter(torch.ones(())), nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        dk = self.s_k * (x @ self.a_k.t() @ self.b_k.t())   # (B, N, D)
        dv = self.s_v * (x @ self.a_v.t() @ self.b_v.t())   # (B, N, D)
        return torch.cat([torch.zeros_like(dk), dk, dv], dim=-1)  # (B, N, 3D): Q rows untouched


class Prefix(nn.Module):
    """``length`` learnable key and value tokens (per block), shared over the batch.

    The keys and the values each carry their own learnable scalar (official ``Prefix``: two
    ``Prompt`` modules, each with its own ``Scaler``).
    """

    def __init__(self, dim: int, length: int = 10, compensatory: bool = True):
        super().__init__()
        self.key = nn.Parameter(torch.empty(length, dim).uniform_(0.0, 0.01))    # (L, D)
        self.value = nn.Parameter(torch.empty(length, dim).uniform_(0.0, 0.01))  # (L, D)
        self.scale_key = nn.Parameter(torch.ones(()))
        self.scale_value = nn.Parameter(torch.ones(()))
        self.compensatory = compensatory

    def tokens(self) -> tuple[Tensor, Tensor]:
        return self.scale_key * self.key, self.scale_value * self.value


def prefix_attention(q: Tensor, k: Tensor, v: Tensor, pk: Tensor, pv: Tensor, scale: float,
                     compensatory: bool) -> Tensor:
    """Attention with prefix keys/values; q, k, v (B, H, N, d), pk, pv (B, H, L, d) → (B, H, N, d).

    One softmax over [prefix; original] keys gives weights a_p (prefix) and a_o; λ = Σ a_p.
    Without compensation: a_o·V + a_p·P_v. With it (LAE's calibration) the prefix slice is
    divided by λ: a_o·V + (a_p/λ)·P_v, i.e. (1−λ)·Attn_orig + softmax(q P_kᵀ)·P_v.
    """
    logits = (q * scale) @ torch.cat([pk, k], dim=2).transpose(-2, -1)  # (B, H, N, L+N)
    attn = logits.softmax(dim=-1)
    L = pk.shape[2]
    a_p, a_o = attn[..., :L], attn[..., L:]
    if compensatory:
        a_p = a_p / a_p.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return a_o @ v + a_p @ pv


def pet_attention(attn: nn.Module, x: Tensor, lora: KVLoRA | None = None, prefix: Prefix | None = None) -> Tensor:
    """timm ``Attention.forward`` (no mask, no dropout at our settings) with a LoRA and/or a prefix."""
    B, N, C = x.shape
    qkv = attn.qkv(x)                                                     # (B, N, 3D)
    if lora is not None:
        qkv = qkv + lora(x)
    qkv = qkv.reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)                                               # (B, H, N, d)
    q, k = attn.q_norm(q), attn.k_norm(k)
    if prefix is None:
        out = F.scaled_dot_product_attention(q, k, v)
    else:
        pk, pv = prefix.tokens()                                          # (L, D)
        L = pk.shape[0]
        pk = attn.k_norm(pk.view(L, attn.num_heads, attn.head_dim).transpose(0, 1)).expand(B, -1, -1, -1)
        pv = pv.view(L, attn.num_heads, attn.head_dim).transpose(0, 1).expand(B, -1, -1, -1)
        out = prefix_attention(q, k, v, pk, pv, attn.scale, prefix.compensatory)
    out = out.transpose(1, 2).reshape(B, N, -1)
    out = attn.norm(out) if hasattr(attn, "norm") else out
    return attn.proj(out)


def pet_block_forward(block: nn.Module, x: Tensor, pet: nn.Module | None) -> Tensor:
    """One timm ``Block`` with ``pet`` (an Adapter, KVLoRA or Prefix, or None) attached."""
    if pet is None:
        return block(x)
    h = block.norm1(x)
    lora = pet if isinstance(pet, KVLoRA) else None
    prefix = pet if isinstance(pet, Prefix) else None
    a = pet_attention(block.attn, h, lora, prefix)
    x = x + block.drop_path1(block.ls1(a))
    if isinstance(pet, Adapter):
        x = x + pet(h)                                   # parallel to attention, same LN1 input
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


def make_pet(kind: str, dim: int, n_blocks: int, *, bottleneck: int = 5, rank: int = 5, length: int = 10,
             compensatory: bool = True) -> nn.ModuleList:
    """One PET module per block for the first ``n_blocks`` blocks (official: blocks 0-4 of 12)."""
    if kind == "adapter":
        return nn.ModuleList(Adapter(dim, bottleneck) for _ in range(n_blocks))
    if kind == "lora":
        return nn.ModuleList(KVLoRA(dim, rank) for _ in range(n_blocks))
    if kind == "prefix":
        return nn.ModuleList(Prefix(dim, length, compensatory) for _ in range(n_blocks))
    raise ValueError(f"PET kind {kind!r}: expected one of {PET_KINDS}")


class PETViT(nn.Module):
    """A frozen timm ``VisionTransformer`` run with an optional PET set; returns the CLS feature (B, D)."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.vit = vit
        self.embed_dim = vit.embed_dim
        for p in self.vit.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vit.eval()            # frozen backbone: no dropout / drop-path ever
        return self

    def forward(self, x: Tensor, pet: nn.ModuleList | None = None) -> Tensor:
        v = self.vit
        h = v.norm_pre(v._pos_embed(v.patch_embed(x)))                     # (B, 1+N, D)
        n_pet = 0 if pet is None else len(pet)
        if n_pet == 0:
            with torch.no_grad():                                        # nothing to adapt: no graph
                for blk in v.blocks:
                    h = blk(h)
        else:
            for i, blk in enumerate(v.blocks):
                h = pet_block_forward(blk, h, pet[i] if i < n_pet else None)
        return v.norm(h)[:, 0]                                           # (B, D): CLS token


def count_params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())
