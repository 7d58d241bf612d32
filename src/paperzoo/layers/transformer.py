"""DETR-lite transformer: DETR encoder, DAB-DETR decoder (arXiv 2201.12329) with group-wise
self-attention (Group DETR, arXiv 2207.13085).

Decoder queries are 4-d anchor boxes ``(cx, cy, w, h)`` kept in inverse-sigmoid space. Each
layer turns its anchors into a positional query (``MLP(sine(anchor))``, DAB Eq. 5), runs
self-attention, conditional cross-attention (content and spatial parts concatenated per
head, the spatial query modulated by the anchor's width and height, DAB §4.3-4.4) and an
FFN, then predicts a box delta in inverse-sigmoid space (iterative refinement, DAB Eq. 4).
Anchors are detached between layers (Deformable DETR §A.4), so each layer's box loss
trains only that layer's delta.

Group DETR: queries are laid out group-major ``(B, G*Q, C)``; self-attention folds the
groups into the batch axis ``(B*G, Q, C)``, which is a block-diagonal attention mask at
``G*Q²`` instead of ``(G*Q)²`` cost. Cross-attention and FFN are per query, so unchanged.
All layers are post-norm (DETR); dropout defaults to 0 for the CPU miniatures.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .box_ops import inverse_sigmoid
from .position import sine_embed


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU in between (DETR's box head)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class EncoderLayer(nn.Module):
    """Post-norm self-attention + FFN over the flattened feature map; ``pos`` added to q, k."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(dim_feedforward, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        q = k = src + pos  # (B, HW, C)
        src = self.norm1(src + self.dropout(self.self_attn(q, k, src, need_weights=False)[0]))
        return self.norm2(src + self.dropout(self.ffn(src)))


class DecoderLayer(nn.Module):
    """DAB/Conditional-DETR decoder layer: group-wise self-attn, conditional cross-attn, FFN."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.0,
                 first: bool = False):
        super().__init__()
        assert d_model % nhead == 0
        self.nhead, self.first = nhead, first
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        # cross-attention: separate content/position projections, concatenated per head
        self.ca_q_content, self.ca_k_content = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.ca_k_pos, self.ca_v = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.ca_q_sine = nn.Linear(d_model, d_model)
        # DAB keeps the query's positional term in the content part of the first layer only
        self.ca_q_pos = nn.Linear(d_model, d_model) if first else None
        self.ca_out = nn.Linear(d_model, d_model)
        self.attn_dropout = dropout
        self.ffn = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(dim_feedforward, d_model))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        return x.view(B, N, self.nhead, C // self.nhead).transpose(1, 2)  # (B, h, N, C/h)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor, query_sine: Tensor,
                num_groups: int = 1) -> Tensor:
        """tgt (B, G*Q, C), memory and pos (B, HW, C), query_pos and query_sine (B, G*Q, C)."""
        B, N, C = tgt.shape
        G = num_groups
        # group-wise self-attention: groups folded into the batch axis (block-diagonal mask)
        q = k = (tgt + query_pos).reshape(B * G, N // G, C)  # (B*G, Q, C)
        sa = self.self_attn(q, k, tgt.reshape(B * G, N // G, C), need_weights=False)[0].reshape(B, N, C)
        tgt = self.norm1(tgt + self.dropout(sa))  # (B, G*Q, C)

        # conditional cross-attention: [content | spatial] per head, so 2*C/h per head
        q_content, k_content = self.ca_q_content(tgt), self.ca_k_content(memory)
        k_pos = self.ca_k_pos(pos)
        if self.ca_q_pos is not None:
            q_content, k_content = q_content + self.ca_q_pos(query_pos), k_content + k_pos
        q = torch.cat([self._heads(q_content), self._heads(self.ca_q_sine(query_sine))], -1)  # (B, h, G*Q, 2C/h)
        k = torch.cat([self._heads(k_content), self._heads(k_pos)], -1)  # (B, h, HW, 2C/h)
        v = self._heads(self.ca_v(memory))  # (B, h, HW, C/h)
        ca = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_dropout if self.training else 0.0)
        ca = self.ca_out(ca.transpose(1, 2).reshape(B, N, C))  # (B, G*Q, C)
        tgt = self.norm2(tgt + self.dropout(ca))
        return self.norm3(tgt + self.dropout(self.ffn(tgt)))


class AnchorDecoder(nn.Module):
    """Stack of ``DecoderLayer``s refining 4-d anchors layer by layer (DAB-DETR).

    The box head (shared by all layers) lives here because each layer's prediction is the
    next layer's anchor; the class head is applied by the caller on the returned states.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, num_layers: int, dropout: float = 0.0,
                 modulate_hw_attn: bool = True):
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(DecoderLayer(d_model, nhead, dim_feedforward, dropout, first=(i == 0))
                                    for i in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.ref_point_head = MLP(2 * d_model, d_model, d_model, 2)  # sine(4-d anchor) -> query pos
        self.query_scale = MLP(d_model, d_model, d_model, 2)  # content-conditioned scale of the spatial query
        self.ref_anchor_head = MLP(d_model, d_model, 2, 2) if modulate_hw_attn else None
        self.box_head = MLP(d_model, d_model, 4, 3)
        nn.init.zeros_(self.box_head.layers[-1].weight)  # start exactly at the anchors
        nn.init.zeros_(self.box_head.layers[-1].bias)

    def forward(self, memory: Tensor, pos: Tensor, anchors: Tensor, num_groups: int = 1,
                group_self_attn: bool = True) -> tuple[Tensor, Tensor]:
        """Decode ``anchors`` (B, N, 4), inverse-sigmoid cxcywh, N = G*Q, over ``memory`` (B, HW, C).

        ``group_self_attn=False`` lets every query attend to all G*Q queries (the "shared
        self-attention" ablation of Group DETR); the default keeps self-attention inside each
        group. Returns hidden states (L, B, N, C), layer-normed, and boxes (L, B, N, 4):
        sigmoid cxcywh predicted by each layer.
        """
        sa_groups = num_groups if group_self_attn else 1
        B, N, _ = anchors.shape
        half = self.d_model // 2
        tgt = memory.new_zeros(B, N, self.d_model)  # content queries start empty (DAB, no patterns)
        ref = anchors.sigmoid()  # (B, N, 4)
        states, boxes = [], []
        for i, layer in enumerate(self.layers):
            sine = sine_embed(ref, half)  # (B, N, 2C): cx, cy, w, h each C/2
            query_pos = self.ref_point_head(sine)  # (B, N, C)
            query_sine = sine[..., : self.d_model]  # (B, N, C): cx, cy part only
            if i > 0:
                query_sine = query_sine * self.query_scale(tgt)
            if self.ref_anchor_head is not None:  # modulated attention: scale x/y by ref w/h ratio
                wh_ref = self.ref_anchor_head(tgt).sigmoid()  # (B, N, 2)
                scale = torch.cat([(wh_ref[..., :1] / ref[..., 2:3]).expand(-1, -1, half),
                                   (wh_ref[..., 1:] / ref[..., 3:4]).expand(-1, -1, half)], -1)
                query_sine = query_sine * scale
            tgt = layer(tgt, memory, pos, query_pos, query_sine, sa_groups)
            hs = self.norm(tgt)
            box = (self.box_head(hs) + inverse_sigmoid(ref)).sigmoid()  # (B, N, 4)
            states.append(hs)
            boxes.append(box)
            ref = box.detach()
        return torch.stack(states), torch.stack(boxes)
