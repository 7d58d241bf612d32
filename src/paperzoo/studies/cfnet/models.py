"""CFNet backbones (arXiv 2302.06052) and the ConvNeXt + FPN baseline, as pyramid feature
modules for ``paperzoo.layers.dense.DenseDetector``.

CFNet v1 has no released code; its successor CEDNet (arXiv 2302.06052 v2,
github.com/zhanggang001/CEDNet, ``models/cednet.py`` with ``encoder_type='Encoder'`` and
``decoder_type='Decoder'``) is the structural reference. Read, not copied. The structure:

* stem: conv3x3 s2 (3 -> ``stem_dim``), LN, GELU, conv3x3 s2 (-> ``p2_dim``), LN, GELU (1/4);
* p2 stage: ``p2_block`` NeXt blocks at 1/4, then conv2x2 s2 + LN to ``dims[0]`` (1/8);
* M cascade stages, each an encoder: ``blocks[0]`` NeXt blocks at 1/8, conv2x2 s2 + LN,
  ``blocks[1]`` NeXt blocks at 1/16, conv2x2 s2 + LN, ``blocks[2]`` FOCAL blocks at 1/32;
* every stage but the last ends in a transition (the cascade fusion), sequential top-down:
  ``c4' = LN(c4 + Up2(conv1x1(c5)))``, ``c3' = LN(c3 + Up2(conv1x1(c4')))`` (bilinear),
  or, with ``transition="concat"``, ``LN(conv1x1([c4, Up2(conv1x1(c5))]))`` (v1's transition
  style is not confirmed; sequential add is CEDNet's). ONLY the fused 1/8 map ``c3'`` flows
  into the next stage; the last stage emits its encoder's (c3, c4, c5) unfused;
* detector attachment (CEDNet's RetinaNet wrapper, no FPN): per level conv1x1 (-> width)
  + LN; P6/P7 (conv3x3 s2 + LN on the last map) only when ``extra_levels`` > 0.

NeXt block (ConvNeXt): dw7x7 -> LN -> Linear 4x -> GELU -> Linear -> layer scale gamma ->
residual. Focal block (CEDNet ``DNeXtBlock``): ``x += GELU(LN(dw7x7(x)))``, then
``x += GELU(LN(dw7x7 dilation 3 (x)))``, then the MLP with gamma added to the block's INPUT.
Layer scale starts at 1e-6, Kaiming-normal (fan_out) init of convs and linears.

The baseline is ConvNeXt (stem conv4x4 s4 + LN; LN + conv2x2 s2 downsampling; four stages)
with torchvision's ``FeaturePyramidNetwork`` on C3-C5.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork

from paperzoo.layers.registry import is_model, register_model


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (CEDNet's ``channels_first`` LN)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__(dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at ``p = 0`` and in eval)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class _MLP(nn.Module):
    """Linear 4x -> GELU -> Linear -> gamma (channels-last), the ConvNeXt block's MLP."""

    def __init__(self, dim: int, ls_init: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init))

    def forward(self, x: Tensor) -> Tensor:  # (B, H, W, C) -> (B, C, H, W)
        return (self.gamma * self.fc2(F.gelu(self.fc1(x)))).permute(0, 3, 1, 2)


class NeXtBlock(nn.Module):
    """ConvNeXt block: x + gamma * MLP(LN(dw7x7(x)))."""

    def __init__(self, dim: int, drop_path: float = 0.0, ls_init: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp, self.drop_path = _MLP(dim, ls_init), DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.mlp(self.norm(self.dwconv(x).permute(0, 2, 3, 1))))


class FocalBlock(nn.Module):
    """CEDNet's focal block (``DNeXtBlock``): two residual dw7x7 (dilation 1, then
    ``dilation``) + LN + GELU branches enlarge the receptive field, then the NeXt MLP,
    added to the block's input."""

    def __init__(self, dim: int, drop_path: float = 0.0, ls_init: float = 1e-6, dilation: int = 3):
        super().__init__()
        self.dw1 = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim), LayerNorm2d(dim), nn.GELU())
        self.dw2 = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3 * dilation, dilation=dilation, groups=dim),
                                 LayerNorm2d(dim), nn.GELU())
        self.mlp, self.drop_path = _MLP(dim, ls_init), DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dw1(x) + x
        y = self.dw2(y) + y
        return x + self.drop_path(self.mlp(y.permute(0, 2, 3, 1)))


def _down(c_in: int, c_out: int, norm_first: bool = False) -> nn.Sequential:
    """conv2x2 s2 + LN (CEDNet), or LN + conv2x2 s2 (ConvNeXt, ``norm_first``)."""
    conv = nn.Conv2d(c_in, c_out, 2, stride=2)
    return nn.Sequential(LayerNorm2d(c_in), conv) if norm_first else nn.Sequential(conv, LayerNorm2d(c_out))


class Transition(nn.Module):
    """The cascade fusion at the end of a stage: top-down from 1/32 to 1/8 (module doc).
    ``mode``: ``"add"`` (CEDNet's sequential add) or ``"concat"``."""

    def __init__(self, dims: tuple[int, int, int], mode: str = "add"):
        super().__init__()
        if mode not in ("add", "concat"):
            raise ValueError(f"cfnet transition {mode!r}: expected 'add' or 'concat'")
        self.mode = mode
        self.lat5, self.lat4 = nn.Conv2d(dims[2], dims[1], 1), nn.Conv2d(dims[1], dims[0], 1)
        self.norm4, self.norm3 = LayerNorm2d(dims[1]), LayerNorm2d(dims[0])
        if mode == "concat":
            self.mix4, self.mix3 = nn.Conv2d(2 * dims[1], dims[1], 1), nn.Conv2d(2 * dims[0], dims[0], 1)

    def _fuse(self, x: Tensor, top: Tensor, lat: nn.Module, norm: nn.Module, mix: str) -> Tensor:
        up = F.interpolate(lat(top), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return norm(x + up if self.mode == "add" else getattr(self, mix)(torch.cat([x, up], 1)))

    def forward(self, c3: Tensor, c4: Tensor, c5: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c4 = self._fuse(c4, c5, self.lat5, self.norm4, "mix4")
        c3 = self._fuse(c3, c4, self.lat4, self.norm3, "mix3")
        return c3, c4, c5


class CascadeStage(nn.Module):
    """One CFNet stage: encoder over 1/8, 1/16, 1/32 (focal blocks at 1/32) + optional transition."""

    def __init__(self, dims, blocks, dp: list[float], ls_init: float, transition: str | None):
        super().__init__()
        it = iter(dp)
        self.b3 = nn.Sequential(*[NeXtBlock(dims[0], next(it), ls_init) for _ in range(blocks[0])])
        self.d4 = _down(dims[0], dims[1])
        self.b4 = nn.Sequential(*[NeXtBlock(dims[1], next(it), ls_init) for _ in range(blocks[1])])
        self.d5 = _down(dims[1], dims[2])
        self.b5 = nn.Sequential(*[FocalBlock(dims[2], next(it), ls_init) for _ in range(blocks[2])])
        self.transition = Transition(dims, transition) if transition else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c3 = self.b3(x)
        c4 = self.b4(self.d4(c3))
        c5 = self.b5(self.d5(c4))
        return self.transition(c3, c4, c5) if self.transition is not None else (c3, c4, c5)


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="linear")
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class _Attach(nn.Module):
    """Per-level conv1x1 (-> ``width``) + LN, plus ``extra_levels`` conv3x3 s2 + LN maps (P6, P7)."""

    def __init__(self, dims, width: int, extra_levels: int):
        super().__init__()
        self.reduce = nn.ModuleList(nn.Sequential(nn.Conv2d(d, width, 1), LayerNorm2d(width)) for d in dims)
        self.extra = nn.ModuleList(nn.Sequential(nn.Conv2d(width, width, 3, 2, 1), LayerNorm2d(width))
                                   for _ in range(extra_levels))

    def forward(self, feats) -> OrderedDict:
        out = OrderedDict((f"p{3 + i}", r(f)) for i, (r, f) in enumerate(zip(self.reduce, feats)))
        last = out[next(reversed(out))]
        for k, e in enumerate(self.extra):
            last = e(last)
            out[f"p{6 + k}"] = last
        return out


class CFNet(nn.Module):
    """CFNet backbone + detector attachment: images (B, 3, H, W) -> OrderedDict ``p3``..``p5``
    (+ ``p6``, ``p7`` with ``extra_levels``), each (B, ``width``, H/s, W/s).

    num_stages: M cascade stages (M = 1: no transition, no fusion at all). blocks: per stage
    (n 1/8 blocks, n 1/16 blocks, n focal blocks at 1/32), one triple for every stage or a
    list of M triples. transition: ``"add"`` | ``"concat"``. focal: False replaces the focal
    blocks by NeXt blocks (the paper's focal-block ablation; only meaningful when the 1/32 map
    is large, i.e. at paper scale). ``stages_out``: also return every stage's (c3, c4, c5)
    (deep supervision for ImageNet pretraining) via :meth:`stage_features`.
    """

    def __init__(self, num_stages: int = 2, stem_dim: int = 16, p2_dim: int = 24, p2_block: int = 1,
                 dims=(32, 48, 64), blocks=(1, 2, 1), width: int = 64, extra_levels: int = 0,
                 transition: str = "add", focal: bool = True, drop_path_rate: float = 0.0, ls_init: float = 1e-6):
        super().__init__()
        blocks = [tuple(blocks)] * num_stages if isinstance(blocks[0], int) else [tuple(b) for b in blocks]
        if len(blocks) != num_stages:
            raise ValueError(f"cfnet: {len(blocks)} block triples for {num_stages} stages")
        self.num_stages, self.dims, self.out_channels = num_stages, tuple(dims), width
        self.strides = (8, 16, 32) + tuple(64 * 2 ** k for k in range(extra_levels))
        dp = torch.linspace(0, drop_path_rate, p2_block + sum(map(sum, blocks)), device="cpu").tolist()
        self.stem = nn.Sequential(nn.Conv2d(3, stem_dim, 3, 2, 1), LayerNorm2d(stem_dim), nn.GELU(),
                                  nn.Conv2d(stem_dim, p2_dim, 3, 2, 1), LayerNorm2d(p2_dim), nn.GELU())
        self.p2 = nn.Sequential(*[NeXtBlock(p2_dim, dp[k], ls_init) for k in range(p2_block)], _down(p2_dim, dims[0]))
        self.stages, k = nn.ModuleList(), p2_block
        for s, b in enumerate(blocks):
            stage = CascadeStage(dims, b, dp[k:k + sum(b)], ls_init, transition if s < num_stages - 1 else None)
            if not focal:
                stage.b5 = nn.Sequential(*[NeXtBlock(dims[2], dp[k + b[0] + b[1] + j], ls_init) for j in range(b[2])])
            self.stages.append(stage)
            k += sum(b)
        self.attach = _Attach(dims, width, extra_levels)
        self.apply(_init)

    def stage_features(self, images: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Every stage's (c3, c4, c5) (after its transition); the next stage reads c3 only."""
        x, outs = self.p2(self.stem(images)), []
        for stage in self.stages:
            feats = stage(x)
            outs.append(feats)
            x = feats[0]
        return outs

    def forward(self, images: Tensor) -> OrderedDict:
        return self.attach(self.stage_features(images)[-1])

    def transition_params(self) -> int:
        """Parameters of every transition (the cascade fusion's cost)."""
        return sum(p.numel() for s in self.stages if s.transition is not None for p in s.transition.parameters())


class ConvNeXtFPN(nn.Module):
    """ConvNeXt backbone + torchvision FPN: images -> OrderedDict ``p3``..``p5`` (+ P6/P7 as
    conv3x3 s2 maps of P5 with ``extra_levels``, RetinaNet's ``LastLevelP6P7``), ``width``
    channels each. dims/depths: the four ConvNeXt stages (strides 4, 8, 16, 32)."""

    def __init__(self, dims=(24, 32, 48, 64), depths=(1, 1, 3, 1), width: int = 64, extra_levels: int = 0,
                 drop_path_rate: float = 0.0, ls_init: float = 1e-6):
        super().__init__()
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7

        self.dims, self.out_channels = tuple(dims), width
        self.strides = (8, 16, 32) + tuple(64 * 2 ** k for k in range(extra_levels))
        dp = iter(torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist())
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        self.stages = nn.ModuleList()
        for i, (d, n) in enumerate(zip(dims, depths)):
            down = [] if i == 0 else [_down(dims[i - 1], d, norm_first=True)]
            self.stages.append(nn.Sequential(*down, *[NeXtBlock(d, next(dp), ls_init) for _ in range(n)]))
        self.apply(_init)
        # P6 from C5 (mmdet RetinaNet's add_extra_convs='on_input'; torchvision uses C5 when
        # the channel counts differ), P7 from ReLU(P6)
        extra = LastLevelP6P7(dims[-1], width) if extra_levels == 2 else None
        if extra_levels not in (0, 2):
            raise ValueError(f"convnext_fpn: extra_levels {extra_levels}: expected 0 or 2 (P6, P7)")
        self.fpn = FeaturePyramidNetwork(list(dims[1:]), width, extra_blocks=extra)

    def forward(self, images: Tensor) -> OrderedDict:
        x, feats = self.stem(images), OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 1:
                feats[f"p{i + 2}"] = x
        return self.fpn(feats)  # keys p3..p5 (+ p6, p7: torchvision's LastLevelP6P7 names)


# --- registry: mini arms (64-px images) and paper presets ------------------------------------
# mini: ~250-270k parameters in backbone + neck (within 5 % of the baseline; tests check it)

MINI = {
    "convnext_fpn_mini": lambda **kw: ConvNeXtFPN(**{"dims": (24, 32, 48, 64), "depths": (1, 1, 3, 1), **kw}),
    "cfnet_mini_m1": lambda **kw: CFNet(**{"num_stages": 1, "blocks": (2, 4, 3), **kw}),
    "cfnet_mini_m2": lambda **kw: CFNet(**{"num_stages": 2, "blocks": (1, 2, 1), **kw}),
    "cfnet_mini_m3": lambda **kw: CFNet(**{"num_stages": 3, "dims": (32, 48, 56), "blocks": (1, 1, 1), **kw}),
    # tests / tiny scale
    "test_convnext_fpn": lambda **kw: ConvNeXtFPN(**{"dims": (8, 8, 16, 16), "depths": (1, 1, 1, 1), "width": 16,
                                                     **kw}),
    "test_cfnet": lambda **kw: CFNet(**{"num_stages": 2, "stem_dim": 8, "p2_dim": 8, "dims": (8, 16, 16),
                                        "blocks": (1, 1, 1), "width": 16, **kw}),
    # paper scale: CEDNet-style presets (T/S/B) with the RetinaNet attachment (256, P3-P7), and
    # ConvNeXt-T/S/B + FPN (P3-P7) baselines
    "cfnet_t": lambda **kw: CFNet(**{"num_stages": 3, "stem_dim": 32, "p2_dim": 96, "p2_block": 3,
                                     "dims": (192, 352, 512), "blocks": (2, 4, 2), "width": 256, "extra_levels": 2,
                                     "drop_path_rate": 0.2, **kw}),
    "cfnet_s": lambda **kw: CFNet(**{"num_stages": 4, "stem_dim": 32, "p2_dim": 96, "p2_block": 3,
                                     "dims": (192, 352, 512), "blocks": (2, 7, 2), "width": 256, "extra_levels": 2,
                                     "drop_path_rate": 0.3, **kw}),
    "cfnet_b": lambda **kw: CFNet(**{"num_stages": 4, "stem_dim": 32, "p2_dim": 128, "p2_block": 3,
                                     "dims": (256, 448, 704), "blocks": (2, 7, 2), "width": 256, "extra_levels": 2,
                                     "drop_path_rate": 0.3, **kw}),
    "convnext_t_fpn": lambda **kw: ConvNeXtFPN(**{"dims": (96, 192, 384, 768), "depths": (3, 3, 9, 3), "width": 256,
                                                  "extra_levels": 2, "drop_path_rate": 0.4, **kw}),
    "convnext_s_fpn": lambda **kw: ConvNeXtFPN(**{"dims": (96, 192, 384, 768), "depths": (3, 3, 27, 3),
                                                  "width": 256, "extra_levels": 2, "drop_path_rate": 0.4, **kw}),
    "convnext_b_fpn": lambda **kw: ConvNeXtFPN(**{"dims": (128, 256, 512, 1024), "depths": (3, 3, 27, 3),
                                                  "width": 256, "extra_levels": 2, "drop_path_rate": 0.4, **kw}),
}

for _name, _fn in MINI.items():
    if not is_model(_name):
        _fn.__name__ = _name
        _fn.__module__ = __name__
        register_model(_fn)
