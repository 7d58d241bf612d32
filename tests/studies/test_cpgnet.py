import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

import paperzoo.studies.cpgnet  # noqa: F401  (registers the models)
from paperzoo.layers.registry import create_model, list_models
from paperzoo.studies.cpgnet.augment import ScanBatches, augment, make_loss_fn
from paperzoo.studies.cpgnet.losses import lovasz_softmax, tcl_loss
from paperzoo.studies.cpgnet.metrics import confusion, evaluate, flip_consistency, iou_per_class, miou

TINY = dict(point_width=4, stage_widths=None, grid_widths=(4, 4, 8), grid_out=4, bev_range=(-8.0, 8.0, -8.0, 8.0),
            bev_shape=(16, 16), rv_fov=(-20.0, 10.0), rv_shape=(8, 32))


@pytest.mark.parametrize("name", list_models("*cpgnet*"))
def test_forward_backward(name):
    torch.manual_seed(0)
    kw = {k: v for k, v in TINY.items() if v is not None} if name != "test_cpgnet" else {}
    m = create_model(name, **kw)
    x = torch.randn(2, 200, 4) * 5
    x[0, 0, :3] = 100.0                                                          # a point outside every grid
    out = m(x)
    K = out["logits"].shape[1]
    assert out["logits"].shape == (2, K, 200) and len(out["stage_logits"]) == len(m.stages)
    loss, parts = make_loss_fn()(m, {"xyzi": x, "raw": x.clone(), "target": torch.randint(0, K, (2, 200))})
    loss.backward()
    assert torch.isfinite(loss) and set(parts) == {"loss_ce", "loss_lovasz", "loss_tcl"}
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_tcl_zero_for_identical_views_positive_otherwise():
    torch.manual_seed(0)
    m = create_model("test_cpgnet").eval()
    x = torch.randn(1, 300, 4) * 5
    a = m(x)["logits"]
    assert tcl_loss(a, m(x)["logits"]).item() == pytest.approx(0.0, abs=1e-6)
    xa = augment(x, torch.Generator().manual_seed(1))
    assert tcl_loss(m(xa)["logits"], a).item() > 1e-5


def test_lovasz_perfect_prediction_is_zero():
    t = torch.tensor([[1, 2, 3, 0, 2]])
    probs = torch.nn.functional.one_hot(t, 4).permute(0, 2, 1).float()
    assert lovasz_softmax(probs, t).item() == pytest.approx(0.0, abs=1e-7)
    assert lovasz_softmax(probs.flip(1), t).item() > 0.5


def test_miou_hand_checked():
    target = np.array([1, 1, 1, 2, 2, 3, 0, 0])
    pred = np.array([1, 1, 2, 2, 2, 1, 3, 3])
    conf = confusion(pred, target, 4)
    # class 1: TP 2, FP 1 (from 3), FN 1 → 2/4; class 2: TP 2, FP 1, FN 0 → 2/3; class 3: TP 0, FN 1 → 0
    assert_allclose(iou_per_class(conf), [0.5, 2 / 3, 0.0])
    assert miou(conf) == pytest.approx((0.5 + 2 / 3) / 3)


def test_batches_and_evaluate():
    rng = np.random.default_rng(0)
    scans = [(rng.normal(0, 4, (150, 4)).astype(np.float32), rng.integers(0, 4, 150)) for _ in range(3)]
    b = ScanBatches(scans, 2, 64, seed=0, tcl=True)(0)
    assert b["xyzi"].shape == b["raw"].shape == (2, 64, 4) and torch.equal(b["xyzi"][..., 3], b["raw"][..., 3])
    m = create_model("test_cpgnet")
    r = evaluate(m, scans[:2], 4)
    assert 0 <= r["miou"] <= 1 and 0 <= r["miou_tta"] <= 1 and len(r["iou_per_class_tta"]) == 3
    r1 = evaluate(m, scans[:1], 4)
    assert r1["flip_consistency"] == pytest.approx(flip_consistency(m, torch.from_numpy(scans[0][0])[None],
                                                                    torch.from_numpy(scans[0][1])[None]), abs=1e-6)


def test_from_config_merges_shared_and_arm_keys():
    from paperzoo.studies.cpgnet.model import cpgnet_from_config

    block = {"num_classes": 5, "model": dict(TINY, stage_widths=[4]),
             "arms": {"a": {"model": "cpgnet_fuse2", "stage_widths": [4, 6], "tcl": True}}}
    m = cpgnet_from_config(block, "a")
    assert len(m.stages) == 2 and m.stages[-1].head[1].out_channels == 5 and m.bev_shape == (16, 16)
    with pytest.raises(KeyError, match="unknown arm"):
        cpgnet_from_config(block, "b")


def test_recalibrate_bn_uses_plain_average():
    from paperzoo.studies.cpgnet.model import recalibrate_bn

    m = create_model("test_cpgnet")
    xs = [torch.randn(1, 100, 4) * s for s in (1.0, 3.0)]
    recalibrate_bn(m, lambda i: {"xyzi": xs[i]}, 2)
    bn = m.stages[0].mlp[0]                                                      # input BN on the 7 point features
    feats = [m.project(x)[0] for x in xs]                                        # (1, 7, N) each
    expect = torch.stack([f.mean((0, 2)) for f in feats]).mean(0)
    assert not m.training and bn.momentum == 0.1
    assert_allclose(bn.running_mean.numpy(), expect.numpy(), rtol=1e-5, atol=1e-6)
