"""RetinaNet-style DenseDetector (paperzoo.layers.dense): torchvision's loss / postprocessing
on a small pyramid, at the images' own size (no 800-px resize), with 0-based labels."""
from functools import partial
from itertools import pairwise

import pytest
import torch
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection import retinanet as tv_retinanet
from torchvision.models.detection.retinanet import RetinaNetHead

from paperzoo.layers import box_ops, create_model
from paperzoo.layers.dense import (
    DenseDetector,
    DenseHead,
    SmallPyramid,
    retinanet_anchor_sizes,
    targets_to_xyxy,
)

torch.set_num_threads(1)
S = 64  # image size (px)
C = 4   # classes of test_dense


def _empty_target():
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}


def _data():
    """2 fixed 64-px images with 1 and 2 boxes (xyxy px); each box is painted into the
    channel of its label so there is something to learn."""
    x = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(0)) * 0.5
    t = [{"boxes": torch.tensor([[8.0, 8, 40, 36]]), "labels": torch.tensor([0])},
         {"boxes": torch.tensor([[20.0, 16, 56, 60], [4, 30, 24, 58]]), "labels": torch.tensor([2, 1])}]
    for i, ti in enumerate(t):
        for b, lab in zip(ti["boxes"].long().tolist(), ti["labels"].tolist()):
            x[i, lab, b[1]:b[3], b[0]:b[2]] += 2.0
    return x, t


def _model(**kw):
    torch.manual_seed(0)
    return create_model("test_dense", **kw)


def test_losses_are_finite_scalars_and_overfit_two_images():
    model = _model().train()
    x, t = _data()
    out = model(x, t)
    assert set(out) == {"classification", "bbox_regression"}
    for v in out.values():
        assert v.dim() == 0 and torch.isfinite(v) and v > 0
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = model(x, t)
        loss = out["classification"] + out["bbox_regression"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.3 * losses[0], losses


def test_no_resizing_anchors_and_boxes_live_in_the_real_image():
    model = _model(score_thresh=0.0).eval()
    x, _ = _data()
    feats = model.features(x)
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [(8, 8), (4, 4), (2, 2)]  # 800 px would give 100x100 at P3
    anchors = model.anchor_generator(model.image_list(x), list(feats.values()))
    A = model.num_anchors_per_location()
    assert A == 9
    assert len(anchors) == 2 and anchors[0].shape == ((64 + 16 + 4) * A, 4)
    centres = box_ops.xyxy_to_cxcywh(anchors[0])[:, :2]
    assert centres.min() >= 0 and centres.max() < S
    assert centres.max() >= S - 8  # the lattice reaches the far side (stride-8 centres 0 .. 56)
    # anchor sizes are the requested pixels: the largest square anchor is ~51 px (32 * 2^(2/3))
    wh = anchors[0][:, 2:] - anchors[0][:, :2]
    assert wh.prod(1).sqrt().max().item() == pytest.approx(50.8, abs=1.5)
    with torch.no_grad():
        dets = model(x)
    assert all(len(d["boxes"]) > 0 for d in dets)
    for d in dets:
        assert d["boxes"].min() >= 0 and d["boxes"].max() <= S
    # true sizes: a padded image's boxes are clipped to its own (h, w)
    with torch.no_grad():
        dets = model(x, image_sizes=[(S, S), (40, 48)])
    assert dets[1]["boxes"][:, [0, 2]].max() <= 48 and dets[1]["boxes"][:, [1, 3]].max() <= 40


def test_images_not_divisible_by_32_are_padded_not_misaligned():
    model = _model().eval()
    x = torch.randn(1, 3, 70, 50)
    padded = model.image_list(x)
    assert padded.tensors.shape[-2:] == (96, 64) and padded.image_sizes == [(70, 50)]
    assert torch.equal(padded.tensors[..., :70, :50], x) and padded.tensors[..., 70:, :].abs().sum() == 0
    with torch.no_grad():
        _, feats = model(x, return_features=True)
    assert tuple(feats["p3"].shape[-2:]) == (12, 8)  # stride exactly 8, as AnchorGenerator assumes


def test_num_convs_adds_exactly_one_gn_conv_per_branch():
    F = 16

    def n_params(m):
        return sum(p.numel() for p in m.parameters())

    per_conv = F * F * 9 + 2 * F  # 3x3 conv without bias (GN follows) + GN affine
    heads = [DenseHead(F, 9, C, num_convs=k, gn_groups=4) for k in (0, 1, 2, 3)]
    assert [n_params(b) - n_params(a) for a, b in pairwise(heads)] == [2 * per_conv] * 3
    tower = heads[2].classification_head.conv
    assert len(tower) == 2
    for block in tower:
        conv, gn, act = block
        assert isinstance(conv, nn.Conv2d) and conv.bias is None and conv.kernel_size == (3, 3)
        assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 4 and isinstance(act, nn.ReLU)
    assert heads[2].classification_head.cls_logits.bias.allclose(torch.tensor(-4.59512), atol=1e-5)
    assert n_params(_model(num_convs=3)) - n_params(_model(num_convs=1)) == 2 * 2 * per_conv


def test_head_with_4_convs_is_torchvisions_retinanet_head():
    torch.manual_seed(1)
    ours = DenseHead(16, 9, C, num_convs=4, gn_groups=4)
    theirs = RetinaNetHead(16, 9, C, norm_layer=partial(nn.GroupNorm, 4))
    theirs.load_state_dict(ours.state_dict())  # strict: same module layout
    maps = [torch.randn(2, 16, 8, 8), torch.randn(2, 16, 4, 4)]
    a, b = ours(maps), theirs(maps)
    assert a["cls_logits"].shape == (2, (64 + 16) * 9, C) and a["bbox_regression"].shape == (2, (64 + 16) * 9, 4)
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_losses_and_detections_equal_torchvision_retinanet_without_resize():
    """The same modules inside torchvision's RetinaNet, with a transform that is the identity
    at 64 px (min_size = max_size = 64, mean 0, std 1), give the same losses and detections."""
    model = _model(score_thresh=0.0)
    tv = RetinaNet(model.features, C, min_size=S, max_size=S, image_mean=[0.0] * 3, image_std=[1.0] * 3,
                   anchor_generator=model.anchor_generator, head=model.head, score_thresh=0.0,
                   detections_per_img=100)
    x, t = _data()
    model.train(), tv.train()
    torch.manual_seed(0)
    ours = model(x, t)
    theirs = tv(list(x), t)
    for k in ("classification", "bbox_regression"):
        torch.testing.assert_close(ours[k], theirs[k])
    model.eval(), tv.eval()
    with torch.no_grad():
        ours, theirs = model(x), tv(list(x))
    for a, b in zip(ours, theirs):
        assert len(a["boxes"]) > 0
        for k in ("boxes", "scores", "labels"):
            torch.testing.assert_close(a[k], b[k])


def test_label_zero_is_a_real_class(monkeypatch):
    """torchvision's one-hot targets put label 0 in column 0 (no background class)."""
    seen = []
    focal = tv_retinanet.sigmoid_focal_loss

    def spy(inputs, targets, **kw):
        seen.append(targets.detach().clone())
        return focal(inputs, targets, **kw)

    monkeypatch.setattr(tv_retinanet, "sigmoid_focal_loss", spy)
    model = _model().train()
    x, _ = _data()
    box = torch.tensor([[8.0, 8, 40, 36]])
    for label in (0, 2):
        seen.clear()
        model(x[:1], [{"boxes": box, "labels": torch.tensor([label])}])
        (target,) = seen  # (valid anchors, C) one-hot
        positives = target.sum(0)
        assert positives[label] > 0 and positives.sum() == positives[label], (label, positives)
    # the positive count is the matcher's foreground count
    feats = model.features(x[:1])
    anchors = model.anchor_generator(model.image_list(x[:1]), list(feats.values()))[0]
    matched = model.proposal_matcher(box_ops.box_iou(box, anchors))
    assert positives[2] == (matched >= 0).sum() > 0


def test_images_without_boxes():
    model = _model().train()
    x, t = _data()
    out = model(x, [t[0], _empty_target()])
    assert all(torch.isfinite(v) for v in out.values())
    out = model(x, [_empty_target(), _empty_target()])
    assert torch.isfinite(out["classification"]) and out["classification"] > 0
    assert out["bbox_regression"] == 0
    out["classification"].backward()
    assert model.head.classification_head.cls_logits.bias.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        empty = model(x)  # fresh model: every score ~0.01 < score_thresh 0.05
        model.score_thresh = 0.0
        full = model(x)
    assert all(len(d["boxes"]) == 0 for d in empty) and all(len(d["boxes"]) == 100 for d in full)
    for d in empty + full:
        n = len(d["boxes"])
        assert d["boxes"].shape == (n, 4) and d["boxes"].dtype == torch.float32
        assert d["scores"].shape == (n,) and d["scores"].dtype == torch.float32
        assert d["labels"].shape == (n,) and d["labels"].dtype == torch.int64
        assert ((d["labels"] >= 0) & (d["labels"] < C)).all()
        assert (d["scores"][:-1] >= d["scores"][1:]).all()


def test_return_features():
    model = _model().train()
    x, t = _data()
    out = model(x, t, return_features=True)
    feats = out["features"]
    assert list(feats) == ["p3", "p4", "p5"] and model.features.strides == (8, 16, 32)
    for f, s in zip(feats.values(), model.features.strides):
        assert f.shape == (2, model.features.out_channels, S // s, S // s)
    assert feats["p3"].requires_grad
    model.eval()
    with torch.no_grad():
        dets, feats = model(x, return_features=True)
    assert len(dets) == 2 and [f.shape[-1] for f in feats.values()] == [8, 4, 2]


def test_targets_to_xyxy_round_trip():
    t = [{"boxes": torch.tensor([[0.5, 0.25, 0.5, 0.25]]), "labels": torch.tensor([3]),
          "size": torch.tensor([64, 128])}]
    (xyxy,) = targets_to_xyxy(t)  # (h, w) from "size"
    torch.testing.assert_close(xyxy["boxes"], torch.tensor([[32.0, 8.0, 96.0, 24.0]]))
    assert xyxy["labels"] is t[0]["labels"] and t[0]["boxes"][0, 0] == 0.5  # input untouched
    assert torch.equal(targets_to_xyxy(t, (64, 128))[0]["boxes"], xyxy["boxes"])
    back = box_ops.xyxy_to_cxcywh(xyxy["boxes"]) / torch.tensor([128.0, 64, 128, 64])
    torch.testing.assert_close(back, t[0]["boxes"])
    assert targets_to_xyxy([{"boxes": torch.zeros(0, 4)}], 96)[0]["boxes"].shape == (0, 4)
    assert targets_to_xyxy(t, 100)[0]["boxes"].tolist() == [[25.0, 12.5, 75.0, 37.5]]


def test_bad_inputs_are_rejected():
    model = _model().train()
    x, t = _data()
    with pytest.raises(ValueError, match="targets are required"):
        model(x)
    with pytest.raises(ValueError, match="positive width"):
        model(x[:1], [{"boxes": torch.tensor([[10.0, 10, 10, 20]]), "labels": torch.tensor([0])}])
    with pytest.raises(ValueError, match="outside"):
        model(x[:1], [{"boxes": t[0]["boxes"], "labels": torch.tensor([C])}])
    with pytest.raises(ValueError, match="gn_groups"):
        DenseHead(16, 9, C, gn_groups=5)
    with pytest.raises(ValueError, match="anchor-size levels"):
        DenseDetector(SmallPyramid((8, 8, 16, 32), 16), C, anchor_sizes=retinanet_anchor_sizes((8, 16)))


def test_registered_variants():
    lite = create_model("dense_lite", num_classes=3)
    assert lite.features.out_channels == 64 and lite.head.num_convs == 2 and lite.head.gn_groups == 8
    assert lite.head.classification_head.cls_logits.out_channels == 9 * 3
    swapped = create_model("test_dense", features=SmallPyramid((8, 8, 16, 32), 32), gn_groups=8)
    assert swapped.head.classification_head.conv[0][0].in_channels == 32
    x = torch.randn(2, 3, 96, 96)
    lite.eval()
    with torch.no_grad():
        _, feats = lite(x, return_features=True)
    assert [tuple(f.shape) for f in feats.values()] == [(2, 64, 12, 12), (2, 64, 6, 6), (2, 64, 3, 3)]


def test_head_without_norm_is_mmdet_retinahead_like():
    """gn_groups=0: plain conv (with bias) + ReLU towers, as mmdet's RetinaHead (paper scale)."""
    from paperzoo.layers.dense import DenseHead

    head = DenseHead(16, 9, 4, num_convs=2, gn_groups=0)
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in head.modules())
    convs = [m for m in head.classification_head.conv.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 and all(c.bias is not None for c in convs)
    out = head([torch.randn(1, 16, 4, 4)])
    assert out["cls_logits"].shape == (1, 4 * 4 * 9, 4)
