"""UFO pieces: an elastic multi-task ViT supernet with task-routed FFNs, CosFace heads,
retrieval metrics, per-path parameter counts and the trimming search.

UFO (Xi et al., *UFO: Unified Feature Optimization*, ECCV 2022, arXiv 2207.10341) trains one
supernet on several retrieval tasks and deploys, per task, a sub-network cut out of it with
"completely NO adaptation cost". Read, not copied: PaddlePaddle/VIMER ``UFO/OneForAll``
(``vision_transformer_super_hardpolicy_moe.py``, ``moe_layer.py``):

* per task its own patch embedding, position embedding and CLS token (``sep_list``);
* per step one sub-network: depth, and per layer the number of heads and the MLP ratios of the
  shared ("common") expert and the task expert, drawn by a ``random.Random`` seeded with the
  step (data-parallel ranks agree); the head dimension is fixed, so q/k/v widths are
  ``heads x head_dim`` — the first rows/columns of the full matrices (:class:`ElasticAttention`);
* per layer and task one learnable pair of routing logits (initialised to 0): a hard
  straight-through Gumbel-softmax (τ = 5) picks the shared or the task FFN per sample; both
  are computed in training; evaluation takes the argmax without noise (:class:`RoutedBlock`);
* CosFace heads (Wang et al. 2018, Eq. 4: ``s (cos θ_y − m)`` for the target, ``s cos θ_j``
  otherwise), one per task, used in training only.
"""
from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# --- sub-network configurations --------------------------------------------------------------------

@dataclass(frozen=True)
class Space:
    """The elastic choices (the released eval config's kind: depth, heads, MLP ratio)."""

    depths: tuple[int, ...] = (4, 5, 6)
    heads: tuple[int, ...] = (2, 3, 4)
    mlp_ratios: tuple[float, ...] = (2.0, 3.0, 4.0)

    def largest(self) -> dict:
        d = max(self.depths)
        return {"depth": d, "heads": [max(self.heads)] * d, "mlp_shared": [max(self.mlp_ratios)] * d,
                "mlp_task": [max(self.mlp_ratios)] * d}

    def sample(self, rng: random.Random) -> dict:
        """One sub-network: depth, and per layer heads, shared-expert and task-expert MLP ratios."""
        d = rng.choice(self.depths)
        return {"depth": d, "heads": [rng.choice(self.heads) for _ in range(d)],
                "mlp_shared": [rng.choice(self.mlp_ratios) for _ in range(d)],
                "mlp_task": [rng.choice(self.mlp_ratios) for _ in range(d)]}


def step_config(space: Space, seed: int, step: int, largest_every: int) -> dict:
    """Step ``step``'s sub-network: seeded by (seed, step) only (official: ``random.seed(step)``);
    the largest one every ``largest_every`` steps (ours; 0 = never)."""
    if largest_every and step % largest_every == 0:
        return space.largest()
    return space.sample(random.Random(seed * 1_000_003 + step))


# --- layers ----------------------------------------------------------------------------------------

class ElasticAttention(nn.Module):
    """Multi-head self-attention whose first ``heads`` heads (fixed ``head_dim``) are used."""

    def __init__(self, dim: int, max_heads: int, head_dim: int):
        super().__init__()
        self.dim, self.max_heads, self.head_dim = dim, max_heads, head_dim
        self.qkv = nn.Linear(dim, 3 * max_heads * head_dim)
        self.proj = nn.Linear(max_heads * head_dim, dim)

    def forward(self, x: Tensor, heads: int) -> Tensor:
        b, n, d = x.shape
        w = heads * self.head_dim
        weight = self.qkv.weight.view(3, -1, d)[:, :w].reshape(3 * w, d)
        bias = self.qkv.bias.view(3, -1)[:, :w].reshape(3 * w)
        q, k, v = F.linear(x, weight, bias).view(b, n, 3, heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        return F.linear(out, self.proj.weight[:, :w], self.proj.bias)

    def n_params(self, heads: int) -> int:
        w = heads * self.head_dim
        return 3 * w * self.dim + 3 * w + self.dim * w + self.dim


class ElasticMlp(nn.Module):
    """fc1 → GELU → fc2 whose first ``hidden`` units are used."""

    def __init__(self, dim: int, max_hidden: int):
        super().__init__()
        self.dim = dim
        self.fc1, self.fc2 = nn.Linear(dim, max_hidden), nn.Linear(max_hidden, dim)

    def forward(self, x: Tensor, hidden: int) -> Tensor:
        h = F.gelu(F.linear(x, self.fc1.weight[:hidden], self.fc1.bias[:hidden]))
        return F.linear(h, self.fc2.weight[:, :hidden], self.fc2.bias)

    def n_params(self, hidden: int) -> int:
        return 2 * self.dim * hidden + hidden + self.dim


class RoutedBlock(nn.Module):
    """Pre-norm transformer block; the FFN is the shared expert, or (``moe``) the shared or this
    task's expert chosen per sample by hard straight-through Gumbel-softmax over learnable logits
    (τ = ``tau``; official: τ = 5, logits initialised to 0). Evaluation: the logits' argmax."""

    def __init__(self, dim: int, max_heads: int, head_dim: int, max_mlp_ratio: float, tasks: tuple[str, ...],
                 moe: bool, tau: float = 5.0):
        super().__init__()
        hidden = int(dim * max_mlp_ratio)
        self.dim, self.moe, self.tau, self.tasks = dim, moe, tau, tasks
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = ElasticAttention(dim, max_heads, head_dim)
        self.shared = ElasticMlp(dim, hidden)
        if moe:
            self.experts = nn.ModuleDict({t: ElasticMlp(dim, hidden) for t in tasks})
            self.route = nn.Parameter(torch.zeros(len(tasks), 2))

    def routed_expert(self, task: str) -> int:
        """Evaluation's choice for ``task``: 0 = shared FFN, 1 = the task's expert."""
        if not self.moe:
            return 0
        return int(self.route[self.tasks.index(task)].argmax())

    def forward(self, x: Tensor, task: str, heads: int, hidden_shared: int, hidden_task: int) -> Tensor:
        x = x + self.attn(self.norm1(x), heads)
        h = self.norm2(x)
        if not self.moe:
            return x + self.shared(h, hidden_shared)
        if not self.training:
            if self.routed_expert(task) == 0:
                return x + self.shared(h, hidden_shared)
            return x + self.experts[task](h, hidden_task)
        logits = self.route[self.tasks.index(task)].expand(x.shape[0], 2)
        w = F.gumbel_softmax(logits, tau=self.tau, hard=True)                       # (B, 2) one-hot, ST gradient
        return x + w[:, 0, None, None] * self.shared(h, hidden_shared) + w[:, 1, None, None] * self.experts[task](
            h, hidden_task)


def patch_embedding(stem: str, dim: int, patch_size: int) -> nn.Module:
    """``patch``: the ViT's linear patch projection (a stride-``patch_size`` convolution);
    ``conv``: a convolutional stem of stride-2 3 x 3 convolutions down to the same token grid
    (Xiao et al., *Early Convolutions Help Transformers See Better*, arXiv 2106.14881), which
    trains far better from scratch on small data."""
    if stem == "patch":
        return nn.Conv2d(3, dim, patch_size, patch_size)
    if stem != "conv":
        raise ValueError(f"stem {stem!r}: expected 'patch' or 'conv'")
    n = int(math.log2(patch_size))
    if 2 ** n != patch_size:
        raise ValueError(f"conv stem needs a power-of-two patch size, got {patch_size}")
    layers, c = [], 3
    for i in range(n):
        out = dim if i == n - 1 else max(8, dim >> (n - 1 - i))
        layers += [nn.Conv2d(c, out, 3, 2, 1)] + ([nn.BatchNorm2d(out), nn.ReLU(inplace=True)] if i < n - 1 else [])
        c = out
    return nn.Sequential(*layers)


class UFOSupernet(nn.Module):
    """The multi-task supernet. ``forward(x, task, cfg)`` → L2-normalised embeddings (B, dim):
    the task's CLS token after the sub-network ``cfg`` and the final LayerNorm."""

    def __init__(self, tasks: tuple[str, ...], img_size: int = 32, patch_size: int = 8, dim: int = 64,
                 max_depth: int = 6, max_heads: int = 4, head_dim: int = 16, max_mlp_ratio: float = 4.0,
                 moe: bool = True, tau: float = 5.0, stem: str = "patch"):
        super().__init__()
        self.tasks, self.dim, self.moe = tuple(tasks), dim, moe
        n_tok = (img_size // patch_size) ** 2
        self.patch_embed = nn.ModuleDict({t: patch_embedding(stem, dim, patch_size) for t in self.tasks})
        self.pos_embed = nn.ParameterDict({t: nn.Parameter(0.02 * torch.randn(1, n_tok + 1, dim)) for t in self.tasks})
        self.cls_token = nn.ParameterDict({t: nn.Parameter(0.02 * torch.randn(1, 1, dim)) for t in self.tasks})
        self.blocks = nn.ModuleList([RoutedBlock(dim, max_heads, head_dim, max_mlp_ratio, self.tasks, moe, tau)
                                     for _ in range(max_depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, task: str, cfg: dict) -> Tensor:
        t = self.patch_embed[task](x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token[task].expand(t.shape[0], -1, -1), t], 1) + self.pos_embed[task]
        for i in range(cfg["depth"]):
            t = self.blocks[i](t, task, cfg["heads"][i], int(self.dim * cfg["mlp_shared"][i]),
                               int(self.dim * cfg["mlp_task"][i]))
        return F.normalize(self.norm(t[:, 0]), dim=-1)

    def path_params(self, task: str, cfg: dict) -> int:
        """Parameters a deployed ``task`` path of ``cfg`` uses: its patch/position embeddings and
        CLS token, per used layer the norms, the attention slice and the FFN it is routed to
        (argmax), and the final norm. CosFace weights (training only) and routing logits are
        excluded."""
        n = sum(p.numel() for p in self.patch_embed[task].parameters())
        n += self.pos_embed[task].numel() + self.cls_token[task].numel() + 2 * self.dim
        for i in range(cfg["depth"]):
            b = self.blocks[i]
            routed = b.routed_expert(task)
            hidden = int(self.dim * (cfg["mlp_task"][i] if routed else cfg["mlp_shared"][i]))
            n += 4 * self.dim + b.attn.n_params(cfg["heads"][i]) + b.shared.n_params(hidden)
        return n


class CosFace(nn.Module):
    """Large-margin cosine loss (Wang et al., CosFace, arXiv 1801.09414, Eq. 4) on L2-normalised
    embeddings and class weights: CE of ``s (cos θ_y − m)`` vs ``s cos θ_j``."""

    def __init__(self, dim: int, n_classes: int, s: float, m: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) / math.sqrt(dim))
        self.s, self.m = s, m

    def forward(self, emb: Tensor, labels: Tensor) -> Tensor:
        cos = emb @ F.normalize(self.weight, dim=-1).t()
        logits = self.s * (cos - self.m * F.one_hot(labels, cos.shape[1]))
        return F.cross_entropy(logits, labels)


# --- evaluation ----------------------------------------------------------------------------------

def retrieval_metrics(emb: Tensor, labels: Tensor) -> dict:
    """All-vs-all retrieval on one split: every image queries all the others (cosine similarity of
    normalised embeddings). ``R1``: the nearest other image shares the identity; ``mAP``: mean over
    queries of the average precision of the ranked list (relevant = same identity)."""
    n = emb.shape[0]
    sim = emb @ emb.t()
    sim.fill_diagonal_(-math.inf)
    order = sim.argsort(1, descending=True)[:, : n - 1]                  # the query itself is last
    rel = (labels[order] == labels[:, None]).float()                     # (n, n - 1)
    n_rel = rel.sum(1)
    prec = rel.cumsum(1) / torch.arange(1, n, dtype=torch.float32)
    ap = (prec * rel).sum(1) / n_rel.clamp_min(1)
    valid = n_rel > 0
    return {"R1": float(rel[:, 0].mean()), "mAP": float(ap[valid].mean())}


@torch.no_grad()
def embed(model: UFOSupernet, images: Tensor, task: str, cfg: dict, batch_size: int = 256) -> Tensor:
    model.eval()
    return torch.cat([model(images[i:i + batch_size], task, cfg) for i in range(0, len(images), batch_size)])


def mutate(cfg: dict, space: Space, rng: random.Random) -> dict:
    """One gene changed: the depth, or one layer's heads or MLP ratio (shared and task ratio
    move together: a deployed path uses one of them)."""
    c = copy.deepcopy(cfg)
    what = rng.choice(("depth", "heads", "mlp"))
    if what == "depth":
        d = rng.choice(space.depths)
        grow = max(0, d - c["depth"])
        for k, pool in (("heads", space.heads), ("mlp_shared", space.mlp_ratios)):
            c[k] = c[k][:d] + [rng.choice(pool) for _ in range(grow)]
        c["mlp_task"] = list(c["mlp_shared"])
        c["depth"] = d
    else:
        i = rng.randrange(c["depth"])
        if what == "heads":
            c["heads"][i] = rng.choice(space.heads)
        else:
            c["mlp_shared"][i] = c["mlp_task"][i] = rng.choice(space.mlp_ratios)
    return c


def path_config(space: Space, rng: random.Random) -> dict:
    """A random deployed path (shared and task MLP ratio equal: only the routed one is used)."""
    c = space.sample(rng)
    c["mlp_task"] = list(c["mlp_shared"])
    return c
