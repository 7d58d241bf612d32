"""Registry-wide smoke test, DETR-lite's KD-DETR extra-anchor pass and Group DETR groups."""
import pytest
import torch
from numpy.testing import assert_allclose

from paperzoo.layers import box_ops, create_model, list_models
from paperzoo.layers.criterion import SetCriterion, weighted_loss, with_aux_weights
from paperzoo.layers.detr_lite import DETRLite, PostProcess
from paperzoo.layers.matcher import HungarianMatcher
from paperzoo.layers.position import PositionEmbeddingSine, sine_embed
from paperzoo.layers.registry import register_model

torch.set_num_threads(1)
SIZE = 32  # tiny inputs: every backbone still leaves >= 1 token


def _images(B=2, seed=0):
    return torch.randn(B, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(set(list_models(module="paperzoo.layers"))
                                        - set(list_models(module="paperzoo.layers.vit"))))
def test_every_registered_model_runs_forward_and_backward(name):
    # (the fixed-size ViTs of layers.vit are exercised by the LAE tests)
    torch.manual_seed(0)
    model = create_model(name)
    if name.startswith(("dense", "test_dense")):  # dense detectors need targets in training
        from paperzoo.layers.dense import targets_to_xyxy

        targets = [{"labels": torch.tensor([0, 1]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.7, 0.3, 0.2]])},
                   {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}]
        losses = model(_images(2), targets_to_xyxy(targets, SIZE))
        loss = losses["classification"] + losses["bbox_regression"]
        assert torch.isfinite(loss)
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        return
    out = model(_images())
    if isinstance(out, dict):  # detector
        C = model.num_classes
        targets = [{"labels": torch.tensor([0, C - 1]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.7, 0.3, 0.2]])},
                   {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}]
        weights = with_aux_weights({"loss_ce": 2, "loss_bbox": 5, "loss_giou": 2}, len(out["aux_outputs"]) + 1)
        losses = SetCriterion(C, HungarianMatcher(), weights)(out, targets)
        loss = weighted_loss(losses, weights)
        assert out["pred_boxes"].shape == (2, model.num_queries, 4)
    else:  # backbone: (B, C, H/s, W/s)
        assert out.shape == (2, model.num_channels, SIZE // model.stride, SIZE // model.stride)
        loss = out.square().mean()
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_registry_overrides_and_errors():
    m = create_model("test_detr_lite", num_classes=7, num_queries=3)
    assert m.class_head.out_features == 7 and m.num_queries == 3
    with pytest.raises(KeyError, match="unknown model"):
        create_model("no_such_model")
    with pytest.raises(ValueError, match="already registered"):
        register_model(type("F", (), {"__name__": "test_cnn", "__call__": lambda self: None})())
    assert list_models("detr_lite_*") == ["detr_lite_m", "detr_lite_s", "detr_lite_s3", "detr_lite_s3_nb", "detr_lite_tiny"]
    assert "test_detr_lite" in list_models(module="paperzoo.layers")
    assert not list_models("*cpgnet*", module="paperzoo.layers")


def test_output_keys_and_shapes():
    model = create_model("test_detr_lite", num_classes=5, num_groups=3).train()
    out = model(_images(), extra_anchors=torch.randn(2, 6, 4))
    Q, L = model.num_queries, len(model.decoder.layers)
    assert set(out) == {"pred_logits", "pred_boxes", "aux_outputs", "num_groups", "extra_outputs"}
    assert out["pred_logits"].shape == (2, 3 * Q, 5) and out["pred_boxes"].shape == (2, 3 * Q, 4)
    assert out["num_groups"] == 3 and len(out["aux_outputs"]) == L - 1
    ex = out["extra_outputs"]
    assert ex["pred_logits"].shape == (2, 6, 5) and ex["pred_boxes"].shape == (2, 6, 4)
    assert len(ex["aux_outputs"]) == L - 1
    assert ((out["pred_boxes"] >= 0) & (out["pred_boxes"] <= 1)).all()


def test_softmax_head_has_a_no_object_logit():
    model = create_model("test_detr_lite", num_classes=3, focal=False)
    out = model(_images())
    assert out["pred_logits"].shape[-1] == 4
    targets = [{"labels": torch.tensor([2]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.3]])}] * 2
    weights = with_aux_weights({"loss_ce": 1, "loss_bbox": 5, "loss_giou": 2}, 2)
    losses = SetCriterion(3, HungarianMatcher(1, 5, 2, focal=False), weights, focal=False)(out, targets)
    weighted_loss(losses, weights).backward()
    dets = PostProcess(top_k=5, focal=False)(out, torch.tensor([[32, 32]] * 2))
    assert dets[0]["labels"].max() < 3


def test_untrained_boxes_start_at_the_anchors():
    model = create_model("test_detr_lite").eval()
    with torch.no_grad():
        out = model(_images())
    assert_allclose(out["pred_boxes"][0].numpy(), model.own_anchors().sigmoid().detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_extra_anchors_do_not_change_detection_outputs(mode):
    torch.manual_seed(0)
    model = create_model("test_detr_lite", num_groups=2)
    model.train(mode == "train")
    x = _images()
    with torch.no_grad():
        plain = model(x)
        with_extra = model(x, extra_anchors=torch.randn(7, 4))
    for k in ("pred_logits", "pred_boxes"):
        assert torch.equal(plain[k], with_extra[k])
        for a, b in zip(plain["aux_outputs"], with_extra["aux_outputs"]):
            assert torch.equal(a[k], b[k])


def test_extra_pass_on_own_anchors_reproduces_detection_outputs():
    # KD-DETR "specific" points: the model's own anchors decoded as extras give its own outputs
    model = create_model("test_detr_lite").eval()
    with torch.no_grad():
        out = model(_images(), extra_anchors=model.own_anchors())
    assert_allclose(out["extra_outputs"]["pred_logits"].numpy(), out["pred_logits"].numpy(), atol=1e-5)
    assert_allclose(out["extra_outputs"]["pred_boxes"].numpy(), out["pred_boxes"].numpy(), atol=1e-6)


def test_groups_do_not_attend_to_each_other():
    torch.manual_seed(0)
    G = 3
    model = create_model("test_detr_lite", num_groups=G).train()
    Q, x = model.num_queries, _images()
    with torch.no_grad():
        ref = model(x)
        model.anchors[Q:2 * Q] += torch.randn(Q, 4)  # perturb group 1 only
        pert = model(x)
    for k in ("pred_logits", "pred_boxes"):
        keep = torch.cat([torch.arange(Q), torch.arange(2 * Q, 3 * Q)])  # groups 0 and 2
        assert_allclose(pert[k][:, keep].numpy(), ref[k][:, keep].numpy(), atol=1e-6)
        assert not torch.allclose(pert[k][:, Q:2 * Q], ref[k][:, Q:2 * Q])


def test_self_attention_is_shared_without_groups():
    # control for the test above: with one group of the same queries, perturbing some changes the rest
    torch.manual_seed(0)
    model = create_model("test_detr_lite", num_queries=8).train()
    x = _images()
    with torch.no_grad():
        ref = model(x)["pred_logits"]
        model.anchors[4:] += torch.randn(4, 4)
        assert not torch.allclose(model(x)["pred_logits"][:, :4], ref[:, :4])


def test_shared_self_attention_switch_lets_groups_interact():
    """``group_self_attn=False`` (Group DETR's shared self-attention ablation): perturbing group
    1's anchors now changes group 0's predictions in training; the same weights with the switch
    on leave group 0 untouched; eval (group 0 only) does not depend on the switch."""
    torch.manual_seed(0)
    shared = create_model("test_detr_lite", num_groups=2, group_self_attn=False).train()
    grouped = create_model("test_detr_lite", num_groups=2)
    grouped.load_state_dict(shared.state_dict())
    Q, x = shared.num_queries, _images()
    with torch.no_grad():
        ref_s, ref_g = shared(x)["pred_logits"][:, :Q], grouped.train()(x)["pred_logits"][:, :Q]
        for m in (shared, grouped):
            m.anchors[Q:] += torch.randn(Q, 4, generator=torch.Generator().manual_seed(1))
        assert not torch.allclose(shared(x)["pred_logits"][:, :Q], ref_s)
        assert_allclose(grouped(x)["pred_logits"][:, :Q].numpy(), ref_g.numpy(), atol=1e-6)
        assert_allclose(shared.eval()(x)["pred_logits"].numpy(), grouped.eval()(x)["pred_logits"].numpy(), atol=1e-6)


def test_inference_uses_only_group_zero():
    torch.manual_seed(0)
    model = create_model("test_detr_lite", num_groups=4)
    Q, x = model.num_queries, _images()
    model.train()
    with torch.no_grad():
        train_out = model(x)
        model.eval()
        eval_out = model(x)
        all_groups = model(x, num_groups=4)
    assert train_out["pred_logits"].shape[1] == 4 * Q
    assert eval_out["pred_logits"].shape[1] == Q and eval_out["num_groups"] == 1
    assert all_groups["pred_logits"].shape[1] == 4 * Q
    # group 0 in eval equals group 0 of a (group-wise) eval pass over all groups
    assert_allclose(eval_out["pred_boxes"].numpy(), all_groups["pred_boxes"][:, :Q].numpy(), atol=1e-6)
    with pytest.raises(AssertionError):
        model(x, num_groups=5)


def test_group_anchor_inits_differ_but_group_zero_is_fixed():
    a = DETRLite("test_cnn", d_model=16, nhead=2, num_queries=4, num_groups=3).anchors.detach()
    b = DETRLite("test_cnn", d_model=16, nhead=2, num_queries=4, num_groups=1).anchors.detach()
    assert torch.equal(a[:4], b)
    assert not torch.allclose(a[4:8], a[:4]) and not torch.allclose(a[8:], a[4:8])


def test_postprocess_topk_and_pixel_boxes():
    logits = torch.full((1, 3, 2), -10.0)
    logits[0, 1, 0], logits[0, 2, 1] = 5.0, 2.0
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.25, 0.5, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]]])
    (res,) = PostProcess(top_k=2)({"pred_logits": logits, "pred_boxes": boxes}, torch.tensor([[40, 80]]))
    assert res["labels"].tolist() == [0, 1]
    assert_allclose(res["boxes"].numpy(), [[0, 0, 40, 40], [0, 0, 80, 40]], atol=1e-5)


def test_sine_encodings():
    pos = PositionEmbeddingSine(8)(torch.zeros(2, 5, 3, 4))
    assert pos.shape == (2, 16, 3, 4) and pos.abs().max() <= 1
    emb = sine_embed(torch.rand(2, 7, 4), 16)
    assert emb.shape == (2, 7, 64)
    assert_allclose(sine_embed(torch.zeros(1, 1), 4).numpy(), [[0, 1, 0, 1]])


def test_box_ops_round_trip():
    b = torch.tensor([[0.5, 0.4, 0.2, 0.6]])
    assert_allclose(box_ops.xyxy_to_cxcywh(box_ops.cxcywh_to_xyxy(b)).numpy(), b.numpy(), atol=1e-6)
    assert_allclose(box_ops.inverse_sigmoid(b).sigmoid().numpy(), b.numpy(), atol=1e-6)
    assert box_ops.nms(torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10.0], [20, 20, 30, 30.0]]),
                       torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
