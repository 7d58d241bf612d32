"""DRKD study: GloRe unit, instance relation, RoI pooling and the distillation losses on small hand tensors."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from paperzoo.studies.drkd import losses
from paperzoo.studies.drkd.modules import (
    Adapter,
    GloReUnit,
    ObjectRelation,
    glore_mid_channels,
    glore_pyramid,
    random_filter_mask,
    roi_features,
)

C = 8


def _identity_adapter(channels=C):
    a = Adapter(channels)
    with torch.no_grad():
        a.conv.weight.copy_(torch.eye(channels)[:, :, None, None])
        a.conv.bias.zero_()
    return a


# ---------------------------------------------------------------- GloRe

def test_glore_shapes_widths_and_param_count():
    torch.manual_seed(0)
    for mid in (2, 8):
        u = GloReUnit(C, mid)
        x = torch.randn(2, C, 5, 7)
        assert u(x).shape == x.shape
        s, n = 2 * mid, mid
        expected = (C * s + s) + (C * n + n) + (n * n + n) + s * s + s * C + 2 * C  # released GloRe_Unit_2D
        assert sum(p.numel() for p in u.parameters()) == expected
    assert [glore_mid_channels(256, l) for l in range(5)] == [64, 64, 256, 256, 256]
    assert [m.num_n for m in glore_pyramid(256, 5)] == [64, 64, 256, 256, 256]
    assert GloReUnit(C, 2).bn.weight.detach().eq(1).all()  # released: BN not zero-initialised


def test_glore_identity_when_final_bn_zeroed():
    torch.manual_seed(0)
    x = torch.randn(2, C, 4, 6)
    u = GloReUnit(C, 4)
    with torch.no_grad():
        u.bn.weight.zero_()
    torch.testing.assert_close(u(x), x)
    torch.testing.assert_close(GloReUnit(C, 4, zero_init=True)(x), x)
    assert not torch.allclose(GloReUnit(C, 4)(x), x)


def test_glore_gcn_is_identity_plus_adjacency():
    u = GloReUnit(C, 3)
    v = torch.randn(2, 6, 3)
    with torch.no_grad():
        u.state_conv.weight.copy_(torch.eye(6)[:, :, None])
        u.node_conv.weight.zero_()
        u.node_conv.bias.zero_()
        torch.testing.assert_close(u.reason(v), F.relu(v))          # A = 0 -> ReLU(V I)
        u.node_conv.weight.copy_(torch.eye(3)[:, :, None])
        torch.testing.assert_close(u.reason(v), F.relu(2 * v))      # A = I -> ReLU(V (I + I))


# ---------------------------------------------------------------- ObjectRelation

def test_object_relation_shapes_and_rowwise_softmax_within_images():
    torch.manual_seed(0)
    d = C * 9
    rel = ObjectRelation(d)
    x = torch.randn(6, d)
    z, att = rel(x, sizes=[3, 1, 2], return_attention=True)
    assert z.shape == x.shape
    assert [a.shape for a in att] == [(3, 3), (1, 1), (2, 2)]
    for a in att:
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[0]))
    # (N, C, 3, 3) input is flattened and reshaped back
    assert rel(x.view(6, C, 3, 3), sizes=[6]).shape == (6, C, 3, 3)


def test_object_relation_images_do_not_interact():
    torch.manual_seed(0)
    rel = ObjectRelation(18, filter="none")
    x = torch.randn(5, 18)
    y = x.clone()
    y[3:] += 1.0
    torch.testing.assert_close(rel(x, [3, 2])[:3], rel(y, [3, 2])[:3])


def test_object_relation_batched_equals_per_image_formula():
    """The batched block-diagonal forward equals the per-image formula (``_one``), with and
    without the random filter (the filter of each image: its block of one seeded draw)."""
    torch.manual_seed(0)
    sizes = [3, 1, 0, 4]
    x = torch.randn(sum(sizes), 18)
    for filt in ("none", "code"):
        rel = ObjectRelation(18, filter=filt)
        z, att = rel(x, sizes, generator=torch.Generator().manual_seed(5), return_attention=True)
        if filt == "code":                 # the same draw, split by image
            g = torch.Generator().manual_seed(5)
            w = torch.rand(x.shape[0], 18, generator=g) * 2 / 18 ** 0.5 - 1 / 18 ** 0.5
            b = torch.rand(x.shape[0], generator=g) * 2 / 18 ** 0.5 - 1 / 18 ** 0.5
        start = 0
        for i, n in enumerate(sizes):
            xi = x[start:start + n]
            f = rel.theta(xi) @ rel.phi(xi).T
            if filt == "code" and n:
                f = f * torch.softmax(torch.nn.functional.linear(xi, w[start:start + n], b[start:start + n]), -1)
            a = torch.softmax(f, -1)
            torch.testing.assert_close(att[i], a)
            torch.testing.assert_close(z[start:start + n], rel.W(a @ rel.g(xi)) + xi)
            start += n


def test_object_relation_single_instance():
    torch.manual_seed(0)
    for filt in ("code", "none"):
        rel = ObjectRelation(18, filter=filt)
        x = torch.randn(1, 18)
        z, att = rel(x, return_attention=True)
        torch.testing.assert_close(att[0], torch.ones(1, 1))
        torch.testing.assert_close(z, rel.W(rel.g(x)) + x)


def test_object_relation_filter_code_seedable_and_random_otherwise():
    torch.manual_seed(0)
    rel = ObjectRelation(18, filter="code")
    x = torch.randn(4, 18)
    a = rel(x, [4], generator=torch.Generator().manual_seed(7))
    b = rel(x, [4], generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)
    _, att1 = rel(x, [4], return_attention=True)
    _, att2 = rel(x, [4], return_attention=True)
    assert not torch.allclose(att1[0], att2[0])
    m = random_filter_mask(x, torch.Generator().manual_seed(1))
    assert m.shape == (4, 4)
    torch.testing.assert_close(m.sum(-1), torch.ones(4))


def test_object_relation_filter_none_deterministic_and_matches_hand_formula():
    torch.manual_seed(0)
    rel = ObjectRelation(18, filter="none")
    x = torch.randn(3, 18)
    torch.testing.assert_close(rel(x), rel(x))
    att = torch.softmax(rel.theta(x) @ rel.phi(x).T, -1)
    torch.testing.assert_close(rel(x), rel.W(att @ rel.g(x)) + x)
    with pytest.raises(ValueError):
        ObjectRelation(18, filter="learned")


def test_adapter_roi_is_shared_channel_map():
    torch.manual_seed(0)
    a = Adapter(C)
    x = torch.randn(4, C, 3, 3)
    torch.testing.assert_close(a(x.flatten(1)), a(x).flatten(1))  # = released Conv2d on (N, C, 3, 3)
    assert Adapter(C, dense_dim=C * 9)(x.flatten(1)).shape == (4, C * 9)


# ---------------------------------------------------------------- roi_features

def test_roi_features_hand_computation_on_linear_map():
    # f(y, x) = 2x + 3y + 1 is reproduced exactly by bilinear sampling inside the map.
    H, W, stride = 10, 12, 4
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    feat = (2 * xs + 3 * ys + 1)[None, None]
    box = torch.tensor([[4 * stride, 2 * stride, 5 * stride, 3 * stride]], dtype=torch.float32)  # one cell
    for aligned, shift in ((False, 0.0), (True, 0.5)):
        (r,), sizes = roi_features([feat], [box], [stride], aligned=aligned)
        assert sizes == [1] and r.shape == (1, 9)
        centre = (torch.arange(3) + 0.5) / 3  # one sample per bin (adaptive ratio: ceil(1/3) = 1)
        x_s, y_s = 4 - shift + centre, 2 - shift + centre
        hand = 2 * x_s[None, :] + 3 * y_s[:, None] + 1
        torch.testing.assert_close(r.view(3, 3), hand)


def test_roi_features_split_and_levels_match_torchvision():
    torch.manual_seed(0)
    feats = [torch.randn(2, C, 16, 16), torch.randn(2, C, 8, 8)]
    boxes = [torch.tensor([[0., 0., 20., 30.], [10., 12., 40., 50.], [3., 4., 9., 60.]]),
             torch.tensor([[5., 5., 60., 33.]])]
    out, sizes = roi_features(feats, boxes, [4, 8])
    assert sizes == [3, 1] and [o.shape for o in out] == [(4, C * 9), (4, C * 9)]
    for lvl, stride in enumerate((4, 8)):
        ref = roi_align(feats[lvl], boxes, 3, spatial_scale=1 / stride).flatten(1)
        torch.testing.assert_close(out[lvl], ref)
        img1 = roi_align(feats[lvl][1:], [boxes[1]], 3, spatial_scale=1 / stride).flatten(1)
        torch.testing.assert_close(out[lvl].split(sizes)[1], img1)
    # the release's per-image call roi_align(x, [boxes_b]) pools from image 0
    first, _ = roi_features(feats, boxes, [4, 8], pool_from="first")
    code_b1 = roi_align(feats[0], [boxes[1]], 3, spatial_scale=1 / 4).flatten(1)
    torch.testing.assert_close(first[0].split(sizes)[1], code_b1)
    assert not torch.allclose(first[0][3:], out[0][3:])
    empty, sz = roi_features(feats, [torch.zeros(0, 4), torch.zeros(0, 4)], [4, 8])
    assert sz == [0, 0] and empty[0].shape == (0, C * 9)


# ---------------------------------------------------------------- losses

def test_distance_forms_on_hand_tensors():
    a, b = torch.zeros(3, 4), torch.full((3, 4), 3.0)
    torch.testing.assert_close(losses.distance(a, b, "code"), torch.tensor(math.sqrt(12 * 9.0)))
    torch.testing.assert_close(losses.distance(a, b, "code"), torch.dist(a, b, p=2))
    torch.testing.assert_close(losses.distance(a, b, "paper"), torch.tensor(9.0))
    torch.testing.assert_close(losses.distance(a, a, "paper"), torch.tensor(0.0))
    with pytest.raises(ValueError):
        losses.distance(a, b, "l1")
    assert losses.WEIGHTS_TWO_STAGE == pytest.approx({"prd": 1e-3, "ird": 4e-3, "ins": 2.4e-3})


def test_prd_and_fitnet_reduce_to_hand_forms():
    torch.manual_seed(0)
    s = [torch.randn(2, C, 6, 6), torch.randn(2, C, 3, 3)]
    t = [torch.randn(2, C, 6, 6), torch.randn(2, C, 3, 3)]
    ident = [GloReUnit(C, 2, zero_init=True) for _ in s]
    ad = [_identity_adapter() for _ in s]
    code = sum(torch.dist(x, y, p=2) for x, y in zip(s, t))
    paper = sum(F.mse_loss(x, y) for x, y in zip(s, t)) / 2
    for fn in (lambda f: losses.prd_loss(s, t, ident, ident, ad, f), lambda f: losses.fitnet_loss(s, t, ad, f)):
        torch.testing.assert_close(fn("code"), code)
        torch.testing.assert_close(fn("paper"), paper)
    assert float(losses.relation_share([u(x) for u, x in zip(ident, t)], t).max()) < 1e-6


def test_ird_and_ins_per_image_code_form():
    torch.manual_seed(0)
    d, sizes = C * 9, [2, 1]
    s, t = [torch.randn(3, d)], [torch.randn(3, d)]
    ad = [_identity_adapter()]
    code = torch.dist(s[0][:2], t[0][:2]) + torch.dist(s[0][2:], t[0][2:])
    torch.testing.assert_close(losses.ins_loss(s, t, sizes, ad, "code"), code)
    torch.testing.assert_close(losses.ins_loss(s, t, sizes, ad, "paper"), F.mse_loss(s[0], t[0]))
    rs, rt = ObjectRelation(d, "none"), ObjectRelation(d, "none")
    zs, zt = rs(s[0], sizes), rt(t[0], sizes)
    hand = torch.dist(zs[:2], zt[:2]) + torch.dist(zs[2:], zt[2:])
    torch.testing.assert_close(losses.ird_loss(s, t, sizes, [rs], [rt], ad, "code"), hand)
    torch.testing.assert_close(losses.ird_loss(s, t, sizes, [rs], [rt], ad, "paper"), F.mse_loss(zs, zt))


def test_per_image_code_distance_matches_loop_and_has_finite_gradients():
    """The vectorised sum of per-image torch.dist equals the loop, skips empty images, and an
    image at distance exactly 0 gives a zero (not NaN) gradient, as torch.dist does."""
    torch.manual_seed(0)
    sizes = [2, 0, 1, 3]
    a = torch.randn(6, 18, requires_grad=True)
    b = torch.randn(6, 18)
    b[2] = a[2].detach()                                   # image 2 at distance 0
    loop = sum(torch.dist(x, y) for x, y in zip(a.split(sizes), b.split(sizes)) if x.shape[0])
    got = losses._per_image(a, b, sizes, "code")
    torch.testing.assert_close(got, loop)
    (g,) = torch.autograd.grad(got, a)
    (g_loop,) = torch.autograd.grad(loop, a)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, g_loop)


def test_losses_zero_for_identical_inputs_and_matching_modules():
    torch.manual_seed(0)
    x = [torch.randn(2, C, 5, 5)]
    u = GloReUnit(C, 2)
    ad = [_identity_adapter()]
    for form in ("code", "paper"):
        assert losses.prd_loss(x, x, [u], [copy.deepcopy(u)], ad, form).item() == pytest.approx(0.0, abs=1e-6)
        assert losses.fitnet_loss(x, x, ad, form).item() == pytest.approx(0.0, abs=1e-6)
    r = [torch.randn(3, C * 9)]
    rel = ObjectRelation(C * 9, "none")
    for form in ("code", "paper"):
        assert losses.ins_loss(r, r, [3], ad, form).item() == pytest.approx(0.0, abs=1e-6)
        assert losses.ird_loss(r, r, [3], [rel], [copy.deepcopy(rel)], ad, form).item() == pytest.approx(0.0, abs=1e-6)


def test_gradients_reach_adapters_and_both_relation_sides_but_not_teacher_features():
    torch.manual_seed(0)
    s = [torch.randn(2, C, 6, 6, requires_grad=True), torch.randn(2, C, 3, 3, requires_grad=True)]
    t = [torch.randn(2, C, 6, 6, requires_grad=True), torch.randn(2, C, 3, 3, requires_grad=True)]  # "frozen"
    su, tu = glore_pyramid(C, 2), glore_pyramid(C, 2)
    pa = nn.ModuleList(Adapter(C) for _ in s)
    boxes = [torch.tensor([[0., 0., 12., 12.], [4., 4., 20., 16.]]), torch.tensor([[2., 2., 22., 22.]])]
    s_roi, sizes = roi_features(s, boxes, [4, 8])
    t_roi, _ = roi_features(t, boxes, [4, 8])
    sr = nn.ModuleList(ObjectRelation(C * 9, "code") for _ in s)
    tr = nn.ModuleList(ObjectRelation(C * 9, "code") for _ in s)
    ra, fa = nn.ModuleList(Adapter(C) for _ in s), nn.ModuleList(Adapter(C) for _ in s)
    g = torch.Generator().manual_seed(0)
    for form in ("code", "paper"):
        total = (losses.prd_loss(s, t, su, tu, pa, form) + losses.ird_loss(s_roi, t_roi, sizes, sr, tr, ra, form, g)
                 + losses.ins_loss(s_roi, t_roi, sizes, fa, form) + losses.fitnet_loss(s, t, pa, form))
        total.backward()
        for mod in (su, tu, pa, sr, tr, ra, fa):
            grads = [p.grad for p in mod.parameters()]
            assert all(gr is not None for gr in grads) and any(float(gr.abs().sum()) > 0 for gr in grads)
        assert all(x.grad is not None and float(x.grad.abs().sum()) > 0 for x in s)
        assert all(x.grad is None for x in t)
        for mod in (su, tu, pa, sr, tr, ra, fa):
            mod.zero_grad()
        for x in s:
            x.grad = None
        s_roi, _ = roi_features(s, boxes, [4, 8])
        t_roi, _ = roi_features(t, boxes, [4, 8])
